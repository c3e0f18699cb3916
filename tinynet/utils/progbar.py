"""The Keras-style progress line printed by ``fit``, ``evaluate`` and ``predict``.

    1875/1875 ━━━━━━━━━━━━━━━━━━━━ 8s 4ms/step - accuracy: 0.9440 - loss: 0.1847

On a terminal (or in Jupyter) the line is redrawn in place; anywhere else (a log
file, CI) only the finished line is printed, once, instead of a flood of updates.
"""
import sys
import time

BOLD, GREEN, GREY, RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"


def format_value(value):
    """Four decimals, or scientific notation for tiny values, as Keras prints them."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_step_time(seconds, unit="step"):
    """``4ms/step``: the time per step in s, ms or us."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def format_eta(seconds):
    if seconds > 3600:
        return f"{seconds // 3600:.0f}:{(seconds % 3600) // 60:02.0f}:{seconds % 60:02.0f}"
    if seconds > 60:
        return f"{seconds // 60:.0f}:{seconds % 60:02.0f}"
    return f"{seconds:.0f}s"


class Progbar:
    """A progress line for ``target`` steps.

    verbose=1: a bar that updates in place (terminal) or one finished line;
    verbose=2: one finished line without the bar; verbose=0: silent.
    ``due(step)`` says whether an update would be drawn now, so the caller only
    reads its metrics (a device-to-host copy on a GPU) when they will be shown.
    """

    def __init__(self, target, verbose=1, width=20, interval=0.05, stream=None):
        self.target, self.verbose, self.width, self.interval = target, verbose, width, interval
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.dynamic = isatty or "ipykernel" in sys.modules
        self.start = time.perf_counter()
        self.last_draw = float("-inf")
        self.last_width = 0
        self.line_open = False  # a line redrawn in place, not yet ended by its newline

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        """``with Progbar(...) as bar:`` ends an unfinished line when the loop stops early (Ctrl-C, an error),
        so that the terminal's next line (the traceback, the prompt) starts on a line of its own."""
        self.end_line()

    def end_line(self):
        """Print the newline of a line left unfinished, if any."""
        if self.line_open:
            self.stream.write("\n")
            self.stream.flush()
            self.line_open = False

    def due(self, step):
        """True when ``update(step, ...)`` would draw something."""
        if step >= self.target:
            return self.verbose > 0
        return (self.verbose == 1 and self.dynamic
                and time.perf_counter() - self.last_draw >= self.interval)

    def update(self, step, values=()):
        """Draw the line for ``step`` (1-based) with ``values``: (name, float) pairs."""
        if not self.due(step):
            return
        now = time.perf_counter()
        elapsed = now - self.start
        per_step = elapsed / step if step else 0.0
        finished = step >= self.target
        metrics = "".join(f" - {name}: {format_value(v)}" for name, v in values)
        count = f"{step:{len(str(self.target))}d}/{self.target}"
        if self.verbose == 2:
            line = f"{count} - {elapsed:.0f}s - {format_step_time(per_step)}{metrics}"
            self.stream.write(line + "\n")
        else:
            time_text = f"{elapsed:.0f}s" if finished else format_eta(per_step * (self.target - step))
            filled = int(self.width * step / self.target)
            bar = "━" * filled, "━" * (self.width - filled)
            plain = f"{count} {''.join(bar)} {time_text} {format_step_time(per_step)}{metrics}"
            if not self.dynamic:
                self.stream.write(plain + "\n")
            else:
                line = (f"\r{BOLD}{count}{RESET} {GREEN}{bar[0]}{RESET}{GREY}{bar[1]}{RESET}"
                        f" {BOLD}{time_text}{RESET} {format_step_time(per_step)}{metrics}")
                line += " " * max(0, self.last_width - len(plain))  # erase a longer previous line
                self.stream.write(line + ("\n" if finished else ""))
                self.last_width, self.line_open = len(plain), not finished
        self.stream.flush()
        self.last_draw = now
