"""tinynet/kernels/batches.py: the one-launch batch cut. Its NumPy model (which walks the blocks, the threads
and the counter as the kernel does) equals ``Batches.batch``'s readable lines bit for bit on any machine; the
last block alone moves the position, whatever order the blocks finish in; the CUDA source compiles with NVRTC
(no GPU needed); the CuPy path is wired in; on a GPU, the kernel itself."""
import re

import numpy
import pytest

from conftest import BACKENDS_UNDER_TEST, on_numpy
from nvrtc import nvrtc_compile
from tinynet import backend
from tinynet.kernels import batches as kernel
from tinynet.models.batches import Batches
from tinynet.utils import set_random_seed


def data(n, x_shape=(3,), y_shape=(2,), x_dtype=numpy.float32, y_dtype=numpy.float32, seed=0):
    """n samples: x of shape (n, *x_shape) and y of (n, *y_shape), random numbers (none NaN)."""
    rng = numpy.random.default_rng(seed)
    return (rng.standard_normal((n, *x_shape)).astype(x_dtype), rng.standard_normal((n, *y_shape)).astype(y_dtype))


def state(order, start=0):
    """The device state the kernel reads and writes, on the host: order, position, blocks_done."""
    order, position = numpy.asarray(order, dtype=numpy.int64), numpy.asarray(start, dtype=numpy.int64)
    return order, position, numpy.zeros((), numpy.int32)


def readable_epoch(x, y, batch_size, seed):
    """Every batch of one shuffled epoch, cut by Batches' readable lines on NumPy (whatever the test's backend)."""
    with on_numpy():
        batches = Batches(x, y, batch_size, shuffle=True)
        set_random_seed(seed)
        batches.new_epoch()
        return [batches.batch(step) for step in range(batches.steps)], batches.order.copy()


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("n, batch_size, x_shape, y_shape, x_dtype, y_dtype", [
    (10, 4, (3,), (2,), numpy.float32, numpy.float32),  # batches of 4, 4 and a last one of 2
    (5, 1, (3,), (2,), numpy.float64, numpy.float64),  # batches of one sample
    (70, 32, (28, 28, 1), (10,), numpy.float32, numpy.float32),  # images: 784 numbers a row; last batch of 6
    (9, 4, (), (1,), numpy.float64, numpy.float32),  # 1-D x; mixed dtypes
    (600, 512, (784,), (10,), numpy.float32, numpy.float64),  # 401,408 entries: MAX_BLOCKS, each thread twice
])
def test_the_model_equals_the_readable_batches_bit_for_bit(n, batch_size, x_shape, y_shape, x_dtype, y_dtype):
    x, y = data(n, x_shape, y_shape, x_dtype, y_dtype, seed=n)
    expected, order = readable_epoch(x, y, batch_size, seed=n)
    order, position, blocks_done = state(order)
    for step, (x_ref, y_ref) in enumerate(expected):
        size = len(x_ref)
        xb, yb = kernel.model_gather_batch(x, y, order, position, blocks_done, size)
        assert xb.dtype == x.dtype and yb.dtype == y.dtype and xb.shape == x_ref.shape and yb.shape == y_ref.shape
        assert not numpy.isnan(xb).any() and not numpy.isnan(yb).any()  # every entry written
        numpy.testing.assert_array_equal(xb, x_ref)
        numpy.testing.assert_array_equal(yb, y_ref)
        assert position == min((step + 1) * batch_size, n) and blocks_done == 0  # moved past the batch, once


@pytest.mark.host_only("the kernel's NumPy model: the blocks' order")
@pytest.mark.parametrize("schedule", ["forward", "backward", "shuffled"])
def test_only_the_last_block_to_finish_moves_the_position_whatever_the_order(schedule):
    """Each block runs to its end before the next starts: had any block but the last moved position, a
    later block would have read the moved one and copied the next batch's samples."""
    x, y = data(100, (7,), (3,))
    order, position, blocks_done = state(numpy.random.default_rng(1).permutation(100), start=20)
    size = 64
    grid = kernel.blocks(size, 7, 3)
    assert grid == 2  # 448 entries of xb: two blocks of 256 threads
    blocks = {"forward": [0, 1], "backward": [1, 0], "shuffled": list(numpy.random.default_rng(2).permutation(grid))}
    xb, yb = kernel.model_gather_batch(x, y, order, position, blocks_done, size, schedule=blocks[schedule])
    numpy.testing.assert_array_equal(xb, x[order[20:84]])
    numpy.testing.assert_array_equal(yb, y[order[20:84]])
    assert position == 84 and blocks_done == 0


