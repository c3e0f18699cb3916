"""tinynet/kernels/running_means.py: one batch added to the running means in one launch. Its NumPy model (which
walks the block, the rows and the tree as the kernel does) equals the readable ``RunningMeans.add`` bit for bit on
any machine; the CuPy path is wired in; on a GPU, the kernel (tests/test_cuda_sources.py compiles its source)."""
import re

import numpy
import pytest

from conftest import BACKENDS_UNDER_TEST
from tinynet import backend
from tinynet.kernels import running_means as kernel
from tinynet.metrics import Accuracy
from tinynet.metrics import running_means
from tinynet.metrics.running_means import RunningMeans

NAN, INF = numpy.nan, numpy.inf


def means_of(metrics, dtype):
    """A RunningMeans on NumPy whose loss and metric totals (and bad_loss) are ``dtype``."""
    means = RunningMeans(metrics)
    means.totals = {name: numpy.zeros((), dtype) for name in means.totals}
    means.bad_loss = numpy.zeros((), dtype)
    return means


def state(means):
    """Every array the means keep, by name."""
    return {**means.totals, "samples": means.samples, "batches": means.batches, "first_bad": means.first_bad,
            "bad_loss": means.bad_loss}


def add_by_model(means, loss, y, y_hat):
    """The kernel's model, on the arrays ``means`` keeps, as ``RunningMeans.add_compiled`` hands them."""
    accuracy = means.totals[means.metrics[0].name] if means.metrics else None
    kernel.model_running_means_add(loss, y, y_hat, means.totals["loss"], accuracy, means.samples, means.batches,
                                   means.first_bad, means.bad_loss)


def assert_same_bits(got, expected):
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name].dtype == expected[name].dtype and got[name].shape == (), name
        assert got[name].tobytes() == expected[name].tobytes(), (name, got[name], expected[name])


def batches(dtype, sizes=(300, 300, 77), classes=10, seed=0):
    """(loss, y, y_hat) per batch: one-hot y, random y_hat (about a third right) and losses that do not divide
    evenly; with 10 classes, rows with ties, NaN and infinities in y_hat. By default the last batch is smaller."""
    rng = numpy.random.default_rng(seed)
    out = []
    for n in sizes:
        labels = rng.integers(0, classes, n)
        y = numpy.eye(classes, dtype=dtype)[labels]
        y_hat = rng.random((n, classes)).astype(dtype)
        right = rng.random(n) < 0.35
        y_hat[right, labels[right]] = 2  # a third predicted right
        if n >= 5 and classes == 10:
            y_hat[0] = 0.5  # a row all tied: argmax 0, whatever the label
            y_hat[1, [3, 7]] = 5  # a tie between 3 and 7: the first (3)
            y[1] = numpy.eye(classes, dtype=dtype)[7]
            y_hat[2, [4, 6]] = NAN  # NaN rows: the first NaN (4) is the argmax
            y[2] = numpy.eye(classes, dtype=dtype)[4]
            y_hat[3, 5] = NAN  # a NaN beats a larger value and an infinity
            y_hat[3, [0, 8]] = INF
            y[3] = numpy.eye(classes, dtype=dtype)[5]
            y_hat[4, [2, 9]] = INF  # two infinities: the first
            y[4] = numpy.eye(classes, dtype=dtype)[9]
        loss = numpy.asarray(rng.random() * 3 + 1 / 3, dtype)
        out.append((loss, y, y_hat))
    return out


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("metrics", [[], ["accuracy"]])
def test_the_model_equals_the_readable_add_bit_for_bit(metrics, dtype):
    """Several batches (300 > BLOCK: threads take two rows; then a smaller last one), each compared after every
    add; a non-finite loss on the second batch and another on the fourth: only the first is kept."""
    data = batches(dtype) + batches(dtype, sizes=(33, 1), classes=2, seed=1)
    data[1] = (numpy.asarray(INF, dtype), *data[1][1:])
    data[3] = (numpy.asarray(NAN, dtype), *data[3][1:])
    readable, model = means_of([Accuracy()] if metrics else [], dtype), means_of([Accuracy()] if metrics else [], dtype)
    for loss, y, y_hat in data:
        with numpy.errstate(invalid="ignore"):
            readable.add(loss, y, y_hat)
        add_by_model(model, loss, y, y_hat)
        assert_same_bits(state(model), state(readable))
    assert model.first_non_finite() == (1, INF) and int(model.batches) == 5 and int(model.samples) == 711


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_the_accuracy_total_is_the_mean_times_n_in_the_readable_float_order(dtype):
    """7 hits of 9: the mean 7/9 rounded to a T, then times 9, rounded again (not 7 exactly in float32)."""
    y = numpy.eye(3, dtype=dtype)[[0] * 9]
    y_hat = numpy.eye(3, dtype=dtype)[[0] * 7 + [1] * 2]
    readable, model = means_of([Accuracy()], dtype), means_of([Accuracy()], dtype)
    readable.add(numpy.asarray(1, dtype), y, y_hat)
    add_by_model(model, numpy.asarray(1, dtype), y, y_hat)
    assert model.totals["accuracy"] == (dtype(7) / dtype(9)) * dtype(9) == readable.totals["accuracy"]
    assert_same_bits(state(model), state(readable))


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_the_rows_argmax_is_numpys_with_ties_nan_and_infinities(dtype):
    rng = numpy.random.default_rng(3)
    values = numpy.array([0.0, -0.0, 1.0, -1.0, 2.0, NAN, INF, -INF], dtype)
    x = values[rng.integers(0, len(values), (2000, 5))]  # every kind of tie, NaN and infinity
    got = kernel.model_argmax_rows(x.reshape(-1), numpy.arange(2000) * 5, 5)
    numpy.testing.assert_array_equal(got, numpy.argmax(x, axis=-1))


