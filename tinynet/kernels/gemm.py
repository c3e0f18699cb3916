"""tinynet's own matrix products for the GPU: a 16 x 16 shared-memory tiled GEMM, as CuPy RawKernels.

Why not CuPy's ``@``? It calls cuBLAS, and CuPy 14 refuses cuBLAS while a stream is being captured into a
CUDA graph (CuPy issue #6290). The captured training step (``tinynet/models/graph.py``) therefore does its
matrix products here; everywhere else (predict, evaluate, ``jit_compile=False``) CuPy's ``@`` is used.
``tinynet.backend.matmul`` chooses. The kernels are compiled the first time one is called, on CuPy only.

The family, four kernels around one tile loop (``gemm_tile``), each one line of math:

    gemm_nn     C = A B        C[m, n] = sum_k A[m, k] B[k, n]        z = x W     (Dense forward)
    gemm_tn     C = A^T B      C[m, n] = sum_k A[k, m] B[k, n]        dW = x^T dz
    gemm_nt     C = A B^T      C[m, n] = sum_k A[m, k] B[n, k]        dx = dz W^T
    gemm_bias   z = x W + b    z[m, n] = sum_k x[m, k] W[k, n] + b[n] (Dense forward, fused)

Each kernel only says where A[m, k] and B[k, n] live in memory: element (m, k) of the left matrix is
``A[m * a_row + k * a_col]`` (its two strides, in elements), and the same for B. A transpose is nothing but
swapped strides: A^T stored as the (K, M) array A has a_row = 1, a_col = M.

``model_gemm`` below walks the blocks, threads and tiles exactly as the kernel does, in NumPy, so the
index arithmetic is tested on any machine (tests/test_gemm_kernels.py); on a GPU the kernels are compared
with it and with ``cupy.matmul``. Kernels are compiled with ``--fmad=false``: each ``acc += a * b`` rounds
the product and the sum separately, as the NumPy model does, so the two agree bit for bit.
"""
import functools
import math

import numpy

TILE = 16  # threads per block: TILE x TILE; each block computes one TILE x TILE tile of C

