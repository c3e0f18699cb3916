"""Each of tinynet's CUDA kernels run from its C source, compiled for the CPU (tests/cuda_on_the_cpu.py), against
its NumPy model: through tinynet's own wrappers (tinynet/kernels), on the CuPy stand-in of tests/cupy_on_the_cpu.py.

- Every output equals the model's bit for bit, except softmax crossentropy's, whose exp and log are the host's
  libm here and NumPy's in the model (to a few units in the last place).
- With the threads of each block, and the blocks, run forward, in reverse and shuffled: a missing __syncthreads()
  would show as a difference.
- Under AddressSanitizer, in a subprocess: no kernel reads or writes outside its arrays.

The shapes are odd on purpose: ragged tiles, more rows than a block has threads, several blocks, a grid-stride loop
taken more than once, an empty tensor."""
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

import cuda_on_the_cpu
import cupy_on_the_cpu
from tinynet.kernels import batches, gemm, relu, rmsprop, running_means, softmax_crossentropy
from tinynet.optimizers import rmsprop as rmsprop_optimizer

pytestmark = pytest.mark.host_only("runs the kernels' CUDA C on the CPU, with a stand-in for CuPy")

SCHEDULES = ["forward", "reverse", "shuffle 7"]
DTYPES = [numpy.float32, numpy.float64]


def run_on_models_and_on_sources(monkeypatch, schedule, compute):
    """``compute(cupy)``'s arrays, once with each kernel's NumPy model and once with its CUDA C (threads in
    ``schedule``): two lists of NumPy arrays. ``compute`` makes its inputs anew each time (kernels write in place)."""
    results = []
    for sources in (None, schedule):
        cupy = cupy_on_the_cpu.module(cupy_on_the_cpu.Device(), sources=sources)
        monkeypatch.setitem(sys.modules, "cupy", cupy)
        cupy_on_the_cpu.clear_kernel_caches()
        try:
            results.append([numpy.array(cupy_on_the_cpu.plain(a)) for a in compute(cupy)])
        finally:
            cupy_on_the_cpu.clear_kernel_caches()
    return results


def assert_same_bits(got, expected):
    """Equal bit for bit: the same dtype, shape and bytes (so +0 is not -0, and NaN is the same NaN)."""
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype and g.shape == e.shape
        numpy.testing.assert_array_equal(g.view(f"u{g.itemsize}") if g.dtype.kind == "f" else g,
                                         e.view(f"u{e.itemsize}") if e.dtype.kind == "f" else e)


def odd_values(rng, shape, dtype):
    """Normal numbers, with a few zeros, negative zeros and negatives where a ReLU mask would cut them."""
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[2::7] = 0  # not at entry 0: where a tensor starts, a number must show whether it was written
    x.reshape(-1)[3::11] = -0.0
    return x


# --- the harness itself: it runs C as CUDA would, and it finds what it says it finds ----------------------------

HARNESS_SOURCE = r"""
struct Pair { double a; long long b; };

// out[t] = shared[(t + 1) % n] after each thread wrote shared[t] = x[t]: right only with the barrier.
template <int SYNC>
__global__ void neighbour(const float* x, float* out, int n) {
    __shared__ float shared[64];
    int t = threadIdx.x;
    shared[t] = x[t];
    if (SYNC) __syncthreads();
    out[t] = shared[(t + 1) % n];
}

// Block 1 reads shared memory that only block 0 wrote: undefined on a GPU, poison here.
__global__ void unwritten(float* out) {
    __shared__ float shared[4];
    if (blockIdx.x == 0) shared[threadIdx.x] = 7;
    __syncthreads();
    out[blockIdx.x * 4 + threadIdx.x] = shared[threadIdx.x];
}

// A barrier only the first two threads reach.
__global__ void divergent(float* out) {
    if (threadIdx.x < 2) __syncthreads();
    out[threadIdx.x] = 1;
}

// Every built-in index, a struct and scalars by value, a NULL pointer, and an atomic counter.
__global__ void indices(const Pair pair, float scale, const float* missing, float* out, int* count) {
    int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int threads = blockDim.x * blockDim.y * blockDim.z;
    out[block * threads + thread] = scale * (block * threads + thread) + pair.a * pair.b + (missing ? 1000 : 0);
    atomicAdd(count, 1);
}
"""
PAIR = numpy.dtype([("a", numpy.float64), ("b", numpy.int64)])


