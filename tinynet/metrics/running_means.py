"""Running means of the loss and the metrics over the samples of an epoch, kept on the device (Keras's ``Mean``)."""
from tinynet import backend

NOT_YET = -1  # first_bad before any batch's loss was NaN or infinite


class RunningMeans:
    """``add(loss, y, y_hat)`` after each batch adds its loss and metrics, times its size, to totals kept on the
    device, and notes the first batch whose loss is NaN or infinite; nothing is read back to the host until
    ``read()`` (on a GPU, each read waits for the work queued before it). ``add`` writes into the same arrays
    every time, in place, so that a CUDA graph which recorded it adds into them at every replay
    (``tinynet/models/graph.py``); ``reset()`` zeroes them for the next epoch."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.totals = {name: backend.zeros(()) for name in ["loss", *(m.name for m in metrics)]}
        self.samples, self.batches = backend.zeros((), "int64"), backend.zeros((), "int64")
        self.first_bad, self.bad_loss = backend.zeros((), "int64"), backend.zeros(())  # which batch, its loss
        self.reset()

    def reset(self):
        for total in (*self.totals.values(), self.samples, self.batches, self.bad_loss):
            total[...] = 0
        self.first_bad[...] = NOT_YET

    def add(self, loss, y, y_hat):
        """One batch: totals += value * batch size, for the loss and each metric; the first bad batch noted."""
        xp, n = backend.xp(), y.shape[0]
        self.totals["loss"] += loss * n
        for m in self.metrics:
            self.totals[m.name] += m(y, y_hat) * n
        self.samples += n
        first = ~xp.isfinite(loss) & (self.first_bad == NOT_YET)  # this batch's loss is the first not finite
        self.first_bad[...] = xp.where(first, self.batches, self.first_bad)
        self.bad_loss[...] = xp.where(first, loss, self.bad_loss)
        self.batches += 1

    def read(self):
        """{name: mean over the samples added}, sorted by name like Keras's logs (accuracy, loss)."""
        samples = int(self.samples)
        return {name: float(total) / samples for name, total in sorted(self.totals.items())}

    def first_non_finite(self):
        """(the index of the first batch whose loss was NaN or infinite, that loss), or None."""
        first = int(self.first_bad)
        return None if first == NOT_YET else (first, float(self.bad_loss))