SOURCE = r"""
#define TILE 16

// One TILE x TILE tile of C = A B (+ bias) per block of TILE x TILE threads:
//   C[m, n] = sum_k A(m, k) B(k, n) (+ bias[n]),
//   A(m, k) = A[m * a_row + k * a_col],   B(k, n) = B[k * b_row + n * b_col]   (strides in elements)
// Thread mapping: block (blockIdx.x, blockIdx.y) owns rows blockIdx.x * TILE ... + TILE - 1 and columns
// blockIdx.y * TILE ... + TILE - 1 of C; thread (threadIdx.x, threadIdx.y) computes the one entry
//   m = blockIdx.x * TILE + threadIdx.y,   n = blockIdx.y * TILE + threadIdx.x.
// Row tiles go along the grid's x, which may hold 2^31 - 1 blocks (y: 65535), as M is what grows: the batch,
// times the output positions in a convolution. Within a block threadIdx.x walks n, so that neighbouring threads
// read neighbouring entries of B's row and write neighbouring entries of C's.
// The K axis is walked one tile at a time: at tile k0 each thread loads ONE entry of A's tile and ONE of B's
// into shared memory (As[ty][tx] = A(m, k0 + tx), Bs[ty][tx] = B(k0 + ty, n); zero outside the matrices, so
// ragged edges add 0), all threads wait, then each adds its row of As times its column of Bs.
template <typename T>
__device__ void gemm_tile(const T* A, int a_row, int a_col, const T* B, int b_row, int b_col,
                          const T* bias, T* C, int M, int N, int K) {
    __shared__ T As[TILE][TILE];
    __shared__ T Bs[TILE][TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int m = blockIdx.x * TILE + ty;  // this thread's row of C
    int n = blockIdx.y * TILE + tx;  // this thread's column of C
    T acc = 0;
    for (int k0 = 0; k0 < K; k0 += TILE) {
        int ka = k0 + tx, kb = k0 + ty;  // the k of the A entry and of the B entry this thread loads
        As[ty][tx] = (m < M && ka < K) ? A[(long long)m * a_row + (long long)ka * a_col] : (T)0;  // A(m, k0 + tx)
        Bs[ty][tx] = (kb < K && n < N) ? B[(long long)kb * b_row + (long long)n * b_col] : (T)0;  // B(k0 + ty, n)
        __syncthreads();  // the whole tile is loaded
        for (int k = 0; k < TILE; k++) {
            acc += As[ty][k] * Bs[k][tx];  // C[m, n] += A(m, k0 + k) B(k0 + k, n)
        }
        __syncthreads();  // everyone is done with this tile before the next overwrites it
    }
    if (m < M && n < N) {
        C[(long long)m * N + n] = bias ? acc + bias[n] : acc;  // C is (M, N), row-major
    }
}

// C = A B:      C[m, n] = sum_k A[m, k] B[k, n];   A (M, K), B (K, N), C (M, N), all row-major.
template <typename T>
__global__ void gemm_nn(const T* A, const T* B, T* C, int M, int N, int K) {
    gemm_tile<T>(A, K, 1, B, N, 1, (const T*)0, C, M, N, K);
}

// C = A^T B:    C[m, n] = sum_k A[k, m] B[k, n];   A stored (K, M), B (K, N): A^T(m, k) = A[k * M + m].
template <typename T>
__global__ void gemm_tn(const T* A, const T* B, T* C, int M, int N, int K) {
    gemm_tile<T>(A, 1, M, B, N, 1, (const T*)0, C, M, N, K);
}

// C = A B^T:    C[m, n] = sum_k A[m, k] B[n, k];   A (M, K), B stored (N, K): B^T(k, n) = B[n * K + k].
template <typename T>
__global__ void gemm_nt(const T* A, const T* B, T* C, int M, int N, int K) {
    gemm_tile<T>(A, K, 1, B, 1, K, (const T*)0, C, M, N, K);
}

// z = x W + b:  z[m, n] = sum_k x[m, k] W[k, n] + b[n];   x (M, K), W (K, N), b (N,): one kernel, not two.
template <typename T>
__global__ void gemm_bias(const T* x, const T* W, const T* b, T* z, int M, int N, int K) {
    gemm_tile<T>(x, K, 1, W, N, 1, b, z, M, N, K);
}
"""

KERNELS = ("gemm_nn", "gemm_tn", "gemm_nt", "gemm_bias")
DTYPES = {"float32": "float", "float64": "double"}

# Where each kernel finds A(m, k) and B(k, n): (a_row, a_col, b_row, b_col), as SOURCE passes them to
# gemm_tile (tests/test_gemm_kernels.py checks the two agree).
STRIDES = {"gemm_nn": ("K", "1", "N", "1"), "gemm_tn": ("1", "M", "N", "1"),
           "gemm_nt": ("K", "1", "1", "K"), "gemm_bias": ("K", "1", "N", "1")}


@functools.cache
def _module():
    """The compiled kernels (CuPy, on first use): one RawModule, each kernel for float32 and float64."""
    import cupy
    names = [f"{kernel}<{ctype}>" for kernel in KERNELS for ctype in DTYPES.values()]
    return cupy.RawModule(code=SOURCE, options=("--fmad=false",), name_expressions=names)


def kernel(name, dtype):
    """The RawKernel ``name`` (one of KERNELS) for arrays of ``dtype`` (float32 or float64)."""
    return _module().get_function(f"{name}<{DTYPES[numpy.dtype(dtype).name]}>")


