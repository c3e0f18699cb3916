"""benchmarks/gpu_check.sh, the one-call GPU check, is right before a GPU ever runs it:
its dry run takes the same five steps on the CPU (NumPy), tiny, and writes the same report.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import mnist_dir

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["install", "suite", "parity", "mnist", "seed"]
pytestmark = pytest.mark.host_only("the script picks its backends itself")


def dry_run(out, data_dir, timeouts=None):
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "TINYNET_DATA_DIR": str(data_dir)}
    env.pop("TINYNET_TEST_BACKENDS", None)
    if timeouts:
        env["GPU_CHECK_TIMEOUTS"] = timeouts
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], env=env,
                            capture_output=True, text=True, timeout=300)
    rows = dict(re.findall(r"^\| \d\. (\w+) \| (\d+) \| [\d.]+ \| .* \|$", (out / "report.md").read_text(), re.M))
    return result, (out / "report.md").read_text(), rows


def test_the_dry_run_passes_every_step_and_writes_the_report(tmp_path):
    result, report, rows = dry_run(tmp_path, mnist_dir())
    assert result.returncode == 0, report + result.stderr
    assert report.startswith("# tinynet GPU check: dry run on the CPU")
    assert list(rows) == STEPS and all(value == "0" for value in rows.values()), report
    assert f"MNIST: found in {Path(mnist_dir()).resolve()}" in report and "All 5 steps passed." in report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-install.log", "2-suite.log", "3-parity.log",
                                                          "4-mnist.log", "5-seed.log", "report.md", "suite.xml"]
    done_when = report.split("## Done when (issue 19)")[1].split("## The steps")[0]  # each criterion, its limit
    assert re.search(r"- suite .*, 0 failed: 0 failed, 0 skipped of \d+: PASS", done_when), done_when
    assert "- GEMM kernels = cupy.matmul to 1e-5" in done_when and "- a NaN mid-epoch stops fit" in done_when
    assert re.search(r"- mnist.py --device gpu, val >= 0.975: 0\.\d{4}: not judged \(dry run", done_when)
    assert "bit-identical to the eager step with the same kernels (done when bit-identical" in done_when
    assert "tinynet median epoch at batch 32:" in done_when and "(done when <= 0.15: not judged" in done_when
    assert re.search(r"- the whole run within 6 minutes: \d+ s: PASS", done_when)
    assert re.search(r"\d+ passed", (tmp_path / "2-suite.log").read_text())  # tests ran, and passed
    accuracy = re.search(r"validation accuracy (0\.\d+)", (tmp_path / "4-mnist.log").read_text())
    assert float(accuracy.group(1)) > 0.9  # one epoch at batch 512, seed 0
    assert "   tinynet: epochs " in report and "matrix products alone on the CPU" in report  # seed's table


def test_missing_data_and_a_timed_out_step_fail_alone_and_the_run_goes_on(tmp_path):
    out, empty = tmp_path / "out", tmp_path / "no-mnist-here"
    empty.mkdir()
    result, report, rows = dry_run(out, empty, timeouts="30 0.2 45 45 100")  # the suite gets 0.2 s
    assert result.returncode == 1
    assert rows == {"install": "0", "suite": "124", "parity": "2", "mnist": "2", "seed": "2"}
    assert "| 2. suite | 124 |" in report and "FAILED: timed out after 0.2 s" in report
    assert report.count("FAILED: MNIST data missing") == 3 + 3  # in the table, and in each step's details
    assert f"MNIST: **MISSING**: none of {empty} holds the four files" in report
    assert "**4 of 5 steps failed.**" in report
    assert "- suite on cupy, 0 failed: not measured" in report  # no verdict made up for what did not run
    assert "val >= 0.975: not measured" in report and "speed and graph vs eager: not measured" in report


def test_the_report_is_written_after_each_step_so_a_run_cut_short_keeps_it(tmp_path):
    """The device tool kills the whole command at its limit: the report must already hold the steps done."""
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "TINYNET_DATA_DIR": str(mnist_dir())}
    process = subprocess.Popen(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "3-parity.log").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    report = (tmp_path / "report.md").read_text()
    assert "| 1. install | 0 |" in report and "| 2. suite | 0 |" in report
    assert re.search(r"\*\*[23] of 5 steps done so far\*\*", report) and "## Done when (issue 19)" in report


def test_unknown_arguments_are_refused(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dryrun"],
                            env={**os.environ, "OUT": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown argument '--dryrun'" in result.stderr
    assert list(tmp_path.iterdir()) == []  # before any work


def test_the_carry_leaves_out_what_the_device_has_or_never_uses_and_brings_xdist():
    """The device tool carries at most 64 MiB: NVRTC's cu12 wheel alone is 90 MB, and CuPy has its own."""
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_carry.sh"), "--requirements"],
                            env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    names = [re.match(r"[A-Za-z0-9_.-]+", line).group().lower() for line in result.stdout.split()]
    assert "array-api-compat" in names and "ipykernel" in names and "pytest-xdist" in names
    assert not {"selenium", "nvidia-cuda-nvrtc-cu12", "numpy", "pytest", "matplotlib"} & set(names)


