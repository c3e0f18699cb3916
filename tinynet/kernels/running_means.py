"""One batch's loss and accuracy added to the running means, as ONE CuPy RawKernel launch.

Why: in a training step captured into a CUDA graph (``tinynet/models/graph.py``) every kernel is a node
that costs the GPU a few microseconds, however little it computes. ``RunningMeans.add``'s readable lines
(``tinynet/metrics/running_means.py``, the definition) with ``metrics=['accuracy']`` are about nineteen
CuPy calls, so nineteen kernels: loss * n and +=; Accuracy's two argmax, ==, astype and mean, then * n and
+=; samples += n; the first-non-finite check (isfinite, ~, ==, &, two where, each copied into place);
batches += 1. This kernel does the same for one batch of N samples with C classes:

    hits            = #{n : argmax_i y_hat[n, i] == argmax_i y[n, i]}   (ties: the first index; NaN: the
                                                                         first NaN, as NumPy's argmax)
    total_loss     += loss * N
    total_accuracy += (hits / N) * N      Accuracy's mean, as a T, then times N, as the readable code does
    samples        += N
    if loss is not finite and first_bad == NOT_YET:  first_bad = batches,  bad_loss = loss
    batches        += 1

It covers ``RunningMeans`` with no metrics (then y and y_hat are not read) or with one ``Accuracy`` on one-hot
targets (y and y_hat both (N, C), C > 1, of the totals' dtype); anything else takes the readable lines.
Every output is a 0-d array that ``RunningMeans`` keeps and the kernel adds into, in place: a CUDA graph
that recorded the launch adds into the same arrays at each replay.

Thread mapping: ONE block of BLOCK threads. Thread t takes the rows n = t, t + BLOCK, t + 2 BLOCK, ...
(each row's classes walked in order by its one thread, for both argmax) and counts its hits. Then the BLOCK
counts are added by a tree in shared memory: at each step the first half of the threads adds the second
half's counts to its own, halving the count until thread 0 holds the total. Thread 0 alone then updates the
totals. (The counts are integers, so any order gives the same sum; the tree is the same one as in
``softmax_crossentropy.py``.) One block is enough: a batch's N x C is a few thousand numbers.

``model_running_means_add`` below walks the same threads, rows, classes and tree in NumPy, so the index
arithmetic and the order of operations are tested on any machine (tests/test_running_means_kernel.py).
``--fmad=false``: each product and sum is rounded separately, as in NumPy, and the only float operations are
one conversion, one division, two products and two sums, each correctly rounded on both: the kernel equals
the readable code bit for bit. (Accuracy's mean sums N ones and zeros as floats; that sum is the integer
count exactly while N <= 2**24 in float32, far beyond any batch.)
"""
import functools

import numpy

from tinynet.kernels import block_sum

BLOCK = block_sum.BLOCK  # threads in the one block
NOT_YET = -1  # first_bad before any batch's loss was NaN or infinite: running_means.NOT_YET (a test checks)

SOURCE = block_sum.SOURCE + r"""
#define NOT_YET -1  // first_bad before any non-finite loss (tinynet/metrics/running_means.py)

// argmax_i row[i] over C classes, as NumPy's argmax: the first index of the largest value, and a NaN counts
// as larger than everything (the first NaN wins). Walked i = 1 ... C-1 in order; `best` is the index so far.
template <typename T>
__device__ int argmax_row(const T* row, int C) {
    int best = 0;
    for (int i = 1; i < C; i++) {
        T m = row[best], v = row[i];
        if (!isnan(m) && (isnan(v) || v > m)) {  // a NaN stays; a NaN or a strictly larger value takes over
            best = i;
        }
    }
    return best;
}

// One batch added to the running means (module docstring: the formulas).
//   loss:        the batch's loss, one number (a 0-d array).
//   y, y_hat:    (R, C) row-major: targets and predictions; entry (n, i) at [n * C + i]. Read only when
//                with_accuracy is 1 (then R = N, the batch size); otherwise R = 0 and nothing is read.
//   n:           N, the batch size.
//   total_loss, total_accuracy, samples, batches, first_bad, bad_loss: the running totals, each one number,
//                read and written in place (total_accuracy only when with_accuracy is 1).
// Launch: one block of BLOCK threads. Thread t counts the hits of rows t, t + BLOCK, ...; a tree adds the
// counts; thread 0 updates the totals.
template <typename T>
__global__ void running_means_add(const T* loss, const T* y, const T* y_hat, int R, int C, long long n,
                                  int with_accuracy, T* total_loss, T* total_accuracy, long long* samples,
                                  long long* batches, long long* first_bad, T* bad_loss) {
    __shared__ int partial[BLOCK];  // partial[t]: thread t's count of hits
    int t = threadIdx.x;
    int hits = 0;
    for (int r = t; r < R; r += BLOCK) {  // this thread's rows: r = t + k * BLOCK
        const T* yr = y + (long long)r * C;  // row r of y starts at r * C; same for y_hat
        const T* y_hatr = y_hat + (long long)r * C;
        hits += argmax_row(y_hatr, C) == argmax_row(yr, C);  // 1 when the predicted class is the true one
    }
    partial[t] = hits;
    block_sum(partial, t);  // partial[0]: the total (block_sum.py)
    if (t == 0) {
        T l = *loss, n_T = (T)n;  // N as a T, as NumPy converts the Python int in `loss * n`
        *total_loss += l * n_T;  // total_loss += loss * N
        if (with_accuracy) {
            T accuracy = (T)partial[0] / n_T;  // Accuracy: mean(hits as T) = hits / N
            *total_accuracy += accuracy * n_T;  // total_accuracy += accuracy * N
        }
        *samples += n;
        if (!isfinite(l) && *first_bad == NOT_YET) {  // this batch's loss is the first not finite
            *first_bad = *batches;
            *bad_loss = l;
        }
        *batches += 1;
    }
}
"""

