"""The one place where tinynet meets NumPy, CuPy or another array library (docs/backends.md).

Layers, losses, optimizers and the training loop take their array functions from ``xp()``, the active
array namespace, so the same code runs on NumPy (``'numpy'``, the CPU, the default), CuPy (``'cupy'``, an
NVIDIA GPU) or ``array_api_strict`` (``'strict'``, a CPU stand-in for a GPU that refuses implicit
host/device mixing, as CuPy does). The host/device boundary is explicit: ``to_device`` (host -> backend, once per
``fit``) and ``to_numpy`` (backend -> host: ``predict``, ``evaluate`` and ``get_weights`` return NumPy).
"""
import contextlib
import importlib
import os

import array_api_compat
import numpy

BACKENDS = ("numpy", "cupy", "strict")
GPU_INSTALL_HINT = ('Install CuPy 14 or later: pip install ".[gpu]" from the tinynet checkout, '
                    'or pip install -U cupy-cuda12x (cupy-cuda13x for CUDA 13).')
CUPY_MIN_MAJOR = 14  # cupy.astype and cupy.concat, which tinynet calls, are new in CuPy 14.0

floatx = "float32"  # the default dtype of parameters and activations, as in Keras

_name, _xp, _on_device = "numpy", numpy, {}  # _on_device: the device= argument for new arrays, if any
_own_gemm = False  # True inside own_gemm(): CuPy's matrix products by tinynet's kernels, not cuBLAS


def gpu_problem():
    """Why no GPU is usable, as a sentence (the original import or CUDA error), or None if one is."""
    try:
        import cupy
    except Exception as error:  # ImportError, or a broken CUDA install failing at import
        return f"CuPy cannot be imported ({type(error).__name__}: {error})."
    version = getattr(cupy, "__version__", "0")
    if int(version.split(".")[0]) < CUPY_MIN_MAJOR:
        return f"CuPy {version} is installed, but tinynet needs CuPy {CUPY_MIN_MAJOR} or later."
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy is installed, but CUDA reports no GPU."
        cupy.zeros(1).sum().item()  # a device that answers, not merely a driver that loads
    except Exception as error:
        return f"CuPy is installed, but no GPU answers ({type(error).__name__}: {error})."
    return None


def gpu_available():
    """True when a GPU can be used: CuPy 14 or later imports *and* a CUDA device runs a kernel."""
    return gpu_problem() is None


def set_backend(name):
    """Select the array library: ``'numpy'``, ``'cupy'``, ``'strict'`` or ``'auto'`` (``'cupy'`` when
    ``gpu_available()``, else ``'numpy'``); case and surrounding spaces do not matter.
    Arrays made under one backend belong to it; a model built before the switch moves its weights (and its
    optimizer's state) to the new backend at its next fit, predict, evaluate or set_weights."""
    global _name, _xp, _on_device
    if not isinstance(name, str):
        raise TypeError(f"The backend is named by a string such as 'numpy', got {name!r} ({type(name).__name__}).")
    given, name = name, name.strip().lower()  # ' NumPy ' -> 'numpy', as the environment variable is read
    if name not in (*BACKENDS, "auto"):
        raise ValueError(f"Unknown backend {given!r}. Known backends: {', '.join(BACKENDS)}, auto.")
    problem = gpu_problem() if name in ("cupy", "auto") else None
    if name == "auto":
        name = "numpy" if problem else "cupy"
    if name == "cupy" and problem:
        raise RuntimeError(f"The 'cupy' backend needs a usable GPU. {problem} {GPU_INSTALL_HINT}")
    if name == "strict":
        import array_api_strict
        _xp, _on_device = array_api_strict, {"device": array_api_strict.Device("device1")}
    else:
        _xp, _on_device = importlib.import_module(name), {}  # numpy or cupy
    _name = name


def get_backend():
    """The name of the active backend: ``'numpy'``, ``'cupy'`` or ``'strict'``."""
    return _name


def xp():
    """The active array namespace (the ``numpy`` module, ``cupy``, or ``array_api_strict``)."""
    return _xp


def as_dtype(name):
    """The backend's dtype object for a name such as ``'float32'``."""
    return getattr(_xp, name) if isinstance(name, str) else name


