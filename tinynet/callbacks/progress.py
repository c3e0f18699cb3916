"""The bookkeeping of one epoch on the host: the progress bar, and a watch for a non-finite loss, which rolls the
weights back (``on_failure``) before it stops training; apart from that it changes nothing the model learns.
The loss and metrics are summed on the device (``tinynet.metrics.RunningMeans``) and read back here at most
ten times a second: on a GPU each read waits for the steps queued before it."""
import time

from tinynet.utils.progbar import Progbar

READ_EVERY = 0.1  # seconds between reads of the running means (the bar) or the non-finite flag, at least


class EpochProgress:
    """Draws Keras's progress line from ``means`` (a ``RunningMeans``). ``epoch`` is None when evaluating (no
    check then); a non-finite loss calls ``on_failure(what)``, which rolls back and raises (``rollback.undo``)."""

    def __init__(self, epoch, epochs, steps, means, verbose, on_failure=None):
        if epoch is not None and verbose and epochs > 1:
            print(f"Epoch {epoch + 1}/{epochs}")
        self.epoch, self.steps, self.means, self.on_failure = epoch, steps, means, on_failure
        self.bar, self.start = Progbar(steps, verbose=verbose, interval=READ_EVERY), time.perf_counter()
        self.last_check = self.start

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        """``with EpochProgress(...) as progress:`` ends the progress line when the epoch stops early (Ctrl-C,
        a non-finite loss), so that what follows starts on a line of its own."""
        self.bar.end_line()

    def update(self, step):
        """After batch ``step`` (0-based): check for a non-finite loss and draw the bar, when due."""
        done, now = step + 1, time.perf_counter()
        if done == self.steps:
            return  # the epoch's end reads once: end()
        draw = self.bar.due(done)
        if self.epoch is not None and (draw or now - self.last_check >= READ_EVERY):
            self.last_check = now
            self.check_finite()
        if draw:
            self.bar.update(done, self.means.read().items())

    def end(self, logs):
        """Draw the epoch's last line with ``logs``; returns the epoch's seconds."""
        seconds = time.perf_counter() - self.start
        self.bar.update(self.steps, logs.items())
        return seconds

    def check_finite(self):
        """Stop (``on_failure``) if a step's loss was NaN or infinite, naming the first such step."""
        bad = self.means.first_non_finite()
        if bad is not None:
            step, loss = bad
            self.on_failure(f"the loss became {loss} at epoch {self.epoch + 1}, step {step + 1}")
