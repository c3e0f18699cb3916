"""RMSprop: divide each step by a running root-mean-square of recent gradients."""
import functools

import numpy

from tinynet import arguments, backend
from tinynet.optimizers.optimizer import Optimizer


class RMSprop(Optimizer):
    """Keras's RMSprop (Hinton, 2012), the default of ``compile``: for each parameter w with gradient g,
    a running mean v of g**2 makes parameters with large gradients take smaller steps (``update_step``).
    Where PyTorch differs: ``torch.optim.RMSprop`` defaults to lr=0.01, alpha (our rho) = 0.99 and
    eps=1e-8 added *outside* the root; Keras and tinynet use 0.001, 0.9 and 1e-7 inside it."""

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7):
        super().__init__(learning_rate)
        self.rho = arguments.real(rho, "rho", "a number in [0, 1), such as 0.9", lambda r: 0 <= r < 1)
        self.epsilon = arguments.real(epsilon, "epsilon", "a number above 0, such as 1e-7", lambda e: e > 0)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}

    def build_slot(self, param):
        return backend.xp().zeros_like(param)  # v starts at 0

    def apply(self, grads, params):
        """Update each parameter w in place, from its gradient g and its running mean v of g**2."""
        self.build(params, grads)  # first call: v = 0 for each; later: the same arrays, or an error
        update = compiled_update_step(backend.get_backend()) or update_step  # NumPy, CuPy: compiled
        for w, g, v in zip(self.params, grads, self.slots):
            update(w, g, v, self.learning_rate, self.rho, self.epsilon)
        self.iterations += 1


def update_step(w, g, v, lr, rho, eps):
    """One parameter's update, as array operations in Keras's order; the compiled versions below equal it.
    Flush to zero: v below the smallest normal float (1.2e-38 in float32) becomes 0. A weight whose
    gradient stays 0 sees v shrink by rho each step, and subnormal arithmetic is ~100x slower on some
    x86 chips; TensorFlow runs with the CPU's flush-to-zero on, NumPy has no such switch. w's update
    does not change (eps dwarfs 1e-38 under the root), and a NaN stays NaN, as in Keras."""
    xp = backend.xp()
    v *= rho
    v += (1 - rho) * (g * g)  # v = rho * v + (1 - rho) * g**2
    v[...] = xp.where(v < xp.finfo(v.dtype).smallest_normal, 0.0, v)  # flush subnormal v to zero
    w -= (lr * g) / xp.sqrt(v + eps)  # w = w - lr * g / sqrt(v + eps)


# --- the same formula compiled: one pass over g, v, w instead of about ten, each with a temporary (for
# the MNIST model that costs more than the matrix products). Each does exactly update_step's operations
# in its order, with lr, rho, 1 - rho and eps rounded to w's dtype as NumPy rounds them.

@functools.cache
def compiled_update_step(backend_name):
    """The compiled ``update_step`` for a backend, or None ('strict' has none)."""
    return {"numpy": _numba_update_step, "cupy": _cupy_update_step}.get(backend_name, lambda: None)()


def _numba_update_step():
    import numba

    # error_model="numpy": x / 0 gives inf, as in NumPy. No fastmath: each operation rounds as NumPy's does.
    @numba.njit(error_model="numpy", cache=True)
    def loop(w, g, v, lr, rho, one_minus_rho, eps, tiny):
        w, g, v = w.reshape(-1), g.reshape(-1), v.reshape(-1)  # the same entries, as one row
        for i in range(w.size):
            vi = rho * v[i] + one_minus_rho * (g[i] * g[i])  # v = rho * v + (1 - rho) * g**2
            vi = numpy.float32(0) if vi < tiny else vi  # flush to zero
            v[i] = vi
            w[i] -= (lr * g[i]) / numpy.sqrt(vi + eps)  # w = w - lr * g / sqrt(v + eps)

    def update(w, g, v, lr, rho, eps):
        t = w.dtype.type
        loop(w, g, v, t(lr), t(rho), t(1 - rho), t(eps), numpy.finfo(t).smallest_normal)
    return update


def _cupy_update_step():
    import cupy

    kernel = cupy.ElementwiseKernel(
        "T g, T lr, T rho, T one_minus_rho, T eps, T tiny", "T w, T v",
        """
        T vi = rho * v + one_minus_rho * (g * g);   // v = rho * v + (1 - rho) * g**2
        v = vi < tiny ? (T)0 : vi;                  // flush to zero
        w = w - (lr * g) / sqrt(v + eps);           // w = w - lr * g / sqrt(v + eps)
        """,
        "tinynet_rmsprop_update", options=("--fmad=false",))  # no fused multiply-add: rounds as the CPU does

    def update(w, g, v, lr, rho, eps):
        t = w.dtype.type
        kernel(g, t(lr), t(rho), t(1 - rho), t(eps), numpy.finfo(t).smallest_normal, w, v)
    return update
