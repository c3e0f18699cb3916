"""Every CUDA source tinynet holds, compiled by NVRTC (NVIDIA's runtime CUDA C++ compiler, the one CuPy calls) on
any machine: no GPU and no CuPy needed, only NVRTC's library, called through ctypes.

What is compiled is exactly what tinynet hands CuPy: the source, options and template names are caught by a fake
``cupy`` (tests/fake_cupy_kernels.py) as tinynet's own code makes its kernels. A RawModule's code is compiled as
it stands. An ElementwiseKernel's ``operation`` is only the body of a loop: CuPy writes the kernel around it
(cupy/_core/_kernel.pyx, ``_get_elementwise_kernel_code``), and ``elementwise_source`` below writes the same one.
NVRTC's log is in the failure message.
"""
import re
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

import fake_cupy_kernels
import nvrtc as nvrtc_module
from nvrtc import ARCH, INSTALL, CompileError, assert_compiles, compile_cuda, load_nvrtc
from tinynet.kernels import batches, gemm, relu, running_means, softmax_crossentropy
from tinynet.kernels import rmsprop as rmsprop_kernels
from tinynet.optimizers import rmsprop

pytestmark = pytest.mark.host_only("compiles CUDA C on the host")

CUPY_OPTIONS = ("--std=c++17",)  # what CuPy adds to every compilation (core.pyx, assemble_cupy_compiler_options)
C_NAMES = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long", "bool": "bool"}


@pytest.fixture(scope="module")
def nvrtc():
    return load_nvrtc()


# --- what tinynet hands CuPy, caught by a fake cupy -------------------------------------------------------------

@pytest.fixture
def cupy(monkeypatch):
    fake = fake_cupy_kernels.module()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    return fake


def gemm_module(cupy):
    """The RawModule gemm.py makes (its code, options and name expressions), without gemm's cache."""
    gemm._module.__wrapped__()
    return cupy.made[-1]


def rmsprop_kernel(cupy, dtype):
    """RMSprop's ElementwiseKernel, and the call update() makes with ``dtype`` arrays: {parameter: argument}."""
    update = rmsprop._cupy_update_step()
    w, g, v = (numpy.ones(3, dtype) for _ in range(3))
    update(w, g, v, 0.001, 0.9, 1e-7)
    kernel = cupy.made[-1]
    return kernel, kernel.calls[-1]


def elementwise_source(kernel, call):
    """The CUDA C CuPy compiles for ElementwiseKernel ``kernel`` called with ``call`` ({parameter: argument}), in
    the shape of cupy/_core/_kernel.pyx's: a typedef for each type placeholder (T), one kernel parameter per
    argument (an array as a CArray, a scalar as a value, input parameters const), a loop over i binding each
    array parameter to its i-th entry by reference, then ``operation``. CuPy's headers are not here: STAND_INS
    has the few of their names the loop uses. Arrays are taken as 1-D and contiguous, as tinynet's are."""
    params = [(p, False) for p in fake_cupy_kernels.split_params(kernel.in_params)] + \
             [(p, True) for p in fake_cupy_kernels.split_params(kernel.out_params)]
    types = {ctype: call[name].dtype for (ctype, name, _), _ in params if isinstance(call[name], numpy.ndarray)}
    typedefs = "".join(f"typedef {C_NAMES[dtype.name]} {ctype};\n" for ctype, dtype in types.items())
    declared, bound = [], []
    for (ctype, name, raw), is_out in params:
        c_name = C_NAMES[numpy.dtype(types.get(ctype, ctype)).name]  # T: the arrays' type; else a dtype's name
        const = "" if is_out or raw else "const "
        if isinstance(call[name], numpy.ndarray):
            declared.append(f"{const}CArray<{c_name}, 1, 1, 1> {name if raw else '_raw_' + name}")
            if not raw:
                bound.append(f"{const}{ctype} &{name} = _raw_{name}[_ind.get()];")
        else:
            declared.append(f"{const}{c_name} {name}")
    declared.append("CIndexer<1, 1> _ind")
    body = "\n".join(bound + [kernel.operation])
    return (f"{STAND_INS}\n{typedefs}\n"
            f'extern "C" __global__ void {kernel.name}({", ".join(declared)}) {{\n'
            f"  #pragma unroll 1\n  CUPY_FOR(i, _ind.size()) {{\n    _ind.set(i);\n{body};\n  }}\n}}\n")


