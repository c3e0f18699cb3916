"""tinynet/kernels/rmsprop.py: RMSprop's update of every parameter in one launch. Its NumPy model (which walks
the threads over the concatenated index space, resolving each index to a tensor and an element as the kernel
does) equals ``update_step`` applied per parameter, bit for bit; the CUDA source compiles with NVRTC (no GPU
needed) to a kernel whose argument table has the layout NumPy gives it; RMSprop on CuPy makes one launch for
all its parameters; on a GPU, the kernel itself, and inside a captured CUDA graph."""
import re

import numpy
import pytest

from conftest import BACKENDS_UNDER_TEST, on_numpy
from nvrtc import nvrtc_compile
from tinynet import backend
from tinynet.kernels import rmsprop as kernel
from tinynet.optimizers import RMSprop, rmsprop

LR, RHO, EPS = 0.01, 0.8, 1e-6  # not Keras's defaults: a constant mixed up with another would show


def gradients(shape, dtype, rng):
    """Gradients over 40 orders of magnitude, with zeros, ones whose g**2 is flushed (|g| < 2**-63 in float32,
    2**-511 in float64) and a NaN where there is room."""
    g = rng.standard_normal(shape) * 10.0 ** rng.integers(-25, 3, shape)
    flat = g.reshape(-1)
    root = numpy.sqrt(numpy.finfo(dtype).smallest_normal)
    flat[::5] = 0.0
    flat[1::7] = 0.5 * root  # g**2 counts as 0
    flat[2::11] = 3.0 * root  # g**2 is kept (and v = 0.2 g**2 is flushed, or not, by its size)
    if flat.size > 3:
        flat[3] = numpy.nan
    return g.astype(dtype)


def by_update_step(ws, gradient_steps, vs=None):
    """``update_step`` applied to each parameter in turn, step after step (on NumPy, whatever the test's
    backend): the definition."""
    ws = [w.copy() for w in ws]
    vs = [numpy.zeros_like(w) for w in ws] if vs is None else [v.copy() for v in vs]
    with on_numpy(), numpy.errstate(invalid="ignore"):
        for grads in gradient_steps:
            for w, g, v in zip(ws, grads, vs):
                rmsprop.update_step(w, g, v, LR, RHO, EPS)
    return ws, vs


def by_the_model(ws, gradient_steps, grid=None):
    """The kernel's launches, run by its NumPy model on host memory (the table holds NumPy arrays' addresses),
    step after step; ``grid`` overrides the number of blocks. Checks each element is written once per step."""
    ws = [w.copy() for w in ws]
    vs = [numpy.zeros_like(w) for w in ws]
    for grads in gradient_steps:
        memory = {kernel.address(a): a.reshape(-1) for a in (*ws, *grads, *vs)}
        writes = {}
        for _, blocks, args in kernel.launches(list(zip(ws, grads, vs)), LR, RHO, EPS):
            writes.update(kernel.model_rmsprop_all(grid or blocks, kernel.BLOCK, args, memory))
        for w in ws:
            if w.size:
                assert numpy.array_equal(writes[kernel.address(w)], numpy.ones(w.size)), "an element not written once"
    return ws, vs


def assert_same_bits(got, expected):
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        numpy.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))  # NaN's bits too


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_the_model_equals_update_step_per_parameter_bit_for_bit(dtype):
    """The MNIST model's parameters and odd sizes (1, 7, 513), three steps: every w and v to the bit."""
    rng = numpy.random.default_rng(0)
    shapes = [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,), (1,), (7,), (513,), (3, 171)]
    ws = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    steps = [[gradients(shape, dtype, rng) for shape in shapes] for _ in range(3)]
    w_model, v_model = by_the_model(ws, steps)
    w_ref, v_ref = by_update_step(ws, steps)
    assert_same_bits(w_model, w_ref)
    assert_same_bits(v_model, v_ref)
    tiny = numpy.finfo(dtype).smallest_normal
    v = numpy.concatenate([v.reshape(-1) for v in v_model])
    assert numpy.isnan(v).sum() == len(shapes) - 1  # the NaN in each gradient (but the one of size 1) stays
    assert not numpy.any((v != 0) & (numpy.abs(v) < tiny))  # nothing subnormal
    assert numpy.count_nonzero(v == 0) > 0.2 * v.size  # zeros and flushed g**2


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_few_threads_stride_across_tensor_boundaries(blocks):
    """256 to 768 threads for 1,549 elements in 6 tensors, two of them empty: each thread takes several
    elements, some in different tensors, stepping k past the empty ones."""
    rng = numpy.random.default_rng(blocks)
    shapes = [(0,), (7,), (513,), (0, 3), (1,), (1028,)]
    ws = [rng.standard_normal(shape).astype(numpy.float32) for shape in shapes]
    steps = [[gradients(shape, numpy.float32, rng) for shape in shapes] for _ in range(2)]
    w_model, v_model = by_the_model(ws, steps, grid=blocks)
    w_ref, v_ref = by_update_step(ws, steps)
    assert_same_bits(w_model, w_ref)
    assert_same_bits(v_model, v_ref)


