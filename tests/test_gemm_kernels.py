"""tinynet/kernels/gemm.py: the tiled GEMM kernels' index arithmetic, checked on any machine through its NumPy
model (``model_gemm`` walks blocks, threads and tiles as the kernel does); on a GPU, the kernels themselves."""
import re
import subprocess
import sys

import numpy
import pytest

from conftest import BACKENDS_UNDER_TEST
from tinynet import backend
from tinynet.kernels import gemm

SHAPES = [(1, 1, 1), (33, 785, 17), (32, 40, 16), (17, 16, 33), (5, 0, 3)]  # (M, K, N): odd, exact tiles, K = 0


def operands(m, k, n, dtype, seed=0):
    rng = numpy.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)


def stored(name, a, b):
    """The arrays kernel ``name`` is given for the product a @ b: A^T stored as (K, M), B^T as (N, K)."""
    return (numpy.ascontiguousarray(a.T) if name == "gemm_tn" else a,
            numpy.ascontiguousarray(b.T) if name == "gemm_nt" else b)


@pytest.mark.host_only("the kernels' NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("name", ["gemm_nn", "gemm_tn", "gemm_nt"])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_each_kernel_model_equals_the_matrix_product(name, m, k, n):
    a, b = operands(m, k, n, numpy.float64)
    c = gemm.model_gemm(name, *stored(name, a, b))
    assert c.shape == (m, n) and not numpy.isnan(c).any()  # every entry written, by one thread
    numpy.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.host_only("the kernels' NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (33, 785, 17), (20, 3, 40)])
def test_the_fused_kernel_model_is_x_w_plus_b(m, k, n):
    x, w = operands(m, k, n, numpy.float32)
    b = numpy.random.default_rng(1).standard_normal(n).astype(numpy.float32)
    z = gemm.model_gemm("gemm_bias", x, w, b)
    numpy.testing.assert_allclose(z, x @ w + b, rtol=1e-5, atol=1e-5)


@pytest.mark.host_only("the kernels' NumPy model: index arithmetic on the host")
def test_the_model_sums_k_in_order_rounding_each_step_in_float32():
    """acc += a * b for k = 0, 1, ..., K-1, product and sum each rounded to float32 (--fmad=false): the
    order a GPU test can then demand bit for bit."""
    a, b = operands(7, 37, 5, numpy.float32, seed=3)
    acc = numpy.zeros((7, 5), numpy.float32)
    for k in range(37):
        acc = acc + a[:, k:k + 1] * b[k:k + 1, :]
    assert numpy.array_equal(gemm.model_gemm("gemm_nn", a, b), acc)


@pytest.mark.host_only("reads the kernels' CUDA source")
def test_the_cuda_source_passes_the_strides_the_model_uses():
    calls = dict(re.findall(r"__global__ void (\w+)\(.*?\n\s*gemm_tile<T>\(([^;]*)\);", gemm.SOURCE, re.S))
    assert sorted(calls) == sorted(gemm.KERNELS)
    for name, args in calls.items():
        a_row, a_col, b_row, b_col = (s.strip() for s in args.split(",")[1:3] + args.split(",")[4:6])
        assert (a_row, a_col, b_row, b_col) == gemm.STRIDES[name], name


@pytest.mark.host_only("imports no CuPy")
def test_importing_the_kernels_and_the_graph_module_imports_no_cupy():
    code = "import sys, tinynet.kernels.gemm, tinynet.models.graph; print('cupy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr  # compiled on first use, on CuPy only


# Defined only where the suite runs on cupy (a GPU: benchmarks/gpu_check.sh), so CI neither skips nor fakes it.
if "cupy" in BACKENDS_UNDER_TEST:
    def test_the_kernels_equal_cupy_matmul_on_a_gpu(backend_name):
        """To 1e-5 of cuBLAS on odd shapes and transposes, and bit for bit the NumPy model."""
        if backend_name != "cupy":  # the suite on numpy and strict too: the model's tests above are theirs
            return
        import cupy
        for m, k, n in [(1, 1, 1), (33, 785, 17), (32, 784, 512), (5, 0, 3)]:
            a, b = (cupy.asarray(v) for v in operands(m, k, n, numpy.float32))
            for left, right in [(a, b), (a.T.copy().T, b), (a, b.T.copy().T)]:  # A B, A^T B, A B^T (views)
                c = gemm.matmul(left, right)
                numpy.testing.assert_allclose(c.get(), (left @ right).get(), rtol=1e-5, atol=1e-5 * max(k, 1) ** 0.5)
            if m * k * n <= 33 * 785 * 17:  # the model walks in Python: small shapes only
                assert numpy.array_equal(gemm.matmul(a, b).get(), gemm.model_gemm("gemm_nn", a.get(), b.get()))
        bias = cupy.arange(17, dtype=cupy.float32)
        x, w = (cupy.asarray(v) for v in operands(33, 785, 17, numpy.float32))
        numpy.testing.assert_allclose(gemm.matmul(x, w, bias).get(), (x @ w + bias).get(), rtol=1e-5, atol=1e-4)


def test_backend_matmul_is_the_at_operator_except_on_cupy_inside_own_gemm(backend_name):
    """NumPy and strict: bit for bit ``a @ b`` (+ bias), inside ``own_gemm()`` too; the flag is restored."""
    from conftest import dev, host
    a, b = operands(5, 7, 3, numpy.float32)
    bias = numpy.arange(3, dtype=numpy.float32)
    expected = host(dev(a) @ dev(b) + dev(bias))
    assert numpy.array_equal(host(backend.matmul(dev(a), dev(b), dev(bias))), expected)
    with backend.own_gemm():
        got = host(backend.matmul(dev(a), dev(b), dev(bias)))
        assert backend._own_gemm
    assert not backend._own_gemm
    if backend_name == "cupy":  # tinynet's kernel: to float32 rounding
        numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    else:
        assert numpy.array_equal(got, expected)