STAND_INS = r"""
// Stand-ins for what an ElementwiseKernel's loop uses of CuPy's cupy/carray.cuh: the loop over i (a grid-stride
// loop), an array indexed by i, and the indexer that counts the i.
#define CUPY_FOR(i, n) \
    for (ptrdiff_t i = static_cast<ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x; \
         i < (n); i += static_cast<ptrdiff_t>(blockDim.x) * gridDim.x)

template <typename T, int ndim, bool c_contiguous, bool use_32bit_indexing>
class CArray {
public:
  T* data_;
  __device__ T& operator[](ptrdiff_t i) { return data_[i]; }
  __device__ const T& operator[](ptrdiff_t i) const { return data_[i]; }
};

template <int ndim, bool use_32bit_indexing>
class CIndexer {
public:
  ptrdiff_t size_, index_;
  __device__ ptrdiff_t size() const { return size_; }
  __device__ void set(ptrdiff_t i) { index_ = i; }
  __device__ ptrdiff_t get() const { return index_; }
};
"""


# --- the checks -------------------------------------------------------------------------------------------------

KERNEL_MODULES = sorted(path.stem for path in (Path(__file__).resolve().parents[1] / "tinynet" / "kernels").glob("*.py")
                        if path.stem != "__init__")

# Each module of tinynet/kernels with a RawModule (its ``_module()`` makes it), by path.
RAW_MODULES = {"tinynet/kernels/batches.py": batches, "tinynet/kernels/gemm.py": gemm,
               "tinynet/kernels/rmsprop.py": rmsprop_kernels, "tinynet/kernels/running_means.py": running_means,
               "tinynet/kernels/softmax_crossentropy.py": softmax_crossentropy}


@pytest.mark.parametrize("path", sorted(RAW_MODULES))
def test_each_raw_module_compiles_for_float_and_double_doing_float_math_in_float(nvrtc, cupy, path):
    """Every template name resolves to a kernel in the PTX; a float kernel has no double instruction (an exp or
    a constant that promoted it to double would be slower, and round otherwise than the NumPy model), and, unless
    it calls CUDA's exp or log (whose own code uses them), no fused multiply-add (``--fmad=false``: products and
    sums rounded apart, as in NumPy)."""
    RAW_MODULES[path]._module.__wrapped__()  # without the module's cache
    module = cupy.made[-1]
    options = module.options + CUPY_OPTIONS + (ARCH,)
    assert "--fmad=false" in options  # each product and sum rounded apart, as the NumPy models do
    template_args = " ".join(name.split("<")[1] for name in module.name_expressions)
    assert {"float", "double"} <= set(re.findall(r"\w+", template_args))
    ptx, lowered = assert_compiles(nvrtc, path, module.code, options, module.name_expressions)
    entries = dict(re.findall(r"\.entry (\w+)\((.*?)\n}", ptx, re.S))
    for name, mangled in lowered.items():
        assert mangled in entries, f"{name} ({mangled}) is not a kernel in the PTX"
        if "double" not in name:  # a kernel of floats only
            assert ".f64" not in entries[mangled], f"{name} computes in double"
            if not re.search(r"\b(exp|log)\(", module.code):
                assert "fma" not in entries[mangled], f"{name} fuses a multiply-add"