@pytest.fixture(scope="module")
def harness():
    return cuda_on_the_cpu.RawModule(HARNESS_SOURCE, ["neighbour<0>", "neighbour<1>"], structs={"Pair": PAIR})


def test_a_missing_syncthreads_reads_stale_shared_memory_in_some_schedule(harness):
    """Each thread reads what its neighbour wrote to shared memory: with the barrier, every schedule gives the
    neighbour's number; without it, a schedule where the neighbour runs later reads what was there before."""
    x = numpy.arange(1, 33, dtype=numpy.float32)
    for sync, agree in ((1, True), (0, False)):
        outputs = []
        for schedule in SCHEDULES:
            out = numpy.zeros(32, numpy.float32)
            harness.get_function(f"neighbour<{sync}>")((1,), (32,), (x, out, numpy.int32(32)), schedule)
            outputs.append(out)
        assert all(numpy.array_equal(o, numpy.roll(x, -1)) for o in outputs) == agree


def test_shared_memory_that_no_thread_of_the_block_wrote_reads_as_poison(harness):
    for schedule in SCHEDULES:
        out = numpy.zeros(8, numpy.float32)
        harness.get_function("unwritten")((2,), (4,), (out,), schedule)
        assert (out[:4] == 7).all() and (numpy.isnan(out[4:]).all() or (out[4:] > 1e38).all())  # 0xFF or 0x7F


def test_a_barrier_that_not_every_thread_reaches_is_an_error(harness):
    with pytest.raises(RuntimeError, match="not every thread of the block reached"):
        harness.get_function("divergent")((1,), (4,), (numpy.zeros(4, numpy.float32),))


def test_every_index_and_every_kind_of_argument_arrives_as_cuda_gives_them(harness):
    """A (3, 2, 2) grid of (4, 3, 2) blocks: each of the 288 threads writes its own entry, once; the struct, the
    float and the NULL pointer arrive as values; the atomic counts every thread."""
    out, count = numpy.full(288, numpy.nan, numpy.float32), numpy.zeros(1, numpy.int32)
    pair = numpy.array([(0.5, 4)], PAIR)
    for schedule in SCHEDULES:
        count[:] = 0
        harness.get_function("indices")((3, 2, 2), (4, 3, 2), (pair, numpy.float32(2), None, out, count), schedule)
        numpy.testing.assert_array_equal(out, 2 * numpy.arange(288, dtype=numpy.float32) + 2)
        assert count[0] == 288


# --- tinynet's kernels: the C writes what the model writes, in every schedule --------------------------------

