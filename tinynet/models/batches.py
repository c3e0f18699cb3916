"""Mini-batches: the rows of (x, y) that each training step sees."""
import math

import numpy

from tinynet import backend
from tinynet.kernels import batches as kernel
from tinynet.utils import random


class Batches:
    """(x, y) cut into mini-batches on the device, in a new random order each epoch when ``shuffle``:
    ``new_epoch()`` draws the order, then ``batch(0)``, ``batch(1)``, ... are the epoch's ``steps`` batches
    (the last one smaller when ``batch_size`` does not divide the samples).

    Where the next batch starts is counted on the device (``position``), and every array here is written in
    place, so that a CUDA graph which recorded ``batch(step)`` cuts the *next* batch at each replay
    (``tinynet/models/graph.py``); ``step`` itself only says the batch's size."""

    def __init__(self, x, y, batch_size, shuffle):
        xp = backend.xp()
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.steps = math.ceil(x.shape[0] / batch_size)
        self.order = backend.to_device(numpy.arange(x.shape[0]), dtype=xp.int64)  # the samples, in this epoch's order
        self.offsets = backend.to_device(numpy.arange(batch_size), dtype=xp.int64)  # 0, 1, ..., batch_size - 1
        self.position = backend.zeros((), "int64")  # where in ``order`` the next batch starts
        self.blocks_done = backend.zeros((), "int32")  # batch_compiled's count of its finished blocks (CuPy)

    def new_epoch(self):
        """A new random order of the samples (drawn on the host, copied once), from the first batch."""
        n = self.x.shape[0]
        order = random.generator().permutation(n) if self.shuffle else numpy.arange(n)
        self.order[...] = backend.to_device(order, dtype=backend.xp().int64)
        self.position[...] = 0

    def size(self, step):
        """How many samples batch ``step`` holds."""
        return min(self.batch_size, self.x.shape[0] - step * self.batch_size)

    def batch(self, step):
        """Batch ``step``: the rows order[position : position + size] of x and of y; position moves past them."""
        xp, size = backend.xp(), self.size(step)
        if backend.get_backend() == "cupy" and kernel.fits(self.x, self.y):
            return self.batch_compiled(size)  # on a GPU: the lines below, as one kernel
        rows = xp.take(self.order, self.position + self.offsets[:size])  # this step's samples
        self.position += size
        return xp.take(self.x, rows, axis=0), xp.take(self.y, rows, axis=0)

    # --- the same, compiled (CuPy only): on a GPU the three lines above are five kernels (position + offsets,
    # three takes, position += size); tinynet/kernels/batches.py does exactly their copies in one.
    def batch_compiled(self, size):
        """``batch``'s lines in one kernel launch: the ``size`` rows of x and y from ``position`` on, and
        ``position`` moved past them, as the readable lines do, bit for bit."""
        return kernel.gather_batch(self.x, self.y, self.order, self.position, self.blocks_done, size)


def slices(n, batch_size):
    """Each batch's index: its rows, then ``...`` for the other axes (the last batch may be smaller;
    the array API wants slices within bounds)."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n)), ...