def test_gemm_makes_each_kernel_for_float_and_double(cupy):
    """The plain products, and Dense's fused steps (forward with ReLU; [dW; db] and dx through ReLU's mask,
    apart and in one launch)."""
    gemm._module.__wrapped__()
    names = cupy.made[-1].name_expressions
    kernels = ("gemm_nn", "gemm_tn", "gemm_nt", "gemm_bias", "gemm_bias_relu", "gemm_tn_db", "gemm_nt_mask",
               "dense_backward")
    assert sorted(names) == sorted(f"{k}<{t}>" for k in kernels for t in ("float", "double"))
    assert set(kernels) == set(fake_cupy_kernels.kernel_signatures(gemm.SOURCE))  # each a __global__ of SOURCE


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rmsprop_elementwise_kernel_compiles(nvrtc, cupy, dtype):
    kernel, call = rmsprop_kernel(cupy, dtype)
    assert (kernel.in_params, kernel.out_params, kernel.operation, kernel.name, kernel.options) == tuple(
        rmsprop.CUPY_KERNEL[key] for key in ("in_params", "out_params", "operation", "name", "options"))
    source = elementwise_source(kernel, call)
    assert f"typedef {C_NAMES[dtype]} T;" in source
    ptx, _ = assert_compiles(nvrtc, f"RMSprop's ElementwiseKernel for {dtype}", source,
                             kernel.options + CUPY_OPTIONS + (ARCH,))
    assert f".entry {kernel.name}(" in ptx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_backward_elementwise_kernel_compiles(nvrtc, cupy, dtype):
    kernel = relu._kernel.__wrapped__()  # without the module's cache
    kernel(numpy.ones(3, dtype), numpy.ones(3, dtype))  # as relu_backward calls it: x, dy
    assert (kernel.in_params, kernel.out_params, kernel.operation, kernel.name) == relu.RELU_BACKWARD
    source = elementwise_source(kernel, kernel.calls[-1])
    ptx, _ = assert_compiles(nvrtc, f"ReLU's backward ElementwiseKernel for {dtype}", source,
                             kernel.options + CUPY_OPTIONS + (ARCH,))
    assert f".entry {kernel.name}(" in ptx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rmsprop_kernel_gets_each_hyperparameter_in_its_place_as_w_dtype(cupy, dtype):
    """update() passes its arguments by position: each must land on the parameter of its name, rounded to w's type."""
    _, call = rmsprop_kernel(cupy, dtype)
    t = numpy.dtype(dtype).type
    tiny = numpy.finfo(dtype).smallest_normal
    expected = {"lr": t(0.001), "rho": t(0.9), "one_minus_rho": t(1 - 0.9), "eps": t(1e-7), "tiny": tiny,
                "root_tiny": t(tiny ** 0.5)}
    for name, value in expected.items():
        assert type(call[name]) is t and call[name] == value, (name, call[name], value)


def test_a_broken_source_fails_with_nvrtcs_log(nvrtc):
    """The harness catches errors: a missing semicolon is reported with NVRTC's own message and the source."""
    broken = 'extern "C" __global__ void broken(float* x) {\n    x[threadIdx.x] = 1.0f\n}\n'
    with pytest.raises(pytest.fail.Exception) as failed:
        assert_compiles(nvrtc, "a broken kernel", broken, ("--fmad=false", ARCH))
    message = str(failed.value)
    assert "NVRTC refuses a broken kernel" in message and 'error: expected a ";"' in message
    assert "   2     x[threadIdx.x] = 1.0f" in message  # the numbered source, to find line 2 of the log


def test_an_undeclared_name_expression_fails(nvrtc):
    """A template kernel asked for with a type it cannot take is an error, not a silent missing kernel."""
    source = "template <typename T> __global__ void k(T* x) { x[0] = T(1); }\n"
    with pytest.raises(CompileError, match="add name|lowered name|compile"):
        compile_cuda(nvrtc, source, (ARCH,), ["k<no_such_type>"])


def test_every_cuda_source_in_tinynet_is_compiled_here():
    """A new kernel (RawModule, RawKernel, ElementwiseKernel, ReductionKernel) must get its check in this file."""
    root = Path(__file__).resolve().parents[1]
    made_here = {*RAW_MODULES, "tinynet/optimizers/rmsprop.py", "tinynet/kernels/relu.py"}
    pattern = re.compile(r"cupy\.(RawModule|RawKernel|ElementwiseKernel|ReductionKernel|fuse)\b")
    found = {str(path.relative_to(root)) for path in (root / "tinynet").rglob("*.py")
             if pattern.search(path.read_text())}
    assert found == made_here, f"compile these in tests/test_cuda_sources.py: {sorted(found - made_here)}"


def test_importing_tinynet_and_its_kernels_imports_no_cupy():
    """The kernels are compiled on first use, on CuPy only: importing tinynet, every kernel module and the
    modules that use them (layers, losses, optimizers, metrics, models) needs no CuPy."""
    modules = ", ".join(["tinynet", "tinynet.models.graph", "tinynet.models.batches", "tinynet.metrics.running_means",
                         *(f"tinynet.kernels.{name}" for name in KERNEL_MODULES)])
    code = f"import sys, {modules}; print('cupy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_without_nvrtc_the_checks_skip_saying_how_to_install_and_fail_in_ci(monkeypatch):
    monkeypatch.setattr(nvrtc_module, "find_nvrtc", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=re.escape(INSTALL)):
        load_nvrtc()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        load_nvrtc()
