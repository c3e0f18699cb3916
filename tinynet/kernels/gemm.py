"""tinynet's own matrix products for the GPU: a 16 x 16 shared-memory tiled GEMM, as CuPy RawKernels.

Why not CuPy's ``@``? It calls cuBLAS, and CuPy 14 refuses cuBLAS while a stream is being captured into a
CUDA graph (CuPy issue #6290). The captured training step (``tinynet/models/graph.py``) therefore does its
matrix products here; everywhere else (predict, evaluate, ``jit_compile=False``) CuPy's ``@`` is used.
``tinynet.backend.matmul`` chooses. The kernels are compiled the first time one is called, on CuPy only.

The family, seven kernels around one tile loop (``gemm_tile``), each one line of math:

    gemm_nn         C = A B        C[m, n] = sum_k A[m, k] B[k, n]          z = x W     (Dense forward)
    gemm_tn         C = A^T B      C[m, n] = sum_k A[k, m] B[k, n]          dW = x^T dz
    gemm_nt         C = A B^T      C[m, n] = sum_k A[m, k] B[n, k]          dx = dz W^T
    gemm_bias       z = x W + b    z[m, n] = sum_k x[m, k] W[k, n] + b[n]   (Dense forward, fused)
    gemm_bias_relu  y = max(x W + b, 0)                                     (Dense + ReLU forward, fused)
    gemm_tn_db      [dW; db] = [x, 1]^T dz,  dz = dy * (mask > 0)           (Dense + ReLU backward, fused)
    gemm_nt_mask    dx = dz W^T,             dz = dy * (mask > 0)           (Dense + ReLU backward, fused)

and one kernel that runs two of them in one launch, side by side in one grid:

    dense_backward  gemm_tn_db's [dW; db] and gemm_nt_mask's dx                 (Dense backward, one launch)

Each kernel only says where A[m, k] and B[k, n] live in memory: element (m, k) of the left matrix is
``A[m * a_row + k * a_col]`` (its two strides, in elements), and the same for B. A transpose is nothing but
swapped strides: A^T stored as the (K, M) array A has a_row = 1, a_col = M. And it says which of the tile
loop's small hooks it turns on (``Hooks`` in SOURCE): a ReLU mask applied to an operand as it is loaded, a row
of ones below A^T (whose row of C is the column sums of B: Dense's db), a bias added and a ReLU applied as C is
written. The loop itself, and so the order of every sum, is the same for all seven.

The last three are Dense's steps fused (``tinynet/layers/dense.py``, its ``forward_compiled`` and
``backward_compiled``, on CuPy inside ``backend.own_gemm()``): in a step captured into a CUDA graph every kernel
is a node costing a few microseconds, and a Dense(..., activation='relu') layer is then one kernel forward
(was 2: the product, the ReLU) and one backward (was 4: ReLU's mask, dW, db, dx): dW's and dx's products do not
depend on each other, so dense_backward runs both in one grid (a first layer, which needs no dx, runs
gemm_tn_db). The mask dz = dy * (mask > 0) is never stored: each product reads dz through it.

Split-K. At batch 32 C is small (32 x 512: 64 blocks of a GPU's 132 SMs) while K is long (784): one block per
tile of C would walk K's 49 tiles one after another, its time their latency. ``splits`` shares K out among up to
a few blocks per tile (blockIdx.z), each summing its range into a buffer; the last of them to finish adds the
partial sums in a fixed order and writes C (SOURCE's gemm_tile says how). The seed model's forward products are
split in 4 and 8; its weight gradients, whose C has hundreds of tiles and whose K is the batch, are not.
``BUSY_BLOCKS = 0`` turns it off.

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

// What a kernel adds to the plain product C = A B, around the one tile loop below; each is off (0) unless the
// kernel turns it on. Prologue hooks change how an operand's entry is read as it is loaded into the tile,
// epilogue hooks what is written from the sum:
//   a_mask   prologue  A(m, k) is read as A(m, k) * (T)(a_mask(m, k) > 0), a_mask read at A(m, k)'s offset (laid
//                      out as A is): ReLU's backward dz = dy * (T)(x > 0) (tinynet/kernels/relu.py), computed
//                      as each entry of dz is loaded, never stored
//   b_mask   prologue  the same for B(k, n)
//   ones_row prologue  A gets one more row, m = M, of ones: C gets row M = sum_k 1 * B(k, n), B's column sums
//   bias     epilogue  C[m, n] = acc + bias[n]
//   relu     epilogue  C[m, n] = max(acc (+ bias[n]), 0), as NumPy's maximum (relu() below)
// And how K is shared out (split-K, below): `splits` blocks along the grid's z each sum one range of K into
// `partial`; `arrivals` counts, per tile of C, the blocks that are done. splits = 1: one block sums all of K.
template <typename T>
struct Hooks {
    const T* a_mask;
    const T* b_mask;
    int ones_row;
    const T* bias;
    int relu;
    int splits;
    T* partial;
    int* arrivals;
};

// The hooks of a kernel launched with `splits` blocks along z (every kernel's last three arguments); the
// kernel then turns on its own prologue and epilogue hooks.
template <typename T>
__device__ Hooks<T> split_k(T* partial, int* arrivals, int splits) {
    Hooks<T> hooks = {};
    hooks.splits = splits;
    hooks.partial = partial;
    hooks.arrivals = arrivals;
    return hooks;
}

// An operand's entry X[i] as the tile loop reads it: X[i], or X[i] * (T)(mask[i] > 0) where there is a mask:
// the readable dy * astype(x > 0) entry by entry, a product with 1 or 0, not a choice, so that it keeps what that
// product gives: -0 for a negative dy masked off, NaN for an infinite or NaN dy masked off (inf * 0).
template <typename T>
__device__ T masked(const T* X, const T* mask, long long i) {
    return mask ? X[i] * (T)(mask[i] > 0) : X[i];
}

// y = max(z, 0) as NumPy's maximum(z, 0.0) computes it: NaN stays NaN (CUDA's fmaxf would return 0), and -0
// becomes +0 (NumPy's maximum returns its second argument when the two are equal).
template <typename T>
__device__ T relu(T z) {
    return (z > 0 || isnan(z)) ? z : (T)0;
}

// The part of C a block computes: tile (m, n) of C's tiles, which has `columns` tiles per row, over range
// `split` of K. A kernel of one product takes it from the block's place in the grid (this_block); dense_backward,
// which puts two products in one grid, from the block's place among its product's blocks.
struct Tile {
    int m, n, split, columns;
};

__device__ Tile this_block() {
    Tile tile = {(int)blockIdx.x, (int)blockIdx.y, (int)blockIdx.z, (int)gridDim.y};
    return tile;
}

// C[m, n] from the sum acc: the epilogue hooks, bias then ReLU.
template <typename T>
__device__ T epilogue(T acc, const Hooks<T>& hooks, int n) {
    T c = hooks.bias ? acc + hooks.bias[n] : acc;  // C[m, n] = acc + bias[n]
    return hooks.relu ? relu(c) : c;               // C[m, n] = max(acc + bias[n], 0)
}

// The entry (i, j) of a TILE x TILE operand tile that thread (tx, ty) loads: (ty, tx), so that tx walks j, when
// the operand's entries (i, j) and (i, j + 1) are neighbours in memory (j_stride = 1); else (tx, ty).
struct Entry {
    int i, j;
};

__device__ Entry load_at(int j_stride) {
    int tx = threadIdx.x, ty = threadIdx.y;
    return j_stride == 1 ? Entry{ty, tx} : Entry{tx, ty};
}

// One TILE x TILE tile of C = A B, with the hooks above, per block of TILE x TILE threads (`tile` says which):
//   C[m, n] = sum_k A(m, k) B(k, n),
//   A(m, k) = A[m * a_row + k * a_col],   B(k, n) = B[k * b_row + n * b_col]   (strides in elements)
// C is (rows, N), row-major, rows = M, or M + 1 with the ones row.
// Thread mapping: the block of tile (tile.m, tile.n) owns rows tile.m * TILE ... + TILE - 1 and columns
// tile.n * TILE ... + TILE - 1 of C; thread (threadIdx.x, threadIdx.y) computes the one entry
//   m = tile.m * TILE + threadIdx.y,   n = tile.n * TILE + threadIdx.x.
// In a kernel of one product, tile (m, n, split) is the block's (blockIdx.x, blockIdx.y, blockIdx.z).
// Row tiles go along the grid's x, which may hold 2^31 - 1 blocks (y: 65535), as M is what grows: the batch,
// times the output positions in a convolution. Within a block threadIdx.x walks n, so that neighbouring threads
// read neighbouring entries of B's row and write neighbouring entries of C's.
// The K axis is walked one tile at a time: at tile k0 each thread loads ONE entry of A's tile and ONE of B's
// into shared memory (As[i][j] = A(tile.m * TILE + i, k0 + j), Bs[i][j] = B(k0 + i, tile.n * TILE + j); zero
// outside the matrices, so ragged edges add 0), all threads wait, then each adds its row of As times its
// column of Bs. The sum runs over k in order, whatever the hooks: they change what is loaded and what is
// written only. Which entry (i, j) a thread loads depends on how the operand is stored (load_at): a warp's
// loads are fastest when neighbouring threads (tx, tx + 1) read neighbouring addresses, so tx walks the axis
// whose stride is 1: j for A stored (M, K) (a_col = 1), i for A^T stored (K, M) (a_row = 1), and the same for B.
// A tile row is TILE + 1 long, so that the threads writing As[tx][ty] down a column use different banks of
// shared memory.
//
// Split-K. A batch of 32 makes C small (32 x 512: 64 blocks, half a GPU's 132 SMs idle) while K is long (784):
// each thread's 49 tiles then run one after another, and the time is their latency. With splits = S, the block
// of tile.split = s takes only K's tiles s * per ... (s + 1) * per - 1 (per = ceil(tiles / S)): S times the
// blocks, each walking a 1/S of K. Block s writes its sum to partial[s][m][n]; the LAST of the S blocks of a
// tile to finish (counted by atomicAdd on arrivals[tile], as in tinynet/kernels/batches.py) adds the S partial
// sums in the order s = 0, 1, ..., S - 1, so the result is the same at every run, applies the epilogue and
// writes C, and puts the count back to 0 for the next launch.
template <typename T>
__device__ void gemm_tile(const T* A, int a_row, int a_col, const T* B, int b_row, int b_col, Hooks<T> hooks,
                          T* C, int M, int N, int K, Tile tile) {
    __shared__ T As[TILE][TILE + 1];  // As[i][k]: A(tile.m * TILE + i, k0 + k); + 1: see above
    __shared__ T Bs[TILE][TILE + 1];  // Bs[k][j]: B(k0 + k, tile.n * TILE + j)
    __shared__ int last;  // split-K: 1 in the block that adds the partial sums
    int tx = threadIdx.x, ty = threadIdx.y;
    int m = tile.m * TILE + ty;  // this thread's row of C
    int n = tile.n * TILE + tx;  // this thread's column of C
    int rows = M + hooks.ones_row;  // C's rows: A's M, and the row of ones if there is one
    int per = ((K + TILE - 1) / TILE + hooks.splits - 1) / hooks.splits;  // K's tiles per split
    int k_begin = tile.split * per * TILE;  // this block's range of K: [k_begin, k_end)
    int k_end = min(K, k_begin + per * TILE);
    Entry a = load_at(a_col), b = load_at(b_col);  // the entries of A's tile and of B's this thread loads
    int ma = tile.m * TILE + a.i, nb = tile.n * TILE + b.j;  // their row of A and column of B
    T acc = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += TILE) {
        int ka = k0 + a.j, kb = k0 + b.i;  // their k
        long long ia = (long long)ma * a_row + (long long)ka * a_col;  // where A(ma, ka) is
        long long ib = (long long)kb * b_row + (long long)nb * b_col;  // where B(kb, nb) is
        // As[a.i][a.j] = A(ma, ka) through a_mask; 1 in the row of ones (M <= ma < rows); 0 outside the matrix
        As[a.i][a.j] = (ka >= K) ? (T)0 : (ma < M) ? masked(A, hooks.a_mask, ia) : (ma < rows) ? (T)1 : (T)0;
        Bs[b.i][b.j] = (kb < K && nb < N) ? masked(B, hooks.b_mask, ib) : (T)0;  // B(kb, nb) through b_mask
        __syncthreads();  // the whole tile is loaded
        for (int k = 0; k < TILE; k++) {
            acc += As[ty][k] * Bs[k][tx];  // C[m, n] += A(m, k0 + k) B(k0 + k, n)
        }
        __syncthreads();  // everyone is done with this tile before the next overwrites it
    }
    bool inside = m < rows && n < N;
    long long at = (long long)m * N + n;  // C[m, n]: C is (rows, N), row-major
    if (hooks.splits == 1) {
        if (inside) {
            C[at] = epilogue(acc, hooks, n);
        }
        return;
    }
    long long plane = (long long)rows * N;  // partial is (splits, rows, N)
    if (inside) {
        hooks.partial[tile.split * plane + at] = acc;  // partial[s][m][n]: this block's sum over its range
    }
    __threadfence();  // this thread's partial sum is seen by every block before the count below says it is there
    __syncthreads();  // every thread of the block has written it
    if (tx == 0 && ty == 0) {
        int counter = tile.m * tile.columns + tile.n;  // this tile of C's counter
        last = atomicAdd(&hooks.arrivals[counter], 1) == hooks.splits - 1;  // the count before: S - 1 for the last
        if (last) {
            hooks.arrivals[counter] = 0;  // every block of the tile has counted: ready for the next launch
        }
    }
    __syncthreads();  // every thread sees `last`
    if (last && inside) {
        __threadfence();
        T sum = __ldcg(&hooks.partial[at]);  // __ldcg: read from L2, where the other blocks' writes are
        for (int s = 1; s < hooks.splits; s++) {
            sum += __ldcg(&hooks.partial[s * plane + at]);  // C[m, n] = partial[0] + partial[1] + ... in order
        }
        C[at] = epilogue(sum, hooks, n);
    }
}

// C = A B:      C[m, n] = sum_k A[m, k] B[k, n];   A (M, K), B (K, N), C (M, N), all row-major.
template <typename T>
__global__ void gemm_nn(const T* A, const T* B, T* C, T* partial, int* arrivals,
                        int M, int N, int K, int splits) {
    Hooks<T> hooks = split_k(partial, arrivals, splits);
    gemm_tile<T>(A, K, 1, B, N, 1, hooks, C, M, N, K, this_block());
}

// C = A^T B:    C[m, n] = sum_k A[k, m] B[k, n];   A stored (K, M), B (K, N): A^T(m, k) = A[k * M + m].
template <typename T>
__global__ void gemm_tn(const T* A, const T* B, T* C, T* partial, int* arrivals,
                        int M, int N, int K, int splits) {
    Hooks<T> hooks = split_k(partial, arrivals, splits);
    gemm_tile<T>(A, 1, M, B, N, 1, hooks, C, M, N, K, this_block());
}

// C = A B^T:    C[m, n] = sum_k A[m, k] B[n, k];   A (M, K), B stored (N, K): B^T(k, n) = B[n * K + k].
template <typename T>
__global__ void gemm_nt(const T* A, const T* B, T* C, T* partial, int* arrivals,
                        int M, int N, int K, int splits) {
    Hooks<T> hooks = split_k(partial, arrivals, splits);
    gemm_tile<T>(A, K, 1, B, 1, K, hooks, C, M, N, K, this_block());
}

// z = x W + b:  z[m, n] = sum_k x[m, k] W[k, n] + b[n];   x (M, K), W (K, N), b (N,): one kernel, not two.
template <typename T>
__global__ void gemm_bias(const T* x, const T* W, const T* b, T* z, T* partial, int* arrivals,
                          int M, int N, int K, int splits) {
    Hooks<T> hooks = split_k(partial, arrivals, splits);
    hooks.bias = b;
    gemm_tile<T>(x, K, 1, W, N, 1, hooks, z, M, N, K, this_block());
}

// y = max(x W + b, 0):  y[m, n] = relu(sum_k x[m, k] W[k, n] + b[n]);   as gemm_bias, then ReLU on each entry
// as it is written: Dense(activation='relu')'s forward in one kernel. b may be NULL (a Dense without bias).
template <typename T>
__global__ void gemm_bias_relu(const T* x, const T* W, const T* b, T* y, T* partial, int* arrivals,
                               int M, int N, int K, int splits) {
    Hooks<T> hooks = split_k(partial, arrivals, splits);
    hooks.bias = b;
    hooks.relu = 1;
    gemm_tile<T>(x, K, 1, W, N, 1, hooks, y, M, N, K, this_block());
}

// [dW; db] = [x, 1]^T dz,   dz = dy * (T)(mask > 0):  Dense's weight and bias gradients in one kernel.
//   rows m < M:  dW[m, n] = sum_k x[k, m] dz[k, n]   (gemm_tn's A^T B, A = x stored (K, M) = (batch, in))
//   row  m = M:  db[n]    = sum_k 1 * dz[k, n]       (a row of ones below A^T: the column sums of dz)
// x (K, M), dy and mask (K, N) = (batch, units), C (M + 1, N). mask may be NULL: then dz = dy.
template <typename T>
__global__ void gemm_tn_db(const T* x, const T* dy, const T* mask, T* C, T* partial, int* arrivals,
                           int M, int N, int K, int splits) {
    Hooks<T> hooks = split_k(partial, arrivals, splits);
    hooks.b_mask = mask;
    hooks.ones_row = 1;
    gemm_tile<T>(x, 1, M, dy, N, 1, hooks, C, M, N, K, this_block());
}

// dx = dz W^T,   dz = dy * (T)(mask > 0):  dx[m, n] = sum_k dz[m, k] W[n, k];   dy and mask (M, K) =
// (batch, units), W stored (N, K) = (in, units), dx (M, N): gemm_nt with dz read through ReLU's mask as it is
// loaded. mask may be NULL: then dz = dy.
template <typename T>
__global__ void gemm_nt_mask(const T* dy, const T* W, const T* mask, T* dx, T* partial, int* arrivals,
                             int M, int N, int K, int splits) {
    Hooks<T> hooks = split_k(partial, arrivals, splits);
    hooks.a_mask = mask;
    gemm_tile<T>(dy, K, 1, W, 1, K, hooks, dx, M, N, K, this_block());
}

// Tile b of a product whose C has `columns` tiles per row and whose K is split in `splits`: b counts the
// product's blocks in the order (tile row, tile column, split).
__device__ Tile nth_tile(int b, int columns, int splits) {
    Tile tile = {b / (columns * splits), (b / splits) % columns, b % splits, columns};
    return tile;
}

// Dense's backward in ONE launch: its two products of dz, which do not depend on each other, side by side in
// one grid of w_blocks + x_blocks blocks (blockIdx.x only), dz = dy * (T)(mask > 0), or dz = dy where mask is NULL:
//   blocks 0 ... w_blocks - 1:  [dW; db] = [x, 1]^T dz   gemm_tn_db's product: dWdb (in + 1, units), K = batch
//   the x_blocks after them:    dx = dz W^T              gemm_nt_mask's product: dx (batch, in), K = units
// x (batch, in), dy and mask (batch, units), W (in, units). Each product has its own tiles, its own split of K
// (w_splits, x_splits) and its own split-K buffers. One node in a CUDA graph instead of two, and the GPU runs
// both products' blocks at once.
template <typename T>
__global__ void dense_backward(const T* x, const T* dy, const T* mask, const T* W, T* dWdb, T* dx,
                               T* w_partial, int* w_arrivals, T* x_partial, int* x_arrivals,
                               int batch, int in, int units, int w_splits, int x_splits) {
    int w_columns = (units + TILE - 1) / TILE, x_columns = (in + TILE - 1) / TILE;
    int w_blocks = (in + 1 + TILE - 1) / TILE * w_columns * w_splits;
    int b = blockIdx.x;
    if (b < w_blocks) {  // [dW; db] = [x, 1]^T dz: as gemm_tn_db
        Hooks<T> hooks = split_k(w_partial, w_arrivals, w_splits);
        hooks.b_mask = mask;
        hooks.ones_row = 1;
        gemm_tile<T>(x, 1, in, dy, units, 1, hooks, dWdb, in, units, batch, nth_tile(b, w_columns, w_splits));
    } else {  // dx = dz W^T: as gemm_nt_mask
        Hooks<T> hooks = split_k(x_partial, x_arrivals, x_splits);
        hooks.a_mask = mask;
        gemm_tile<T>(dy, units, 1, W, 1, units, hooks, dx, batch, in, units,
                     nth_tile(b - w_blocks, x_columns, x_splits));
    }
}
"""