def matmul(a, b, bias=None):
    """``a @ b`` (``+ bias``) for 2-D CuPy arrays of float32 or float64, by the kernels above: which one
    depends on whether a or b is a transposed view (``x.T``), read in place without a copy."""
    import cupy
    (m, k), (k_b, n) = a.shape, b.shape
    if k != k_b:  # as CuPy's @ refuses: the kernel would read past b's end
        raise ValueError(f"matmul: a is {a.shape} and b is {b.shape}: a's columns ({k}) must equal b's rows ({k_b})")
    if bias is not None and bias.shape != (n,):
        raise ValueError(f"matmul: bias has shape {bias.shape}: it needs one entry per column of a @ b, ({n},)")
    a_t, b_t = _is_transposed(a), _is_transposed(b)
    if a_t and b_t:  # A^T B^T has no kernel: make A row-major, and use A B^T
        a, a_t = cupy.ascontiguousarray(a), False
    a = a.T if a_t else cupy.ascontiguousarray(a)  # the stored matrix: (K, M) for A^T, else (M, K)
    b = b.T if b_t else cupy.ascontiguousarray(b)
    name = {(False, False): "gemm_nn", (True, False): "gemm_tn", (False, True): "gemm_nt"}[a_t, b_t]
    fused = bias is not None and name == "gemm_nn"
    if fused:
        bias = cupy.ascontiguousarray(bias)  # gemm_bias reads b[n] from flat memory: a strided view is copied
    c = cupy.empty((m, n), dtype=a.dtype)
    if m and n:
        args = (a, b, bias, c) if fused else (a, b, c)
        grid = (math.ceil(m / TILE), math.ceil(n / TILE))  # blockIdx.x: M's tiles (M grows), blockIdx.y: N's
        kernel("gemm_bias" if fused else name, a.dtype)(grid, (TILE, TILE), (*args, *map(numpy.int32, (m, n, k))))
    return c if bias is None or fused else c + bias


def _is_transposed(x):
    """True for a transposed view of a row-major matrix (``x.T``): column-major, and not also row-major."""
    return x.flags.f_contiguous and not x.flags.c_contiguous


# --- the same index arithmetic in NumPy: the kernel's model, for tests without a GPU ------------------

def model_gemm(name, a, b, bias=None):
    """What kernel ``name`` writes, computed by walking its grid as the GPU does: every block, and in each
    block all TILE x TILE threads at once (NumPy arrays of threadIdx), tile by tile along K. ``a`` and
    ``b`` are the *stored* arrays the kernel is given (for gemm_tn, a is (K, M); for gemm_nt, b is (N, K))."""
    m_, k_ = (a.shape[1], a.shape[0]) if name == "gemm_tn" else a.shape
    n_ = b.shape[0] if name == "gemm_nt" else b.shape[1]
    sizes = {"M": m_, "N": n_, "K": k_, "1": 1}
    a_row, a_col, b_row, b_col = (sizes[s] for s in STRIDES[name])
    A, B = a.reshape(-1), b.reshape(-1)  # the kernel sees flat memory
    C = numpy.full(m_ * n_, numpy.nan, dtype=a.dtype)  # NaN: an entry that no thread writes would show
    ty, tx = numpy.indices((TILE, TILE))  # threadIdx.y, threadIdx.x of each thread in a block
    zero = a.dtype.type(0)
    for block_x in range(math.ceil(m_ / TILE)):  # blockIdx.x: a tile of rows
        for block_y in range(math.ceil(n_ / TILE)):  # blockIdx.y: a tile of columns
            m, n = block_x * TILE + ty, block_y * TILE + tx  # each thread's entry of C
            acc = numpy.zeros((TILE, TILE), dtype=a.dtype)
            for k0 in range(0, k_, TILE):
                ka, kb = k0 + tx, k0 + ty
                in_a, in_b = (m < m_) & (ka < k_), (kb < k_) & (n < n_)
                As = numpy.where(in_a, A[numpy.where(in_a, m * a_row + ka * a_col, 0)], zero)  # As[ty][tx]
                Bs = numpy.where(in_b, B[numpy.where(in_b, kb * b_row + n * b_col, 0)], zero)  # Bs[ty][tx]
                for k in range(TILE):
                    acc = acc + As[ty, k] * Bs[k, tx]  # acc += As[ty][k] * Bs[k][tx], rounded twice (no FMA)
            inside = (m < m_) & (n < n_)
            value = acc + bias[n % n_] if bias is not None else acc
            C[(m * n_ + n)[inside]] = value[inside]
    return C.reshape(m_, n_)
