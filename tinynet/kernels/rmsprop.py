"""RMSprop's update of EVERY parameter in one CuPy RawKernel launch, ``rmsprop_all``.

Why: in a training step captured into a CUDA graph (``tinynet/models/graph.py``) every kernel is a node that
costs the GPU a few microseconds, however little it computes. ``RMSprop.update`` runs one kernel per parameter
(``tinynet/optimizers/rmsprop.py``: ``update_step``, the definition, and its compiled forms): 6 launches for
the MNIST model (a kernel and a bias per Dense layer), more for deeper ones. This kernel does them all in one.
Each element gets exactly ``update_step``'s operations, in its order (``--fmad=false``: every product and sum
rounded by itself, as in NumPy), so it equals ``update_step`` bit for bit:

    g2 = 0 if |g| < sqrt(smallest_normal) else g * g     g**2, flushed to zero
    v  = rho * v + (1 - rho) * g2                        the running mean of g**2
    v  = 0 if v < smallest_normal else v                 flushed to zero
    w  = w - (lr * g) / sqrt(v + eps)                    the step

One index space for all parameters. The gradients are new arrays at every step (each layer assigns its
``grads``), so there is no one flat buffer to walk without first copying them into one. Instead the kernel is
given each tensor's address and size and walks their concatenation: with sizes n_0, ..., n_{K-1} and the prefix
sums start[k] = n_0 + ... + n_{k-1} (start[0] = 0, start[K] = total), a global index i in [0, total) is

    tensor k  = the one with start[k] <= i < start[k + 1]
    element j = i - start[k]                          so it reads g_k[j], v_k[j], w_k[j]

Threads walk i by a grid-stride loop: thread t (t = blockIdx.x * blockDim.x + threadIdx.x) takes i = t,
t + S, t + 2 S, ... with S = gridDim.x * blockDim.x the number of threads. Its i only grows, so its k only
grows too: it finds k by stepping k forward while i >= start[k + 1] (at most K steps in all, for the thread's
whole walk; empty tensors, start[k] = start[k + 1], are stepped over). Every element is one thread's, and no
element depends on another, so which thread takes it changes no bit.

How the addresses are passed: by value, as ONE kernel argument, a struct ``Tensors`` of fixed size holding
MAX_TENSORS addresses of w, g and v each and the MAX_TENSORS + 1 prefix sums. CuPy passes a NumPy array of size
one by value: its launcher (cupy/cuda/function.pyx, ``_pointer``) wraps any ``numpy.ndarray`` with
``x.size == 1`` in ``CNumpyArray``, whose pointer is the array's data, and the CUDA driver copies
``sizeof(Tensors)`` bytes from there into the kernel's parameters (CuPy's user guide, "Custom user types"; the
feature since CuPy 10). So the table is a size-one NumPy array of a structured dtype laid out as the C struct
(``TABLE``: 8-byte fields only, so no padding on either side). Why not the other ways:
- a table in GPU memory (a ``cupy.ndarray`` of addresses) would be uploaded by a host-to-device copy from
  pageable memory, which cannot be captured into a CUDA graph; kernel arguments can: the launch copies them
  into the graph's node, where they stay frozen (the addresses are those of fixed buffers during capture).
- one argument per address (``numpy.uint64`` scalars, which CuPy also passes by value, cast to T* by the
  kernel) would need a fixed count of parameters too, written out 3 x MAX_TENSORS times in the signature.
The CUDA limit on a kernel's arguments is 4 KB in all (CuPy's user guide, again): ``Tensors`` is 2,056 bytes,
the count and the scalars at most 56 more. A model with more than MAX_TENSORS parameters (of one dtype) gets
one launch per MAX_TENSORS of them; float32 and float64 parameters get separate launches (the kernel is
templated on T).

``model_rmsprop_all`` below runs the same launch in NumPy, thread by thread as the GPU does, reading the same
table, so the index arithmetic is tested on any machine (tests/test_rmsprop_kernel.py). sqrt and division are
IEEE-correctly rounded in CUDA (NVRTC's defaults -prec-sqrt=true -prec-div=true), as in NumPy.
"""
import functools
import math

import numpy

BLOCK = 256  # threads per block
MAX_BLOCKS = 4096  # at most 4096 * 256 threads: beyond that, each thread takes several elements
MAX_TENSORS = 64  # parameters per launch: what one Tensors struct holds

