"""benchmarks/seed_workload.py: what it times, and that one failing system never stops the others.

The benchmark itself never runs here (minutes); these tests run its pieces on a
few hundred images, on the CPU.
"""
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import mnist_dir
from tinynet.models import Sequential

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.host_only("the benchmark picks its backend itself")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("seed_workload", ROOT / "benchmarks" / "seed_workload.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    return x, y, x[:n // 2], y[:n // 2]


def test_the_warm_up_goes_through_fit_on_a_fresh_model(monkeypatch):
    bench = load_benchmark()
    calls, original_fit = [], Sequential.fit

    def spy(model, x, y, **kwargs):
        calls.append({"model": model, "n": len(x), "validation": len(kwargs["validation_data"][0]),
                      "weights": model.get_weights()})
        return original_fit(model, x, y, **kwargs)

    monkeypatch.setattr(Sequential, "fit", spy)
    seconds, accuracies = bench.run_tinynet(random_data(), epochs=2, seed=0, profile=False, device="cpu")
    warm_up, timed = calls  # fit twice: the warm-up, then the timed epochs
    assert (warm_up["n"], warm_up["validation"]) == (bench.WARM_UP, bench.WARM_UP)  # validation warmed up too
    assert bench.WARM_UP % 32 != 0  # ends with a partial batch, as the validation set does
    assert (timed["n"], timed["validation"]) == (300, 150) and timed["model"] is not warm_up["model"]
    for a, b in zip(warm_up["weights"], timed["weights"]):
        np.testing.assert_array_equal(a, b)  # the timed model starts from the seed's weights, untrained
    assert len(seconds) == len(accuracies) == 2 and all(s > 0 for s in seconds)


def test_pytorch_without_cuda_is_skipped_with_the_reason(monkeypatch, capsys):
    fake_torch = types.ModuleType("torch")
    fake_torch.__version__ = "2.13.0+cpu"
    fake_torch.cuda = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    bench = load_benchmark()
    monkeypatch.setattr(bench, "load", lambda data_dir, limit: random_data())
    args = bench.argparse.Namespace(data_dir=None, limit=None, worker="torch", epochs=1, seed=0, device="gpu")
    bench.worker(args)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "2.13.0+cpu" in result["skipped"] and "torch.cuda.is_available() is False" in result["skipped"]


def run_main(bench, monkeypatch, capsys, *argv):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import tinynet from this checkout
    status = bench.main(["--data-dir", str(mnist_dir()), "--epochs", "1", "--limit", "256", *argv])
    return status, capsys.readouterr().out


def test_a_quick_cpu_run_prints_the_table_and_the_floor(monkeypatch, capsys):
    status, out = run_main(load_benchmark(), monkeypatch, capsys, "--systems", "tinynet", "--floor")
    assert status == 0, out
    assert "1 epochs of the first 256 images" in out
    assert "   tinynet: epochs " in out and "val_accuracy 0." in out
    assert "matrix products alone on the CPU:" in out and "tinynet's median epoch is" in out


def test_a_failing_system_is_reported_and_the_others_still_run(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)  # no GPU here, even on a machine that has one,
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # nor in the worker processes
    bench = load_benchmark()
    monkeypatch.setattr(bench, "installed", lambda system: system != "torch")  # torch "not installed"
    status, out = run_main(bench, monkeypatch, capsys, "--device", "gpu", "--systems", "tinynet,torch", "--floor",
                           "--kernel-times", "--batch-sizes", "32")  # the GPU default, 32,128,512, needs 1,792 images
    assert status == 1
    assert "kernel times: FAILED (exit status 1" in out  # the diagnostics come first, and fail alone
    assert "   tinynet: FAILED (exit status 1" in out
    assert "     torch: skipped, not installed" in out  # the next system is still tried
    assert "matrix products alone: FAILED (The 'cupy' backend needs a usable GPU." in out


def test_unknown_systems_and_a_too_small_limit_are_refused_before_any_work(capsys):
    bench = load_benchmark()
    with pytest.raises(SystemExit):
        bench.main(["--systems", "tinynet,jax"])
    assert "--systems: unknown jax" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--limit", "10"])
    assert f"--limit: at least {bench.WARM_UP} images" in capsys.readouterr().err


def test_batch_sizes_are_checked_and_a_limit_covers_the_largest_warm_up(capsys):
    bench = load_benchmark()
    with pytest.raises(SystemExit):
        bench.main(["--batch-sizes", "32,x"])
    assert "--batch-sizes: positive whole numbers, comma-separated, e.g. 32,128; got '32,x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--device", "gpu", "--limit", "1024"])  # batch 512's warm-up: 3 * 512 + 256 images
    assert f"--limit: at least {bench.warm_up_size(512)} images" in capsys.readouterr().err


