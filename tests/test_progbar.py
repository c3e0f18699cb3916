"""Tests for tinynet.utils.progbar: the Keras-style progress line."""
import io
import re

import pytest

from tinynet.utils import progbar
from tinynet.utils.progbar import Progbar, format_eta, format_step_time, format_value

pytestmark = pytest.mark.host_only("the progress line prints Python floats only")


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("value, text", [
    (0.18474, "0.1847"), (2.302585, "2.3026"), (1.0, "1.0000"), (0.94405, "0.9440"), (0.0011, "0.0011"),
    (0.001, "1.0000e-03"), (0.00012345, "1.2345e-04"), (0.0, "0.0000e+00"), (-0.5, "-0.5000"), (123.456789, "123.4568"),
])
def test_format_value(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize("seconds, text", [
    (0.0, "0s/step"), (2.4, "2s/step"), (1.0, "1s/step"), (0.0043, "4ms/step"), (0.001, "1ms/step"),
    (0.000512, "512us/step"), (0.0000004, "0us/step"),
])
def test_format_step_time(seconds, text):
    assert format_step_time(seconds) == text


def test_format_step_time_other_unit():
    assert format_step_time(0.02, unit="sample") == "20ms/sample"


@pytest.mark.parametrize("seconds, text", [(5.4, "5s"), (75, "1:15"), (3725, "1:02:05")])
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


def test_file_gets_only_the_finished_line():
    stream = io.StringIO()
    bar = Progbar(5, verbose=1, stream=stream, interval=0)
    for step in range(1, 5):
        assert not bar.due(step)  # not a terminal: nothing to draw before the end
        bar.update(step, [("loss", 1.0 / step)])
    assert stream.getvalue() == ""
    bar.update(5, [("accuracy", 0.94405), ("loss", 0.18474)])
    out = stream.getvalue()
    assert re.fullmatch(r"5/5 ━{20} \d+s \d+(s|ms|us)/step - accuracy: 0\.9440 - loss: 0\.1847\n", out), out


def test_count_is_right_aligned_to_the_target():
    stream = FakeTerminal()
    bar = Progbar(1875, verbose=1, stream=stream, interval=0)
    bar.update(7)
    assert re.sub(r"\x1b\[\d+m", "", stream.getvalue()).startswith("\r   7/1875 ━")


def test_verbose_2_format():
    stream = io.StringIO()
    bar = Progbar(1875, verbose=2, stream=stream, interval=0)
    for step in (1, 100, 1874):
        assert not bar.due(step)
        bar.update(step)
    assert stream.getvalue() == ""
    bar.update(1875, [("accuracy", 0.944), ("loss", 0.1847)])
    out = stream.getvalue()
    assert re.fullmatch(r"1875/1875 - \d+s - \d+(s|ms|us)/step - accuracy: 0\.9440 - loss: 0\.1847\n", out), out


def test_verbose_0_is_silent():
    stream = FakeTerminal()
    bar = Progbar(3, verbose=0, stream=stream, interval=0)
    for step in (1, 2, 3):
        assert not bar.due(step)
        bar.update(step, [("loss", 0.5)])
    assert stream.getvalue() == ""


def test_terminal_gets_redraws_and_a_final_newline():
    stream = FakeTerminal()
    bar = Progbar(4, verbose=1, stream=stream, interval=0)
    for step in range(1, 5):
        assert bar.due(step)
        bar.update(step, [("loss", 0.25 * step)])
    out = stream.getvalue()
    assert out.count("\r") == 4 and out.endswith("\n") and out.count("\n") == 1
    plain = re.sub(r"\x1b\[\d+m", "", out)  # drop the colours
    draws = plain.split("\r")[1:]
    assert re.fullmatch(r"1/4 ━{5}━{15} \S+ \d+(s|ms|us)/step - loss: 0\.2500\s*", draws[0]), draws[0]
    # spaces may pad it: the line before it was longer when its time per step had one digit more (10us, 9us)
    assert re.fullmatch(r"4/4 ━{20} \d+s \d+(s|ms|us)/step - loss: 1\.0000 *\n", draws[3]), draws[3]
    assert f"{progbar.GREEN}{'━' * 10}{progbar.RESET}{progbar.GREY}{'━' * 10}{progbar.RESET}" in out.split("\r")[2]


def test_terminal_erases_a_longer_previous_line():
    stream = FakeTerminal()
    bar = Progbar(2, verbose=1, stream=stream, interval=0)
    bar.update(1, [("loss", 123456.0)])
    bar.update(2, [("loss", 1.0)])
    first, second = [re.sub(r"\x1b\[\d+m", "", d) for d in stream.getvalue().split("\r")[1:]]
    assert len(second.rstrip("\n")) >= len(first)  # padded with spaces over the old text


def test_terminal_redraws_at_most_every_interval():
    stream = FakeTerminal()
    bar = Progbar(1000, verbose=1, stream=stream, interval=60.0)
    for step in range(1, 1000):
        bar.update(step)
    assert stream.getvalue().count("\r") == 1  # the first step only: the rest came too soon
    bar.update(1000)
    assert stream.getvalue().count("\r") == 2 and stream.getvalue().endswith("\n")


def test_a_loop_stopped_early_ends_the_line_it_left():
    """Ctrl-C in fit: the traceback and the prompt start on a line of their own, not after the bar."""
    out = FakeTerminal()
    with pytest.raises(KeyboardInterrupt):
        with Progbar(10, interval=0, stream=out) as bar:
            bar.update(3, [("loss", 0.5)])
            raise KeyboardInterrupt
    assert out.getvalue().count("\r") == 1 and out.getvalue().endswith("\n")
    bar.end_line()  # once only
    assert out.getvalue().count("\n") == 1


@pytest.mark.parametrize("dynamic", [True, False])
def test_a_finished_or_undrawn_line_gets_no_extra_newline(dynamic):
    out = FakeTerminal() if dynamic else io.StringIO()
    with Progbar(2, interval=0, stream=out) as bar:
        bar.update(1)
        bar.update(2)
    assert out.getvalue().count("\n") == 1  # the finished line's own
    out = FakeTerminal()
    with pytest.raises(KeyboardInterrupt), Progbar(2, verbose=0, stream=out):
        raise KeyboardInterrupt
    assert out.getvalue() == ""  # silent: nothing to end


def test_epoch_progress_ends_its_line_when_stopped(monkeypatch, capsys):
    import numpy as np

    from tinynet.callbacks import EpochProgress
    from tinynet.metrics.running_means import RunningMeans

    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    means = RunningMeans([])
    with pytest.raises(KeyboardInterrupt), EpochProgress(0, 1, 10, means, verbose=1) as progress:
        progress.bar.interval = 0
        means.add(np.float32(0.5), np.zeros((4, 1)), None)
        progress.update(0)
        raise KeyboardInterrupt
    out = capsys.readouterr().out
    assert "\r" in out and out.endswith("\n")