SOURCE = r"""
#define MAX_TENSORS 64

// Up to MAX_TENSORS parameters, each a contiguous row-major array; passed to the kernel by value.
template <typename T>
struct Tensors {
    T* w[MAX_TENSORS];                 // w[k]: the address of parameter k's first entry
    const T* g[MAX_TENSORS];           // g[k]: its gradient's
    T* v[MAX_TENSORS];                 // v[k]: its running mean of g**2 (RMSprop's slot)
    long long start[MAX_TENSORS + 1];  // start[k] = size_0 + ... + size_{k-1}; start[count] = total
};

// RMSprop's update of `count` parameters (module docstring: the formula, the index space), in one launch:
//   tiny = smallest_normal of T, root_tiny = sqrt(tiny), one_minus_rho = 1 - rho, each rounded to T.
// Launch: any grid of blocks; thread t takes the global indices i = t, t + S, t + 2 S, ... (S = all threads).
template <typename T>
__global__ void rmsprop_all(const Tensors<T> tensors, int count, T lr, T rho, T one_minus_rho, T eps,
                            T tiny, T root_tiny) {
    long long total = tensors.start[count];
    long long stride = (long long)gridDim.x * blockDim.x;  // S
    int k = 0;  // the tensor holding i; only grows, as i does
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        while (i >= tensors.start[k + 1]) {
            k++;  // i is past tensor k: start[k] <= i < start[k + 1] holds for the k this stops at
        }
        long long j = i - tensors.start[k];  // element j of tensor k
        T g = tensors.g[k][j];
        T g2 = fabs(g) < root_tiny ? (T)0 : g * g;          // g**2, flushed to zero
        T vi = rho * tensors.v[k][j] + one_minus_rho * g2;  // v = rho * v + (1 - rho) * g**2
        vi = vi < tiny ? (T)0 : vi;                         // flush to zero
        tensors.v[k][j] = vi;
        tensors.w[k][j] = tensors.w[k][j] - (lr * g) / sqrt(vi + eps);  // w = w - lr * g / sqrt(v + eps)
    }
}
"""

KERNEL = "rmsprop_all"
DTYPES = {"float32": "float", "float64": "double"}

# Tensors<T> as NumPy sees it: the same fields, in order, each 8 bytes (an address is a uint64), so the C
# struct has no padding and the offsets agree. Its itemsize is sizeof(Tensors<T>), for float and double alike.
TABLE = numpy.dtype([("w", numpy.uint64, (MAX_TENSORS,)), ("g", numpy.uint64, (MAX_TENSORS,)),
                     ("v", numpy.uint64, (MAX_TENSORS,)), ("start", numpy.int64, (MAX_TENSORS + 1,))])


def fits(w, g, v):
    """True when the kernel updates this parameter: w, g and v of one dtype, float32 or float64, and each
    C-contiguous (the kernel walks flat memory). Anything else takes ``RMSprop.update``, on CuPy too."""
    return (w.dtype == g.dtype == v.dtype and numpy.dtype(w.dtype).name in DTYPES
            and w.flags.c_contiguous and g.flags.c_contiguous and v.flags.c_contiguous)


def address(a):
    """The address of an array's first entry: a CuPy array's on the GPU; a NumPy array's on the host (the
    kernel's model reads those, in the tests)."""
    return a.ctypes.data if isinstance(a, numpy.ndarray) else a.data.ptr


