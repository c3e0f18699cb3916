"""Accuracy: the fraction of samples whose predicted class is the true one."""
from tinynet import backend


class Accuracy:
    """``metrics=['accuracy']``. Like Keras, it reads the targets' shape:

    - one-hot targets (N, C): argmax(y_pred) == argmax(y_true)   (categorical)
    - integer labels (N,) or (N, 1): argmax(y_pred) == y_true    (sparse categorical)
    - one output unit (N, 1): (y_pred > 0.5) == y_true           (binary)
    """

    def __init__(self, name="accuracy"):
        self.name = name

    def __call__(self, y_true, y_pred):
        """The mean accuracy over the batch, a 0-d array on the backend."""
        xp = backend.xp()
        if y_pred.shape[-1] == 1:
            # as floats: the array API does not compare integer labels with the float 0.5
            labels = xp.astype(xp.reshape(y_true, y_pred.shape), y_pred.dtype)
            hits = (y_pred > 0.5) == (labels > 0.5)
        elif y_true.ndim == y_pred.ndim and y_true.shape[-1] != 1:
            hits = xp.argmax(y_pred, axis=-1) == xp.argmax(y_true, axis=-1)
        else:  # a column of labels (N, 1) is read as (N,), as Keras does
            labels = xp.reshape(y_true, y_pred.shape[:-1])
            hits = xp.argmax(y_pred, axis=-1) == xp.astype(labels, xp.int64)
        return xp.mean(xp.astype(hits, y_pred.dtype))
