"""tinynet/kernels/gemm.py: the tiled GEMM kernels' index arithmetic, checked on any machine through its NumPy
model (``model_gemm`` walks blocks, threads and tiles as the kernel does); ``gemm.matmul``'s Python (which
kernel, its grid and arguments) through a fake cupy that checks each launch against SOURCE and runs the model
(tests/fake_cupy_kernels.py); on a GPU, the kernels themselves."""
import dataclasses
import functools
import re
import subprocess
import sys

import numpy
import pytest

import fake_cupy_kernels
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


# --- gemm.matmul, the Python around the kernels, on the CPU: a fake cupy whose kernels check each launch's
# arguments against SOURCE's signatures and its grid against the output, then run the model ---------------

def gemm_on_the_cpu(name, args):
    """What kernel ``name`` writes into C, from what it is given on a GPU: flat memory and the sizes M, N, K. Its
    pointers are (A, B, C), or (A, B, bias or mask, C) for a kernel with those hooks (None: NULL)."""
    *pointers, m, n, k = args
    a, b, *extra, c = pointers
    a_row, _, _, b_col = gemm.STRIDES[name]
    a = a.reshape((k, m) if a_row == "1" else (m, k))  # the stored matrices, as SOURCE's strides read them
    b = b.reshape((n, k) if b_col == "K" else (k, n))
    hooks = gemm.HOOKS[name]
    given = {}
    for x in extra:
        if "bias" in hooks:
            given["bias"] = None if x is None else x.reshape(n)
        else:  # ReLU's mask, laid out as the operand it masks
            given["mask"] = None if x is None else x.reshape(a.shape if "a_mask" in hooks else b.shape)
    rows = m + ("ones_row" in hooks)
    c.reshape(rows * n)[:] = gemm.model_gemm(name, a, b, **given).reshape(-1)


