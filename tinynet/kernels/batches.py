"""Cutting a mini-batch out of the data, as ONE CuPy RawKernel launch.

Why: in a training step captured into a CUDA graph (``tinynet/models/graph.py``) every kernel is a node
that costs the GPU a few microseconds, however little it does. ``Batches.batch``'s readable lines
(``tinynet/models/batches.py``, the definition) are five kernels: position + offsets, take from the order,
take from x, take from y, position += size. This kernel does all of it in one pass:

    for r = 0 ... size-1 (the batch's rows), with p = position (read on the device, not given by the host):
        xb[r, ...] = x[order[p + r], ...]       the batch's samples, in the epoch's order
        yb[r, ...] = y[order[p + r], ...]       and their targets
    position = p + size                         the next batch starts after this one

A replayed graph repeats the launch with the very arguments it recorded, so ``size`` is frozen at capture
and only ``position``, which the kernel itself reads and moves, says which batch is cut.

Thread mapping: each sample's trailing axes are flattened into one row of R numbers (R = 784 for (28, 28, 1)
images), so xb is (size, R) in memory and its entry e = r * R + f is row r, column f. Thread t of block b
copies the entries e = b * BLOCK + t, then e + G * BLOCK, e + 2 G * BLOCK, ... (G blocks: a grid-stride loop,
so any grid covers any batch), then the same over yb. Consecutive threads copy consecutive numbers of a row.

Moving position, with many blocks: every block must read position before it moves, and blocks run in no
fixed order, so no block may write it while another could still read it. The LAST block to finish writes it.
Each block reads position first (thread 0, into shared memory), copies its entries, then thread 0 adds 1 to
a counter ``blocks_done`` with ``atomicAdd``, which returns the count before the addition; the block that gets
G - 1 knows that every other block has finished, and so has read position: it alone writes p + size, and
puts the counter back to 0 for the next launch (the next launch starts after this one ends: same stream).
``__threadfence()`` before the addition orders the block's read of position before its count, as in the
CUDA C++ Programming Guide's example of the last block of a sum (Memory Fence Functions).

``model_gather_batch`` below walks the same blocks, threads and counter in NumPy, the blocks one after another
in any order (each to its end before the next starts, the case where a block that advanced position too early
would be caught), so the index arithmetic and the advance are tested on any machine
(tests/test_batches_kernel.py). A gather only copies numbers: on a GPU the kernel equals the readable lines
bit for bit.
"""
import functools
import math

import numpy

BLOCK = 256  # threads per block
MAX_BLOCKS = 1024  # a bigger batch is covered by the grid-stride loop: each thread copies several entries

SOURCE = r"""
#define BLOCK 256

// The batch that starts at *position: xb[r, f] = x[order[p + r], f] and yb[r, f] = y[order[p + r], f] for
// r < size (p = *position), then *position = p + size (module docstring: the formulas and why).
//   x: (n, x_row), y: (n, y_row), row-major: sample i's numbers start at i * x_row (its axes flattened).
//   order: (n,) the epoch's order of the samples;  position: where in order this batch starts.
//   xb: (size, x_row), yb: (size, y_row), row-major: entry e = r * x_row + f is row r, column f.
//   blocks_done: how many blocks of this launch have finished; 0 before and after each launch.
// Launch: any number G of blocks of BLOCK threads; thread t of block b copies entries e = b * BLOCK + t,
// e + G * BLOCK, ... of xb, then of yb. The last block to finish moves position.
template <typename TX, typename TY>
__global__ void gather_batch(const TX* x, const TY* y, const long long* order, long long* position,
                             int* blocks_done, TX* xb, TY* yb,
                             long long n, int size, long long x_row, long long y_row) {
    __shared__ long long p;  // *position as this block found it: where the batch starts in order
    if (threadIdx.x == 0) {
        p = *position;
    }
    __syncthreads();  // every thread of the block sees p
    long long stride = (long long)gridDim.x * BLOCK;  // the threads of the whole grid
    long long first = (long long)blockIdx.x * BLOCK + threadIdx.x;  // this thread's first entry
    for (long long e = first; e < size * x_row; e += stride) {
        long long r = e / x_row, f = e % x_row;  // entry e of xb is row r, column f
        long long i = order[(p + r) % n];  // the sample: order[p + r]  (p + r < n; % n keeps a stray replay in bounds)
        xb[e] = x[i * x_row + f];  // xb[r, f] = x[order[p + r], f]
    }
    for (long long e = first; e < size * y_row; e += stride) {
        long long r = e / y_row, f = e % y_row;
        long long i = order[(p + r) % n];
        yb[e] = y[i * y_row + f];  // yb[r, f] = y[order[p + r], f]
    }
    __syncthreads();  // the whole block is done
    if (threadIdx.x == 0) {
        __threadfence();  // this block's read of position comes before its count
        int before = atomicAdd(blocks_done, 1);  // how many blocks had finished before this one
        if (before == (int)gridDim.x - 1) {  // the last block: every block has read position
            __threadfence();  // what the count says (all have read) is ordered before the write below
            *position = p + size;  // position += size
            *blocks_done = 0;  // ready for the next launch
        }
    }
}
"""