KERNEL = "running_means_add"
DTYPES = {"float32": "float", "float64": "double"}


def fits(loss, y, y_hat, total, with_accuracy):
    """True when the kernel computes this batch's update: ``loss`` a 0-d array of the totals' dtype (float32 or
    float64) and, ``with_accuracy``, one-hot targets: y and y_hat both (N, C) with C > 1, of that dtype too.
    Anything else (mixed dtypes, integer labels, one output unit) takes the readable lines, on CuPy too."""
    dtype = numpy.dtype(total.dtype)
    if dtype.name not in DTYPES or getattr(loss, "shape", None) != () or loss.dtype != dtype:
        return False
    return not with_accuracy or (y.ndim == 2 and y.shape == y_hat.shape and y.shape[1] > 1
                                 and y.dtype == y_hat.dtype == dtype)


@functools.cache
def _module():
    """The compiled kernel (CuPy, on first use), for float32 and float64."""
    import cupy
    names = [f"{KERNEL}<{ctype}>" for ctype in DTYPES.values()]
    return cupy.RawModule(code=SOURCE, options=("--fmad=false",), name_expressions=names)


def running_means_add(loss, y, y_hat, total_loss, total_accuracy, samples, batches, first_bad, bad_loss):
    """For CuPy arrays that ``fits``, in one launch: what ``RunningMeans.add`` does for one batch, written into
    the 0-d arrays total_loss, total_accuracy (None: no accuracy), samples, batches, first_bad and bad_loss."""
    import cupy
    with_accuracy = total_accuracy is not None
    n = y.shape[0]
    if with_accuracy:
        y, y_hat = cupy.ascontiguousarray(y), cupy.ascontiguousarray(y_hat)  # no copy (no launch) if row-major
    rows, classes = (n, y.shape[1]) if with_accuracy else (0, 0)
    function = _module().get_function(f"{KERNEL}<{DTYPES[numpy.dtype(total_loss.dtype).name]}>")
    function((1,), (BLOCK,), (loss, y, y_hat, numpy.int32(rows), numpy.int32(classes), numpy.int64(n),
                              numpy.int32(with_accuracy), total_loss,
                              total_accuracy if with_accuracy else total_loss,  # not touched without accuracy
                              samples, batches, first_bad, bad_loss))


# --- the same index arithmetic and order of operations in NumPy: the kernel's model, for tests without a GPU

def model_argmax_rows(X, start, classes):
    """``argmax_row`` for several rows at once (row j's entries at X[start[j] + i]), walking i in order."""
    best = numpy.zeros(len(start), dtype=numpy.int64)
    for i in range(1, classes):
        m, v = X[start + best], X[start + i]
        take = ~numpy.isnan(m) & (numpy.isnan(v) | (v > m))  # a NaN stays; a NaN or a larger value takes over
        best = numpy.where(take, i, best)
    return best


def model_running_means_add(loss, y, y_hat, total_loss, total_accuracy, samples, batches, first_bad, bad_loss):
    """What the kernel writes, computed by walking its one block as the GPU does: all BLOCK threads at once
    (a NumPy array of threadIdx.x), row step by row step, then the tree, then thread 0. Same arguments as
    ``running_means_add`` (NumPy arrays), updated in place."""
    T = numpy.dtype(total_loss.dtype).type
    n = y.shape[0]
    with_accuracy = total_accuracy is not None
    rows, classes = (n, y.shape[1]) if with_accuracy else (0, 0)
    if with_accuracy:
        Y, Y_HAT = numpy.ascontiguousarray(y).reshape(-1), numpy.ascontiguousarray(y_hat).reshape(-1)  # flat memory
    t = numpy.arange(BLOCK)  # threadIdx.x of each thread
    hits = numpy.zeros(BLOCK, dtype=numpy.int32)
    for r0 in range(0, rows, BLOCK):  # the loop's k-th trip: thread t on row r = t + k * BLOCK
        r = r0 + t
        active = r < rows  # threads past the last row have left the loop
        start = r[active] * classes  # row r starts at r * C
        hit = model_argmax_rows(Y_HAT, start, classes) == model_argmax_rows(Y, start, classes)
        hits[active] += hit.astype(numpy.int32)
    summed = block_sum.model_block_sum(hits)  # the tree, in its order: the hits of the batch
    # thread 0
    with numpy.errstate(invalid="ignore", over="ignore"):  # a NaN or inf loss: the kernel does not stop either
        l, n_T = T(numpy.asarray(loss)[()]), T(n)
        total_loss[...] = total_loss + l * n_T  # total_loss += loss * N
        if with_accuracy:
            accuracy = T(summed) / n_T  # hits / N
            total_accuracy[...] = total_accuracy + accuracy * n_T  # total_accuracy += accuracy * N
    samples[...] = samples + n
    if not numpy.isfinite(l) and first_bad == NOT_YET:  # this batch's loss is the first not finite
        first_bad[...] = batches
        bad_loss[...] = l
    batches[...] = batches + 1