@pytest.mark.host_only("the kernel's NumPy model: the order of its counts")
def test_each_thread_counts_its_rows_and_the_tree_adds_the_counts():
    """600 rows: thread t takes rows t, t + 256 and (t < 88) t + 512; the total is every row's hit."""
    y = numpy.eye(4, dtype=numpy.float32)[numpy.arange(600) % 4]
    y_hat = numpy.eye(4, dtype=numpy.float32)[numpy.where(numpy.arange(600) % 3 == 0, 0, numpy.arange(600) % 4)]
    means = means_of([Accuracy()], numpy.float32)
    add_by_model(means, numpy.float32(2), y, y_hat)
    hits = int(numpy.sum(numpy.argmax(y, -1) == numpy.argmax(y_hat, -1)))
    assert means.totals["accuracy"] == numpy.float32(numpy.float32(hits) / numpy.float32(600)) * numpy.float32(600)
    assert means.totals["loss"] == 1200 and int(means.samples) == 600


@pytest.mark.host_only("the kernel's NumPy model: an empty batch")
def test_an_empty_batch_makes_the_accuracy_nan_as_the_readable_mean_does():
    y = numpy.zeros((0, 3), numpy.float32)
    readable, model = means_of([Accuracy()], numpy.float32), means_of([Accuracy()], numpy.float32)
    with numpy.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        readable.add(numpy.float32(1), y, y)
    add_by_model(model, numpy.float32(1), y, y)
    assert numpy.isnan(model.totals["accuracy"]) and numpy.isnan(readable.totals["accuracy"])
    assert_same_bits(state(model), state(readable))


@pytest.mark.host_only("reads the kernel's CUDA source")
def test_the_cuda_source_and_the_model_share_their_constants_with_running_means():
    assert re.search(r"#define BLOCK (\d+)", kernel.SOURCE).group(1) == str(kernel.BLOCK)
    assert kernel.BLOCK & (kernel.BLOCK - 1) == 0  # a power of two: the tree halves it down to 1
    assert int(re.search(r"#define NOT_YET (-?\d+)", kernel.SOURCE).group(1)) == kernel.NOT_YET == running_means.NOT_YET
    assert "atomic" not in kernel.SOURCE  # one thread writes the totals