@pytest.mark.host_only("the kernel's NumPy model: index arithmetic on the host")
def test_the_index_space_is_the_concatenation_of_the_tensors():
    """Sizes 3, 0, 2: start = [0, 3, 3, 5]; i = 0..4 is (k, j) = (0,0) (0,1) (0,2) (2,0) (2,1). Each tensor's
    g is its index i, so the v written ((1 - rho) g**2) shows which i each element got."""
    ws = [numpy.zeros(3), numpy.zeros(0), numpy.zeros(2)]
    gs = [numpy.array([0.0, 1.0, 2.0]), numpy.zeros(0), numpy.array([3.0, 4.0])]
    vs = [numpy.zeros_like(w) for w in ws]
    [(dtype, grid, args)] = kernel.launches(list(zip(ws, gs, vs)), LR, RHO, EPS)
    assert dtype == numpy.float64 and grid == 1 and args[1] == 3
    numpy.testing.assert_array_equal(args[0]["start"][0, :4], [0, 3, 3, 5])
    kernel.model_rmsprop_all(grid, kernel.BLOCK, args, {kernel.address(a): a for a in (*ws, *gs, *vs)})
    numpy.testing.assert_array_equal(vs[0], (1 - RHO) * numpy.array([0.0, 1.0, 4.0]))  # v = (1 - rho) g**2
    numpy.testing.assert_array_equal(vs[2], (1 - RHO) * numpy.array([9.0, 16.0]))


@pytest.mark.host_only("plans launches on the host")
def test_more_parameters_than_one_launch_takes_are_split_and_dtypes_kept_apart():
    """150 float32 parameters and 3 float64 ones: 64 + 64 + 22 float32 in three launches, the float64 in one;
    each launch's arguments typed as the kernel declares them."""
    rng = numpy.random.default_rng(3)
    dtypes = [numpy.float64 if n % 50 == 7 else numpy.float32 for n in range(153)]
    ws = [rng.standard_normal(n % 5 + 1).astype(dtype) for n, dtype in enumerate(dtypes)]
    steps = [[gradients(w.shape, w.dtype, rng) for w in ws] for _ in range(2)]
    plan = kernel.launches(list(zip(ws, steps[0], [numpy.zeros_like(w) for w in ws])), LR, RHO, EPS)
    assert [(numpy.dtype(dtype).name, int(args[1])) for dtype, _, args in plan] == [
        ("float32", 64), ("float32", 64), ("float32", 22), ("float64", 3)]
    for dtype, grid, args in plan:
        table, count, *scalars = args
        assert isinstance(table, numpy.ndarray) and table.dtype == kernel.TABLE and table.size == 1
        assert type(count) is numpy.int32 and grid == 1
        assert len(scalars) == 6 and all(type(s) is dtype.type for s in scalars)
        assert scalars[2] == dtype.type(1 - RHO) and scalars[4] == numpy.finfo(dtype).smallest_normal
    w_model, v_model = by_the_model(ws, steps)
    w_ref, v_ref = by_update_step(ws, steps)
    assert_same_bits(w_model, w_ref)
    assert_same_bits(v_model, v_ref)


@pytest.mark.host_only("plans launches on the host")
def test_what_fits_the_kernel():
    f32, f64 = numpy.zeros((4, 3), numpy.float32), numpy.zeros((4, 3))
    assert kernel.fits(f32, f32.copy(), f32.copy()) and kernel.fits(f64, f64.copy(), f64.copy())
    assert not kernel.fits(f32, f64, f32.copy())  # a float64 gradient for a float32 parameter
    assert not kernel.fits(f32, f32.T.copy().T, f32.copy())  # a gradient not C-contiguous
    f16 = numpy.zeros(3, numpy.float16)
    assert not kernel.fits(f16, f16.copy(), f16.copy())
    assert kernel.launches([], LR, RHO, EPS) == [] and kernel.launches([(f32[:0],) * 3], LR, RHO, EPS) == []


