"""ReLU's backward, dL/dx = dL/dy * (x > 0), as ONE CuPy ElementwiseKernel launch.

Why: in a training step captured into a CUDA graph (``tinynet/models/graph.py``) every kernel is a node that
costs the GPU a few microseconds, however little it does. ``ReLU.backward``'s readable line
(``tinynet/layers/relu.py``, the definition) is three kernels: x > 0, its cast to dy's dtype, the product.
Here each thread computes one entry, all three steps at once:

    dx[i] = dy[i] * (x[i] > 0 ? 1 : 0)

It is the readable line's product, not a choice ``x > 0 ? dy : 0``, so that every number is the same bit for
bit, the odd ones too: where x <= 0 (or x is NaN, for which x > 0 is false) dx is dy * 0, which is -0 for a
negative dy and NaN for an infinite or NaN dy, as in NumPy; where x > 0, dx is dy * 1 = dy exactly.

An ElementwiseKernel is CuPy's own loop around a body of C: CuPy gives the thread its index i and the names
x, dy, dx stand for x[i], dy[i], dx[i] (``RELU_BACKWARD`` holds what CuPy is given). ``model_relu_backward``
computes the body in NumPy; tests/test_relu_kernel.py compares it with the readable line.
"""
import functools

import numpy

# cupy.ElementwiseKernel(in_params, out_params, operation, name): T is the dtype of x, dy and dx alike
RELU_BACKWARD = ("T x, T dy", "T dx", "dx = dy * (T)(x > 0);", "relu_backward")

DTYPES = ("float32", "float64")


def fits(x, dy):
    """True when the kernel computes this backward: x and dy of one dtype, float32 or float64. Anything else
    (mixed dtypes, float16) takes the readable line, on CuPy too."""
    return x.dtype == dy.dtype and numpy.dtype(x.dtype).name in DTYPES


@functools.cache
def _kernel():
    """The ElementwiseKernel (CuPy, compiled for each dtype on its first call)."""
    import cupy
    return cupy.ElementwiseKernel(*RELU_BACKWARD)


def relu_backward(x, dy):
    """For CuPy arrays x (ReLU's input) and dy (dL/dy) of one shape and dtype (``fits``): dL/dx, a new array,
    in one launch; what ``ReLU.backward``'s readable line computes, bit for bit."""
    return _kernel()(x, dy)


def model_relu_backward(x, dy):
    """What the kernel writes, in NumPy: its body, dx = dy * (T)(x > 0), for every i at once."""
    mask = numpy.where(x > 0, dy.dtype.type(1), dy.dtype.type(0))  # (T)(x > 0): 1 or 0, of dy's dtype
    return dy * mask  # dx = dy * (T)(x > 0)
