"""The confusion matrix: how often each true class is predicted as each class."""
import numpy

from tinynet.plot.figure import as_classes, finish, new_figure


def confusion_counts(labels, predictions, num_classes=None):
    """counts[i, j] = how many samples of true class i were predicted as class j."""
    labels, predicted = as_classes(labels), as_classes(predictions, "predictions")
    if len(labels) != len(predicted):
        raise ValueError(f"{len(labels)} labels but {len(predicted)} predictions.")
    n = num_classes or int(max(labels.max(), predicted.max())) + 1
    counts = numpy.zeros((n, n), dtype=int)
    numpy.add.at(counts, (labels, predicted), 1)  # one count per (true, predicted) pair
    return counts


def confusion_matrix(labels, predictions, num_classes=None, path=None):
    """A table of counts, true class down, predicted class across; the diagonal is right.

    The colours follow the count on a log scale, so that a handful of confusions
    (say 7s read as 2s) stands out next to the thousand right answers; empty cells are white.
    Returns the figure; writes it to ``path`` too when given.
    """
    from matplotlib.colors import LogNorm

    counts = confusion_counts(labels, predictions, num_classes)
    n = len(counts)
    fig = new_figure(0.55 * n + 2.2, 0.55 * n + 1.2)
    ax = fig.add_subplot()
    shown = numpy.ma.masked_equal(counts, 0)  # zeros are left white
    picture = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(counts.max(), 2)))
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                dark = counts[i, j] > counts.max() ** 0.6  # white text on the darkest cells
                ax.text(j, i, f"{counts[i, j]}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    right = numpy.trace(counts)
    ax.set_title(f"Confusion matrix: {right:,} of {counts.sum():,} right ({right / counts.sum():.1%})")
    fig.colorbar(picture, ax=ax, label="count (log scale)", shrink=0.8)
    return finish(fig, path)