KERNEL = "gather_batch"
DTYPES = {"float32": "float", "float64": "double"}


def fits(x, y):
    """True when the kernel cuts batches of (x, y): each float32 or float64, with a samples axis.
    Anything else (integers, float16) takes the readable lines, on CuPy too."""
    return all(numpy.dtype(a.dtype).name in DTYPES and a.ndim >= 1 for a in (x, y))


def name(x_dtype, y_dtype):
    """The kernel's instantiation for these dtypes, e.g. ``gather_batch<float, double>``."""
    return f"{KERNEL}<{DTYPES[numpy.dtype(x_dtype).name]}, {DTYPES[numpy.dtype(y_dtype).name]}>"


NAMES = [name(a, b) for a in DTYPES for b in DTYPES]  # every pair of dtypes


@functools.cache
def _module():
    """The compiled kernel (CuPy, on first use), for each pair of dtypes."""
    import cupy
    return cupy.RawModule(code=SOURCE, options=("--fmad=false",), name_expressions=NAMES)


def row(a):
    """How many numbers one sample of ``a`` holds: the product of its trailing axes (1 for a 1-D array)."""
    return math.prod(a.shape[1:])


def blocks(size, x_row, y_row):
    """The grid: a block per BLOCK entries of the larger of xb and yb, at least 1 (it moves position), at
    most MAX_BLOCKS."""
    return min(max(math.ceil(size * max(x_row, y_row) / BLOCK), 1), MAX_BLOCKS)


def gather_batch(x, y, order, position, blocks_done, size):
    """For CuPy arrays (``fits``): the ``size`` rows order[position : position + size] of x and of y, as new
    arrays (size, ...), and position moved past them, in one launch; what ``Batches.batch``'s readable lines
    compute, bit for bit. ``position`` (int64) and ``blocks_done`` (int32, 0) are 0-d device arrays."""
    import cupy
    x, y = cupy.ascontiguousarray(x), cupy.ascontiguousarray(y)  # no copy (no launch) when already row-major
    xb = cupy.empty((size, *x.shape[1:]), dtype=x.dtype)
    yb = cupy.empty((size, *y.shape[1:]), dtype=y.dtype)
    x_row, y_row = row(x), row(y)
    function = _module().get_function(name(x.dtype, y.dtype))
    function((blocks(size, x_row, y_row),), (BLOCK,),
             (x, y, order, position, blocks_done, xb, yb,
              numpy.int64(x.shape[0]), numpy.int32(size), numpy.int64(x_row), numpy.int64(y_row)))
    return xb, yb


# --- the same index arithmetic and the same counter in NumPy: the kernel's model, for tests without a GPU

def model_gather_batch(x, y, order, position, blocks_done, size, schedule=None):
    """What the kernel does, by walking its grid as the GPU might: the blocks one after another in the order
    ``schedule`` (default 0, 1, ..., G - 1), each from its read of position to its count, and in each block all
    BLOCK threads at once (a NumPy array of threadIdx.x), loop trip by loop trip. Writes ``position`` and
    ``blocks_done`` (0-d NumPy arrays) in place, as the kernel does; returns (xb, yb)."""
    n, x_row, y_row = x.shape[0], row(x), row(y)
    X, Y, order = x.reshape(-1), y.reshape(-1), order.reshape(-1)  # the kernel sees flat memory
    XB = numpy.full(size * x_row, numpy.nan, dtype=x.dtype)  # NaN: an entry that no thread writes would show
    YB = numpy.full(size * y_row, numpy.nan, dtype=y.dtype)
    grid = blocks(size, x_row, y_row)
    stride = grid * BLOCK
    for b in range(grid) if schedule is None else schedule:
        p = int(position[()])  # thread 0: p = *position, shared with the block
        first = b * BLOCK + numpy.arange(BLOCK)  # each thread's first entry
        for out, source, width in ((XB, X, x_row), (YB, Y, y_row)):  # xb, then yb
            for e in range(0, size * width, stride):  # the loop's k-th trip: entry first + k * stride
                e = e + first
                e = e[e < size * width]  # threads past the last entry have left the loop
                r, f = e // width, e % width  # entry e is row r, column f
                i = order[(p + r) % n]  # the sample: order[p + r]
                out[e] = source[i * width + f]  # xb[r, f] = x[order[p + r], f]
        before = int(blocks_done[()])  # thread 0: atomicAdd(blocks_done, 1) returns the count before
        blocks_done[()] = before + 1
        if before == grid - 1:  # the last block moves position, and resets the counter
            position[()] = p + size
            blocks_done[()] = 0
    return XB.reshape(size, *x.shape[1:]), YB.reshape(size, *y.shape[1:])
