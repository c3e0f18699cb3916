"""Compiled one-pass versions of the optimizers' elementwise updates.

Written with array operations, RMSprop's update

    v = rho * v + (1 - rho) * g**2
    w = w - lr * g / sqrt(v + eps)

walks the parameter arrays about ten times and allocates a temporary at each
step; for the 669,706 parameters of the MNIST model that costs more than the
matrix products. Here the same formula is a loop over the entries, compiled
once (Numba on the CPU, a CUDA kernel through CuPy on the GPU), that reads each
g, v and w once and writes v and w once.

Each kernel performs exactly the operations, in exactly the order, of the
readable reference (``RMSprop.update_step``): the tests check that both give
bit-identical results. ``rmsprop(...)`` returns None on a backend without a
kernel (``strict``), and the optimizer then runs the reference.

Flush to zero: entries of v below the smallest normal number of their dtype
(1.2e-38 in float32) are set to 0. A weight whose gradient stays 0 sees v shrink by rho at every step, and
once v is *subnormal* every operation on it runs ~100x slower on x86 CPUs.
TensorFlow (Keras's CPU backend) avoids that by running with the CPU's
flush-to-zero mode on, which sets such values to 0; NumPy has no such switch, so
tinynet flushes v explicitly. The update of w is unchanged by it: epsilon
(1e-7) dwarfs anything below 1e-38 under the square root.
"""
import functools

import numpy

from tinynet import backend



def rmsprop():
    """The fused RMSprop update ``f(w, g, v, lr, rho, eps)`` for the active backend, or None.

    It updates w and v in place, with lr, rho, 1 - rho and eps rounded to w's
    dtype as the reference's Python floats are (1 - rho is computed in double first).
    A NaN in v stays NaN, as in Keras (the flush tests ``v < tiny``, false for NaN).
    """
    name = backend.get_backend()
    if name == "numpy":
        return _rmsprop_numba()
    if name == "cupy":
        return _rmsprop_cupy()
    return None


@functools.cache
def _rmsprop_numba():
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
        rmsprop_update(w, g, v, dtype(lr), dtype(rho), dtype(1 - rho), dtype(eps), numpy.finfo(dtype).tiny)

    return update


@functools.cache
def _rmsprop_cupy():
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
        kernel(g, dtype(lr), dtype(rho), dtype(1 - rho), dtype(eps), numpy.finfo(dtype).tiny, w, v)

    return update
