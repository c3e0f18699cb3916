"""RMSprop: divide each step by a running root-mean-square of recent gradients."""
import functools

import numpy

from tinynet import arguments, backend
from tinynet.optimizers.optimizer import Optimizer


class RMSprop(Optimizer):
    """Keras's RMSprop (Hinton, 2012), the default optimizer of ``compile``.

    For each parameter w with gradient g, keeping a running mean v of g**2:

        v = rho * v + (1 - rho) * g**2
        w = w - learning_rate * g / sqrt(v + epsilon)

    Parameters whose gradients are large take smaller steps, and vice versa.

    Where PyTorch differs: ``torch.optim.RMSprop`` defaults to lr=0.01,
    alpha (our rho) = 0.99 and eps=1e-8, and adds eps *outside* the root:
    ``w -= lr * g / (sqrt(v) + eps)``. Keras, and tinynet, use lr=0.001,
    rho=0.9, epsilon=1e-7 inside the root.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7):
        super().__init__(learning_rate)
        self.rho = arguments.real(rho, "rho", "a number in [0, 1), such as 0.9", lambda r: 0 <= r < 1)
        self.epsilon = arguments.real(epsilon, "epsilon", "a number above 0, such as 1e-7", lambda e: e > 0)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}

    def build_slot(self, param):
        return backend.xp().zeros_like(param)  # v starts at 0

    def update_step(self, g, w, v):
        """Update one parameter w in place, from its gradient g and its running mean v of g**2.

        On NumPy and CuPy the formula runs compiled into one pass over the arrays
        (below), several times faster than array operations and bit-identical to them.
        """
        update = compiled_update(backend.get_backend()) or array_update
        update(w, g, v, self.learning_rate, self.rho, self.epsilon)


def array_update(w, g, v, lr, rho, eps):
    """The update as array operations, in Keras's order: the reference the compiled versions equal.

    Flush to zero: entries of v below the smallest normal number of their dtype
    (1.2e-38 in float32) become 0. A weight whose gradient stays 0 sees v shrink by
    rho at every step; once v is *subnormal*, arithmetic on it is about 100x slower
    on some x86 chips. TensorFlow (Keras's CPU backend) runs with the CPU's
    flush-to-zero mode on; NumPy has no such switch, so v is flushed here. The
    update of w does not change: eps (1e-7) dwarfs anything below 1e-38 under the root.
    A NaN stays NaN (``v < tiny`` is false for NaN), as in Keras.
    """
    xp = backend.xp()
    v *= rho
    v += (1 - rho) * (g * g)  # v = rho * v + (1 - rho) * g**2
    v[...] = xp.where(v < xp.finfo(v.dtype).smallest_normal, 0.0, v)  # flush subnormal v to zero
    w -= (lr * g) / xp.sqrt(v + eps)  # w = w - lr * g / sqrt(v + eps)


# --- the same formula compiled: one read of each g, v, w and one write of v, w --------------
# Written with array operations the update walks the arrays about ten times and makes a
# temporary at each step: for the 669,706 parameters of the MNIST model that costs more than
# the matrix products. Each version below does exactly array_update's operations, in its
# order, with lr, rho, 1 - rho and eps rounded to w's dtype as NumPy rounds the Python floats.

@functools.cache
def compiled_update(backend_name):
    """The compiled ``f(w, g, v, lr, rho, eps)`` for a backend, or None ('strict' has none)."""
    return {"numpy": _numba_update, "cupy": _cupy_update}.get(backend_name, lambda: None)()


def _numba_update():
    import numba

    # error_model="numpy": division by zero gives inf as in NumPy (and lets the loop vectorise).
    # No fastmath: every operation is rounded exactly as NumPy rounds it.
    @numba.njit(error_model="numpy", cache=True)
    def rmsprop_update(w, g, v, lr, rho, one_minus_rho, eps, tiny):
        w, g, v = w.reshape(-1), g.reshape(-1), v.reshape(-1)  # the same entries, as one row
        for i in range(w.size):
            vi = rho * v[i] + one_minus_rho * (g[i] * g[i])  # v = rho * v + (1 - rho) * g**2
            vi = numpy.float32(0) if vi < tiny else vi  # flush to zero
            v[i] = vi
            w[i] -= (lr * g[i]) / numpy.sqrt(vi + eps)  # w = w - lr * g / sqrt(v + eps)

    def update(w, g, v, lr, rho, eps):
        dtype = w.dtype.type
        rmsprop_update(w, g, v, dtype(lr), dtype(rho), dtype(1 - rho), dtype(eps), numpy.finfo(dtype).smallest_normal)

    return update


def _cupy_update():
    import cupy

    kernel = cupy.ElementwiseKernel(
        "T g, T lr, T rho, T one_minus_rho, T eps, T tiny", "T w, T v",
        """
        T vi = rho * v + one_minus_rho * (g * g);   // v = rho * v + (1 - rho) * g**2
        v = vi < tiny ? (T)0 : vi;                  // flush to zero
        w = w - (lr * g) / sqrt(v + eps);           // w = w - lr * g / sqrt(v + eps)
        """,
        "tinynet_rmsprop_update",
        options=("--fmad=false",),  # round each * and + on its own, as the CPU does (no fused multiply-add)
    )

    def update(w, g, v, lr, rho, eps):
        dtype = w.dtype.type
        kernel(g, dtype(lr), dtype(rho), dtype(1 - rho), dtype(eps), numpy.finfo(dtype).smallest_normal, w, v)

    return update
