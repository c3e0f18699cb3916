"""tinynet/kernels/softmax_crossentropy.py: the one-launch softmax crossentropy kernel. Its NumPy model (which walks
the block, the rows and the tree as the kernel does) equals the readable ``SoftmaxCrossentropy`` on any machine;
the CuPy path is wired in; on a GPU, the kernel itself (tests/test_cuda_sources.py compiles its source)."""
import re

import numpy
import pytest

from conftest import BACKENDS_UNDER_TEST, on_numpy
from tinynet import backend
from tinynet.kernels import softmax_crossentropy as kernel
from tinynet.losses import SoftmaxCrossentropy

# float64: the two differ only in the order of the sums; float32: by a few roundings
TOLERANCE = {numpy.float64: dict(rtol=1e-13, atol=1e-16), numpy.float32: dict(rtol=2e-6, atol=1e-8)}


def readable(y, z):
    """(p, dz, loss) from SoftmaxCrossentropy's readable lines, on NumPy (whatever the test's backend)."""
    loss = SoftmaxCrossentropy()
    with on_numpy():
        value = loss.forward(y, z)
        return loss.p, loss.backward(), value


def batch(n, c, dtype, seed=0, scale=3.0):
    rng = numpy.random.default_rng(seed)
    z = (scale * rng.standard_normal((n, c))).astype(dtype)
    y = numpy.eye(c, dtype=dtype)[rng.integers(0, c, n)]
    return y, z


def assert_model_equals_readable(y, z):
    p, dz, loss = kernel.model_softmax_crossentropy(y, z)
    p_ref, dz_ref, loss_ref = readable(y, z)
    tolerance = TOLERANCE[z.dtype.type]
    assert p.dtype == dz.dtype == loss.dtype == z.dtype and loss.shape == () and p.shape == dz.shape == z.shape
    numpy.testing.assert_allclose(p, p_ref, **tolerance)
    numpy.testing.assert_allclose(dz, dz_ref, **tolerance)
    numpy.testing.assert_allclose(loss, loss_ref, **tolerance)
    numpy.testing.assert_array_equal(p == 0, p_ref == 0)  # flushed in the same places
    return p, dz, loss


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("c", [1, 10, 37])
@pytest.mark.parametrize("n", [1, 7, 32, 33, 1000])  # 1000 > BLOCK: threads take several rows
def test_the_model_equals_the_readable_loss_and_gradient(n, c, dtype):
    p, dz, _ = assert_model_equals_readable(*batch(n, c, dtype, seed=n * c))
    assert not numpy.isnan(p).any() and not numpy.isnan(dz).any()  # every entry written, by one thread


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
def test_leading_axes_are_rows_and_n_is_the_first_axis():
    """z of shape (N, T, C): softmax over C, every (n, t) a row, the sum divided by N = 3 as the readable code does."""
    rng = numpy.random.default_rng(5)
    z = rng.standard_normal((3, 5, 10))
    y = numpy.eye(10)[rng.integers(0, 10, (3, 5))]
    assert_model_equals_readable(y, z)


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_extreme_logits_never_take_log_zero(dtype):
    """Spreads of 1e4 (exp underflows to 0: p is exactly 0 or 1, yet log p stays finite), and a row all equal."""
    z = numpy.array([[0, 1e4, -1e4, 5], [-1e4, -1e4, -1e4, -1e4], [1e4, 1e4, 1e4, 1e4], [3, 3, 3, 3]], dtype)
    y = numpy.eye(4, dtype=dtype)[[2, 0, 3, 1]]  # row 0's target is ruled out by 2e4: log p = -2e4
    p, dz, loss = assert_model_equals_readable(y, z)
    numpy.testing.assert_array_equal(p[0], [0, 1, 0, 0])
    numpy.testing.assert_array_equal(p[1:], numpy.full((3, 4), dtype(0.25)))  # equal rows: p = 1/C exactly
    numpy.testing.assert_allclose(loss, (2e4 + 3 * numpy.log(4)) / 4, rtol=1e-6)  # finite: no log(0)


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
def test_ps_whose_gradient_would_be_subnormal_are_flushed_to_zero():
    """float32, N = 4: p = e**-86 (normal, but p / N is not) and e**-100 (subnormal) count as 0, as in the
    readable code; e**-20 and e**-46 are kept. Nothing subnormal is written."""
    tiny = numpy.finfo(numpy.float32).smallest_normal
    z = numpy.tile(numpy.array([0, -20, -46, -86, -100, -100], numpy.float32), (4, 1))
    y = numpy.eye(6, dtype=numpy.float32)[[0, 0, 0, 1]]
    p, dz, _ = assert_model_equals_readable(y, z)
    assert numpy.all(p[:, 3:] == 0) and numpy.all(p[:, 1:3] > 0)
    for a in (p, dz):
        assert not numpy.any((a != 0) & (numpy.abs(a) < tiny))


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
def test_a_nan_logit_makes_its_row_and_the_loss_nan_as_in_the_readable_code():
    y, z = batch(5, 4, numpy.float32)
    z[2, 1] = numpy.nan
    p, dz, loss = kernel.model_softmax_crossentropy(y, z)
    with numpy.errstate(invalid="ignore"):
        p_ref, dz_ref, loss_ref = readable(y, z)
    assert numpy.isnan(loss) and numpy.isnan(loss_ref)
    numpy.testing.assert_array_equal(numpy.isnan(dz), numpy.isnan(dz_ref))
    assert numpy.isnan(dz[2]).all() and not numpy.isnan(numpy.delete(dz, 2, axis=0)).any()