# (M, K, N): one entry; ragged tiles on every axis; K split in 4 and in 10 (gemm.splits), the last block of each
# tile adding the partial sums, and the counters reused by the next product of the shape
GEMM_SHAPES = [(1, 1, 1), (33, 70, 17), (17, 5, 33), (17, 300, 5), (33, 785, 17),
               (300, 20, 5),  # weight_gradients: [dW; db] (21, 5) with K = 300 split in 4 (gemm_tn_db)
               (17, 20, 300),  # input_gradient: dx (17, 20) with K = 300 split in 4 (gemm_nt_mask)
               (7, 32, 16)]  # exact tiles: [dW; db]'s row of ones is a tile row of its own


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_products_c_writes_what_its_model_writes(monkeypatch, schedule, dtype):
    """gemm.py's kernels through its wrappers: matmul with A or B transposed and with a bias, Dense+ReLU's
    forward, its [dW; db] and its dx, apart and in one launch (dense_backward), with a ReLU mask and without."""
    def compute(cupy):
        rng, out, used = numpy.random.default_rng(0), [], set()
        for m, k, n in GEMM_SHAPES:
            used |= {(m, n, k, ""), (k + 1, n, m, ""), (m, k, n, ""), (m, k, n, "dx")}  # its products' (rows, n, K, role)
            a, b = odd_values(rng, (m, k), dtype), odd_values(rng, (k, n), dtype)
            bias, dy, mask = odd_values(rng, n, dtype), odd_values(rng, (m, n), dtype), odd_values(rng, (m, n), dtype)
            a_, b_, bias_, dy_, mask_ = (cupy.asarray(v) for v in (a, b, bias, dy, mask))
            a_t, b_t = cupy.asarray(numpy.ascontiguousarray(a.T)).T, cupy.asarray(numpy.ascontiguousarray(b.T)).T
            out += [gemm.matmul(a_, b_), gemm.matmul(a_t, b_), gemm.matmul(a_, b_t), gemm.matmul(a_, b_, bias_),
                    gemm.dense_relu(a_, b_, bias_), gemm.dense_relu(a_, b_),
                    *gemm.weight_gradients(a_, dy_, mask_), *gemm.weight_gradients(a_, dy_),
                    gemm.input_gradient(dy_, cupy.asarray(numpy.ascontiguousarray(b.T)).T.copy(), mask_),
                    gemm.input_gradient(dy_, cupy.asarray(odd_values(rng, (k, n), dtype))),
                    *gemm.dense_gradients(a_, dy_, cupy.asarray(odd_values(rng, (k, n), dtype)), mask_),
                    *gemm.dense_gradients(a_, dy_, cupy.asarray(odd_values(rng, (k, n), dtype)))]
        # every split-K counter is back to 0 after its launches (the model never touches them: 0 there too)
        counters = [gemm._workspace(numpy.dtype(dtype).name, gemm.splits(*s[:3]), s[0], s[1], s[3])[1]
                    for s in sorted(used) if gemm.splits(*s[:3]) > 1]
        assert len(counters) >= 4  # the split products of GEMM_SHAPES, and dense_backward's dx of its own
        return out + counters
    model, source = run_on_models_and_on_sources(monkeypatch, schedule, compute)
    assert_same_bits(source, model)


