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

Flush to zero: entries of v below the smallest normal float32 (1.2e-38) are set
to 0. A weight whose gradient stays 0 sees v shrink by rho at every step, and
once v is *subnormal* every operation on it runs ~100x slower on x86 CPUs.
TensorFlow (Keras's CPU backend) avoids that by running with the CPU's
flush-to-zero mode on, which sets such values to 0; NumPy has no such switch, so
tinynet flushes v explicitly. The update of w is unchanged by it: epsilon
(1e-7) dwarfs anything below 1e-38 under the square root.
"""
import functools

import numpy

from tinynet import backend

TINY = float(numpy.finfo(numpy.float32).tiny)  # the smallest normal float32, 1.18e-38


def rmsprop():
    """The fused RMSprop update ``f(w, g, v, lr, rho, eps)`` for the active backend, or None.

    It updates w and v in place, with lr, rho, 1 - rho and eps rounded to w's
    dtype as the reference's Python floats are (1 - rho is computed in double first).
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
    def rmsprop_update(w, g, v, lr, rho, one_minus_rho, eps):
        w, g, v = w.reshape(-1), g.reshape(-1), v.reshape(-1)  # the same entries, as one row
        tiny = numpy.float32(TINY)
        for i in range(w.size):
            vi = rho * v[i] + one_minus_rho * (g[i] * g[i])  # v = rho * v + (1 - rho) * g**2
            vi = vi if vi >= tiny else numpy.float32(0)  # flush to zero
            v[i] = vi
            w[i] -= (lr * g[i]) / numpy.sqrt(vi + eps)  # w = w - lr * g / sqrt(v + eps)

    def update(w, g, v, lr, rho, eps):
        dtype = w.dtype.type
        rmsprop_update(w, g, v, dtype(lr), dtype(rho), dtype(1 - rho), dtype(eps))

    return update


@functools.cache
def _rmsprop_cupy():
    import cupy

    # __fmul_rn/__fadd_rn/__fdiv_rn/__fsqrt_rn: round each operation on its own, as the CPU
    # does; plain * and + would let the CUDA compiler fuse them into one multiply-add.
    kernel = cupy.ElementwiseKernel(
        "float32 g, float32 lr, float32 rho, float32 one_minus_rho, float32 eps, float32 tiny",
        "float32 w, float32 v",
        """
        float vi = __fadd_rn(__fmul_rn(rho, v), __fmul_rn(one_minus_rho, __fmul_rn(g, g)));
        vi = vi >= tiny ? vi : 0.0f;   // flush to zero
        v = vi;
        w = __fsub_rn(w, __fdiv_rn(__fmul_rn(lr, g), __fsqrt_rn(__fadd_rn(vi, eps))));
        """,
        "tinynet_rmsprop_update",
    )

    def update(w, g, v, lr, rho, eps):
        f32 = numpy.float32
        kernel(g, f32(lr), f32(rho), f32(1 - rho), f32(eps), f32(TINY), w, v)

    return update
