"""tinynet/kernels/gemm.py: the tiled GEMM kernels' index arithmetic, checked on any machine through its NumPy
model (``model_gemm`` walks blocks, threads and tiles as the kernel does); ``gemm.matmul``'s Python (which
kernel, its grid and arguments) through a fake cupy that checks each launch against SOURCE and runs the model
(tests/fake_cupy_kernels.py); on a GPU, the kernels themselves."""
import contextlib
import dataclasses
import functools
import itertools
import math
import re
import sys

import numpy
import pytest

import fake_cupy_kernels
from conftest import BACKENDS_UNDER_TEST
from tinynet import backend
from tinynet.kernels import gemm
from tinynet.layers import Conv2D, Dense
from tinynet.layers.dense import fused_with_relu
from tinynet.utils import set_random_seed

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


# --- the fused kernels of Dense + ReLU: each equals the readable computation it replaces, through the models ----

FUSED_SHAPES = [(1, 1, 1), (33, 785, 17), (7, 40, 33), (32, 784, 512)]  # (batch, in, units): ragged, batch 7, MNIST
SPECIAL = [-numpy.inf, -2.0, -0.0, 0.0, 3.0, numpy.inf, numpy.nan]


def assert_same_bits(a, b):
    """Equal entry for entry, NaN where NaN and -0 where -0 (NaN's payload aside: a GPU's NaN is its own)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    numpy.testing.assert_array_equal(numpy.isnan(a), numpy.isnan(b))
    numpy.testing.assert_array_equal(numpy.signbit(a) | numpy.isnan(a), numpy.signbit(b) | numpy.isnan(b))
    numpy.testing.assert_array_equal(a, b)


def odd(array, seed):
    """``array`` with NaN, inf, -inf, -0 and 0 sprinkled in (a copy), at most a few of each."""
    array = array.copy()
    flat = array.reshape(-1)
    rng = numpy.random.default_rng(seed)
    for value in SPECIAL:
        flat[rng.integers(0, flat.size, size=max(1, flat.size // 200))] = value
    return array


def layer_operands(batch, units_in, units, dtype, seed=0):
    """x (batch, in), W (in, units), b (units,), and dy (batch, units): a Dense layer's forward and backward."""
    rng = numpy.random.default_rng(seed)
    x, w = operands(batch, units_in, units, dtype, seed)
    return x, w, rng.standard_normal(units).astype(dtype), rng.standard_normal((batch, units)).astype(dtype)


def readable_relu_backward(z, dy):
    """ReLU.backward's readable line on NumPy: dz = dy * astype(z > 0, dy.dtype)."""
    with numpy.errstate(invalid="ignore"):  # inf * 0, as the GPU computes it without a word
        return dy * (z > 0).astype(dy.dtype)


