"""tinynet/kernels/relu.py: ReLU's backward as one ElementwiseKernel. Its body (computed in NumPy by the model)
equals the readable line bit for bit, NaN, inf and -0 included; the body compiles with NVRTC inside a loop like
CuPy's (no GPU needed); the CuPy path is wired in; on a GPU, the kernel itself."""
import re

import numpy
import pytest

from conftest import BACKENDS_UNDER_TEST, on_numpy
from nvrtc import nvrtc_compile
from tinynet import backend
from tinynet.kernels import relu as kernel
from tinynet.layers import ReLU

SPECIAL_X = [-numpy.inf, -1.0, -0.0, 0.0, 1e-310, 1.0, numpy.inf, numpy.nan]  # 1e-310: subnormal in float64
SPECIAL_DY = [-numpy.inf, -2.0, -0.0, 0.0, 3.0, numpy.inf, numpy.nan]


def grid(dtype):
    """Every special x against every special dy: two (8, 7) arrays."""
    x, dy = numpy.meshgrid(numpy.array(SPECIAL_X, dtype), numpy.array(SPECIAL_DY, dtype), indexing="ij")
    return x, dy


def readable(x, dy):
    """ReLU.backward's readable line, on NumPy (whatever the test's backend)."""
    layer = ReLU()
    with on_numpy(), numpy.errstate(invalid="ignore"):  # inf * 0, as the GPU computes it without a word
        layer.forward(x)
        return layer.backward(dy)


def assert_same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    numpy.testing.assert_array_equal(numpy.isnan(a), numpy.isnan(b))
    numpy.testing.assert_array_equal(numpy.signbit(a), numpy.signbit(b))  # -0 where the readable line has -0
    numpy.testing.assert_array_equal(a, b)


@pytest.mark.host_only("the kernel's body in NumPy")
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_the_model_equals_the_readable_line_bit_for_bit_on_odd_numbers(dtype):
    x, dy = grid(dtype)
    with numpy.errstate(invalid="ignore"):
        dx = kernel.model_relu_backward(x, dy)
    assert_same_bits(dx, readable(x, dy))
    i = {v: k for k, v in enumerate(SPECIAL_X[:-1])}
    j = {v: k for k, v in enumerate(SPECIAL_DY[:-1])}
    assert numpy.isnan(dx[-1, j[numpy.inf]])  # x NaN (x > 0 false), dy inf: inf * 0 = NaN, not 0
    assert numpy.isnan(dx[i[1.0], -1])  # x > 0, dy NaN: NaN stays
    assert dx[i[-1.0], j[-2.0]] == 0 and numpy.signbit(dx[i[-1.0], j[-2.0]])  # -2 * 0 = -0
    assert dx[i[-1.0], j[3.0]] == 0 and not numpy.signbit(dx[i[-1.0], j[3.0]])
    assert dx[i[1.0], j[-numpy.inf]] == -numpy.inf  # dy * 1 = dy exactly


@pytest.mark.host_only("the kernel's body in NumPy")
def test_the_model_equals_the_readable_line_on_random_numbers():
    rng = numpy.random.default_rng(0)
    x, dy = rng.standard_normal((33, 17)).astype(numpy.float32), rng.standard_normal((33, 17)).astype(numpy.float32)
    assert_same_bits(kernel.model_relu_backward(x, dy), readable(x, dy))


def elementwise_source(in_params, out_params, operation, name):
    """An ElementwiseKernel's body inside a grid-stride loop, as CuPy wraps it: each parameter ``T v`` is the
    i-th entry of its array (a const copy for inputs, a reference for outputs), T a template parameter."""
    def declarations(params, const):
        for param in params.split(","):
            ctype, var = param.split()
            yield f"{'const ' if const else ''}{ctype}{'' if const else '&'} {var} = {var}_array[i];"
    arrays = [f"const T* {p.split()[1]}_array" for p in in_params.split(",")]
    arrays += [f"T* {p.split()[1]}_array" for p in out_params.split(",")]
    body = "\n        ".join([*declarations(in_params, True), *declarations(out_params, False), operation])
    return (f"template <typename T>\n__global__ void {name}({', '.join(arrays)}, long long n) {{\n"
            f"    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; "
            f"i += (long long)gridDim.x * blockDim.x) {{\n        {body}\n    }}\n}}\n")


@pytest.mark.host_only("compiles CUDA C on the host: NVRTC needs no GPU")
def test_the_body_compiles_with_nvrtc_and_multiplies_by_the_mask():
    """For float and double; the float kernel does float math only, and dx is a product, dy times the 0/1 mask
    (a select of dy or 0 would turn inf * 0 into 0)."""
    name = kernel.RELU_BACKWARD[3]
    ptx = nvrtc_compile(elementwise_source(*kernel.RELU_BACKWARD), [f"{name}<float>", f"{name}<double>"],
                        options=("-arch=compute_90",))  # as CuPy compiles an ElementwiseKernel
    entries = dict(re.findall(r"\.entry (\w+)\((.*?)\n}", ptx, re.S))
    float_kernel = next(body for entry, body in entries.items() if "IfE" in entry)
    assert len(entries) == 2 and ".f64" not in float_kernel and re.search(r"mul(\.rn)?\.f32", float_kernel)


@pytest.mark.host_only("the CuPy path's wiring, with the kernel's model standing in for the GPU")
def test_on_cupy_backward_launches_the_kernel_once(monkeypatch):
    """backend 'cupy' (pretended): backward is one kernel call on the layer's x and dy, equal to the readable
    line. Mixed dtypes do not fit the kernel: the readable line runs."""
    x, dy = grid(numpy.float32)
    expected, mixed = readable(x, dy), readable(x, dy.astype(numpy.float64))  # on NumPy, before pretending
    calls = []

    def launch(x, dy):
        calls.append(x.shape)
        return kernel.model_relu_backward(x, dy)

    monkeypatch.setattr(backend, "get_backend", lambda: "cupy")
    monkeypatch.setattr(kernel, "relu_backward", launch)
    layer = ReLU()
    layer.forward(x)
    with numpy.errstate(invalid="ignore"):
        assert_same_bits(layer.backward(dy), expected)
        assert calls == [(8, 7)]
        assert_same_bits(layer.backward(dy.astype(numpy.float64)), mixed)  # float64 dy for float32 x: no kernel
    assert len(calls) == 1


# Defined only where the suite runs on cupy (a GPU: benchmarks/gpu_check.sh), so CI neither skips nor fakes it.
if "cupy" in BACKENDS_UNDER_TEST:
    def test_the_kernel_equals_the_readable_line_on_a_gpu(backend_name):
        """Bit for bit, NaN, inf and -0 included, float32 and float64, and the layer's own backward on CuPy."""
        if backend_name != "cupy":  # the model's tests above are numpy's and strict's
            return
        import cupy
        for dtype in (numpy.float32, numpy.float64):
            x, dy = grid(dtype)
            expected = readable(x, dy)
            assert_same_bits(kernel.relu_backward(cupy.asarray(x), cupy.asarray(dy)).get(), expected)
            layer = ReLU()
            layer.forward(cupy.asarray(x))
            assert_same_bits(layer.backward(cupy.asarray(dy)).get(), expected)


