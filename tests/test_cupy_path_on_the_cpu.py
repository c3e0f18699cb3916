"""tinynet's whole 'cupy' path, run on the CPU: ``fit`` with its CUDA graph, every kernel, ``evaluate`` and
``predict``, under tests/cupy_on_the_cpu.py's stand-in for CuPy, which runs each kernel's NumPy model and counts
the kernels a GPU would run. It checks what no GPU has checked yet: the captured step trains as NumPy does, the
graph holds the 10 kernels docs/backends.md counts for the MNIST model, and a NaN in a replay is caught.

The seed model is 784-512-512-10; here 784-64-64-10 on 200 samples, since the kernels' NumPy models walk every
block and thread: the same layers, so the same kernels. On a GPU, benchmarks/gpu_check.sh checks the real ones."""
import importlib.util
import itertools
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import conftest
import cupy_on_the_cpu
from test_training_step import nan_at_step_6
from tinynet import backend
from tinynet.layers import Dense
from tinynet.models import Sequential, graph
from tinynet.optimizers import rmsprop
from tinynet.utils import set_random_seed, to_categorical

pytestmark = pytest.mark.host_only("a stand-in for CuPy: NumPy arrays, each kernel's NumPy model")

# What the graph of one training step holds for the MNIST model (Dense relu, Dense relu, Dense softmax; RMSprop;
# metrics=['accuracy']): docs/backends.md's 10 kernels, in the order the step launches them.
CAPTURED_STEP = ["gather_batch<float, float>",  # the batch, cut on the device
                 "gemm_bias_relu<float>", "gemm_bias_relu<float>", "gemm_bias<float>",  # forward: y = max(x W + b, 0)
                 "softmax_crossentropy<float>",  # the loss on the logits and dL/dz
                 "dense_backward<float>",  # backward, last layer: [dW; db] and dx, in one launch
                 "dense_backward<float>",  # second layer: the same, dz read through ReLU's mask
                 "gemm_tn_db<float>",  # first layer: [dW; db], no dx
                 "rmsprop_all<float>",  # every parameter's update
                 "running_means_add<float>"]  # the loss and accuracy, added to the epoch's running means
# The same step run eagerly on CuPy (jit_compile=False, or a last batch of another size): the readable lines, with
# cuBLAS's @ for the products (counted here as one launch each) and the one-launch pieces that need no graph.
EAGER_STEP = ["gather_batch<float, float>",
              "matmul", "add", "maximum", "matmul", "add", "maximum", "matmul", "add",  # z = x W + b; max(z, 0)
              "softmax_crossentropy<float>",
              "matmul", "sum", "matmul",  # last layer: dW = x.T dz, db, dx = dz W.T
              "relu_backward", "matmul", "sum", "matmul",  # second layer
              "relu_backward", "matmul", "sum",  # first layer: no dx
              "rmsprop_all<float>", "running_means_add<float>"]


@pytest.fixture
def gpu(monkeypatch, backend_name):
    """The 'cupy' backend on tests/cupy_on_the_cpu.py's stand-in; yields its Device. Patched, and why:
    - sys.modules['cupy']: tinynet imports CuPy only inside functions (backend.set_backend, the kernels' compiled
      modules, graph.cuda), so the stand-in is what each of them gets;
    - backend.is_backend_array: array_api_compat takes any numpy.ndarray subclass for a NumPy array (it asks about
      NumPy first), so it would call the stand-in's arrays foreign; a real cupy.ndarray is no NumPy array, and
      is_backend_array says True for it, so the patch says True for the stand-in's arrays, as for CuPy's;
    - the kernels' caches (functools.cache of each compiled module) are emptied before and after, so that no
      kernel compiled for the stand-in outlives the test, and none from before is used.
    backend.set_backend('cupy') itself is not patched: it checks gpu_problem() against the stand-in (version 14,
    one device, a kernel that answers). After the test: NumPy again, sys.modules as it was."""
    yield from on_the_cupy_path(monkeypatch, sources=None)


@pytest.fixture
def gpu_running_cuda_c(monkeypatch, backend_name):
    """As ``gpu``, but each kernel runs its CUDA C, compiled for the CPU (tests/cuda_on_the_cpu.py), its threads
    in reverse order (a missing __syncthreads() then reads stale shared memory)."""
    yield from on_the_cupy_path(monkeypatch, sources="reverse")


def on_the_cupy_path(monkeypatch, sources):
    device = cupy_on_the_cpu.Device()
    cupy = cupy_on_the_cpu.module(device, sources=sources)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(backend, "is_backend_array", lambda x: isinstance(x, cupy.ndarray))
    cupy_on_the_cpu.clear_kernel_caches()
    backend.set_backend("cupy")
    try:
        yield device
    finally:
        backend.set_backend("numpy")
        cupy_on_the_cpu.clear_kernel_caches()


