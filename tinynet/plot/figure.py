"""What the plot functions share: a headless figure, saving it, and reading their inputs."""
import math

import numpy


def new_figure(width, height):
    """A figure ``width`` x ``height`` inches, not attached to any window.

    ``matplotlib.figure.Figure`` is used directly instead of ``pyplot.figure``:
    pyplot would pick a GUI backend and keep every figure alive until closed.
    """
    from matplotlib.figure import Figure  # imported here: `import tinynet` stays fast

    return Figure(figsize=(width, height), layout="constrained")


def set_title(fig, title):
    """Title the figure, widening it if the title would not fit (a grid of one image is narrow)."""
    fig.suptitle(title)
    fig.set_figwidth(max(fig.get_figwidth(), 0.085 * len(title) + 0.4))  # about 0.085 inch a character


def grid_shape(n, columns):
    """(rows, columns) for ``n`` images (n >= 1) in rows of at most ``columns``: fewer columns if fewer images."""
    columns = min(columns, n)
    return -(-n // columns), columns  # -(-n // c) is n / c rounded up


def finish(fig, path, dpi=100):
    """Write ``fig`` to ``path`` (a PNG, say, ``dpi`` pixels an inch) if a path is given; return the figure."""
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


def as_classes(y, role="labels"):
    """Class numbers from class numbers (N,), or from one-hot rows or probabilities (N, C)."""
    y = numpy.asarray(y)
    if y.ndim == 2:
        return y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"{role}: expected class numbers (N,) or one row per sample (N, classes), "
                         f"got an array of shape {y.shape}.")
    return y.astype(int)


def as_images(x):
    """(N, height, width) images from (N, height, width), or from flat rows (N, side*side)."""
    x = numpy.asarray(x)
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"Cannot draw rows of {x.shape[1]} numbers as square images; "
                             "pass images of shape (N, height, width).")
        x = x.reshape(len(x), side, side)
    if x.ndim != 3:
        raise ValueError(f"Expected images of shape (N, height, width) or (N, pixels), got {x.shape}.")
    return x


def draw_grid(fig, images, titles, wrong, columns):
    """One small axes per image, titled; ``wrong`` ones get a red title and a red frame."""
    if len(images) == 0:
        return
    vmax = 1.0 if images.max() <= 1 else 255.0  # pixels scaled to 0..1, or raw 0..255
    rows, columns = grid_shape(len(images), columns)
    for i, (image, title, bad) in enumerate(zip(images, titles, wrong)):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(image, cmap="gray", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=9, color="red" if bad else "black")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(bool(bad))
            spine.set_color("red")
            spine.set_linewidth(3)