@pytest.mark.host_only("the kernel's NumPy model: the order of its sums")
def test_the_loss_sums_each_threads_rows_then_the_tree():
    """The order the kernel adds in, written out: thread t adds rows t, t + 256, ... class by class, then the
    tree adds partial[t + half] into partial[t] for half = 128, 64, ..., 1. float32, bit for bit."""
    y, z = batch(600, 10, numpy.float32, seed=9)
    shifted = z - z.max(axis=1, keepdims=True)
    total = numpy.zeros(600, numpy.float32)
    for i in range(10):
        total = total + numpy.exp(shifted[:, i])
    log_p = shifted - numpy.log(total)[:, None]
    partial = numpy.zeros(kernel.BLOCK, numpy.float32)
    for n in range(600):
        for i in range(10):
            partial[n % kernel.BLOCK] += y[n, i] * log_p[n, i]
    half = kernel.BLOCK // 2
    while half:
        partial[:half] += partial[half:2 * half]
        half //= 2
    assert kernel.model_softmax_crossentropy(y, z)[2] == -partial[0] / numpy.float32(600)


@pytest.mark.host_only("reads the kernel's CUDA source")
def test_the_cuda_source_and_the_model_use_one_block_size():
    assert re.search(r"#define BLOCK (\d+)", kernel.SOURCE).group(1) == str(kernel.BLOCK)
    assert kernel.BLOCK & (kernel.BLOCK - 1) == 0  # a power of two: the tree halves it down to 1
    assert "atomic" not in kernel.SOURCE  # the loss's sum has one fixed order


@pytest.mark.host_only("the CuPy path's wiring, with the kernel's model standing in for the GPU")
def test_on_cupy_forward_launches_the_kernel_and_backward_returns_its_dz(monkeypatch):
    """backend 'cupy' (pretended): forward makes one kernel call, sets y and p as the readable code does, and
    backward returns the very dz it wrote. Mixed dtypes do not fit the kernel: the readable lines run."""
    y, z = batch(7, 10, numpy.float32)
    reference, mixed = readable(y, z), readable(y.astype(numpy.float64), z)  # on NumPy, before pretending
    calls = []

    def launch(y, z):
        calls.append(z.shape)
        return kernel.model_softmax_crossentropy(y, z)

    monkeypatch.setattr(backend, "get_backend", lambda: "cupy")
    monkeypatch.setattr(kernel, "softmax_crossentropy", launch)
    loss = SoftmaxCrossentropy()
    value = loss.forward(y, z)
    dz = loss.backward()
    assert calls == [(7, 10)] and loss.y is y and dz is loss.dz
    for got, expected in zip((loss.p, dz, value), reference):
        numpy.testing.assert_allclose(got, expected, **TOLERANCE[numpy.float32])
    value = loss.forward(y.astype(numpy.float64), z)  # float64 targets for float32 logits: no kernel
    assert len(calls) == 1 and loss.dz is None
    for got, expected in zip((loss.p, loss.backward(), value), mixed):
        assert numpy.array_equal(got, expected)


# Defined only where the suite runs on cupy (a GPU: benchmarks/gpu_check.sh), so CI neither skips nor fakes it.
if "cupy" in BACKENDS_UNDER_TEST:
    def test_the_kernel_equals_its_model_and_the_readable_loss_on_a_gpu(backend_name):
        """To rounding (CUDA's exp and log are not NumPy's), on odd shapes, float32 and float64."""
        if backend_name != "cupy":  # the model's tests above are numpy's and strict's
            return
        import cupy
        for n, c in [(1, 1), (33, 10), (1000, 37)]:
            for dtype in (numpy.float32, numpy.float64):
                y, z = batch(n, c, dtype, seed=n)
                got = [a.get() for a in kernel.softmax_crossentropy(cupy.asarray(y), cupy.asarray(z))]
                tolerance = {numpy.float32: dict(rtol=1e-5, atol=1e-7), numpy.float64: dict(rtol=1e-12, atol=1e-15)}
                for a, model, ref in zip(got, kernel.model_softmax_crossentropy(y, z), readable(y, z)):
                    numpy.testing.assert_allclose(a, model, **tolerance[dtype])
                    numpy.testing.assert_allclose(a, ref, **tolerance[dtype])