KERNELS = ("gemm_nn", "gemm_tn", "gemm_nt", "gemm_bias", "gemm_bias_relu", "gemm_tn_db", "gemm_nt_mask")
GROUPED = ("dense_backward",)  # two of the products above in one launch
DTYPES = {"float32": "float", "float64": "double"}

# Where each kernel finds A(m, k) and B(k, n): (a_row, a_col, b_row, b_col), as SOURCE passes them to
# gemm_tile; and which of gemm_tile's hooks it turns on (tests/test_gemm_kernels.py checks SOURCE agrees).
STRIDES = {"gemm_nn": ("K", "1", "N", "1"), "gemm_tn": ("1", "M", "N", "1"),
           "gemm_nt": ("K", "1", "1", "K"), "gemm_bias": ("K", "1", "N", "1"),
           "gemm_bias_relu": ("K", "1", "N", "1"), "gemm_tn_db": ("1", "M", "N", "1"),
           "gemm_nt_mask": ("K", "1", "1", "K")}
HOOKS = {"gemm_nn": (), "gemm_tn": (), "gemm_nt": (), "gemm_bias": ("bias",), "gemm_bias_relu": ("bias", "relu"),
         "gemm_tn_db": ("b_mask", "ones_row"), "gemm_nt_mask": ("a_mask",)}