def test_the_kernel_times_run_on_the_stand_in_for_cupy(monkeypatch):
    """--kernel-times measures on a GPU only; here its code runs under tests/cupy_on_the_cpu.py's stand-in for
    CuPy (each kernel's C compiled for the CPU, a capture that records and replays), so that its calls are right
    before a GPU's minutes are spent on it. The times are 0 here (no clock)."""
    import cupy_on_the_cpu
    import fake_cupy_kernels
    from tinynet import backend
    device = cupy_on_the_cpu.Device()
    cupy = cupy_on_the_cpu.module(device, sources="forward")
    nothing = fake_cupy_kernels.CpuKernel(grid=lambda args: (1,), block=(1,))  # the empty kernel: checked, no work

    def raw_kernel(code, name, **options):
        kernels = fake_cupy_kernels.module({name: nothing})
        return kernels.RawModule(code=code, options=("--fmad=false",)).get_function(name)
    cupy.RawKernel = raw_kernel
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(backend, "is_backend_array", lambda x: isinstance(x, cupy.ndarray))
    cupy_on_the_cpu.clear_kernel_caches()
    try:
        table = load_benchmark().kernel_times(launches=1, repeats=1, inputs=200, units=24)  # the C runs slowly
    finally:
        backend.set_backend("numpy")
        cupy_on_the_cpu.clear_kernel_caches()
    lines = table.splitlines()
    assert len(lines) == 2 + 6 + 5 + 1  # title, header, 6 kernels of products, 5 others, the sum
    assert "BUSY_BLOCKS=256" in lines[1] and "BUSY_BLOCKS=0" in lines[1]  # tinynet's first, then off, 132, 512
    assert "x W1 + b1" in lines[2] and lines[2].split()[-8:] == ["0.0", "(3)", "0.0", "(1)", "0.0", "(3)", "0.0", "(3)"]
    assert "the 10 kernels of a step, summed" in lines[-1] and len(lines[-1].split()) == 7 + 4
    assert device.graph_launches == 2 * (4 * 6 + 5)  # each kernel's graph: a warm replay and a timed one


def test_each_comparison_is_printed_once_as_soon_as_both_systems_ran_with_issue_19s_limits(capsys):
    bench = load_benchmark()
    run = lambda *seconds: {"seconds": list(seconds), "val_accuracy": [0.98]}  # noqa: E731
    results, shown = {"tinynet": {32: run(0.5, 0.12, 0.13), 128: run(0.1, 0.1, 0.1)}}, set()
    bench.compare(results, shown, judged=True)
    assert capsys.readouterr().out == ("tinynet median epoch at batch 32: 0.130 s (done when <= 0.15: PASS; "
                                       "stretch <= 0.1: not met)\n")  # the median: epoch 1's capture left out
    results["torch-graph"] = {32: run(0.2, 0.2, 0.2), 128: run(0.1, 0.1, 0.1)}
    bench.compare(results, shown, judged=True)
    results["torch"] = {32: run(2.0, 2.0, 2.0), 128: run(0.25, 0.25, 0.25)}
    bench.compare(results, shown, judged=True)
    assert capsys.readouterr().out.splitlines() == [
        "tinynet / torch-graph: 0.65x (done when <= 0.35: FAIL)", "tinynet / torch-graph at batch 128: 1.00x",
        "tinynet / torch: 0.07x (done when <= 0.05: FAIL)",
        "tinynet / torch at batch 128: 0.40x (done when <= 0.5: PASS)"]
    bench.compare({"tinynet": {32: run(0.3)}}, set(), judged=False)  # the CPU: the GPU's limit, not judged
    assert "(done when <= 0.15: not judged on the CPU)" in capsys.readouterr().out