@pytest.mark.host_only("compiles CUDA C on the host: NVRTC needs no GPU")
def test_the_cuda_source_compiles_and_its_table_is_numpys():
    """Compiled as CuPy will (``--fmad=false``), for compute capability 9.0: the struct argument is
    TABLE.itemsize bytes (2,056), the whole argument list within CUDA's 4 KB; no fused multiply-add; the float
    kernel does float math only; the table is read where it is passed (no copy to local memory)."""
    assert f"#define MAX_TENSORS {kernel.MAX_TENSORS}\n" in kernel.SOURCE
    assert kernel.TABLE.itemsize == 8 * (4 * kernel.MAX_TENSORS + 1) == 2056
    assert [kernel.TABLE.fields[name][1] for name in ("w", "g", "v", "start")] == [0, 512, 1024, 1536]
    ptx = nvrtc_compile(kernel.SOURCE, [f"{kernel.KERNEL}<{t}>" for t in kernel.DTYPES.values()])
    entries = dict(re.findall(r"\.entry (\w+)\((.*?)\n}", ptx, re.S))
    assert len(entries) == 2
    for name, body in entries.items():
        params = re.findall(r"\.param (?:\.align \d+ )?\.(\w+) \w+?(?:\[(\d+)\])?,?\n", body)
        assert params[0] == ("b8", "2056") and len(params) == 8  # the table, count, six scalars
        assert sum(int(n) if n else int(kind[1:]) // 8 for kind, n in params) < 4096
        assert "fma" not in body and ".local" not in body
    float_kernel = next(body for name, body in entries.items() if "rmsprop_allIf" in name)
    assert ".f64" not in float_kernel and "sqrt.rn.f32" in float_kernel and "div.rn.f32" in float_kernel


@pytest.mark.host_only("the CuPy path's wiring, with the kernel's model standing in for the GPU")
def test_on_cupy_apply_is_one_launch_for_all_parameters(monkeypatch):
    """backend 'cupy' (pretended): each apply of the MNIST model's 6 parameters is ONE launch of the float32
    kernel, (grid,), (BLOCK,) and the arguments the kernel declares; w and v end as on NumPy, bit for bit."""
    rng = numpy.random.default_rng(4)
    shapes = [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)]
    ws = [rng.standard_normal(shape).astype(numpy.float32) for shape in shapes]
    steps = [[gradients(shape, numpy.float32, rng) for shape in shapes] for _ in range(2)]
    reference = RMSprop(LR, RHO, EPS)
    params = [w.copy() for w in ws]
    for grads in steps:
        reference.apply(grads, params)  # on NumPy
    calls = []
    optimizer = RMSprop(LR, RHO, EPS)
    monkeypatch.setattr(backend, "get_backend", lambda: "cupy")
    every_gradient = [g for grads in steps for g in grads]
    monkeypatch.setattr(kernel, "function", lambda dtype: pretend_launch(dtype, calls, optimizer, every_gradient))
    monkeypatch.setattr(RMSprop, "update", None)  # every parameter fits: none is updated by a kernel of its own
    for grads in steps:
        optimizer.apply(grads, ws)
    assert [(dtype, block) for dtype, _, block, _ in calls] == [(numpy.float32, (kernel.BLOCK,))] * 2
    total = sum(w.size for w in ws)
    assert all(grid == (min(kernel.MAX_BLOCKS, -(-total // kernel.BLOCK)),) for _, grid, _, _ in calls)
    assert optimizer.iterations == 2
    assert_same_bits(ws, reference.params)
    assert_same_bits(optimizer.slots, reference.slots)


def pretend_launch(dtype, calls, optimizer, grads):
    """A stand-in for the CuPy kernel of ``dtype``: records the call and runs the model on the arrays whose
    addresses the table holds (the optimizer's parameters and slots, and the step's gradients)."""
    def launch(grid, block, args):
        assert isinstance(grid, tuple) and isinstance(block, tuple) and len(args) == 8
        calls.append((dtype, grid, block, args))
        memory = {kernel.address(a): a.reshape(-1) for a in (*optimizer.params, *optimizer.slots, *grads)}
        kernel.model_rmsprop_all(grid[0], block[0], args, memory)
    return launch


@pytest.mark.host_only("the CuPy path's wiring, with the kernel's model standing in for the GPU")
def test_on_cupy_what_does_not_fit_takes_update_and_mistakes_are_refused_first(monkeypatch):
    """A float32 parameter given a float64 gradient does not fit the kernel: ``update`` does it (its own
    kernel on CuPy; update_step here). Gradients of the wrong shape: Optimizer.build's error, no launch."""
    w_fits, w_other = numpy.ones(5, numpy.float32), numpy.ones(3, numpy.float32)
    g_fits, g_other = numpy.full(5, 0.5, numpy.float32), numpy.full(3, 0.5)  # float64
    reference = RMSprop(LR, RHO, EPS)
    expected = [w_fits.copy(), w_other.copy()]
    reference.apply([g_fits, g_other], expected)
    calls, updated = [], []
    optimizer = RMSprop(LR, RHO, EPS)
    real_update = RMSprop.update
    monkeypatch.setattr(backend, "get_backend", lambda: "cupy")
    monkeypatch.setattr(rmsprop, "compiled_update_step", lambda name: None)  # update_step, not CuPy's kernel
    monkeypatch.setattr(RMSprop, "update", lambda self, w, g, v: (updated.append(w.shape), real_update(self, w, g, v)))
    monkeypatch.setattr(kernel, "function", lambda dtype: pretend_launch(dtype, calls, optimizer, [g_fits]))
    with pytest.raises(ValueError, match="one gradient per parameter"):
        optimizer.apply([g_fits], [w_fits, w_other])
    assert calls == [] and optimizer.iterations == 0
    optimizer.apply([g_fits, g_other], [w_fits, w_other])
    assert len(calls) == 1 and int(calls[0][3][1]) == 1 and updated == [(3,)]
    assert_same_bits([w_fits, w_other], expected)
    assert_same_bits(optimizer.slots, reference.slots)


# Defined only where the suite runs on cupy (a GPU: benchmarks/gpu_check.sh), so CI neither skips nor fakes it.
if "cupy" in BACKENDS_UNDER_TEST:
    def test_the_kernel_equals_update_step_and_its_model_on_a_gpu(backend_name):
        """Bit for bit, float32 and float64, odd sizes, tiny g, NaN, 70 parameters (two launches); then the
        same launches captured into a CUDA graph and replayed: the arguments are frozen in the graph."""
        if backend_name != "cupy":  # the model's tests above are numpy's
            return
        import cupy
        rng = numpy.random.default_rng(5)
        for dtype in (numpy.float32, numpy.float64):
            shapes = [(784, 512), (512,), (1,), (7,), (513,), (0,)] + [(n % 9 + 1,) for n in range(64)]
            ws = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
            steps = [[gradients(shape, dtype, rng) for shape in shapes] for _ in range(3)]
            w_ref, v_ref = by_update_step(ws, steps)
            w_dev = [cupy.asarray(w) for w in ws]
            v_dev = [cupy.zeros_like(w) for w in w_dev]
            g_dev = [cupy.empty_like(w) for w in w_dev]  # fixed buffers, as a captured step has
            assert len(kernel.launches(list(zip(w_dev, g_dev, v_dev)), LR, RHO, EPS)) == 2
            for g, host_g in zip(g_dev, steps[0]):
                g.set(host_g)
            kernel.rmsprop_all(list(zip(w_dev, g_dev, v_dev)), LR, RHO, EPS)  # eager, and compiles
            stream = cupy.cuda.Stream(non_blocking=True)
            with stream:
                stream.begin_capture(mode=cupy.cuda.runtime.streamCaptureModeRelaxed)  # as graph.py does
                kernel.rmsprop_all(list(zip(w_dev, g_dev, v_dev)), LR, RHO, EPS)
                graph = stream.end_capture()
            for grads in steps[1:]:
                for g, host_g in zip(g_dev, grads):
                    g.set(host_g)
                graph.launch(stream=stream)
                stream.synchronize()
            assert_same_bits([w.get() for w in w_dev], w_ref)
            assert_same_bits([v.get() for v in v_dev], v_ref)
            assert_same_bits(by_the_model(ws, steps)[0], w_ref)