@pytest.mark.host_only("the CuPy path's wiring, with the kernel's model standing in for the GPU")
@pytest.mark.parametrize("metrics", [[], [Accuracy()], [Accuracy(name="acc")]])
def test_on_cupy_add_launches_the_kernel_once_into_the_same_arrays(monkeypatch, metrics):
    """backend 'cupy' (pretended): each add is one kernel call, on the arrays the means keep (in place), and the
    totals are the readable add's, bit for bit."""
    data = batches(numpy.float32, sizes=(64, 64, 10))
    data[1] = (numpy.float32(NAN), *data[1][1:])  # a NumPy scalar, as to_device(...)[()] gives on NumPy
    readable = RunningMeans(list(metrics))
    for loss, y, y_hat in data:  # on NumPy, before pretending
        with numpy.errstate(invalid="ignore"):
            readable.add(loss, y, y_hat)
    calls = []

    def launch(loss, y, y_hat, *arrays):
        calls.append(arrays)
        kernel.model_running_means_add(loss, y, y_hat, *arrays)

    monkeypatch.setattr(backend, "get_backend", lambda: "cupy")
    monkeypatch.setattr(kernel, "running_means_add", launch)
    means = RunningMeans(list(metrics))
    kept = state(means)
    for loss, y, y_hat in data:
        means.add(loss, y, y_hat)
    assert len(calls) == 3 and all(a is b for a, b in zip(calls[0], [
        means.totals["loss"], means.totals[metrics[0].name] if metrics else None, means.samples, means.batches,
        means.first_bad, means.bad_loss]))
    assert all(state(means)[name] is kept[name] for name in kept)  # written in place
    assert_same_bits(state(means), state(readable))
    assert means.first_non_finite()[0] == 1 and numpy.isnan(means.first_non_finite()[1])


class Top2(Accuracy):
    """A subclass may count differently: never compiled."""


@pytest.mark.host_only("the CuPy path's wiring, with the kernel's model standing in for the GPU")
@pytest.mark.parametrize("case", ["labels", "column", "one unit", "mixed dtypes", "float64 loss", "python float",
                                  "subclass", "two metrics"])
def test_on_cupy_what_the_kernel_does_not_cover_takes_the_readable_lines(monkeypatch, case):
    rng = numpy.random.default_rng(0)
    y, y_hat = numpy.eye(4, dtype=numpy.float32)[rng.integers(0, 4, 8)], rng.random((8, 4)).astype(numpy.float32)
    loss, metrics = numpy.float32(0.5), [Accuracy()]
    if case == "labels":
        y = numpy.argmax(y, -1)  # integer labels (N,): sparse categorical
    elif case == "column":
        y = numpy.argmax(y, -1)[:, None].astype(numpy.float32)  # (N, 1) labels
    elif case == "one unit":
        y, y_hat = y[:, :1], y_hat[:, :1]  # binary
    elif case == "mixed dtypes":
        y = y.astype(numpy.float64)
    elif case == "float64 loss":
        loss = numpy.float64(0.5)  # the totals are float32
    elif case == "python float":
        loss = 0.5
    elif case == "subclass":
        metrics = [Top2()]
    elif case == "two metrics":
        metrics = [Accuracy(), Accuracy(name="acc")]
    readable = RunningMeans(metrics)
    readable.add(loss, y, y_hat)
    monkeypatch.setattr(backend, "get_backend", lambda: "cupy")
    monkeypatch.setattr(kernel, "running_means_add", lambda *args: pytest.fail("the kernel does not fit"))
    means = RunningMeans(metrics)
    means.add(loss, y, y_hat)
    assert_same_bits(state(means), state(readable))


# Defined only where the suite runs on cupy (a GPU: benchmarks/gpu_check.sh), so CI neither skips nor fakes it.
if "cupy" in BACKENDS_UNDER_TEST:
    @pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
    @pytest.mark.parametrize("metrics", [[], ["accuracy"]])
    def test_the_kernel_equals_its_model_and_the_readable_add_on_a_gpu(backend_name, metrics, dtype):
        """Bit for bit: the kernel's float operations are each correctly rounded, as NumPy's."""
        if backend_name != "cupy":  # the model's tests above are numpy's and strict's
            return
        import cupy
        data = batches(dtype)
        data[1] = (numpy.asarray(INF, dtype), *data[1][1:])
        backend.set_backend("numpy")  # the readable lines on NumPy, after each batch
        readable, expected = means_of([Accuracy()] if metrics else [], dtype), []
        for loss, y, y_hat in data:
            with numpy.errstate(invalid="ignore"):
                readable.add(loss, y, y_hat)
            expected.append({name: a.copy() for name, a in state(readable).items()})
        backend.set_backend("cupy")
        on_gpu = RunningMeans([Accuracy()] if metrics else [])
        on_gpu.totals = {name: cupy.zeros((), dtype) for name in on_gpu.totals}
        on_gpu.bad_loss = cupy.zeros((), dtype)
        for (loss, y, y_hat), after in zip(data, expected):
            args = cupy.asarray(loss), cupy.asarray(y), cupy.asarray(y_hat)
            assert on_gpu.fits_compiled(*args)
            on_gpu.add(*args)
            assert_same_bits({name: a.get() for name, a in state(on_gpu).items()}, after)
