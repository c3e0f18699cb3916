"""RMSprop: divide each step by a running root-mean-square of recent gradients.

Flush to zero, the one place that explains it. Numbers below the smallest normal float (``smallest_normal``:
1.2e-38 in float32) are *subnormal*: stored with fewer significant bits, and on many x86 chips each operation
that reads or makes one costs up to a hundred normal ones. As a model grows confident, more of the step's numbers
fall that low: g**2 of tiny gradients, v of a weight whose gradient stays 0 (v shrinks by rho every step), and
the softmax's p of the classes it rules out, which makes dL/dz = (p - y) / N tiny; an epoch then grows slower
as training goes on. TensorFlow runs the CPU in flush-to-zero mode, which turns every such result into 0; NumPy
has no such switch, so tinynet writes the flush out where subnormals would appear: g**2 and v here (counted as 0
below smallest_normal), and p in ``tinynet/losses/softmax_crossentropy.py`` (0 where p / N would be below it).
No weight moves differently: under the root, eps = 1e-7 dwarfs such values, and a dz that small moves a weight by
far less than float32 can show. A NaN stays NaN, as in Keras. (The products rho * v and (1 - rho) * g**2 may still
pass through a subnormal in the few steps where v or g**2 sits just above the threshold. Keras 3 on JAX or
PyTorch does not flush at all: there these numbers stay subnormal, and slow.)"""
import functools
import math
import warnings

import numpy

from tinynet import arguments, backend
from tinynet.kernels import rmsprop as kernel
from tinynet.optimizers.optimizer import Optimizer


class RMSprop(Optimizer):
    """Keras's RMSprop (Hinton, 2012), the default of ``compile``: for each parameter w with gradient g,
    a running mean v of g**2 makes parameters with large gradients take smaller steps (``update_step``).
    Where PyTorch differs: ``torch.optim.RMSprop`` defaults to lr=0.01, alpha (our rho) = 0.99 and
    eps=1e-8 added *outside* the root; Keras and tinynet use 0.001, 0.9 and 1e-7 inside it."""

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7, **unknown):
        super().__init__(learning_rate, **unknown)  # Keras 2's lr=, decay=: a clear error
        self.rho = arguments.real(rho, "rho", "a number in [0, 1), such as 0.9", lambda r: 0 <= r < 1)
        self.epsilon = arguments.positive_float32(epsilon, "epsilon", "1e-7")

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}

    def build_slot(self, param):
        return backend.xp().zeros_like(param)  # v starts at 0

    def update_at_once(self, params, grads, slots):
        """On CuPy, the update of every parameter in one kernel launch (tinynet/kernels/rmsprop.py: why, and
        how), the same operations as ``update`` bit for bit; returns the (w, g, v) it leaves to ``update``:
        those it cannot take (mixed dtypes, not contiguous), and on NumPy and strict all of them."""
        tensors = list(zip(params, grads, slots))
        if backend.get_backend() != "cupy":
            return tensors
        kernel.rmsprop_all([t for t in tensors if kernel.fits(*t)], self.learning_rate, self.rho, self.epsilon)
        return [t for t in tensors if not kernel.fits(*t)]

    def update(self, w, g, v):
        """w and its running mean v of g**2, in place: ``update_step``, compiled on NumPy and CuPy."""
        step = compiled_update_step(backend.get_backend()) or update_step
        step(w, g, v, self.learning_rate, self.rho, self.epsilon)


def update_step(w, g, v, lr, rho, eps):
    """One parameter's update, as array operations in Keras's order, flushing to zero (the module's docstring
    says why); the compiled versions below equal it, bit for bit."""
    xp = backend.xp()
    v *= rho
    v += (1 - rho) * squared(g)  # v = rho * v + (1 - rho) * g**2
    v[...] = xp.where(v < xp.finfo(v.dtype).smallest_normal, 0.0, v)  # flush subnormal v to zero
    w -= (lr * g) / xp.sqrt(v + eps)  # w = w - lr * g / sqrt(v + eps)


def squared(g):
    """g**2, with 0 where it would be below the smallest normal number. g*g < smallest_normal exactly where
    |g| < sqrt(smallest_normal) (2**-63 in float32: the square root of 2**-126 is exact), so those g are set
    to 0 before squaring, and the subnormal square is never computed."""
    xp = backend.xp()
    g = xp.where(xp.abs(g) < math.sqrt(xp.finfo(g.dtype).smallest_normal), 0.0, g)
    return g * g  # g**2, flushed to zero


