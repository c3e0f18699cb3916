"""The mistakes a model is surest of: where it was confident, and wrong."""
import numpy

from tinynet.plot.figure import as_classes, as_images, draw_grid, finish, grid_shape, new_figure, set_title


def mistakes(images, labels, probabilities, count=20, columns=10, path=None):
    """The ``count`` wrong predictions made with the highest probability, most confident first.

    Each is titled with the predicted class and its probability, then the true label:
    "pred 3 (97.2%)" over "true 5". Some turn out to be badly written digits, some mislabelled ones.
    Returns the figure; writes it to ``path`` too when given.
    """
    images = as_images(images)
    labels = as_classes(labels)
    probabilities = numpy.asarray(probabilities)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities: expected one row per image (N, classes), got shape {probabilities.shape}.")
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = numpy.flatnonzero(predicted != labels)
    worst = wrong[numpy.argsort(-confidence[wrong], kind="stable")][:count]  # most confident first
    rows, columns = grid_shape(max(len(worst), 1), columns)  # an empty grid still gets room for its title
    fig = new_figure(1.2 * columns, 1.4 * rows + 0.5)
    titles = [f"pred {predicted[i]} ({confidence[i]:.1%})\ntrue {labels[i]}" for i in worst]
    draw_grid(fig, images[worst], titles, [True] * len(worst), columns)
    if len(worst):
        set_title(fig, f"The {len(worst)} most confident mistakes (of {len(wrong):,} in {len(labels):,} images)")
    else:
        set_title(fig, f"No mistakes in {len(labels):,} images")
    return finish(fig, path)