def is_backend_array(x):
    """True when ``x`` is an array of the active backend. array_api_compat tells arrays apart by their class,
    as SciPy and scikit-learn do: CuPy's arrays have no ``__array_namespace__`` to ask."""
    return array_api_compat.is_array_api_obj(x) and array_api_compat.array_namespace(x, use_compat=False) is _xp


def to_device(x, dtype=floatx):
    """Copy host data (anything array-like) or a backend array to the backend, as ``dtype``.
    Always a copy, on NumPy too, so training never writes into the caller's arrays."""
    if _name == "numpy":
        return numpy.array(x, dtype=dtype)
    if is_backend_array(x):
        return _xp.astype(x, as_dtype(dtype), copy=True)  # already on the device: no trip to the host
    if _name == "strict":  # array_api_strict.asarray would share the NumPy array's memory
        return _xp.asarray(numpy.asarray(x), dtype=as_dtype(dtype), copy=True, **_on_device)
    return _xp.asarray(numpy.asarray(x), dtype=as_dtype(dtype))  # CuPy: host -> GPU is always a copy


def zeros(shape, dtype=floatx):
    """A new array of zeros on the active device."""
    return _xp.zeros(shape, dtype=as_dtype(dtype), **_on_device)


def to_numpy(x):
    """Copy an array of any backend (the active one, or one active before) to a NumPy array on the host."""
    if not isinstance(x, numpy.ndarray) and array_api_compat.is_cupy_array(x):
        return x.get()
    if type(x).__module__.startswith("array_api_strict"):
        import array_api_strict
        x = x.to_device(array_api_strict.Device("CPU_DEVICE"))  # the one allowed way off the device
    return numpy.array(x)  # a copy even on NumPy, so get_weights() never aliases the live parameters


def matmul(a, b, bias=None):
    """The matrix product ``a @ b`` (2-D), plus ``bias`` added to every row when given: Dense's and Conv2D's
    products. It is ``@`` everywhere but on CuPy inside ``own_gemm()``, where tinynet's kernels compute it
    (``tinynet/kernels/gemm.py``; ``x W + b`` in one kernel): a stream being captured into a CUDA graph
    refuses cuBLAS, which CuPy's ``@`` calls."""
    if own_gemm_active():
        from tinynet.kernels import gemm
        return gemm.matmul(a, b, bias)
    c = a @ b
    return c if bias is None else c + bias


@contextlib.contextmanager
def own_gemm():
    """``with backend.own_gemm():`` matrix products by tinynet's kernels on CuPy (no effect elsewhere):
    while ``tinynet/models/graph.py`` captures a training step, and to run that step eagerly, identically."""
    global _own_gemm
    before, _own_gemm = _own_gemm, True
    try:
        yield
    finally:
        _own_gemm = before


def own_gemm_active():
    """True inside ``own_gemm()`` on CuPy: where tinynet's kernels compute the matrix products (and Dense runs
    its fused steps, ``Dense.forward_compiled``); False elsewhere, where nothing changes."""
    return _own_gemm and _name == "cupy"


def synchronize():
    """Wait for the GPU's queued work (no-op on the CPU). GPU calls return before the work is done:
    time GPU code with a ``synchronize()`` at both edges, or the timing measures only the queueing."""
    if _name == "cupy":
        _xp.cuda.get_current_stream().synchronize()


def free_memory():
    """Give the GPU memory that CuPy keeps cached back to the driver (no-op on the CPU). Arrays
    still referenced (a model's weights) stay; delete the model first to free all."""
    if _name == "cupy":
        _xp.get_default_memory_pool().free_all_blocks()
        _xp.get_default_pinned_memory_pool().free_all_blocks()


_variable = os.environ.get("TINYNET_BACKEND", "")
try:
    set_backend(_variable if _variable.strip() else "numpy")  # unset or empty: NumPy
except (ValueError, RuntimeError) as error:  # raised here, in one frame, naming the variable
    raise type(error)(f"The environment variable TINYNET_BACKEND={_variable!r} cannot be used: {error} "
                      "Change it, or unset it to run on 'numpy'.") from None