@functools.cache
def _module():
    """The compiled kernels (CuPy, on first use): one RawModule, each kernel for float32 and float64."""
    import cupy
    names = [f"{kernel}<{ctype}>" for kernel in KERNELS + GROUPED for ctype in DTYPES.values()]
    return cupy.RawModule(code=SOURCE, options=("--fmad=false",), name_expressions=names)


def kernel(name, dtype):
    """The RawKernel ``name`` (one of KERNELS or GROUPED) for arrays of ``dtype`` (float32 or float64)."""
    return _module().get_function(f"{name}<{DTYPES[numpy.dtype(dtype).name]}>")


# Split-K (SOURCE's gemm_tile says how): below BUSY_BLOCKS blocks, about two per SM of an H100 or H200 (132 SMs),
# K is split so that the grid has about that many, each split but the last walking at least MIN_TILES of K's tiles.
BUSY_BLOCKS = 256
MIN_TILES = 4


def splits(rows, n, k):
    """How many blocks share K for a C of (rows, n): 1 when C's tiles alone keep the GPU busy or K is short;
    else as many as bring the grid to about BUSY_BLOCKS, none of them with an empty range of K (an empty range
    would add a +0 that turns a -0 sum into +0)."""
    blocks, tiles = math.ceil(rows / TILE) * math.ceil(n / TILE), math.ceil(k / TILE)
    wanted = min(math.ceil(BUSY_BLOCKS / max(blocks, 1)), tiles // MIN_TILES)
    if wanted <= 1:
        return 1
    per = math.ceil(tiles / wanted)  # K's tiles per split, as SOURCE computes it
    return math.ceil(tiles / per)  # the splits that get some of them


@functools.cache
def _workspace(dtype, count, rows, n, role=""):
    """The split-K buffers of a product (rows, n) in ``count`` splits: ``partial`` (count, rows, n), each split's
    sums, and ``arrivals``, one counter per tile of C, 0 (the kernel puts each back to 0). Made once per shape
    and kept, so that a captured step's products use buffers that outlive the capture, and never need zeroing
    again (a memset would be one more node in the graph). One stream runs the products one after another: two
    products of one shape may share them, unless they run in ONE launch (dense_backward: [dW; db] and dx, whose
    C are both (129, 128) at batch 129 and in = units = 128): ``role`` tells those apart."""
    import cupy
    if cupy.cuda.get_current_stream().is_capturing():  # cupy.zeros' memset would be a node of the graph, and the
        raise RuntimeError(  # counters unset until its first replay: graph.py's eager warm-up makes them first
            f"gemm: split-K buffers for a ({rows}, {n}) product made inside a CUDA graph capture; run it once "
            "eagerly first")
    tiles = math.ceil(rows / TILE) * math.ceil(n / TILE)
    return cupy.empty((count, rows, n), dtype=dtype), cupy.zeros(tiles, dtype=numpy.int32)


def split_k_arguments(dtype, rows, n, k, role=""):
    """How a product of a C (rows, n) summed over k is launched: (splits, partial, arrivals), the last two its
    split-K buffers (``_workspace``; ``role``: products of one launch need buffers of their own), or None (NULL)
    when K is not split."""
    count = splits(rows, n, k)
    buffers = _workspace(numpy.dtype(dtype).name, count, rows, n, role) if count > 1 else (None, None)
    return (count, *buffers)


def launch(name, pointers, m, n, k, rows=None):
    """Run kernel ``name`` on ``pointers`` (its array arguments, None for NULL) and the sizes M, N, K, with the
    grid its thread mapping needs for a C of ``rows`` (M unless given) x N: blockIdx.x walks the row tiles,
    blockIdx.y the column tiles, blockIdx.z the splits of K (``splits``). Nothing is launched for an empty C."""
    rows = m if rows is None else rows
    if rows and n:
        count, partial, arrivals = split_k_arguments(pointers[0].dtype, rows, n, k)
        grid = (math.ceil(rows / TILE), math.ceil(n / TILE), count)
        kernel(name, pointers[0].dtype)(grid, (TILE, TILE), (*pointers, partial, arrivals,
                                                             *map(numpy.int32, (m, n, k, count))))


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
    launch("gemm_bias" if fused else name, (a, b, bias, c) if fused else (a, b, c), m, n, k)
    return c if bias is None or fused else c + bias


def _is_transposed(x):
    """True for a transposed view of a row-major matrix (``x.T``): column-major, and not also row-major."""
    return x.flags.f_contiguous and not x.flags.c_contiguous


# --- Dense's steps, fused (Dense.forward_compiled and backward_compiled, tinynet/layers/dense.py) -------------

def fits(*arrays):
    """True when the kernels take these arrays: all of one dtype, float32 or float64 (None, a missing bias or
    mask, is left out). Anything else takes Dense's readable lines, on CuPy too."""
    dtypes = {numpy.dtype(a.dtype).name for a in arrays if a is not None}
    return len(dtypes) == 1 and dtypes <= set(DTYPES)


def dense_relu(x, w, b=None):
    """y = max(x W + b, 0) for CuPy arrays x (batch, in), W (in, units), b (units,) or None: ONE launch of
    gemm_bias_relu. Bit for bit gemm_bias then NumPy's maximum(z, 0.0): the same sum, then relu() on it."""
    import cupy
    (m, k), n = x.shape, w.shape[1]
    x, w = cupy.ascontiguousarray(x), cupy.ascontiguousarray(w)
    b = None if b is None else cupy.ascontiguousarray(b)  # read as b[n] from flat memory
    y = cupy.empty((m, n), dtype=x.dtype)
    launch("gemm_bias_relu", (x, w, b, y), m, n, k)
    return y


def weight_gradients(x, dy, mask=None):
    """(dL/dW, dL/db) from x (batch, in) and dz = dy * (mask > 0), or dz = dy when mask is None, both (batch,
    units): ONE launch of gemm_tn_db, which writes both into one array C of (in + 1, units):
        rows 0 .. in - 1:  C[:in] = x^T dz          dL/dW, (in, units)
        row  in:           C[in]  = 1^T dz          dL/db, the column sums of dz: a row of ones below x^T
    dW and db are views of C (its first ``in`` rows, and its last row), each C-contiguous.
    db is summed over the batch in order, k = 0, 1, ..., as the tile loop adds every column, not in cupy.sum's
    order: the two differ by rounding. The captured step and its eager warm-up both run this kernel, so the
    graph's replays compute what the warm-up did."""
    import cupy
    (k, m), n = x.shape, dy.shape[1]
    x, dy = cupy.ascontiguousarray(x), cupy.ascontiguousarray(dy)
    mask = None if mask is None else cupy.ascontiguousarray(mask)  # read at dy's offsets
    c = cupy.empty((m + 1, n), dtype=x.dtype)
    launch("gemm_tn_db", (x, dy, mask, c), m, n, k, rows=m + 1)  # C has a row more than x^T
    return c[:m], c[m]


def input_gradient(dy, w, mask=None):
    """dL/dx = dz W^T for dz = dy * (mask > 0), or dz = dy when mask is None, (batch, units), and W (in,
    units): ONE launch of gemm_nt_mask, dz read through the mask as it is loaded, never stored."""
    import cupy
    (m, k), n = dy.shape, w.shape[0]
    dy, w = cupy.ascontiguousarray(dy), cupy.ascontiguousarray(w)
    mask = None if mask is None else cupy.ascontiguousarray(mask)
    dx = cupy.empty((m, n), dtype=dy.dtype)
    launch("gemm_nt_mask", (dy, w, mask, dx), m, n, k)
    return dx


def dense_gradients(x, dy, w, mask=None):
    """(dL/dW, dL/db, dL/dx) of a Dense layer, in ONE launch of dense_backward: what ``weight_gradients`` and
    ``input_gradient`` compute, bit for bit (the same tiles, splits and sums), in one grid. x (batch, in), dy and
    mask (batch, units) or None, W (in, units). Where either product has no entries, the two launches instead."""
    import cupy
    (k, m), n = x.shape, dy.shape[1]  # batch, in, units
    if not (k and m and n):
        return (*weight_gradients(x, dy, mask), input_gradient(dy, w, mask))
    x, dy, w = cupy.ascontiguousarray(x), cupy.ascontiguousarray(dy), cupy.ascontiguousarray(w)
    mask = None if mask is None else cupy.ascontiguousarray(mask)
    c, dx = cupy.empty((m + 1, n), dtype=x.dtype), cupy.empty((k, m), dtype=x.dtype)
    w_splits, *w_buffers = split_k_arguments(x.dtype, m + 1, n, k)  # [dW; db]: (in + 1, units), summed over the batch
    x_splits, *x_buffers = split_k_arguments(x.dtype, k, m, n, role="dx")  # dx: (batch, in), over the units; its own
    # buffers even where its C has [dW; db]'s shape: both products' blocks run at once, in this one launch
    w_blocks = math.ceil((m + 1) / TILE) * math.ceil(n / TILE) * w_splits
    x_blocks = math.ceil(k / TILE) * math.ceil(m / TILE) * x_splits
    kernel("dense_backward", x.dtype)((w_blocks + x_blocks,), (TILE, TILE), (
        x, dy, mask, w, c, dx, *w_buffers, *x_buffers, *map(numpy.int32, (k, m, n, w_splits, x_splits))))
    return c[:m], c[m], dx


# --- the same index arithmetic in NumPy: the kernel's model, for tests without a GPU ------------------

def model_gemm(name, a, b, bias=None, mask=None, splits=1):
    """What kernel ``name`` writes, computed by walking its grid as the GPU does: every block, and in each
    block all TILE x TILE threads at once (NumPy arrays of threadIdx), tile by tile along K; with ``splits``
    blocks along z, each over its range of K, their partial sums then added in order s = 0, 1, .... ``a`` and
    ``b`` are the *stored* arrays the kernel is given (for gemm_tn and gemm_tn_db, a is (K, M); for gemm_nt and
    gemm_nt_mask, b is (N, K)); ``bias`` the bias of gemm_bias and gemm_bias_relu, ``mask`` the ReLU mask of
    gemm_tn_db (shaped as b) and gemm_nt_mask (shaped as a); None: NULL."""
    hooks = HOOKS[name]
    a_t, b_t = STRIDES[name][0] == "1", STRIDES[name][3] == "K"  # A stored as (K, M), B stored as (N, K)
    m_, k_ = (a.shape[1], a.shape[0]) if a_t else a.shape
    n_ = b.shape[0] if b_t else b.shape[1]
    rows = m_ + ("ones_row" in hooks)  # C's rows: one more for the row of ones
    sizes = {"M": m_, "N": n_, "K": k_, "1": 1}
    a_row, a_col, b_row, b_col = (sizes[s] for s in STRIDES[name])
    A, B = a.reshape(-1), b.reshape(-1)  # the kernel sees flat memory
    a_mask = mask.reshape(-1) if "a_mask" in hooks and mask is not None else None
    b_mask = mask.reshape(-1) if "b_mask" in hooks and mask is not None else None
    C = numpy.full(rows * n_, numpy.nan, dtype=a.dtype)  # NaN: an entry that no thread writes would show
    ty, tx = numpy.indices((TILE, TILE))  # threadIdx.y, threadIdx.x of each thread in a block
    zero, one = a.dtype.type(0), a.dtype.type(1)
    per = math.ceil(math.ceil(k_ / TILE) / splits)  # K's tiles per split
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf * 0, overflow: as the GPU computes them, silently
        for block_x in range(math.ceil(rows / TILE)):  # blockIdx.x: a tile of rows
            for block_y in range(math.ceil(n_ / TILE)):  # blockIdx.y: a tile of columns
                m, n = block_x * TILE + ty, block_y * TILE + tx  # each thread's entry of C
                partial = []
                for split in range(splits):  # blockIdx.z: a range of K
                    acc = numpy.zeros((TILE, TILE), dtype=a.dtype)
                    for k0 in range(split * per * TILE, min(k_, (split + 1) * per * TILE), TILE):
                        ka, kb = k0 + tx, k0 + ty
                        in_a, in_b = (m < m_) & (ka < k_), (kb < k_) & (n < n_)
                        As = numpy.where(in_a, model_masked(A, a_mask, numpy.where(in_a, m * a_row + ka * a_col, 0)),
                                         zero)
                        As = numpy.where((m >= m_) & (m < rows) & (ka < k_), one, As)  # the row of ones, if any
                        Bs = numpy.where(in_b, model_masked(B, b_mask, numpy.where(in_b, kb * b_row + n * b_col, 0)),
                                         zero)
                        for k in range(TILE):
                            acc = acc + As[ty, k] * Bs[k, tx]  # acc += As[ty][k] * Bs[k][tx], rounded twice (no FMA)
                    partial.append(acc)
                acc = partial[0]
                for more in partial[1:]:  # the last block of the tile: partial[0] + partial[1] + ..., in order
                    acc = acc + more
                inside = (m < rows) & (n < n_)
                value = acc + bias[n % n_] if bias is not None else acc
                value = model_relu(value) if "relu" in hooks else value
                C[(m * n_ + n)[inside]] = value[inside]
    return C.reshape(rows, n_)


def model_masked(X, mask, i):
    """SOURCE's masked(): X[i], or X[i] * (T)(mask[i] > 0), for arrays of flat indices i."""
    if mask is None:
        return X[i]
    return X[i] * numpy.where(mask[i] > 0, X.dtype.type(1), X.dtype.type(0))


def model_relu(z):
    """SOURCE's relu(): z where z > 0 or z is NaN, else +0."""
    return numpy.where((z > 0) | numpy.isnan(z), z, z.dtype.type(0))
