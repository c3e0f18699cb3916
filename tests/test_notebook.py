"""examples/mnist.ipynb runs from top to bottom in a fresh Jupyter kernel.

The slowest test: it trains the MNIST model for one epoch, as the notebook does.
A cell that raises fails the test, with the cell and its traceback in the message.
The notebook file is not changed: a copy is executed.

The kernel is started from a child process (this file, run as a script), not
from the test process: looking up the kernel imports ipykernel, and a test
process with ipykernel loaded would make every later progress bar believe it
runs in Jupyter.

The notebook is committed executed, so that it reads well on a code host. After
editing it, save it run once, top to bottom, from the repository root:

    TINYNET_DATA_DIR=... python -c "import nbclient, nbformat; nb = nbformat.read('examples/mnist.ipynb', 4); \\
        nbclient.NotebookClient(nb, kernel_name='python3', coalesce_streams=True, record_timing=False).execute(); \\
        nbformat.write(nb, 'examples/mnist.ipynb')"
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat  # nbformat, nbclient and ipykernel come with the test extra: pip install ".[test]"
import pytest

pytestmark = pytest.mark.host_only("the notebook runs in its own kernel, which picks its backend itself")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "mnist.ipynb"

# Appended to the copy that runs: where the kernel found Python and tinynet, and what
# the notebook computed.
REPORT = """
import json, sys
import tinynet
print(json.dumps({
    'prefix': sys.prefix,
    'tinynet': tinynet.__file__,
    'val_accuracy': history.history['val_accuracy'],
    'epochs': len(history.epoch),
    'line': [float(m_fit), float(b_fit)],
    'least_squares': [float(m_exact), float(b_exact)],
}))
"""


def execute(source, destination):
    """Run the notebook at ``source`` plus the REPORT cell in a new ``python3`` kernel,
    working in the repository root; save the result at ``destination``."""
    import nbclient

    nb = nbformat.read(source, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel draws inline
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute(env=env)
    finally:
        nbformat.write(nb, destination)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook after a run in a fresh kernel: (notebook, the report as a dict)."""
    from conftest import mnist_dir

    data = mnist_dir()  # fails in CI when the MNIST files are missing, never skips
    out = tmp_path_factory.mktemp("notebook") / "mnist.ipynb"
    run = subprocess.run([sys.executable, __file__, str(NOTEBOOK), str(out)], capture_output=True, text=True,
                         env={**os.environ, "TINYNET_DATA_DIR": str(data)}, timeout=900)
    assert run.returncode == 0, "the notebook failed:\n" + re.sub(r"\x1b\[[0-9;]*m", "", run.stderr)[-6000:]
    nb = nbformat.read(out, as_version=4)
    return nb, json.loads(nb.cells[-1].outputs[0]["text"])


def test_the_kernel_is_this_python_and_imports_this_tinynet(executed):
    _, report = executed
    assert report["prefix"] == sys.prefix, "the kernel runs another Python environment than the tests"
    assert Path(report["tinynet"]).resolve().is_relative_to(ROOT), report["tinynet"]


def test_every_cell_ran_without_an_error(executed):
    nb, _ = executed
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code_cells)
    errors = [o for cell in code_cells for o in cell.outputs if o.output_type == "error"]
    assert not errors
    images = [o for cell in code_cells for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # a digit, the 40-digit grid, the predictions, the line twice


def test_it_learns_digits_in_one_epoch_and_fits_the_line(executed):
    _, report = executed
    assert report["epochs"] == 1  # what the notebook says it does, to stay under two minutes
    assert report["val_accuracy"][0] >= 0.95
    for fitted, exact in zip(report["line"], report["least_squares"]):
        assert round(fitted, 3) == round(exact, 3)


def test_the_tests_leave_ipykernel_out_of_this_process(executed):
    assert "ipykernel" not in sys.modules


def test_the_notebook_is_saved_executed_and_in_order():
    """The committed notebook reads well on a code host: run once, top to bottom, no errors."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    counts = [cell.execution_count for cell in nb.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    assert not [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert nb.metadata.kernelspec.name == "python3"


if __name__ == "__main__":
    execute(sys.argv[1], sys.argv[2])
