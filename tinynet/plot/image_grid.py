"""A grid of images with their labels and, if given, the model's predictions."""
import numpy

from tinynet.plot.figure import as_classes, as_images, draw_grid, finish, grid_shape, new_figure, set_title


def image_grid(images, labels=None, predictions=None, columns=10, title=None, path=None):
    """Draw ``images`` in rows of ``columns``, each titled with its label.

    With ``predictions`` (class numbers or probabilities), each title shows the
    predicted class; a wrong one is written "3 (true 5)" in red, in a red frame.
    Returns the figure; writes it to ``path`` too when given.
    """
    images = as_images(images)
    n = len(images)
    if n == 0:
        raise ValueError("No images to draw.")
    labels = as_classes(labels) if labels is not None else None
    predicted = as_classes(predictions, "predictions") if predictions is not None else None
    for name, values in (("labels", labels), ("predictions", predicted)):
        if values is not None and len(values) != n:
            raise ValueError(f"{n} images but {len(values)} {name}.")
    if predicted is None:
        titles = [str(y) for y in labels] if labels is not None else [""] * n
        wrong = [False] * n
    elif labels is None:
        titles, wrong = [str(p) for p in predicted], [False] * n
    else:
        wrong = list(predicted != labels)
        titles = [f"{p} (true {y})" if bad else str(p) for p, y, bad in zip(predicted, labels, wrong)]
    rows, columns = grid_shape(n, columns)
    fig = new_figure(1.1 * columns, 1.25 * rows + 0.5)
    draw_grid(fig, images, titles, wrong, columns)
    counted = f"{n} image{'s' if n != 1 else ''}"
    if title is None:
        title = f"{counted} with their labels" if predicted is None else \
            f"Predictions on {counted}: {int(numpy.sum(wrong))} wrong (in red, with the true label)"
    set_title(fig, title)
    return finish(fig, path)