def tiles(name, args):
    """The grid SOURCE's mapping needs for C (rows, N), rows = M (+ 1 for the row of ones): blockIdx.x walks the
    row tiles, blockIdx.y N's."""
    m, n = int(args[-3]), int(args[-2])
    rows = m + ("ones_row" in gemm.HOOKS[name])
    return -(-rows // gemm.TILE), -(-n // gemm.TILE)  # ceil(rows / TILE), ceil(N / TILE)


GEMM_ON_THE_CPU = {name: fake_cupy_kernels.CpuKernel(grid=functools.partial(tiles, name),
                                                     block=(gemm.TILE, gemm.TILE), run=gemm_on_the_cpu)
                   for name in gemm.KERNELS}


@pytest.fixture
def cpu_cupy(monkeypatch):
    """``cupy`` is tests/fake_cupy_kernels.py's, running GEMM_ON_THE_CPU; gemm's module cache is emptied before
    and after, so that neither a real CuPy's kernels nor the fake's outlive the test."""
    cupy = fake_cupy_kernels.module(GEMM_ON_THE_CPU)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    gemm._module.cache_clear()
    yield cupy
    gemm._module.cache_clear()


# (left, right) views of the stored a (M, K) and b (K, N) whose product is a @ b, and the kernel that computes it
# reading them in place: a transposed view (x.T, as Dense's backward passes) is the stored matrix's other kernel.
VIEWS = {"a @ b": (lambda a, b: (a, b), "gemm_nn"),
         "x.T @ dz": (lambda a, b: (numpy.ascontiguousarray(a.T).T, b), "gemm_tn"),
         "dz @ W.T": (lambda a, b: (a, numpy.ascontiguousarray(b.T).T), "gemm_nt"),
         "a.T @ b.T": (lambda a, b: (numpy.ascontiguousarray(a.T).T, numpy.ascontiguousarray(b.T).T), "gemm_nt")}


@pytest.mark.host_only("a fake cupy of NumPy arrays")
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (33, 785, 17), (32, 784, 512), (5, 0, 3), (0, 4, 3)])
def test_matmul_launches_the_kernel_of_each_view_and_equals_numpy(cpu_cupy, view, m, k, n):
    """(32, 784, 512): a batch of MNIST through a 512-unit layer, in exact tiles; the others are ragged or empty."""
    make, kernel = VIEWS[view]
    left, right = make(*operands(m, k, n, numpy.float32))
    if left.flags.c_contiguous and right.flags.c_contiguous:  # a view of one row, or of no entries, is row-major too
        kernel = "gemm_nn"
    c = gemm.matmul(left, right)
    assert c.shape == (m, n) and c.dtype == numpy.float32
    numpy.testing.assert_allclose(c, left @ right, rtol=1e-5, atol=1e-5 * max(k, 1) ** 0.5)
    expected = [(f"{kernel}<float>", (-(-m // gemm.TILE), -(-n // gemm.TILE)), (gemm.TILE, gemm.TILE))]
    assert cpu_cupy.launches == (expected if m and n else [])  # nothing to launch for an empty C


@pytest.mark.host_only("a fake cupy of NumPy arrays")
@pytest.mark.parametrize("dtype, ctype", [(numpy.float32, "float"), (numpy.float64, "double")])
def test_matmul_fuses_the_bias_into_x_w_only(cpu_cupy, dtype, ctype):
    """z = x W + b is one launch of gemm_bias; x.T @ dz + b has no fused kernel: gemm_tn, then + b."""
    x, w = operands(33, 70, 17, dtype)
    b = numpy.random.default_rng(1).standard_normal(17).astype(dtype)
    numpy.testing.assert_allclose(gemm.matmul(x, w, b), x @ w + b, rtol=1e-5, atol=1e-5)
    xt = numpy.ascontiguousarray(x.T).T
    numpy.testing.assert_allclose(gemm.matmul(xt, w, b), xt @ w + b, rtol=1e-5, atol=1e-5)
    assert [name for name, _, _ in cpu_cupy.launches] == [f"gemm_bias<{ctype}>", f"gemm_tn<{ctype}>"]


@pytest.mark.host_only("a fake cupy of NumPy arrays")
def test_matmul_adds_a_strided_bias_as_its_values(cpu_cupy):
    """gemm_bias reads b[n] from flat memory: a strided view (every other entry) must not be read as if packed."""
    x, w = operands(5, 7, 3, numpy.float32)
    b = numpy.arange(6, dtype=numpy.float32)[::2]  # [0, 2, 4], stored 0 1 2 3 4 5
    numpy.testing.assert_allclose(gemm.matmul(x, w, b), x @ w + b, rtol=1e-6)


@pytest.mark.host_only("a fake cupy of NumPy arrays")
def test_matmul_refuses_shapes_that_do_not_fit_before_launching(cpu_cupy):
    """As CuPy's @ does (ValueError): a kernel given a K that b does not have would read past b's end."""
    a, b = operands(5, 7, 3, numpy.float32)
    with pytest.raises(ValueError, match=r"a is \(5, 7\) and b is \(6, 3\): a's columns \(7\) must equal b's rows"):
        gemm.matmul(a, b[:6])
    with pytest.raises(ValueError, match=r"bias has shape \(4,\): it needs one entry per column of a @ b, \(3,\)"):
        gemm.matmul(a, b, numpy.zeros(4, numpy.float32))
    assert cpu_cupy.launches == []


@pytest.mark.host_only("a fake cupy of NumPy arrays")
def test_matmul_launches_within_cuda_limits_for_a_convolutions_many_rows(monkeypatch):
    """Conv2D's z = cols W + b has M = batch x output positions rows: 2048 images of 26 x 26 positions are
    1,384,448 rows, 86,528 tiles, more than CUDA's 65,535 blocks along y; launches only (the model would be slow)."""
    cupy = fake_cupy_kernels.module({name: dataclasses.replace(k, run=None) for name, k in GEMM_ON_THE_CPU.items()})
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    gemm._module.cache_clear()
    try:
        cols, w = numpy.zeros((2048 * 26 * 26, 9), numpy.float32), numpy.zeros((9, 32), numpy.float32)
        gemm.matmul(cols, w, numpy.zeros(32, numpy.float32))  # forward
        gemm.matmul(numpy.zeros((2048 * 26 * 26, 32), numpy.float32), w.T)  # dL/dcols = dz @ W.T
    finally:
        gemm._module.cache_clear()
    assert [name for name, _, _ in cupy.launches] == ["gemm_bias<float>", "gemm_nt<float>"]


@pytest.mark.host_only("a fake cupy of NumPy arrays")
def test_the_fake_kernels_refuse_what_a_gpu_would_misread(cpu_cupy):
    """So that a passing matmul test means something: each mistake a GPU would turn into garbage or a crash."""
    a, b = operands(4, 3, 2, numpy.float32)
    c = numpy.empty((4, 2), numpy.float32)
    sizes = tuple(numpy.int32(s) for s in (4, 2, 3))
    kernel = gemm.kernel("gemm_nn", numpy.float32)
    kernel((1, 1), (16, 16), (a, b, c, *sizes))  # right: runs the model
    numpy.testing.assert_allclose(c, a @ b, rtol=1e-6)
    with pytest.raises(TypeError, match="M is a C int: pass numpy.int32"):
        kernel((1, 1), (16, 16), (a, b, c, 4, 2, 3))  # Python ints: 64 bits each
    with pytest.raises(TypeError, match="takes 6 arguments, got 5"):
        kernel((1, 1), (16, 16), (a, b, c, *sizes[:2]))
    with pytest.raises(TypeError, match="A is a float\\*: it needs an array of float32, got float64"):
        kernel((1, 1), (16, 16), (a.astype(numpy.float64), b, c, *sizes))
    with pytest.raises(TypeError, match="not C-contiguous"):
        kernel((1, 1), (16, 16), (numpy.ascontiguousarray(a.T).T, b, c, *sizes))
    with pytest.raises(ValueError, match="needs blocks of"):
        kernel((1, 1), (32, 8), (a, b, c, *sizes))
    with pytest.raises(ValueError, match="leaves entries unwritten: 1 blocks along x, 3 needed"):
        kernel((1, 1), (16, 16), (numpy.zeros((40, 3), numpy.float32), b, numpy.empty((40, 2), numpy.float32),
                                  numpy.int32(40), *sizes[1:]))
    with pytest.raises(ValueError, match="blocks wholly outside the output: 2 blocks along y, 1 needed"):
        kernel((1, 2), (16, 16), (a, b, c, *sizes))
    with pytest.raises(ValueError, match="over CUDA's limits"):
        kernel((1, 65536), (16, 16), (a, b, c, *sizes))
    with pytest.raises(ValueError, match="not among the RawModule's name_expressions"):
        gemm._module().get_function("gemm_nn<int>")


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
