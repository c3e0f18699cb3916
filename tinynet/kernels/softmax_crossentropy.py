"""Softmax crossentropy on the logits, forward and backward, as ONE CuPy RawKernel launch.

Why: in a training step captured into a CUDA graph (``tinynet/models/graph.py``) every kernel is a node
that costs the GPU a few microseconds, however little it computes. ``SoftmaxCrossentropy``'s readable lines
(``tinynet/losses/softmax_crossentropy.py``, the definition) are about fifteen CuPy calls, so fifteen
kernels: max, subtract, exp, sum, divide, log, subtract, the flush's compare and where, y * log p, sum,
negate, divide by N, and in backward p - y and the divide by N. This kernel does all of it in one pass:

    for each row n (a sample; any leading axes are flattened into rows), with classes i = 0 ... C-1:
        m       = max_i z[n, i]                       (subtracting it cannot overflow, and changes no p)
        total   = sum_i exp(z[n, i] - m)              (>= 1: the max contributes exp(0) = 1)
        p[n, i] = exp(z[n, i] - m) / total            softmax
        log p   = (z[n, i] - m) - log(total)          never log(0): total >= 1
        p[n, i] = 0 where p[n, i] < N * smallest_normal   flush to zero (tinynet/optimizers/rmsprop.py: why)
        dz[n, i] = (p[n, i] - y[n, i]) / N            dL/dz, which backward then returns
    loss = -(sum_n sum_i y[n, i] log p[n, i]) / N     L, N = the batch size (z.shape[0])

Thread mapping: ONE block of BLOCK threads. Thread t takes the rows n = t, t + BLOCK, t + 2 BLOCK, ...
(a row's classes are walked in order by its one thread) and adds that row's y * log p into its own running
sum. Then the BLOCK running sums are added by a tree in shared memory: at each step the first half of the
threads adds the second half's sums to its own, halving the count until thread 0 holds the total. The order of
every addition is fixed, so the loss is the same number at every run (no atomicAdd on floats, whose order
would vary). One block is enough for a classifier's loss: N x C is a few thousand numbers.

``model_softmax_crossentropy`` below walks the same threads, rows, classes and tree in NumPy, so the index
arithmetic and the order of the sums are tested on any machine (tests/test_softmax_crossentropy_kernel.py).
``--fmad=false``: each product and sum is rounded separately, as in NumPy. exp and log are CUDA's own (within
an ulp or two of NumPy's), so on a GPU the kernel equals the model to rounding, not bit for bit. (Where
exp(z - m) falls below the normal range, CUDA's float exp may give 0 and NumPy's a subnormal: no output
differs, as such a p is flushed to 0 anyway, and total >= 1 does not feel it.)
"""
import functools

import numpy

from tinynet.kernels import block_sum

BLOCK = block_sum.BLOCK  # threads in the one block

SOURCE = block_sum.SOURCE + r"""

// Softmax crossentropy on the logits, forward and backward in one launch (module docstring: the formulas).
//   z, y:   (R, C) row-major: logits and targets; entry (n, i) at [n * C + i]. R rows (the batch, times any
//           further leading axes), C classes.
//   p, dz:  (R, C) outputs: p = softmax(z) flushed to zero, dz = dL/dz = (p - y) / N.
//   loss:   one number, L = -(sum_n sum_i y log p) / N.
//   n_batch: N as a T, the divisor (the batch size, z.shape[0]);  p_min = N * smallest_normal of T.
// Launch: one block of BLOCK threads. Thread t walks rows t, t + BLOCK, ...; then a tree adds their sums.
template <typename T>
__global__ void softmax_crossentropy(const T* z, const T* y, T* p, T* dz, T* loss,
                                     int R, int C, T n_batch, T p_min) {
    __shared__ T partial[BLOCK];  // partial[t]: thread t's sum of y * log p over its rows
    int t = threadIdx.x;
    T acc = 0;
    for (int n = t; n < R; n += BLOCK) {  // this thread's rows: n = t + k * BLOCK
        const T* zn = z + (long long)n * C;  // row n of z starts at n * C; same for y, p, dz
        const T* yn = y + (long long)n * C;
        T* pn = p + (long long)n * C;
        T* dzn = dz + (long long)n * C;
        T m = zn[0];
        for (int i = 1; i < C; i++) {
            m = zn[i] > m ? zn[i] : m;  // m = max_i z[n, i]  (a NaN in the row makes total, so the row, NaN)
        }
        T total = 0;
        for (int i = 0; i < C; i++) {
            total += exp(zn[i] - m);  // total = sum_i exp(z[n, i] - m), i in order
        }
        T log_total = log(total);
        for (int i = 0; i < C; i++) {
            T shifted = zn[i] - m;
            T pi = exp(shifted) / total;       // p = exp(z - m) / total
            T log_p = shifted - log_total;     // log p = (z - m) - log(total)
            pi = pi < p_min ? (T)0 : pi;       // flush to zero: p / N would be subnormal
            pn[i] = pi;
            dzn[i] = (pi - yn[i]) / n_batch;   // dL/dz = (p - y) / N
            acc += yn[i] * log_p;              // this thread's sum of y * log p
        }
    }
    partial[t] = acc;
    block_sum(partial, t);  // partial[0]: the total (block_sum.py)
    if (t == 0) {
        *loss = -partial[0] / n_batch;  // L = -(sum_n sum_i y log p) / N
    }
}
"""

