"""examples/backprop_by_hand.py: every value worked by hand agrees with tinynet's,
and the script notices when one does not."""
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinynet.layers import ReLU

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "backprop_by_hand.py"


def test_every_value_agrees(backend_name):
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "TINYNET_BACKEND": backend_name})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    verdicts = [line.split()[-1] for line in lines if "tinynet: " in line]
    assert len(verdicts) >= 25 and set(verdicts) == {"agrees"}
    assert lines[-1] == "Every value computed by hand agrees with tinynet's."
    for step in ["1. Forward pass", "2. Loss", "3. Backward pass", "4. Update: RMSprop", "5. The other loss",
                 "6. A convolution and a max-pool"]:
        assert any(line.startswith(step) for line in lines), step


def test_a_wrong_backward_is_caught(monkeypatch, capsys):
    monkeypatch.setattr(ReLU, "backward", lambda self, dy: dy)  # forgets to block where z <= 0
    monkeypatch.setattr(sys, "argv", [str(SCRIPT)])  # not pytest's arguments: the script refuses any
    saved = np.get_printoptions()
    try:
        with pytest.raises(SystemExit) as stop:
            runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        np.set_printoptions(**saved)
    assert stop.value.code == 1
    out = capsys.readouterr().out
    assert "dL/dz1 = da1 where z1 > 0, else 0  (2, 3)  tinynet: ReLU.backward                      DIFFERS" in out
    assert "tinynet gives:" in out
    # ReLU's own output, and everything computed from it along the path fit takes
    assert out.rstrip().splitlines()[-1] == (
        "5 values differ: dL/dz1 = da1 where z1 > 0, else 0, dW1 again, in one call, db1 again, in one call, "
        "W1 change: -lr * g / sqrt(v + eps), b1 change: -lr * g / sqrt(v + eps)")


@pytest.mark.host_only("argument parsing only")
def test_help_is_the_docstring_and_arguments_are_refused():
    def run(*args):
        return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    shown = run("--help")
    assert shown.returncode == 0 and "One training step of a tiny network, worked by hand" in shown.stdout
    assert "1. Forward pass" not in shown.stdout  # nothing computed
    refused = run("--epochs", "3")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "error: unrecognized arguments: --epochs 3" in refused.stderr