@pytest.mark.host_only("the kernel's NumPy model: the position on the device")
def test_the_same_launch_again_cuts_the_next_batch_as_a_replayed_graph_does():
    """The arguments never change (a graph replays the launch it recorded): only position moves."""
    x, y = data(12, (2,), (1,))
    order, position, blocks_done = state(numpy.arange(12)[::-1])
    firsts = [kernel.model_gather_batch(x, y, order, position, blocks_done, 4)[0] for _ in range(3)]
    for k, xb in enumerate(firsts):
        numpy.testing.assert_array_equal(xb, x[[11 - 4 * k - r for r in range(4)]])
    assert position == 12
    xb, _ = kernel.model_gather_batch(x, y, order, position, blocks_done, 4)  # a stray fourth: wraps, in bounds
    numpy.testing.assert_array_equal(xb, x[[11, 10, 9, 8]])


@pytest.mark.host_only("the grid's arithmetic")
def test_the_grid_covers_the_larger_of_x_and_y_with_one_block_at_least():
    assert kernel.blocks(1, 1, 1) == 1 and kernel.blocks(0, 784, 10) == 1  # one block, to move position
    assert kernel.blocks(32, 784, 10) == 98  # 25,088 entries / 256
    assert kernel.blocks(4, 1, 300) == 5  # y's rows are the larger here
    assert kernel.blocks(4096, 784, 10) == kernel.MAX_BLOCKS  # the rest by the grid-stride loop


@pytest.mark.host_only("reads the kernel's CUDA source")
def test_the_cuda_source_and_the_model_use_one_block_size():
    assert re.search(r"#define BLOCK (\d+)", kernel.SOURCE).group(1) == str(kernel.BLOCK)


@pytest.mark.host_only("compiles CUDA C on the host: NVRTC needs no GPU")
def test_the_cuda_source_compiles_with_nvrtc():
    """Every pair of dtypes, for compute capability 9.0; the count is one atomic addition on an int."""
    ptx = nvrtc_compile(kernel.SOURCE, kernel.NAMES, options=("-arch=compute_90",))
    entries = dict(re.findall(r"\.entry (\w+)\((.*?)\n}", ptx, re.S))
    assert len(entries) == 4 and len(kernel.NAMES) == 4
    assert all(body.count("atom.global.add") == 1 for body in entries.values())


@pytest.mark.host_only("the CuPy path's wiring, with the kernel's model standing in for the GPU")
def test_on_cupy_batch_launches_the_kernel_once_per_batch(monkeypatch):
    """backend 'cupy' (pretended): each batch is one kernel call, with Batches' own device state, and an
    epoch equals the readable one bit for bit. Integers do not fit the kernel: the readable lines run."""
    x, y = data(70, (28, 28, 1), (10,))
    expected, _ = readable_epoch(x, y, 32, seed=4)  # on NumPy, before pretending
    batches = Batches(x, y, 32, shuffle=True)
    calls = []

    def launch(x, y, order, position, blocks_done, size):
        calls.append(size)
        assert order is batches.order and position is batches.position and blocks_done is batches.blocks_done
        return kernel.model_gather_batch(x, y, order, position, blocks_done, size)

    monkeypatch.setattr(backend, "get_backend", lambda: "cupy")
    monkeypatch.setattr(kernel, "gather_batch", launch)
    set_random_seed(4)
    batches.new_epoch()
    for step, (x_ref, y_ref) in enumerate(expected):
        xb, yb = batches.batch(step)
        numpy.testing.assert_array_equal(xb, x_ref)
        numpy.testing.assert_array_equal(yb, y_ref)
    assert calls == [32, 32, 6] and batches.position == 70
    labels = Batches(x, numpy.arange(70), 32, shuffle=False)  # int64 targets: no kernel
    labels.new_epoch()
    assert labels.batch(0)[1].tolist() == list(range(32)) and len(calls) == 3


# Defined only where the suite runs on cupy (a GPU: benchmarks/gpu_check.sh), so CI neither skips nor fakes it.
if "cupy" in BACKENDS_UNDER_TEST:
    def test_the_kernel_equals_its_model_and_the_readable_batches_on_a_gpu(backend_name):
        """Bit for bit, on odd shapes; many blocks; the position moved on the device."""
        if backend_name != "cupy":  # the model's tests above are numpy's and strict's
            return
        import cupy
        for n, batch_size, x_shape, x_dtype in [(10, 4, (3,), numpy.float32), (70, 32, (28, 28, 1), numpy.float32),
                                                 (5, 1, (), numpy.float64), (3000, 2048, (784,), numpy.float32)]:
            x, y = data(n, x_shape, (10,), x_dtype, numpy.float32, seed=n)
            expected, order = readable_epoch(x, y, batch_size, seed=n)
            order, position, blocks_done = state(order)
            device = [cupy.asarray(a) for a in (x, y, order, position, blocks_done)]
            for x_ref, y_ref in expected:
                got = kernel.gather_batch(*device, len(x_ref))
                model = kernel.model_gather_batch(x, y, order, position, blocks_done, len(x_ref))
                for a, m, ref in zip(got, model, (x_ref, y_ref)):
                    numpy.testing.assert_array_equal(a.get(), ref)
                    numpy.testing.assert_array_equal(a.get(), m)
                assert int(device[3]) == int(position) and int(device[4]) == 0


