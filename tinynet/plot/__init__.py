"""Pictures of the data and of training, drawn with matplotlib.

    tinynet.plot.image_grid(x_train[:40], y_train[:40])               # digits with their labels
    tinynet.plot.training_curves(history)                             # loss and accuracy per epoch
    tinynet.plot.confusion_matrix(y_valid, model.predict(x_valid))    # which digits get mixed up
    tinynet.plot.mistakes(x_valid, y_valid, model.predict(x_valid))   # the most confident errors

Each function returns a ``matplotlib.figure.Figure``, which a notebook shows as
the cell's result, and writes a PNG when given ``path=``. They never open a
window and never touch ``matplotlib.pyplot`` or the global backend, so they
work on a server without a display. Labels and predictions may be class
numbers, one-hot rows or probabilities; images may be flat (784 numbers) or
square (28x28).
"""
from tinynet.plot.confusion_matrix import confusion_matrix
from tinynet.plot.image_grid import image_grid
from tinynet.plot.mistakes import mistakes
from tinynet.plot.training_curves import training_curves

__all__ = ["confusion_matrix", "image_grid", "mistakes", "training_curves"]