KERNEL = "softmax_crossentropy"
DTYPES = {"float32": "float", "float64": "double"}


def fits(y, z):
    """True when the kernel computes this loss: z and y of one dtype, float32 or float64, not empty.
    Anything else (mixed dtypes, float16, no samples) takes the readable lines, on CuPy too."""
    return z.dtype == y.dtype and numpy.dtype(z.dtype).name in DTYPES and z.ndim >= 1 and z.size > 0


@functools.cache
def _module():
    """The compiled kernel (CuPy, on first use), for float32 and float64."""
    import cupy
    names = [f"{KERNEL}<{ctype}>" for ctype in DTYPES.values()]
    return cupy.RawModule(code=SOURCE, options=("--fmad=false",), name_expressions=names)


def softmax_crossentropy(y, z):
    """For CuPy arrays y (one-hot targets) and z (logits) of one shape and dtype (``fits``), in one launch:
    returns (p, dz, loss): p = softmax(z) flushed to zero, dz = dL/dz = (p - y) / N and L as a 0-d array,
    each what ``SoftmaxCrossentropy``'s readable forward and backward compute, to rounding."""
    import cupy
    z, y = cupy.ascontiguousarray(z), cupy.ascontiguousarray(y)  # no copy (no launch) when already row-major
    t = numpy.dtype(z.dtype).type
    n_batch, classes = z.shape[0], z.shape[-1]
    p, dz, loss = cupy.empty_like(z), cupy.empty_like(z), cupy.empty((), dtype=z.dtype)
    function = _module().get_function(f"{KERNEL}<{DTYPES[numpy.dtype(z.dtype).name]}>")
    function((1,), (BLOCK,), (z, y, p, dz, loss, numpy.int32(z.size // classes), numpy.int32(classes),
                              t(n_batch), p_min(n_batch, z.dtype)))
    return p, dz, loss


def p_min(n_batch, dtype):
    """N * smallest_normal, rounded to ``dtype`` as NumPy rounds the readable code's threshold."""
    return numpy.dtype(dtype).type(n_batch * numpy.finfo(dtype).smallest_normal)


# --- the same index arithmetic and order of operations in NumPy: the kernel's model, for tests without a GPU

def model_softmax_crossentropy(y, z):
    """What the kernel writes, computed by walking its one block as the GPU does: all BLOCK threads at once
    (a NumPy array of threadIdx.x), row step by row step, each row's classes in order, then the tree.
    Returns (p, dz, loss) as ``softmax_crossentropy`` does."""
    dtype = z.dtype
    T = dtype.type
    n_batch, classes = T(z.shape[0]), z.shape[-1]
    rows = z.size // classes
    Z, Y = z.reshape(-1), y.reshape(-1)  # the kernel sees flat memory
    P = numpy.full(z.size, numpy.nan, dtype=dtype)  # NaN: an entry that no thread writes would show
    DZ = numpy.full(z.size, numpy.nan, dtype=dtype)
    threshold = p_min(z.shape[0], dtype)
    t = numpy.arange(BLOCK)  # threadIdx.x of each thread
    acc = numpy.zeros(BLOCK, dtype=dtype)
    with numpy.errstate(invalid="ignore", over="ignore"):  # NaN or inf logits: the kernel does not stop either
        for n0 in range(0, rows, BLOCK):  # the loop's k-th trip: thread t on row n = t + k * BLOCK
            n = n0 + t
            active = n < rows  # threads past the last row have left the loop
            n = n[active]
            start = n * classes  # row n starts at n * C
            m = Z[start]
            for i in range(1, classes):
                m = numpy.where(Z[start + i] > m, Z[start + i], m)  # m = z > m ? z : m
            total = numpy.zeros(len(n), dtype=dtype)
            for i in range(classes):
                total = total + numpy.exp(Z[start + i] - m)  # total += exp(z - m), i in order
            log_total = numpy.log(total)
            a = acc[active]
            for i in range(classes):
                shifted = Z[start + i] - m
                pi = numpy.exp(shifted) / total  # p = exp(z - m) / total
                log_p = shifted - log_total  # log p = (z - m) - log(total)
                pi = numpy.where(pi < threshold, T(0), pi)  # flush to zero
                P[start + i] = pi
                DZ[start + i] = (pi - Y[start + i]) / n_batch  # dz = (p - y) / N
                a = a + Y[start + i] * log_p  # acc += y * log p (product, then sum, each rounded)
            acc[active] = a
        summed = block_sum.model_block_sum(acc)  # the tree, in its order
        loss = -summed / n_batch  # thread 0: L = -(sum) / N
    return P.reshape(z.shape), DZ.reshape(z.shape), numpy.asarray(loss, dtype=dtype)
