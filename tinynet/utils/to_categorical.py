"""One-hot encoding of integer class labels."""
import warnings

import numpy

from tinynet import arguments

# More classes than this, in an array this large, is not a one-hot encoding but a mistake
# (ids, counts or prices taken for class numbers): refuse it rather than fill the memory.
MAX_CLASSES = 10**6
MAX_BYTES = 2**30


def to_categorical(y, num_classes=None):
    """Turn integer labels into one-hot rows, like ``keras.utils.to_categorical``.

    >>> to_categorical([1, 0, 2])
    array([[0., 1., 0.],
           [1., 0., 0.],
           [0., 0., 1.]])

    Returns float64 NumPy arrays, as Keras does; ``fit`` casts to float32.
    """
    if num_classes is not None:  # as Keras, an int (3.0 is refused too)
        num_classes = arguments.integer(num_classes, "num_classes")
    y = _labels(y)
    if y.ndim > 1 and y.shape[-1] == 1:  # a column of labels, (n, 1)
        y = y[..., 0]
    if y.ndim > 1 and y.shape[-1] > 1 and y.size and ((y == 0) | (y == 1)).all() and (y.sum(axis=-1) == 1).all():
        warnings.warn(f"y looks one-hot already (each row of {y.shape[-1]} holds a single 1): to_categorical "
                      f"makes it {y.shape + (2,)}, which no model with {y.shape[-1]} outputs can train on. If y is "
                      "one-hot, use it as it is; to_categorical takes the integer labels.", stacklevel=2)
    low, high = (int(y.min()), int(y.max())) if y.size else (0, -1)
    inferred = num_classes is None
    if inferred:
        num_classes = high + 1  # 0 for no labels at all
        if low < 0:
            raise ValueError(f"y must hold class labels 0, 1, 2, ...; got {low}.")
    elif low < 0 or high >= num_classes:
        raise ValueError(f"y must hold labels in 0..{num_classes - 1} for num_classes={num_classes}; "
                         f"got values from {low} to {high}.")
    shape, n_bytes = y.shape + (num_classes,), 8 * y.size * num_classes
    if num_classes > MAX_CLASSES and n_bytes > MAX_BYTES:
        size = f"an array of shape {shape} that takes {n_bytes / 2**30:,.1f} GiB"
        if inferred:
            raise ValueError(f"The labels in y go up to {high:,}, so to_categorical would make {num_classes:,} "
                             f"classes: {size}. Are these class numbers 0..num_classes-1? If they are ids or "
                             "other values, number the classes first: "
                             "classes, y = numpy.unique(y, return_inverse=True).")
        raise ValueError(f"num_classes={num_classes:,} would make {size}: is num_classes right?")
    y = y.astype("int64")
    one_hot = numpy.zeros((y.size, num_classes))
    one_hot[numpy.arange(y.size), y.reshape(-1)] = 1.0  # row n has its 1 in column y_n
    return one_hot.reshape(y.shape + (num_classes,))


def _labels(y):
    """``y`` as a NumPy array of whole numbers (bools, ints, or floats such as 2.0), or a clear error."""
    try:
        y = numpy.asarray(y)
    except ValueError as error:  # ragged lists
        raise TypeError(f"y must be an array of integer class labels such as [0, 2, 1] ({error}).") from None
    if y.dtype.kind not in "biuf":
        raise TypeError(f"y must hold integer class labels such as [0, 2, 1], got an array of dtype {y.dtype}"
                        f"{' (strings)' if y.dtype.kind in 'SU' else ''}. Convert them first: "
                        "y = numpy.asarray(y, dtype=int) for digits, or for names "
                        "classes, y = numpy.unique(y, return_inverse=True).")
    if y.dtype.kind == "f" and not (whole := numpy.isfinite(y) & (y == numpy.floor(y))).all():
        raise ValueError(f"y must hold integer class labels such as 0..9, got {y[~whole].flat[0].item()!r}.")
    return y
