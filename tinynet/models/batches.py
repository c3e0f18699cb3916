"""Mini-batches: the rows of (x, y) that each training step sees."""
import numpy

from tinynet import backend
from tinynet.utils import random


def batches(x, y, batch_size, shuffle):
    """(x, y) cut into mini-batches on the device, in a new random order each epoch when ``shuffle``."""
    xp, n = backend.xp(), x.shape[0]
    order = random.generator().permutation(n) if shuffle else numpy.arange(n)  # on the host
    order = backend.to_device(order, dtype=xp.int64)  # one copy per epoch, then batches are cut on the device
    for batch in slices(n, batch_size):
        yield xp.take(x, order[batch], axis=0), xp.take(y, order[batch], axis=0)  # this step's samples


def slices(n, batch_size):
    """Each batch's index: its rows, then ``...`` for the other axes (the last batch may be smaller;
    the array API wants slices within bounds)."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n)), ...