FAKE_PYTHON = r"""#!/bin/bash
# A stand-in for the device's python3: pytest-xdist importable only once the install step has run pip.
here=$(dirname "$0")
case "$*" in
    *"-m pip install"*) touch "$here/installed"; echo "installed"; exit 0 ;;
    *"-c"*xdist*) [ -f "$here/installed" ]; exit ;;
    *"-m pytest"*|*examples/*|*benchmarks/*) echo "ran: $*"; exit 0 ;;
esac
exec "$REAL_PYTHON" "$@"
"""


def test_the_suite_uses_the_xdist_that_the_install_step_brought(tmp_path):
    """gpu_carry.sh carries pytest-xdist so that the suite runs on 4 workers where the device lacks it: the suite
    step must then see what the install step just installed."""
    repo, out = tmp_path / "repo", tmp_path / "out"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / ".carry").mkdir()
    (repo / ".carry" / "requirements.txt").write_text("pytest-xdist\n")
    (repo / "benchmarks" / "gpu_check.sh").write_text((ROOT / "benchmarks" / "gpu_check.sh").read_text())
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = {**os.environ, "OUT": str(out), "PYTHON": str(fake), "REAL_PYTHON": sys.executable,
           "TINYNET_DATA_DIR": str(mnist_dir()), "GPU_CHECK_TIMEOUTS": "20 20 20 20 20"}
    subprocess.run(["bash", str(repo / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, timeout=120)
    assert "installed" in (out / "1-install.log").read_text()
    assert "-n 4 --dist loadfile" in (out / "2-suite.log").read_text().splitlines()[0]


def test_the_done_when_counts_every_test_even_two_of_one_name_in_two_files(tmp_path):
    """junit XML names a test by its function name and parameters: test_gradcheck[cupy] is in several files. One
    failing must not be hidden by another of the same name passing."""
    (tmp_path / "suite.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="2">'
        '<testcase classname="tests.test_dense" name="test_gradcheck[cupy]"><failure message="x">x</failure>'
        '</testcase><testcase classname="tests.test_conv2d" name="test_gradcheck[cupy]"/></testsuite></testsuites>')
    function = re.search(r"^done_when\(\) \{.*?^\}$", (ROOT / "benchmarks" / "gpu_check.sh").read_text(),
                         re.M | re.S).group()
    result = subprocess.run(["bash", "-c", f"{function}\ndone_when"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "OUT": str(tmp_path), "DRY": "0", "PY": sys.executable})
    assert "- suite, 0 failed: 1 failed, 0 skipped of 2: FAIL" in result.stdout, result.stdout
