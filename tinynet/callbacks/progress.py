"""The bookkeeping of one epoch: running means, the progress bar, and a watch for a non-finite loss, which rolls
the weights back (``on_failure``) before it stops training; apart from that it changes nothing the model learns.
The sums stay on the device, read back (a GPU sync) only when due."""
import time

from tinynet import backend
from tinynet.utils.finite import first_non_finite
from tinynet.utils.progbar import Progbar

CHECK_EVERY = 100  # steps between checks for a non-finite loss


class EpochProgress:
    """Keras's running means of the loss and metrics over the samples seen this epoch. ``epoch`` is
    None when evaluating (no check then); a non-finite loss calls ``on_failure(what)``, which rolls back and
    raises (``rollback.undo``)."""

    def __init__(self, epoch, epochs, steps, metrics, verbose, on_failure=None):
        if epoch is not None and verbose and epochs > 1:
            print(f"Epoch {epoch + 1}/{epochs}")
        self.epoch, self.steps, self.metrics, self.on_failure = epoch, steps, metrics, on_failure
        self.bar, self.start = Progbar(steps, verbose=verbose), time.perf_counter()
        self.batch_losses = backend.zeros(steps)  # for locating a non-finite loss
        self.sums, self.seen = {name: 0.0 for name in ["loss"] + [m.name for m in metrics]}, 0

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        """``with EpochProgress(...) as progress:`` ends the progress line when the epoch stops early (Ctrl-C,
        a non-finite loss), so that what follows starts on a line of its own."""
        self.bar.end_line()

    def update(self, step, loss, y, y_hat):
        """Add one batch's loss and metrics; check and draw when due."""
        n, done = y.shape[0], step + 1
        self.batch_losses[step] = loss
        self.sums["loss"] = self.sums["loss"] + loss * n
        for m in self.metrics:
            self.sums[m.name] = self.sums[m.name] + m(y, y_hat) * n
        self.seen += n
        if self.epoch is not None and (done == self.steps or done % CHECK_EVERY == 0 or self.bar.due(done)):
            self.check_finite(step)
        if done < self.steps and self.bar.due(done):
            self.bar.update(done, self.means().items())

    def means(self):
        """{name: running mean}, sorted by name like Keras's logs (accuracy, loss)."""
        return {name: float(total) / self.seen for name, total in sorted(self.sums.items())}

    def end(self, logs):
        """Draw the epoch's last line with ``logs``; returns the epoch's seconds."""
        seconds = time.perf_counter() - self.start
        self.bar.update(self.steps, logs.items())
        return seconds

    def check_finite(self, step):
        first = first_non_finite(self.batch_losses[:step + 1])  # the first non-finite step
        if first is not None:
            self.on_failure(f"the loss became {float(self.batch_losses[first])} at epoch {self.epoch + 1}, "
                            f"step {first + 1}")
