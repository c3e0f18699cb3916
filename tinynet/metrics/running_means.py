"""Running means of the loss and the metrics over the samples of an epoch, kept on the device (Keras's ``Mean``)."""
from tinynet import backend
from tinynet.kernels import running_means as kernel
from tinynet.metrics.accuracy import Accuracy

NOT_YET = -1  # first_bad before any batch's loss was NaN or infinite


class RunningMeans:
    """``add(loss, y, y_hat)`` after each batch adds its loss and metrics, times its size, to totals kept on the
    device, and notes the first batch whose loss is NaN or infinite; nothing is read back to the host until
    ``read()`` (on a GPU, each read waits for the work queued before it). ``add`` writes into the same arrays
    every time, in place, so that a CUDA graph which recorded it adds into them at every replay
    (``tinynet/models/graph.py``); ``reset()`` zeroes them for the next epoch."""

    def __init__(self, metrics):
        self.metrics = metrics
        # The compiled add covers no metrics, or Accuracy alone (its class exactly: a subclass may differ).
        self.compilable = [type(m) for m in metrics] in ([], [Accuracy])
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
        if backend.get_backend() == "cupy" and self.fits_compiled(loss, y, y_hat):
            return self.add_compiled(loss, y, y_hat)  # on a GPU: the lines below, as one kernel
        xp, n = backend.xp(), y.shape[0]
        self.totals["loss"] += loss * n
        for m in self.metrics:
            self.totals[m.name] += m(y, y_hat) * n
        self.samples += n
        first = ~xp.isfinite(loss) & (self.first_bad == NOT_YET)  # this batch's loss is the first not finite
        self.first_bad[...] = xp.where(first, self.batches, self.first_bad)
        self.bad_loss[...] = xp.where(first, loss, self.bad_loss)
        self.batches += 1

    # --- the same, compiled (CuPy only): on a GPU each CuPy call in ``add`` is one kernel, about nineteen with
    # metrics=['accuracy']; tinynet/kernels/running_means.py does exactly their operations in one.
    def fits_compiled(self, loss, y, y_hat):
        """True when ``add_compiled`` does what ``add``'s lines do: no metrics, or Accuracy on one-hot targets."""
        return self.compilable and kernel.fits(loss, y, y_hat, self.totals["loss"], bool(self.metrics))

    def add_compiled(self, loss, y, y_hat):
        """``add`` in one kernel launch, into the same arrays, in place."""
        accuracy = self.totals[self.metrics[0].name] if self.metrics else None
        kernel.running_means_add(loss, y, y_hat, self.totals["loss"], accuracy, self.samples, self.batches,
                                 self.first_bad, self.bad_loss)

    def read(self):
        """{name: mean over the samples added}, sorted by name like Keras's logs (accuracy, loss)."""
        samples = int(self.samples)
        return {name: float(total) / samples for name, total in sorted(self.totals.items())}

    def first_non_finite(self):
        """(the index of the first batch whose loss was NaN or infinite, that loss), or None."""
        first = int(self.first_bad)
        return None if first == NOT_YET else (first, float(self.bad_loss))
