"""One-hot encoding of integer class labels."""
import numpy


def to_categorical(y, num_classes=None):
    """Turn integer labels into one-hot rows, like ``keras.utils.to_categorical``.

    >>> to_categorical([1, 0, 2])
    array([[0., 1., 0.],
           [1., 0., 0.],
           [0., 0., 1.]])

    Returns float64 NumPy arrays, as Keras does; ``fit`` casts to float32.
    """
    y = numpy.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:  # a column of labels, (n, 1)
        y = y[..., 0]
    if y.size and not numpy.all(numpy.equal(numpy.mod(y, 1), 0)):
        raise ValueError("to_categorical expects integer class labels such as 0..9.")
    y = y.astype("int64")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in 0..{num_classes - 1} for num_classes={num_classes}; "
            f"got values from {y.min()} to {y.max()}."
        )
    one_hot = numpy.zeros((y.size, num_classes))
    one_hot[numpy.arange(y.size), y.reshape(-1)] = 1.0
    return one_hot.reshape(y.shape + (num_classes,))