# --- the same formula compiled: one pass over g, v, w instead of about ten, each with a temporary (for
# the MNIST model that costs more than the matrix products). Each does exactly update_step's operations
# in its order, with lr, rho, 1 - rho and eps rounded to w's dtype as NumPy rounds them.

@functools.cache
def compiled_update_step(backend_name):
    """The compiled ``update_step`` for a backend, or None ('strict' has none)."""
    return {"numpy": _numba_update_step, "cupy": _cupy_update_step}.get(backend_name, lambda: None)()


def _numba_update_step():
    # error_model="numpy": x / 0 gives inf, as in NumPy. No fastmath: each operation rounds as NumPy's does.
    def loop(w, g, v, lr, rho, one_minus_rho, eps, tiny, root_tiny):
        w, g, v = w.reshape(-1), g.reshape(-1), v.reshape(-1)  # the same entries, as one row
        for i in range(w.size):
            g2 = numpy.float32(0) if abs(g[i]) < root_tiny else g[i] * g[i]  # g**2, flushed to zero
            vi = rho * v[i] + one_minus_rho * g2  # v = rho * v + (1 - rho) * g**2
            vi = numpy.float32(0) if vi < tiny else vi  # flush to zero
            v[i] = vi
            w[i] -= (lr * g[i]) / numpy.sqrt(vi + eps)  # w = w - lr * g / sqrt(v + eps)

    loop = numba_compile(loop, error_model="numpy")

    @functools.lru_cache(maxsize=16)  # the same numbers at every step: made once (microseconds on each update)
    def constants(dtype, lr, rho, eps):
        t, tiny = dtype.type, numpy.finfo(dtype).smallest_normal
        return t(lr), t(rho), t(1 - rho), t(eps), tiny, t(math.sqrt(tiny))

    def update(w, g, v, lr, rho, eps):
        loop(w, g, v, *constants(w.dtype, lr, rho, eps))
    return update


def numba_compile(function, **options):
    """``numba.njit(function)`` with Numba's on-disk cache, so that later runs skip the compilation. Where no
    cache folder can be written (a read-only install with HOME not writable, as in many containers and CI
    runners), Numba refuses to cache: compile without the cache then, and say so (once per process)."""
    import numba

    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError as error:  # "cannot cache function 'loop': no locator available for file ..."
        warnings.warn(f"Numba cannot cache RMSprop's compiled update ({error}): it is compiled afresh in each "
                      "run (about a second). Set NUMBA_CACHE_DIR to a writable folder to keep the cache.",
                      RuntimeWarning, stacklevel=2)
        return numba.njit(**options)(function)


# CuPy's compiled update: the arguments of ``cupy.ElementwiseKernel``, which runs ``operation`` once for each
# index i, with each array parameter standing for its i-th entry (g, w, v) and each scalar for itself. Kept here,
# outside the function, so that tests/test_cuda_sources.py can compile it with NVRTC on a machine without a GPU.
CUPY_KERNEL = dict(
    in_params="T g, T lr, T rho, T one_minus_rho, T eps, T tiny, T root_tiny",
    out_params="T w, T v",
    operation="""
    T g2 = fabs(g) < root_tiny ? (T)0 : g * g;  // g**2, flushed to zero
    T vi = rho * v + one_minus_rho * g2;        // v = rho * v + (1 - rho) * g**2
    v = vi < tiny ? (T)0 : vi;                  // flush to zero
    w = w - (lr * g) / sqrt(v + eps);           // w = w - lr * g / sqrt(v + eps)
    """,
    name="tinynet_rmsprop_update",
    options=("--fmad=false",))  # no fused multiply-add: rounds as the CPU does


def _cupy_update_step():
    import cupy

    kernel = cupy.ElementwiseKernel(**CUPY_KERNEL)

    def update(w, g, v, lr, rho, eps):
        t, tiny = w.dtype.type, numpy.finfo(w.dtype).smallest_normal
        kernel(g, t(lr), t(rho), t(1 - rho), t(eps), tiny, t(math.sqrt(tiny)), w, v)
    return update
