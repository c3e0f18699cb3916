"""Tests for examples/line_fit.py: every method lands on the least-squares line.

The notebook's points: x = 0..9, y = 10, 20, 25, 30, 40, 45, 40, 50, 60, 55, start m = -2, b = 40.
By hand: x_mean = 4.5, y_mean = 37.5, sum((x - x_mean)**2) = 82.5, sum((x - x_mean)(y - y_mean)) = 422.5, so
m = 422.5 / 82.5 = 169/33 = 5.1212..., b = 37.5 - 4.5 m = 159/11 = 14.4545...
"""
import importlib.util
from pathlib import Path

import pytest

M_EXACT, B_EXACT = 169 / 33, 159 / 11
LOSS_EXACT = 491 / 33  # sum of squared errors 4910/33 over 10 points: 14.8788...


@pytest.fixture(scope="module")
def line_fit():
    path = Path(__file__).resolve().parents[1] / "examples" / "line_fit.py"
    spec = importlib.util.spec_from_file_location("line_fit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_closed_form(line_fit):
    m, b = line_fit.least_squares()
    assert (m, b) == pytest.approx((M_EXACT, B_EXACT), rel=1e-12)
    assert line_fit.loss(m, b) == pytest.approx(LOSS_EXACT, rel=1e-12)


def test_the_starting_line_by_hand(line_fit):
    # y_hat = 40 - 2x; errors y - y_hat = -30, -18, -11, -4, 8, 15, 12, 24, 36, 33
    # loss = (900 + 324 + 121 + 16 + 64 + 225 + 144 + 576 + 1296 + 1089) / 10 = 475.5
    # dL/dm = -2/10 sum(x e) = -2/10 * 880 = -176;  dL/db = -2/10 sum(e) = -2/10 * 65 = -13
    assert line_fit.loss(*line_fit.START) == 475.5
    assert line_fit.gradient(*line_fit.START) == pytest.approx((-176.0, -13.0), rel=1e-12)


def test_tinynet_backpropagation_finds_the_same_derivatives(line_fit):
    assert line_fit.tinynet_gradient(*line_fit.START) == pytest.approx((-176.0, -13.0), rel=1e-6)
    assert line_fit.tinynet_gradient(M_EXACT, B_EXACT) == pytest.approx((0.0, 0.0), abs=1e-4)


def test_coordinate_search_lands_on_least_squares(line_fit):
    path, losses, evaluations = line_fit.coordinate_search(*line_fit.START)
    assert path[-1] == pytest.approx((M_EXACT, B_EXACT), abs=1e-5)
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))  # every move lowers the loss
    halvings = 24  # the step goes 1, 1/2, ..., 2**-23, then 2**-24 < 1e-7 ends the search
    assert evaluations == 1 + 4 * (len(path) - 1 + halvings)  # 4 nudges tried per move and per halving


def test_gradient_descent_lands_on_least_squares(line_fit):
    path, losses = line_fit.gradient_descent(*line_fit.START)
    assert len(path) == len(losses) == line_fit.STEPS + 1
    assert path[1] == pytest.approx((-2 + 0.03 * 176, 40 + 0.03 * 13))  # the first step, by hand
    assert path[-1] == pytest.approx((M_EXACT, B_EXACT), abs=1e-5)
    assert losses[-1] == pytest.approx(LOSS_EXACT, rel=1e-12)


def test_tinynet_follows_gradient_descent_step_by_step(line_fit):
    (m, b), losses = line_fit.fit_with_tinynet(*line_fit.START)
    assert (m, b) == pytest.approx((M_EXACT, B_EXACT), abs=1e-4)  # float32: a few 1e-5 off at most
    _, hand = line_fit.gradient_descent(*line_fit.START)
    assert len(losses) == len(hand)
    assert losses == pytest.approx(hand, rel=1e-5)


def test_the_script_prints_agreement_and_writes_three_plots(line_fit, tmp_path, capsys):
    out = tmp_path / "plots"
    assert line_fit.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "All three methods agree with the exact answer to 3 decimals." in printed
    for name in ("coordinate search", "gradient descent", "tinynet (SGD + mse)", "least squares (exact)"):
        row = next(line for line in printed.splitlines() if line.strip().startswith(name))
        assert "5.121   14.455   14.879" in row, row  # m, b and the loss, to 3 decimals
    for name in ("fit.png", "loss_surface.png", "loss_per_step.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name


@pytest.mark.parametrize("out, says", [
    ("{file}", "--out '{file}': that is a file, not a folder"),
    ("{file}/plots", "--out '{file}/plots': {file} is a file, not a folder: pick another place"),
    ("", "--out '': give the name of a folder"),
])
def test_an_out_folder_that_cannot_be_made_is_refused_before_any_step(line_fit, tmp_path, capsys, out, says):
    file = tmp_path / "notes.txt"
    file.write_text("a file, not a folder")
    with pytest.raises(SystemExit) as info:
        line_fit.main(["--out", out.format(file=file)])
    printed, err = capsys.readouterr()
    assert info.value.code == 2 and printed == ""  # not even step 1
    assert ": error: " + says.format(file=file) in err