def launches(tensors, lr, rho, eps):
    """The launches that update ``tensors``, a list of (w, g, v), one per parameter, each one that ``fits``:
    a list of (dtype, grid, args), args being the kernel's arguments in order: a ``TABLE`` array of size one,
    the count as an int32, then the six scalars in the dtype. One launch per MAX_TENSORS parameters of one
    dtype; none where there are no elements."""
    by_dtype = {}
    for w, g, v in tensors:
        by_dtype.setdefault(numpy.dtype(w.dtype), []).append((w, g, v))
    result = []
    for dtype, group in by_dtype.items():
        t, tiny = dtype.type, numpy.finfo(dtype).smallest_normal
        scalars = (t(lr), t(rho), t(1 - rho), t(eps), t(tiny), t(math.sqrt(tiny)))  # rounded as NumPy does
        for first in range(0, len(group), MAX_TENSORS):
            chunk = group[first:first + MAX_TENSORS]
            table = numpy.zeros(1, TABLE)  # entries past the count stay 0: never read (i < start[count])
            start = numpy.cumsum([0] + [w.size for w, _, _ in chunk])  # start[k] = size_0 + ... + size_{k-1}
            table["start"][0, :len(start)] = start
            for k, (w, g, v) in enumerate(chunk):
                table["w"][0, k], table["g"][0, k], table["v"][0, k] = address(w), address(g), address(v)
            total = int(start[-1])
            if total:
                grid = min(MAX_BLOCKS, -(-total // BLOCK))  # enough blocks for one element per thread, or MAX_BLOCKS
                result.append((dtype, grid, (table, numpy.int32(len(chunk)), *scalars)))
    return result


@functools.cache
def _module():
    """The compiled kernel (CuPy, on first use), for float32 and float64."""
    import cupy
    names = [f"{KERNEL}<{ctype}>" for ctype in DTYPES.values()]
    return cupy.RawModule(code=SOURCE, options=("--fmad=false",), name_expressions=names)


def function(dtype):
    """The kernel for ``dtype``, a callable ``f(grid, block, args)`` (a CuPy RawKernel)."""
    return _module().get_function(f"{KERNEL}<{DTYPES[numpy.dtype(dtype).name]}>")


def rmsprop_all(tensors, lr, rho, eps):
    """RMSprop's update of ``tensors``, a list of CuPy arrays (w, g, v), one per parameter, each one that
    ``fits``: w and v in place, in one launch per MAX_TENSORS of them; what ``update_step`` does to each."""
    for dtype, grid, args in launches(tensors, lr, rho, eps):
        function(dtype)((grid,), (BLOCK,), args)


# --- the same index arithmetic and operations in NumPy: the kernel's model, for tests without a GPU

def model_rmsprop_all(grid, block, args, memory):
    """One launch of the kernel, run by walking its threads as the GPU does: all grid * block threads at once (a
    NumPy array of their t), loop trip by loop trip, each thread resolving its i to tensor k and element j from
    the table's prefix sums. ``args`` are the kernel's (``launches``); ``memory`` maps each address in the table
    to the flat NumPy array there (a view such as ``w.reshape(-1)``: written in place). Returns how often each
    element of each w was written, {address of w: counts} (once each, if the index arithmetic is right)."""
    table, count, lr, rho, one_minus_rho, eps, tiny, root_tiny = args
    T = type(lr)
    start = table["start"][0]
    total = int(start[count])
    stride = grid * block  # S
    t = numpy.arange(stride, dtype=numpy.int64)  # blockIdx.x * blockDim.x + threadIdx.x of each thread
    k = numpy.zeros(stride, dtype=numpy.int64)  # each thread's tensor, 0 at first
    writes = {}
    with numpy.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaN and inf go on, as on the GPU
        for i0 in range(0, total, stride):  # the loop's n-th trip: thread t at i = t + n * S
            i = i0 + t
            active = i < total  # threads past the end have left the loop
            while True:  # each active thread steps its k forward while i >= start[k + 1]
                behind = active & (i >= start[k + 1])  # k + 1 <= count: i < start[count]
                if not behind.any():
                    break
                k[behind] += 1
            for tensor in numpy.unique(k[active]):  # the threads now at tensor k, together
                on = active & (k == tensor)
                j = i[on] - start[tensor]  # element j of tensor k
                W, G, V = (memory[int(table[name][0, tensor])] for name in ("w", "g", "v"))
                g = G[j]
                g2 = numpy.where(numpy.abs(g) < root_tiny, T(0), g * g)  # g**2, flushed to zero
                vi = rho * V[j] + one_minus_rho * g2  # v = rho * v + (1 - rho) * g**2
                vi = numpy.where(vi < tiny, T(0), vi)  # flush to zero
                V[j] = vi
                W[j] = W[j] - (lr * g) / numpy.sqrt(vi + eps)  # w = w - lr * g / sqrt(v + eps)
                counts = writes.setdefault(int(table["w"][0, tensor]), numpy.zeros(len(W), numpy.int64))
                counts[j] += 1  # the j of one trip are distinct
    return writes