@pytest.mark.parametrize("schedule", ["shuffle 1", "shuffle 2"])
def test_dense_backwards_two_products_keep_their_split_k_buffers_apart_when_their_c_has_one_shape(monkeypatch,
                                                                                                  schedule):
    """[dW; db] is (in + 1, units) and dx (batch, in): at batch = in + 1 and in = units both C are one shape, and
    both products may be split alike. Their blocks run at once, in one launch, so sharing the partial sums and the
    arrival counters would mix them (shuffled blocks interleave the two products, as a GPU does)."""
    batch, inputs, units = 48, 47, 47
    monkeypatch.setattr(gemm, "MIN_TILES", 1)  # so that K = 47 or 48 (3 tiles) is split, as K >= 128 is in use
    assert gemm.splits(inputs + 1, units, batch) == gemm.splits(batch, inputs, units) == 3  # C and splits alike

    def compute(cupy):
        rng = numpy.random.default_rng(0)
        x, dy, w = (cupy.asarray(odd_values(rng, shape, numpy.float32))
                    for shape in ((batch, inputs), (batch, units), (inputs, units)))
        return gemm.dense_gradients(x, dy, w)
    model, source = run_on_models_and_on_sources(monkeypatch, schedule, compute)
    assert_same_bits(source, model)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_batch_gathers_c_cuts_what_its_model_cuts_and_moves_the_position(monkeypatch, schedule):
    """Four batches of 13 from 50 samples (the last ragged), x of (7, 3) float32 and y of 4 float64: two blocks per
    launch; then, with MAX_BLOCKS = 2, a batch of 40 whose threads take several entries each."""
    def compute(cupy):
        rng = numpy.random.default_rng(1)
        x = cupy.asarray(rng.standard_normal((50, 7, 3)).astype(numpy.float32))
        y = cupy.asarray(rng.standard_normal((50, 4)))
        order = cupy.asarray(rng.permutation(50).astype(numpy.int64))
        position, blocks_done = cupy.zeros((), numpy.int64), cupy.zeros((), numpy.int32)
        out = []
        for size in (13, 13, 13, 11):
            out += [*batches.gather_batch(x, y, order, position, blocks_done, size), position.copy(),
                    blocks_done.copy()]
        position[...] = 5
        with monkeypatch.context() as patch:
            patch.setattr(batches, "MAX_BLOCKS", 2)
            out += [*batches.gather_batch(x, y, order, position, blocks_done, 40), position.copy(),
                    blocks_done.copy()]
        return out
    model, source = run_on_models_and_on_sources(monkeypatch, schedule, compute)
    assert_same_bits(source, model)
    assert source[-2] == 45 and source[-1] == 0  # moved past the batch, and the counter back to 0


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_crossentropys_c_computes_what_its_model_does_to_the_last_bits_of_exp_and_log(monkeypatch, schedule,
                                                                                              dtype):
    """300 rows of 10 classes (each thread takes two rows, some one), large logits included, and a row of NaN
    and one with an infinite logit: p, dL/dz and the loss agree to a few units in the last place, and the NaN
    rows are NaN in both."""
    def compute(cupy):
        rng = numpy.random.default_rng(2)
        z = (rng.standard_normal((300, 10)) * 30).astype(dtype)
        z[7], z[8, 3] = numpy.nan, numpy.inf
        y = numpy.eye(10, dtype=dtype)[rng.integers(0, 10, 300)]
        return softmax_crossentropy.softmax_crossentropy(cupy.asarray(y), cupy.asarray(z))
    model, source = run_on_models_and_on_sources(monkeypatch, schedule, compute)
    ulps = 8 * numpy.finfo(dtype).eps
    for got, want in zip(source, model, strict=True):
        numpy.testing.assert_allclose(got, want, rtol=ulps, atol=0, equal_nan=True)
    assert numpy.isnan(source[0][7]).all() and numpy.isnan(source[2])  # a NaN row: NaN p, and a NaN loss


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_accuracy", [True, False])
def test_the_running_means_c_adds_what_its_model_adds(monkeypatch, schedule, dtype, with_accuracy):
    """Three batches (300, 300 and 77 rows of 10 classes: some threads take two rows), ties and a NaN among the
    predictions, and an infinite loss in the second batch: every total, and the step of the first bad loss."""
    def compute(cupy):
        rng = numpy.random.default_rng(3)
        totals = [cupy.zeros((), dtype), cupy.zeros((), dtype), cupy.zeros((), numpy.int64),
                  cupy.zeros((), numpy.int64), cupy.asarray(numpy.array(running_means.NOT_YET, numpy.int64)),
                  cupy.zeros((), dtype)]
        for n, loss in ((300, 0.5), (300, numpy.inf), (77, 0.25)):
            y_hat = rng.integers(0, 3, (n, 10)).astype(dtype)  # small integers: many ties
            y_hat[5, 2] = numpy.nan
            y = numpy.eye(10, dtype=dtype)[rng.integers(0, 10, n)]
            total_accuracy = totals[1] if with_accuracy else None
            running_means.running_means_add(cupy.asarray(numpy.array(loss, dtype)), cupy.asarray(y),
                                            cupy.asarray(y_hat), totals[0], total_accuracy, *totals[2:])
        return totals
    model, source = run_on_models_and_on_sources(monkeypatch, schedule, compute)
    assert_same_bits(source, model)
    assert source[2] == 677 and source[3] == 3 and source[4] == 1  # samples, batches, the first bad batch


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_rmsprops_one_launch_c_updates_what_its_model_updates(monkeypatch, schedule):
    """Parameters of 0, 1, 300, 17 x 33 and 5 entries in float32 and two in float64, then 65 small ones (more
    than one table holds: two launches), with MAX_BLOCKS = 2 so that every thread walks several tensors; tiny
    gradients, flushed. Every w and v."""
    def compute(cupy):
        rng = numpy.random.default_rng(4)
        shapes = [(0,), (1,), (300,), (17, 33), (5,)] + [(3,)] * 65
        tensors = []
        for i, shape in enumerate(shapes):
            dtype = numpy.float64 if i in (2, 4) else numpy.float32
            w, g = odd_values(rng, shape, dtype), odd_values(rng, shape, dtype)
            g.reshape(-1)[1::13] = 1e-30  # its square is below the normal range: flushed
            v = numpy.abs(odd_values(rng, shape, dtype))
            tensors.append(tuple(cupy.asarray(a) for a in (w, g, v)))
        with monkeypatch.context() as patch:
            patch.setattr(rmsprop, "MAX_BLOCKS", 2)
            rmsprop.rmsprop_all(tensors, 0.01, 0.9, 1e-7)
        return [a for w, _, v in tensors for a in (w, v)]
    model, source = run_on_models_and_on_sources(monkeypatch, schedule, compute)
    assert_same_bits(source, model)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_elementwise_kernels_c_computes_what_their_models_do(monkeypatch, dtype):
    """ReLU's backward and RMSprop's per-parameter update (CuPy writes their loops; cuda_on_the_cpu writes the
    same loop), the latter on a transposed view, as the one-launch kernel does not take it."""
    def compute(cupy):
        rng = numpy.random.default_rng(5)
        x, dy = (cupy.asarray(odd_values(rng, (13, 7), dtype)) for _ in range(2))
        dy[0, :3] = cupy.asarray(numpy.array([numpy.inf, numpy.nan, -1], dtype))
        w, g, v = (cupy.asarray(numpy.ascontiguousarray(odd_values(rng, (7, 13), dtype))).T for _ in range(3))
        v = abs(v)
        v[:3, 0] = cupy.asarray(numpy.full(3, numpy.finfo(dtype).smallest_normal, dtype))  # rho * v: flushed
        g[:3, 0] = 0
        rmsprop_optimizer._cupy_update_step()(w, g, v, 0.01, 0.9, 1e-7)
        with numpy.errstate(invalid="ignore"):  # the model's inf * 0, as the kernel computes it
            return [relu.relu_backward(x, dy), w, v]
    model, source = run_on_models_and_on_sources(monkeypatch, "forward", compute)
    assert_same_bits(source, model)