def mnist_like_model(jit_compile="auto", units=64, inputs=784):
    set_random_seed(0)
    model = Sequential([Dense(units, activation="relu", input_shape=(inputs,)), Dense(units, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return model


def data(n=200, seed=1, inputs=784):
    rng = np.random.default_rng(seed)
    return rng.random((n, inputs), dtype=np.float32), to_categorical(rng.integers(0, 10, n), 10)


def watched(model, device, monkeypatch):
    """``model.fit_step``'s launches, one list per call (graph.py calls it to warm up and to capture; a replay
    runs no Python, so does not call it), and the step function ``fit`` uses (a CapturedStep on CuPy)."""
    steps, made = [], []
    fit_step = model.fit_step

    def counted(*args):
        before = len(device.launches)
        fit_step(*args)
        steps.append(device.launches[before:])
    model.fit_step = counted
    training_step = graph.training_step
    monkeypatch.setattr(graph, "training_step", lambda model_: made.append(training_step(model_)) or made[-1])
    return steps, made


def test_fit_on_the_cupy_path_learns_what_numpy_fit_learns_replaying_the_graph(gpu, monkeypatch):
    """Two epochs of 7 batches (6 of 32, then 8), with validation: batch 1 warms up, batch 2 is captured and
    launched, batches 3-6 and all of epoch 2's full batches are replays, each last batch of 8 is eager. The
    products are summed in the kernel's tile order (NumPy's BLAS sums otherwise): equal to float32 rounding."""
    x, y = data()
    validation = data(64, seed=2)
    backend.set_backend("numpy")
    numpy_model = mnist_like_model()
    set_random_seed(5)
    expected = numpy_model.fit(x, y, epochs=2, verbose=0, validation_data=validation)
    backend.set_backend("cupy")
    model = mnist_like_model()
    steps, made = watched(model, gpu, monkeypatch)
    set_random_seed(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "fit trains without a CUDA graph"
        history = model.fit(x, y, epochs=2, verbose=0, validation_data=validation)
    step = made[0]
    assert isinstance(step, graph.CapturedStep) and step.problem is None
    assert (step.warm_ups, step.replays, step.graph.launches, step.size) == (1, 1 + 4 + 6, 1 + 4 + 6, 32)
    assert model.optimizer.iterations == numpy_model.optimizer.iterations == 14
    assert history.history.keys() == expected.history.keys() == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, err_msg=key)
    for got, want in zip(model.get_weights(), numpy_model.get_weights()):
        assert type(got) is np.ndarray
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert len(steps) == 2 + 2  # the warm-up, the capture, and each epoch's last batch: the rest were replays


def test_fit_on_the_cupy_path_running_each_kernels_cuda_c_learns_what_numpy_fit_learns(gpu_running_cuda_c,
                                                                                        monkeypatch):
    """The test above with every kernel's CUDA C run (compiled for the CPU, threads in reverse order), not its
    model: the code a GPU would run, in the graph a GPU would replay. A smaller model (200-24-24-10), as each
    thread is run one by one; its first layer's forward splits K in 3 (gemm.splits)."""
    x, y = data(inputs=200)
    validation = data(64, seed=2, inputs=200)
    backend.set_backend("numpy")
    numpy_model = mnist_like_model(units=24, inputs=200)
    set_random_seed(5)
    expected = numpy_model.fit(x, y, epochs=2, verbose=0, validation_data=validation)
    backend.set_backend("cupy")
    model = mnist_like_model(units=24, inputs=200)
    steps, made = watched(model, gpu_running_cuda_c, monkeypatch)
    set_random_seed(5)
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=validation)
    assert made[0].graph.kernels == CAPTURED_STEP and made[0].replays == 1 + 4 + 6
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, err_msg=key)
    for got, want in zip(model.get_weights(), numpy_model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_the_graph_holds_the_10_kernels_the_docs_count_and_an_eager_step_launches_22(gpu, monkeypatch):
    """The kernels launched while the step was captured are the graph's nodes: 10 (docs/backends.md), each
    replay one launch of them, nothing else launched between replays. The same step eagerly: 22 (a cuBLAS
    product counted as one)."""
    x, y = data()
    model = mnist_like_model()
    steps, made = watched(model, gpu, monkeypatch)
    model.fit(x, y, epochs=2, verbose=0, shuffle=False)
    warm_up, captured, last, last_again = steps
    assert captured == made[0].graph.kernels == CAPTURED_STEP and len(CAPTURED_STEP) == 10
    # the warm-up runs the very kernels the graph will (inside own_gemm), and zeroes the split-K counters of the
    # first layer's forward (K = 784 is split: gemm.splits) once, for good: the graph holds no memset
    assert [name for name in warm_up if name != "memset"] == CAPTURED_STEP and warm_up.count("memset") == 1
    assert last == last_again == EAGER_STEP and len(EAGER_STEP) == 22  # the batches of 8, eager
    at = [i for i, name in enumerate(gpu.launches) if name == cupy_on_the_cpu.GRAPH_LAUNCH]
    assert at == [*range(at[0], at[0] + 5), *range(at[5], at[5] + 6)]  # epoch 1: capture's launch, 4 replays
    for end in (at[4] + 1, at[10] + 1):  # nothing launched between an epoch's replays; then its batch of 8
        assert gpu.launches[end:end + len(EAGER_STEP)] == EAGER_STEP

    eager = mnist_like_model(jit_compile=False)
    steps, made = watched(eager, gpu, monkeypatch)
    eager.fit(x, y, epochs=1, verbose=0)
    assert made[0] is eager.fit_step  # no CapturedStep
    assert steps == [EAGER_STEP] * 7  # every batch, the full ones too


def test_a_nan_mid_epoch_in_a_replay_stops_fit_naming_its_step_and_rolls_back(gpu, monkeypatch):
    """tests/test_training_step.py's case on this path: step 6's batch overflows the logits; steps 3 onwards are
    replays, so the NaN is noted by the running means' kernel in a replay."""
    steps, made = nan_at_step_6(lambda model: watched(model, gpu, monkeypatch))
    # the whole epoch ran: 12 batches of 8 (warm-up, capture and its launch, 10 replays) and one of 4, eager
    assert made[0].replays == 11 and len(steps) == 3


def test_evaluate_and_predict_on_the_cupy_path_equal_numpys(gpu):
    """Eager on CuPy (cuBLAS's @, the loss's and the running means' kernels): the same numbers as on NumPy, to
    float32 rounding, and NumPy arrays back."""
    x, y = data(100, seed=3)
    backend.set_backend("numpy")
    numpy_model = mnist_like_model()
    numpy_model.fit(*data(), epochs=1, verbose=0)
    weights = numpy_model.get_weights()
    expected = numpy_model.evaluate(x, y, verbose=0), numpy_model.predict(x, verbose=0)
    backend.set_backend("cupy")
    model = mnist_like_model()
    model.set_weights(weights)
    gpu.launches.clear()
    loss_accuracy, predictions = model.evaluate(x, y, verbose=0), model.predict(x, verbose=0)
    assert type(predictions) is np.ndarray and predictions.dtype == np.float32 and predictions.shape == (100, 10)
    np.testing.assert_allclose(predictions, expected[1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss_accuracy, expected[0], rtol=1e-5)
    assert cupy_on_the_cpu.GRAPH_LAUNCH not in gpu.launches and "running_means_add<float>" in gpu.launches
    assert not any(re.match(r"gemm_", name) for name in gpu.launches)  # cuBLAS outside a captured step


def test_rmsprops_per_parameter_kernel_on_the_cupy_path_equals_update_step(gpu):
    """The ElementwiseKernel RMSprop falls back to for a parameter the one-launch update does not take (here:
    a transposed view, not C-contiguous), through the stand-in: update_step's numbers, one launch."""
    rng = np.random.default_rng(6)
    w, g = rng.standard_normal((2, 4, 3)).astype(np.float32)
    g[0, 0] = 1e-30  # flushed: its square would be subnormal
    expected = w.copy(), np.zeros_like(w)
    backend.set_backend("numpy")
    rmsprop.update_step(*expected[:1], g, expected[1], 0.01, 0.9, 1e-7)
    backend.set_backend("cupy")
    w_dev, g_dev = (backend.to_device(np.ascontiguousarray(a.T)).T for a in (w, g))  # (4, 3) transposed views
    assert not w_dev.flags.c_contiguous and not g_dev.flags.c_contiguous
    optimizer = rmsprop.RMSprop(0.01, 0.9, 1e-7)
    optimizer.build([w_dev])  # v = zeros_like(w): laid out as w
    gpu.launches.clear()
    optimizer.apply([g_dev], [w_dev])
    assert gpu.launches == ["tinynet_rmsprop_update"]
    np.testing.assert_array_equal(backend.to_numpy(w_dev), expected[0])
    np.testing.assert_array_equal(backend.to_numpy(optimizer.slots[0]), expected[1])


def test_steps_per_execution_puts_three_steps_in_one_graph_and_learns_the_same(gpu, monkeypatch):
    """compile(steps_per_execution=3): one graph of 30 kernels (three steps of 10). Epoch 1: batch 1 warms up,
    batches 2-4 are captured and launched at once, batches 5-7 are eager (three full ones are not left); epoch 2:
    two launches of three steps, then the batch of 8. The same History as NumPy's fit."""
    x, y = data()
    backend.set_backend("numpy")
    numpy_model = mnist_like_model()
    expected = numpy_model.fit(x, y, epochs=2, verbose=0, shuffle=False)
    backend.set_backend("cupy")
    model = mnist_like_model()
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"], steps_per_execution=3)
    steps, made = watched(model, gpu, monkeypatch)
    history = model.fit(x, y, epochs=2, verbose=0, shuffle=False)
    step = made[0]
    assert step.graph.kernels == CAPTURED_STEP * 3 and (step.warm_ups, step.replays) == (1, 1 + 2)
    assert len(steps) == 1 + 3 + 3 + 1  # warm-up, the three recorded, the eager ones (epoch 1: 3, epoch 2: 1)
    assert model.optimizer.iterations == numpy_model.optimizer.iterations == 14
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, err_msg=key)


# --- the tests only a GPU runs, run here ------------------------------------------------------------------------

GPU_ONLY = 'if "cupy" in BACKENDS_UNDER_TEST:'  # the tests written under this line exist only where CuPy is tested


def gpu_only_tests():
    """(file, test) for each test of tests/ defined only where the suite runs on cupy (under GPU_ONLY)."""
    found = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        _, marker, rest = path.read_text().partition(GPU_ONLY)
        found += [(path.name, name) for name in re.findall(r"^    def (test_\w+)\(", rest, re.M)] if marker else []
    return found


def parametrizations(test):
    """Every combination of ``test``'s pytest.mark.parametrize arguments, as keyword dicts ([{}] if none)."""
    combinations = [{}]
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            names = [n.strip() for n in mark.args[0].split(",")]
            combinations = [{**c, **dict(zip(names, v if len(names) > 1 else (v,)))}
                            for c, v in itertools.product(combinations, mark.args[1])]
    return combinations


def test_the_gpu_only_tests_are_found():
    """One per kernel file, and two for the products."""
    assert [file for file, _ in gpu_only_tests()] == [
        "test_batches_kernel.py", "test_gemm_kernels.py", "test_gemm_kernels.py", "test_relu_kernel.py",
        "test_rmsprop_kernel.py", "test_running_means_kernel.py", "test_softmax_crossentropy_kernel.py"]


@pytest.mark.parametrize("file, name", gpu_only_tests())
def test_each_gpu_only_test_passes_on_the_stand_in_running_the_kernels_cuda_c(gpu_running_cuda_c, monkeypatch, file,
                                                                             name):
    """The tests that only a GPU runs (benchmarks/gpu_check.sh), run here first: under the stand-in for CuPy, each
    kernel its C compiled for the CPU. A test's own mistakes (a reference computed on the wrong backend, a CuPy
    call the test needs) then show here, not in a GPU's few minutes. What they cannot show here: CUDA's exp and
    log, and the real CuPy."""
    monkeypatch.setattr(conftest, "BACKENDS_UNDER_TEST", (*conftest.BACKENDS_UNDER_TEST, "cupy"))
    spec = importlib.util.spec_from_file_location(f"on_a_gpu_{Path(file).stem}", Path(__file__).parent / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # with "cupy" among the backends under test: the GPU-only tests exist
    test = getattr(module, name)
    for arguments in parametrizations(test):
        backend.set_backend("cupy")
        test("cupy", **arguments)


def test_split_k_buffers_are_not_made_inside_a_capture(gpu):
    """A split product's first launch inside a capture would capture cupy.zeros' memset and leave the cached
    counters unset until the graph's first replay: refused; made eagerly first, the graph holds the kernel only."""
    import cupy
    from tinynet.kernels import gemm
    x, w = cupy.asarray(np.ones((32, 784), np.float32)), cupy.asarray(np.ones((784, 512), np.float32))
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture(mode=cupy.cuda.runtime.streamCaptureModeRelaxed)
        with pytest.raises(RuntimeError, match="inside a CUDA graph capture"):
            gemm.dense_relu(x, w)
        stream.end_capture()
        gemm.dense_relu(x, w)  # eager: the buffers made, the counters zeroed
        stream.begin_capture(mode=cupy.cuda.runtime.streamCaptureModeRelaxed)
        gemm.dense_relu(x, w)
        assert stream.end_capture().kernels == ["gemm_bias_relu<float>"]