def tile_order_sum(dz, splits=1):
    """sum_k dz[k, n] for k = 0, 1, ... in order, each sum rounded: how gemm_tn_db sums its row of ones; with
    ``splits``, each split's range of k so, then the splits' sums in order (split-K)."""
    per = -(-(-(-len(dz) // gemm.TILE)) // splits) * gemm.TILE  # rows of dz per split: ceil(tiles / splits) tiles
    partial = []
    with numpy.errstate(invalid="ignore"):  # inf + -inf
        for start in range(0, max(len(dz), 1), per or 1):
            acc = numpy.zeros(dz.shape[1], dz.dtype)
            for row in dz[start:start + per]:
                acc = acc + row
            partial.append(acc)
        total = partial[0]
        for acc in partial[1:]:
            total = total + acc
    return total


@pytest.mark.host_only("the kernels' NumPy model")
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_the_relu_epilogue_is_numpys_maximum_on_odd_numbers(dtype):
    """NaN stays NaN (CUDA's fmaxf would give 0); -0 becomes +0, as NumPy's maximum(-0.0, 0.0) returns its second
    argument; a subnormal stays."""
    z = numpy.array(SPECIAL + [numpy.finfo(dtype).smallest_subnormal, -numpy.finfo(dtype).smallest_subnormal], dtype)
    assert_same_bits(gemm.model_relu(z), numpy.maximum(z, 0.0))
    assert not numpy.signbit(numpy.maximum(dtype(-0.0), 0.0))  # the fact relu() matches: +0, not -0
    assert numpy.isnan(gemm.model_relu(z)[SPECIAL.index(numpy.nan)])


@pytest.mark.host_only("the kernels' NumPy model")
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_the_mask_prologue_is_relus_readable_backward_on_odd_numbers(dtype):
    """masked(): dy * (T)(z > 0) for every special z against every special dy: a product with 0 or 1, so -2
    masked off is -0 and inf masked off is NaN, as the readable line gives (and as tinynet/kernels/relu.py does)."""
    z, dy = (v.reshape(-1) for v in numpy.meshgrid(numpy.array(SPECIAL, dtype), numpy.array(SPECIAL, dtype)))
    with numpy.errstate(invalid="ignore"):
        dz = gemm.model_masked(dy, z, numpy.arange(dy.size))
    assert_same_bits(dz, readable_relu_backward(z, dy))
    off_inf, off_negative = (z <= 0) & (dy == numpy.inf), (z <= 0) & (dy == -2.0)  # masked off: z <= 0
    assert off_inf.any() and numpy.isnan(dz[off_inf]).all()  # inf * 0 = NaN, not 0
    assert off_negative.any() and numpy.signbit(dz[off_negative]).all() and (dz[off_negative] == 0).all()  # -0


@pytest.mark.host_only("the kernels' NumPy model")
def test_relus_output_is_the_same_mask_as_its_input():
    """ReLU's backward reads its input z only as z > 0; the fused forward leaves it y = max(z, 0) instead: the
    same mask on every number, NaN (NaN > 0 is false, and y is NaN) and -0 (y is +0) included."""
    z = numpy.array(SPECIAL + [1e-45, -1e-45], numpy.float32)
    y = gemm.model_relu(z)
    numpy.testing.assert_array_equal(y > 0, z > 0)
    dy = numpy.array(SPECIAL[::-1] + [5.0, -5.0], numpy.float32)
    assert_same_bits(readable_relu_backward(y, dy), readable_relu_backward(z, dy))


@pytest.mark.host_only("the kernels' NumPy model")
@pytest.mark.parametrize("batch, units_in, units", FUSED_SHAPES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_gemm_bias_relu_is_gemm_bias_then_numpys_maximum_bit_for_bit(batch, units_in, units, use_bias):
    """One kernel, y = max(x W + b, 0), equals the two readable steps on the kernels' models: z by gemm_bias (or
    gemm_nn without bias), then maximum(z, 0.0); x with NaN, inf and -0 in it, so z has NaN and infinities."""
    x, w, b, _ = layer_operands(batch, units_in, units, numpy.float32)
    x = odd(x, seed=1)
    b = b if use_bias else None
    with numpy.errstate(invalid="ignore", over="ignore"):
        z = gemm.model_gemm("gemm_bias", x, w, b) if use_bias else gemm.model_gemm("gemm_nn", x, w)
    y = gemm.model_gemm("gemm_bias_relu", x, w, b)
    assert_same_bits(y, numpy.maximum(z, 0.0))
    assert numpy.isnan(z).any() and numpy.isnan(y).any()  # NaN went through, as maximum lets it


@pytest.mark.host_only("the kernels' NumPy model")
@pytest.mark.parametrize("batch, units_in, units, dtype", [(*shape, numpy.float32) for shape in FUSED_SHAPES] +
                         [(*shape, numpy.float64) for shape in FUSED_SHAPES[:2]])
def test_gemm_tn_db_is_dw_and_db_of_the_readable_dz(batch, units_in, units, dtype):
    """[dW; db] = [x, 1]^T dz in one kernel, dz = dy * (z > 0) read through the mask: dW bit for bit gemm_tn on
    the readable dz; db exactly the in-order sum of dz's columns, and numpy's sum to rounding. z and dy hold NaN,
    inf and -0; the mask is z itself or the y = max(z, 0) the fused forward leaves: the same numbers."""
    x, w, b, dy = layer_operands(batch, units_in, units, dtype)
    z = odd(gemm.model_gemm("gemm_bias", x, w, b), seed=2)
    dy = odd(dy, seed=3)
    dz = readable_relu_backward(z, dy)
    c = gemm.model_gemm("gemm_tn_db", x, dy, mask=z)
    assert c.shape == (units_in + 1, units)
    assert_same_bits(c[:units_in], gemm.model_gemm("gemm_tn", x, dz))  # dW = x^T dz   (in, units)
    assert_same_bits(c[units_in], tile_order_sum(dz))  # db = 1^T dz, in the tile loop's order
    with numpy.errstate(invalid="ignore"):  # inf + -inf
        pairwise = dz.sum(axis=0)  # cupy.sum's order is its own again: to rounding only
    numpy.testing.assert_allclose(c[units_in], pairwise, rtol=1e-5 if dtype == numpy.float32 else 1e-12,
                                  atol=1e-5 * batch ** 0.5)  # NaN where numpy's sum has NaN
    assert_same_bits(gemm.model_gemm("gemm_tn_db", x, dy, mask=gemm.model_relu(z)), c)
    plain = gemm.model_gemm("gemm_tn_db", x, dy)  # no mask: dz = dy
    assert_same_bits(plain[:units_in], gemm.model_gemm("gemm_tn", x, dy))
    assert_same_bits(plain[units_in], tile_order_sum(dy))


@pytest.mark.host_only("the kernels' NumPy model")
@pytest.mark.parametrize("batch, units_in, units", FUSED_SHAPES)
def test_gemm_nt_mask_is_dx_of_the_readable_dz(batch, units_in, units):
    """dx = dz W^T in one kernel, dz read through ReLU's mask: bit for bit gemm_nt on the readable dz."""
    x, w, b, dy = layer_operands(batch, units_in, units, numpy.float32)
    z, dy = odd(gemm.model_gemm("gemm_bias", x, w, b), seed=4), odd(dy, seed=5)
    w_stored = numpy.ascontiguousarray(w)  # W (in, units) = B stored (N, K): dx = dz W^T
    dx = gemm.model_gemm("gemm_nt_mask", dy, w_stored, mask=z)
    assert_same_bits(dx, gemm.model_gemm("gemm_nt", readable_relu_backward(z, dy), w_stored))
    assert_same_bits(gemm.model_gemm("gemm_nt_mask", dy, w_stored, mask=gemm.model_relu(z)), dx)
    assert_same_bits(gemm.model_gemm("gemm_nt_mask", dy, w_stored), gemm.model_gemm("gemm_nt", dy, w_stored))


@pytest.mark.host_only("arithmetic on the host")
def test_split_k_splits_the_seed_models_long_products_and_leaves_no_split_empty():
    """The seed model at batch 32: the products whose C is a few blocks and whose K is long are split; each split
    has at least MIN_TILES of K's tiles, and none is empty (a range past K would add a +0 partial sum)."""
    assert gemm.splits(32, 512, 784) == 4  # the first layer's forward: 64 blocks, 49 tiles of K
    assert gemm.splits(32, 512, 512) == 4  # the second layer's forward, and its dx
    assert gemm.splits(32, 10, 512) == 8  # the output layer's forward: 2 blocks
    assert gemm.splits(32, 512, 10) == 1  # the output layer's dx: K is one tile
    assert gemm.splits(785, 512, 32) == 1  # [dW; db] of the first layer: 1,600 blocks
    for rows, n, k in itertools.product((1, 16, 17, 32, 100, 1000), (1, 10, 512), (0, 1, 63, 64, 65, 784, 5000)):
        count, tiles = gemm.splits(rows, n, k), -(-k // gemm.TILE)
        per = -(-tiles // count)  # as SOURCE computes it
        assert count == 1 or (per >= gemm.MIN_TILES and (count - 1) * per < tiles), (rows, n, k)


@pytest.mark.host_only("the kernels' NumPy model")
@pytest.mark.parametrize("name", gemm.KERNELS)
@pytest.mark.parametrize("m, k, n", [(17, 300, 5), (33, 785, 17)])
def test_each_split_model_is_the_product_its_unsplit_model_is_to_rounding(name, m, k, n):
    """Split-K changes only the order of the sum: partial sums over ranges of K, then added in order. In float64
    both equal the product to 1e-12; in float32 they differ by rounding only."""
    count = gemm.splits(m, n, k)
    assert count > 1
    for dtype, rtol in ((numpy.float64, 1e-12), (numpy.float32, 1e-5)):
        a, b = operands(m, k, n, dtype)
        stored_a = numpy.ascontiguousarray(a.T) if gemm.STRIDES[name][0] == "1" else a  # A^T stored (K, M)
        stored_b = numpy.ascontiguousarray(b.T) if gemm.STRIDES[name][3] == "K" else b
        extra = {"bias": numpy.ones(n, dtype)} if "bias" in gemm.HOOKS[name] else {}
        split = gemm.model_gemm(name, stored_a, stored_b, splits=count, **extra)
        whole = gemm.model_gemm(name, stored_a, stored_b, **extra)
        numpy.testing.assert_allclose(split, whole, rtol=rtol, atol=rtol * k ** 0.5)
    assert not numpy.array_equal(split, whole)  # in float32 the order shows


@pytest.mark.host_only("reads the kernels' CUDA source")
def test_the_cuda_source_passes_the_strides_and_hooks_the_model_uses():
    bodies = dict(re.findall(r"__global__ void (\w+)\(.*?\{(.*?)\n\}", gemm.SOURCE, re.S))
    assert sorted(bodies) == sorted(gemm.KERNELS + gemm.GROUPED)
    grouped = bodies.pop("dense_backward")
    for name, body in bodies.items():  # the strides and the hooks each kernel turns on, as the model has them
        args = re.search(r"gemm_tile<T>\(([^;]*)\);", body)[1].split(",")
        assert tuple(a.strip() for a in args[1:3] + args[4:6]) == gemm.STRIDES[name], name
        assert tuple(re.findall(r"hooks\.(\w+) = ", body)) == gemm.HOOKS[name], name
    # dense_backward: gemm_tn_db's product (M = in, N = units), then gemm_nt_mask's (K = units), with their hooks
    (w_args, w_hooks), (x_args, x_hooks) = [(call.split(","), re.findall(r"hooks\.(\w+) = ", part))
                                            for part, call in re.findall(r"(\{.*?)gemm_tile<T>\(([^;]*)\);", grouped,
                                                                         re.S)]
    assert tuple(a.strip() for a in w_args[1:3] + w_args[4:6]) == ("1", "in", "units", "1")
    assert tuple(a.strip() for a in x_args[1:3] + x_args[4:6]) == ("units", "1", "1", "units")
    assert (tuple(w_hooks), tuple(x_hooks)) == (gemm.HOOKS["gemm_tn_db"], gemm.HOOKS["gemm_nt_mask"])


# --- gemm.matmul, the Python around the kernels, on the CPU: a fake cupy whose kernels check each launch's
# arguments against SOURCE's signatures and its grid against the output, then run the model ---------------

def gemm_on_the_cpu(name, args):
    """What kernel ``name`` writes into C, from what it is given on a GPU: flat memory, the sizes M, N, K and the
    count of splits of K. Its pointers are (A, B, C), or (A, B, bias or mask, C) for a kernel with those hooks
    (None: NULL), then split-K's partial and arrivals (which the model needs not: it adds the splits itself)."""
    *pointers, _partial, _arrivals, m, n, k, count = args
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
    c.reshape(rows * n)[:] = gemm.model_gemm(name, a, b, splits=int(count), **given).reshape(-1)


def tiles(name, args):
    """The grid SOURCE's mapping needs for C (rows, N), rows = M (+ 1 for the row of ones): blockIdx.x walks the
    row tiles, blockIdx.y N's, blockIdx.z the splits of K."""
    m, n, count = int(args[-4]), int(args[-3]), int(args[-1])
    rows = m + ("ones_row" in gemm.HOOKS[name])
    return -(-rows // gemm.TILE), -(-n // gemm.TILE), count  # ceil(rows / TILE), ceil(N / TILE), splits


def grid(rows, n, k):
    """The grid gemm.launch gives a C of (rows, n) summed over k."""
    return -(-rows // gemm.TILE), -(-n // gemm.TILE), gemm.splits(rows, n, k)


def dense_backward_on_the_cpu(name, args):
    """What dense_backward writes into [dW; db] and dx: gemm_tn_db's and gemm_nt_mask's models, each with its
    own split of K, from flat memory and the sizes."""
    x, dy, mask, w, dwdb, dx, *_buffers, batch, inputs, units, w_splits, x_splits = args
    k, m, n = int(batch), int(inputs), int(units)
    x, dy, w = x.reshape(k, m), dy.reshape(k, n), w.reshape(m, n)
    mask = None if mask is None else mask.reshape(k, n)
    dwdb.reshape(m + 1, n)[...] = gemm.model_gemm("gemm_tn_db", x, dy, mask=mask, splits=int(w_splits))
    dx.reshape(k, m)[...] = gemm.model_gemm("gemm_nt_mask", dy, w, mask=mask, splits=int(x_splits))


def dense_backward_blocks(args):
    """dense_backward's grid: the blocks of [dW; db] (in + 1, units) and of dx (batch, in), each times its splits."""
    batch, inputs, units, w_splits, x_splits = (int(a) for a in args[-5:])
    tiles = lambda rows, cols: -(-rows // gemm.TILE) * -(-cols // gemm.TILE)  # noqa: E731
    return (tiles(inputs + 1, units) * w_splits + tiles(batch, inputs) * x_splits,)


GEMM_ON_THE_CPU = {name: fake_cupy_kernels.CpuKernel(grid=functools.partial(tiles, name),
                                                     block=(gemm.TILE, gemm.TILE), run=gemm_on_the_cpu)
                   for name in gemm.KERNELS}
GEMM_ON_THE_CPU["dense_backward"] = fake_cupy_kernels.CpuKernel(grid=dense_backward_blocks,
                                                                block=(gemm.TILE, gemm.TILE),
                                                                run=dense_backward_on_the_cpu)


@pytest.fixture
def cpu_cupy(monkeypatch):
    """``cupy`` is tests/fake_cupy_kernels.py's, running GEMM_ON_THE_CPU; gemm's module cache is emptied before
    and after, so that neither a real CuPy's kernels nor the fake's outlive the test."""
    cupy = fake_cupy_kernels.module(GEMM_ON_THE_CPU)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    gemm._module.cache_clear(), gemm._workspace.cache_clear()
    yield cupy
    gemm._module.cache_clear(), gemm._workspace.cache_clear()


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
    expected = [(f"{kernel}<float>", grid(m, n, k), (gemm.TILE, gemm.TILE))]
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
    sizes = tuple(numpy.int32(s) for s in (4, 2, 3, 1))  # M, N, K, splits
    kernel = gemm.kernel("gemm_nn", numpy.float32)
    kernel((1, 1), (16, 16), (a, b, c, None, None, *sizes))  # right: runs the model
    numpy.testing.assert_allclose(c, a @ b, rtol=1e-6)
    with pytest.raises(TypeError, match="M is a C int: pass numpy.int32"):
        kernel((1, 1), (16, 16), (a, b, c, None, None, 4, 2, 3, 1))  # Python ints: 64 bits each
    with pytest.raises(TypeError, match="takes 9 arguments, got 8"):
        kernel((1, 1), (16, 16), (a, b, c, None, None, *sizes[:3]))
    with pytest.raises(TypeError, match="A is a float\\*: it needs an array of float32, got float64"):
        kernel((1, 1), (16, 16), (a.astype(numpy.float64), b, c, None, None, *sizes))
    with pytest.raises(TypeError, match="not C-contiguous"):
        kernel((1, 1), (16, 16), (numpy.ascontiguousarray(a.T).T, b, c, None, None, *sizes))
    with pytest.raises(ValueError, match="needs blocks of"):
        kernel((1, 1), (32, 8), (a, b, c, None, None, *sizes))
    with pytest.raises(ValueError, match="leaves entries unwritten: 1 blocks along x, 3 needed"):
        kernel((1, 1), (16, 16), (numpy.zeros((40, 3), numpy.float32), b, numpy.empty((40, 2), numpy.float32),
                                  None, None, numpy.int32(40), *sizes[1:]))
    with pytest.raises(ValueError, match="blocks wholly outside the output: 2 blocks along y, 1 needed"):
        kernel((1, 2), (16, 16), (a, b, c, None, None, *sizes))
    with pytest.raises(ValueError, match="leaves entries unwritten: 1 blocks along z, 2 needed"):
        kernel((1, 1), (16, 16), (a, b, c, c.copy(), numpy.zeros(1, numpy.int32), *sizes[:3], numpy.int32(2)))
    with pytest.raises(ValueError, match="over CUDA's limits"):
        kernel((1, 65536), (16, 16), (a, b, c, None, None, *sizes))
    with pytest.raises(ValueError, match="not among the RawModule's name_expressions"):
        gemm._module().get_function("gemm_nn<int>")


@pytest.mark.host_only("a fake cupy of NumPy arrays")
@pytest.mark.parametrize("batch, units_in, units", [(1, 1, 1), (33, 785, 17), (7, 40, 33), (32, 16, 16)])
@pytest.mark.parametrize("dtype, ctype", [(numpy.float32, "float"), (numpy.float64, "double")])
def test_dense_relus_wrappers_launch_one_kernel_each_and_equal_the_readable_steps(cpu_cupy, batch, units_in, units,
                                                                                  dtype, ctype):
    """dense_relu, weight_gradients, input_gradient: one launch each, with the arguments SOURCE declares and the
    grid that covers their output ((32, 16, 16): the row of ones is a tile row of its own), equal to the readable
    steps on the models: y = max(z, 0); dW, dx from dz = dy * (z > 0), read through the mask y; db in tile order."""
    x, w, b, dy = layer_operands(batch, units_in, units, dtype)
    z = gemm.model_gemm("gemm_bias", x, w, b, splits=gemm.splits(batch, units, units_in))
    dz = readable_relu_backward(z, dy)
    y = gemm.dense_relu(x, w, b)
    assert_same_bits(y, numpy.maximum(z, 0.0))
    dw, db = gemm.weight_gradients(x, dy, y)
    assert dw.shape == (units_in, units) and db.shape == (units,) and dw.base is db.base  # views of one C
    assert dw.flags.c_contiguous and db.flags.c_contiguous
    count = gemm.splits(units_in + 1, units, batch)  # [dW; db] has a row more than dW
    assert_same_bits(dw, gemm.model_gemm("gemm_tn", x, dz, splits=count))
    assert_same_bits(db, tile_order_sum(dz, count))
    dx = gemm.input_gradient(dy, w, y)
    assert_same_bits(dx, gemm.model_gemm("gemm_nt", dz, w, splits=gemm.splits(batch, units_in, units)))
    block = (gemm.TILE, gemm.TILE)
    assert cpu_cupy.launches == [
        (f"gemm_bias_relu<{ctype}>", grid(batch, units, units_in), block),  # y (batch, units)
        (f"gemm_tn_db<{ctype}>", grid(units_in + 1, units, batch), block),  # [dW; db] (in + 1, units)
        (f"gemm_nt_mask<{ctype}>", grid(batch, units_in, units), block)]  # dx (batch, in)


@pytest.mark.host_only("a fake cupy of NumPy arrays")
@pytest.mark.parametrize("batch, units_in, units", [(1, 1, 1), (7, 40, 33), (17, 20, 300), (300, 20, 5), (32, 16, 16)])
@pytest.mark.parametrize("with_mask", [True, False])
def test_dense_gradients_is_weight_and_input_gradients_in_one_launch(cpu_cupy, batch, units_in, units, with_mask):
    """dense_backward: [dW; db] and dx in one grid, each product with its own tiles and split of K ((17, 20, 300)
    splits dx's K, (300, 20, 5) dW's), bit for bit the two kernels apart; the grid is both products' blocks."""
    x, w, _, dy = layer_operands(batch, units_in, units, numpy.float32)
    mask = odd(numpy.random.default_rng(9).standard_normal((batch, units)).astype(numpy.float32), 10) \
        if with_mask else None
    dw, db, dx = gemm.dense_gradients(x, odd(dy, 11), w, mask)
    ((_, launched, block),) = cpu_cupy.launches
    cpu_cupy.launches.clear()
    dw_apart, db_apart = gemm.weight_gradients(x, odd(dy, 11), mask)
    assert_same_bits(dw, dw_apart)
    assert_same_bits(db, db_apart)
    assert_same_bits(dx, gemm.input_gradient(odd(dy, 11), w, mask))
    w_grid, x_grid = grid(units_in + 1, units, batch), grid(batch, units_in, units)
    assert (launched, block) == ((math.prod(w_grid) + math.prod(x_grid),), (gemm.TILE, gemm.TILE))


@pytest.mark.host_only("a fake cupy of NumPy arrays")
def test_dense_wrappers_without_bias_or_mask_pass_null_and_copy_strided_views(cpu_cupy):
    """A Dense without bias, or without ReLU (its dz is dy): NULL (None) for what is missing, and the products are
    the plain ones; a strided dy (a view of every other column) is copied, not read as if packed."""
    x, w, _, dy = layer_operands(9, 20, 5, numpy.float32)
    assert_same_bits(gemm.dense_relu(x, w), numpy.maximum(gemm.model_gemm("gemm_nn", x, w), 0.0))
    strided = numpy.repeat(dy, 2, axis=1)[:, ::2]  # dy's values, not C-contiguous
    dw, db = gemm.weight_gradients(x, strided)
    assert_same_bits(dw, gemm.model_gemm("gemm_tn", x, dy))
    assert_same_bits(db, tile_order_sum(dy))
    assert_same_bits(gemm.input_gradient(strided, w), gemm.model_gemm("gemm_nt", dy, w))
    assert [name for name, _, _ in cpu_cupy.launches] == ["gemm_bias_relu<float>", "gemm_tn_db<float>",
                                                          "gemm_nt_mask<float>"]


@pytest.mark.host_only("dtypes only")
def test_fits_takes_float32_or_float64_arrays_of_one_dtype():
    a32, a64 = numpy.zeros(2, numpy.float32), numpy.zeros(2, numpy.float64)
    assert gemm.fits(a32, a32, None) and gemm.fits(a64, a64)
    assert not gemm.fits(a32, a64) and not gemm.fits(numpy.zeros(2, numpy.float16))


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
                assert numpy.array_equal(gemm.matmul(a, b).get(), gemm.model_gemm("gemm_nn", a.get(), b.get(),
                                                                                  splits=gemm.splits(m, n, k)))
        bias = cupy.arange(17, dtype=cupy.float32)
        x, w = (cupy.asarray(v) for v in operands(33, 785, 17, numpy.float32))
        numpy.testing.assert_allclose(gemm.matmul(x, w, bias).get(), (x @ w + bias).get(), rtol=1e-5, atol=1e-4)

    def test_the_fused_dense_kernels_equal_the_readable_steps_on_a_gpu(backend_name):
        """Bit for bit: y = max(x W + b, 0) the GPU's gemm_bias then cupy.maximum, and the model; dW, db, dx the
        models on the readable dz (and dW, dx the GPU's gemm_tn, gemm_nt on ReLU's kernel's dz); NaN, inf and -0 in
        x and dy."""
        if backend_name != "cupy":
            return
        import cupy
        from tinynet.kernels import relu
        # (300, 20, 5): [dW; db] split in 4 (gemm_tn_db); (17, 20, 300): dx split in 4 (gemm_nt_mask)
        for batch, units_in, units in [(1, 1, 1), (33, 785, 17), (7, 40, 33), (32, 16, 16), (300, 20, 5),
                                       (17, 20, 300)]:
            x, w, b, dy = layer_operands(batch, units_in, units, numpy.float32)
            x, dy = odd(x, seed=1), odd(dy, seed=3)
            gx, gw, gb, gdy = (cupy.asarray(v) for v in (x, w, b, dy))
            z = gemm.model_gemm("gemm_bias", x, w, b, splits=gemm.splits(batch, units, units_in))
            dz = readable_relu_backward(z, dy)
            y = gemm.dense_relu(gx, gw, gb)
            assert_same_bits(y.get(), numpy.maximum(z, 0.0))
            gz = gemm.matmul(gx, gw, gb)
            assert_same_bits(y.get(), cupy.maximum(gz, 0.0).get())
            dw, db = gemm.weight_gradients(gx, gdy, y)
            dx = gemm.input_gradient(gdy, gw, y)
            count = gemm.splits(units_in + 1, units, batch)
            assert_same_bits(dw.get(), gemm.model_gemm("gemm_tn", x, dz, splits=count))
            assert_same_bits(db.get(), tile_order_sum(dz, count))
            assert_same_bits(dx.get(), gemm.model_gemm("gemm_nt", dz, w, splits=gemm.splits(batch, units_in, units)))
            for grouped, apart in zip(gemm.dense_gradients(gx, gdy, gw, y), (dw, db, dx)):  # one launch of both
                assert_same_bits(grouped.get(), apart.get())
            gdz = relu.relu_backward(gz, gdy)  # ReLU's own kernel, from z
            assert_same_bits(dw.get(), gemm.matmul(gx.T, gdz).get())
            assert_same_bits(dx.get(), gemm.matmul(gdz, gw.T).get())


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


# --- Dense's fused steps wired in: on the CPU, the backend pretends to be CuPy inside own_gemm() (its arrays stay
# NumPy's), and the fake cupy's kernels run the models; every launch is counted ---------------------------------

@contextlib.contextmanager
def pretending_cupy_inside_own_gemm(monkeypatch):
    """``backend.get_backend()`` says 'cupy' and ``own_gemm()`` is on: what the captured step sees on a GPU."""
    with monkeypatch.context() as patch:
        patch.setattr(backend, "_name", "cupy")
        with backend.own_gemm():
            yield


def dense(units, activation, inputs, use_bias=True, seed=0):
    set_random_seed(seed)
    layer = Dense(units, activation=activation, use_bias=use_bias)
    layer.build((None, inputs))
    if use_bias:  # a bias that is not zero, so that adding it counts
        layer.params["bias"] = numpy.random.default_rng(seed).standard_normal(units).astype(numpy.float32)
    return layer


@pytest.mark.host_only("a fake cupy of NumPy arrays")
@pytest.mark.parametrize("batch, use_bias", [(7, True), (32, True), (7, False)])
def test_dense_relu_layers_are_one_launch_forward_and_one_backward(cpu_cupy, monkeypatch, batch, use_bias):
    """Two Dense(relu) layers (the first a model's first layer) forward and backward, in four launches (were 2 + 2
    forward, 4 + 3 backward: ReLU's forward and mask, cupy.sum's db, and dW's and dx's products apart), each output
    bit for bit the readable steps on the kernels' models, db the tile-order sum; NaN, inf and -0 in x and dy."""
    first, second = dense(17, "relu", 33, use_bias), dense(9, "relu", 17, use_bias, seed=1)
    first.needs_input_gradient = False  # as Sequential sets it
    rng = numpy.random.default_rng(2)
    x = odd(rng.standard_normal((batch, 33)).astype(numpy.float32), seed=3)
    dy = odd(rng.standard_normal((batch, 9)).astype(numpy.float32), seed=4)
    with pretending_cupy_inside_own_gemm(monkeypatch):
        y1 = first.forward(x, training=True)
        y2 = second.forward(y1, training=True)
        dy1 = second.backward(dy)
        assert first.backward(dy1) is None
    assert [name for name, _, _ in cpu_cupy.launches] == [
        "gemm_bias_relu<float>", "gemm_bias_relu<float>",  # forward: one each
        "dense_backward<float>",  # the second layer's backward: [dW; db] and dx, in one launch
        "gemm_tn_db<float>"]  # the first layer's: [dW; db], no dx
    linear = "gemm_bias" if use_bias else "gemm_nn"
    bias = (lambda layer: (layer.params["bias"],)) if use_bias else (lambda layer: ())
    for layer, x_in, y_out, dy_in in [(first, x, y1, dy1), (second, y1, y2, dy)]:  # the readable steps, modelled
        z = gemm.model_gemm(linear, x_in, layer.params["kernel"], *bias(layer))  # z = x W + b
        assert_same_bits(y_out, numpy.maximum(z, 0.0))  # y = max(z, 0)
        assert layer.activation.x is y_out and numpy.array_equal(y_out > 0, z > 0)  # ReLU keeps y: z's mask
        dz = readable_relu_backward(z, dy_in)  # dz = dy * (z > 0)
        assert_same_bits(layer.grads["kernel"], gemm.model_gemm("gemm_tn", x_in, dz))  # dW = x^T dz
        if use_bias:
            assert_same_bits(layer.grads["bias"], tile_order_sum(dz))  # db = 1^T dz, in order
        else:
            assert "bias" not in layer.grads
    assert_same_bits(dy1, gemm.model_gemm("gemm_nt", readable_relu_backward(
        gemm.model_gemm(linear, y1, second.params["kernel"], *bias(second)), dy), second.params["kernel"]))


@pytest.mark.host_only("a fake cupy of NumPy arrays")
@pytest.mark.parametrize("activation", [None, "softmax"])
def test_a_dense_without_relu_sums_db_beside_dw_too(cpu_cupy, monkeypatch, activation):
    """A Dense without activation, or the last layer on the logits path (Sequential calls its forward_linear and
    backward_linear): z = x W + b is gemm_bias already; backward is dW, db and dx in one launch (were 3: gemm_tn,
    cupy.sum, gemm_nt)."""
    layer = dense(10, activation, 20)
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((7, 20)).astype(numpy.float32)
    dz = odd(rng.standard_normal((7, 10)).astype(numpy.float32), seed=6)
    with pretending_cupy_inside_own_gemm(monkeypatch):
        z = layer.forward_linear(x)
        dx = layer.backward_linear(dz) if activation else layer.backward(dz)
    assert [name for name, _, _ in cpu_cupy.launches] == ["gemm_bias<float>", "dense_backward<float>"]
    assert_same_bits(z, gemm.model_gemm("gemm_bias", x, layer.params["kernel"], layer.params["bias"]))
    assert_same_bits(layer.grads["kernel"], gemm.model_gemm("gemm_tn", x, dz))
    assert_same_bits(layer.grads["bias"], tile_order_sum(dz))
    assert_same_bits(dx, gemm.model_gemm("gemm_nt", dz, layer.params["kernel"]))


@pytest.mark.host_only("a fake cupy of NumPy arrays")
def test_conv2d_borrows_denses_forward_but_not_its_fused_kernels(cpu_cupy, monkeypatch):
    """Conv2D's forward is Dense's, with its own linear part (im2col): it keeps gemm_bias, then ReLU."""
    set_random_seed(0)
    conv = Conv2D(4, 3, activation="relu")
    conv.build((None, 6, 6, 2))
    x = numpy.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype(numpy.float32)
    with pretending_cupy_inside_own_gemm(monkeypatch):
        assert not fused_with_relu(conv, x)
        y = conv.forward(x, training=True)
    assert y.shape == (2, 4, 4, 4) and (y >= 0).all()
    assert [name for name, _, _ in cpu_cupy.launches] == ["gemm_bias<float>"]


@pytest.mark.host_only("a fake cupy of NumPy arrays")
def test_other_dtypes_and_other_activations_take_the_readable_lines(cpu_cupy, monkeypatch):
    layer = dense(5, "relu", 4)
    with pretending_cupy_inside_own_gemm(monkeypatch):
        assert fused_with_relu(layer, numpy.zeros((3, 4), numpy.float32))
        assert not fused_with_relu(layer, numpy.zeros((3, 4), numpy.float16))  # the kernels take float32, float64
        assert not fused_with_relu(dense(5, "softmax", 4), numpy.zeros((3, 4), numpy.float32))
        assert not fused_with_relu(dense(5, None, 4), numpy.zeros((3, 4), numpy.float32))
    assert not fused_with_relu(layer, numpy.zeros((3, 4), numpy.float32))  # NumPy: never
    assert cpu_cupy.launches == []


def test_dense_inside_own_gemm_is_unchanged_off_cupy(backend_name):
    """NumPy and strict: own_gemm() changes nothing in Dense(relu)'s forward and backward, bit for bit (on CuPy
    the fused kernels run: equal to rounding)."""
    from conftest import dev, host
    rng = numpy.random.default_rng(7)
    x, dy = dev(rng.standard_normal((7, 6))), dev(rng.standard_normal((7, 5)))
    runs = []
    for inside in (False, True):
        layer = dense(5, "relu", 6)
        layer.params = {key: dev(value) for key, value in layer.params.items()}
        with backend.own_gemm() if inside else contextlib.nullcontext():
            y = layer.forward(x, training=True)
            dx = layer.backward(dy)
        runs.append([host(v) for v in (y, dx, layer.grads["kernel"], layer.grads["bias"])])
    for plain, inside in zip(*runs):
        if backend_name == "cupy":
            numpy.testing.assert_allclose(inside, plain, rtol=1e-5, atol=1e-5)
        else:
            assert numpy.array_equal(inside, plain)