# --- AddressSanitizer: no kernel touches memory outside its arrays ---------------------------------------------

def asan_environment():
    """The environment that runs Python with AddressSanitizer's runtime preloaded and the kernels compiled with
    it; a skip (a failure in CI) when the compiler has no libasan."""
    found = subprocess.run([cuda_on_the_cpu.compiler(), "-print-file-name=libasan.so"], capture_output=True,
                           text=True).stdout.strip()
    if not os.path.isabs(found) or not os.path.exists(found):
        message = "the C++ compiler has no AddressSanitizer runtime (libasan): apt-get install g++ brings it"
        if os.environ.get("CI"):
            pytest.fail(message + ". CI is set, so this fails instead of skipping.")
        pytest.skip(message)
    return {**os.environ, "LD_PRELOAD": found, "TINYNET_CUDA_ASAN": "1",
            "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1"}


OUT_OF_BOUNDS = r"""
import sys
sys.path.insert(0, "tests")
import numpy, cuda_on_the_cpu
module = cuda_on_the_cpu.RawModule('''
__global__ void one_too_far(const float* x, float* out, int n) { out[0] = x[n]; }
''')
x = numpy.ones(17, numpy.float32)
module.get_function("one_too_far")((1,), (1,), (x, numpy.zeros(1, numpy.float32), numpy.int32(17)))
"""


def test_under_address_sanitizer_a_read_one_past_an_array_stops_the_process_naming_the_line(tmp_path):
    """The check below finds what it looks for: a kernel that reads x[n] of an array of n is stopped."""
    done = subprocess.run([sys.executable, "-c", OUT_OF_BOUNDS], capture_output=True, text=True,
                          env={**asan_environment(), "TMPDIR": str(tmp_path)},  # it aborts: no cleanup
                          cwd=Path(__file__).parent.parent, timeout=300)
    assert done.returncode != 0 and "heap-buffer-overflow" in done.stderr and "one_too_far" in done.stderr, \
        done.stderr[-3000:]


def test_under_address_sanitizer_no_kernel_reads_or_writes_outside_its_arrays(tmp_path):
    """This file's tests, and the whole fit on the CuPy path running the kernels' C, run again in a subprocess
    with AddressSanitizer: any access outside an array would stop it, naming the kernel's line."""
    tests = [f"{__file__}", "-k", "not address_sanitizer",
             str(Path(__file__).parent / "test_cupy_path_on_the_cpu.py") + "::"
             "test_fit_on_the_cupy_path_running_each_kernels_cuda_c_learns_what_numpy_fit_learns"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--capture=sys", "-p", "no:cacheprovider", *tests],
                          capture_output=True, text=True, env={**asan_environment(), "TMPDIR": str(tmp_path)},
                          cwd=Path(__file__).parent.parent, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    assert "AddressSanitizer" not in done.stderr, done.stderr[-5000:]
