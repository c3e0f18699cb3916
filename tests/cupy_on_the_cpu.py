"""CuPy on the CPU: a stand-in ``cupy`` module under which tinynet's whole 'cupy' path runs, CUDA graphs included,
and which counts the kernels a GPU would run (tests/test_cupy_path_on_the_cpu.py uses it).

``module(device)`` is the module to put in ``sys.modules["cupy"]``; ``device`` (a ``Device``) records what ran:

- Arrays are ``ndarray``, a subclass of numpy.ndarray (so NumPy computes everything), and the namespace is NumPy's.
  Each operation that CuPy would run as a kernel is one launch, named in ``device.launches``: every ufunc call
  (operators and in-place operators included, reductions too: ``x + y``, ``v *= rho``, ``xp.sum``), every NumPy
  function with a result of its own (``xp.take``, ``xp.where``, ``xp.argmax``, ``xp.concat``, ``xp.astype``, ...;
  a view, such as ``reshape`` or ``x.T``, is no launch), a write ``x[...] = v``, an indexing that copies
  (``x[rows]``), and ``zeros``' memset. ``empty`` and ``empty_like`` only allocate: no launch.
- As on CuPy, a NumPy array is refused as an operand (``TypeError``: CuPy never converts implicitly); reading a
  number back (``float(x)``, ``int(x)``, ``bool(x)``, ``x.item()``, ``x.get()``) is counted in ``device.reads``,
  and copying host data in (``cupy.asarray(numpy_array)``) in ``device.uploads``.
- ``RawModule`` and ``ElementwiseKernel`` are tests/fake_cupy_kernels.py's (arguments checked against the C
  signatures, launches against the grids), each launch running the kernel's NumPy model from tinynet/kernels
  (``kernels_on_the_cpu``, ``ELEMENTWISE``), or with ``module(device, sources=...)`` its CUDA C compiled for the
  CPU (tests/cuda_on_the_cpu.py): one launch each.
- ``cupy.cuda``: streams (``with stream:`` makes one current), events, memory pools, and graph capture. While a
  stream captures (``begin_capture``, relaxed mode only, as tinynet/models/graph.py asks), each launch on it is
  recorded as a node of the graph, with what it needs to run again into the same arrays (the same inputs, which
  hold new values by then; scalars frozen as they were). A launch on another stream is refused (the graph would
  not hold it), and so are a read back to the host and an upload, as CUDA refuses them during capture. The fake runs each operation as it is recorded (so that Python
  sees results), then ``end_capture`` puts back every array the capture wrote: a captured step does not run.
  ``Graph.launch`` runs the nodes in order, with none of the step's Python: what a GPU's replay does (one launch,
  ``GRAPH_LAUNCH`` in ``device.launches``).

Differences from a GPU that remain: every launch is synchronous; ``numpy.asarray(x)`` of a device array is not
refused (tinynet calls ``backend.to_numpy``, which on this fake is ``numpy.array``: an ndarray subclass is a NumPy
array to it); cuBLAS's ``@`` counts as one launch.
"""
import contextlib
import ctypes
import dataclasses
import types
import weakref

import numpy

import fake_cupy_kernels
from test_gemm_kernels import GEMM_ON_THE_CPU, gemm_on_the_cpu, tiles
from tinynet.kernels import batches, gemm, relu, rmsprop, running_means, softmax_crossentropy
from tinynet.optimizers import rmsprop as rmsprop_optimizer
from tinynet.models import graph

VERSION = "14.0.0"
RELAXED, GLOBAL = 2, 0  # cudaStreamCaptureModeRelaxed, cudaStreamCaptureModeGlobal
GRAPH_LAUNCH = "graph launch"  # in Device.launches: a graph's one launch
CAPTURE_REFUSES = "operation not permitted when stream is capturing"  # CUDA's message


def plain(x):
    """``x`` with every device array in it seen as a plain NumPy array (a view: the same memory)."""
    if isinstance(x, numpy.ndarray):
        return fake_cupy_kernels.as_plain(x)
    if isinstance(x, (tuple, list)):
        return type(x)(plain(item) for item in x)
    if isinstance(x, dict):
        return {key: plain(value) for key, value in x.items()}
    return x


def host_arrays(x):
    """The NumPy (host) arrays in ``x``: what CuPy refuses as operands."""
    if type(x) is numpy.ndarray:
        return [x]
    if isinstance(x, (tuple, list)):
        return [a for item in x for a in host_arrays(item)]
    if isinstance(x, dict):
        return host_arrays(list(x.values()))
    return []


@dataclasses.dataclass
class Capture:
    stream: object
    nodes: list = dataclasses.field(default_factory=list)  # (name, run): the graph, in order
    undo: list = dataclasses.field(default_factory=list)  # (array, its contents before a write), in order


class Device:
    """The pretended GPU: every kernel launched (``launches``, by name), reads to the host, uploads, graph
    launches, and the capture under way."""

    def __init__(self):
        self.launches, self.reads, self.uploads, self.graph_launches = [], [], 0, 0
        self.capture, self.streams = None, []
        self.owners = weakref.WeakValueDictionary()  # id -> every buffer a device array lives in
        self.default_stream = None

    def current_stream(self):
        return self.streams[-1] if self.streams else self.default_stream

    def launch(self, name, writes, compute, replay):
        """One kernel: ``compute()`` now (its result returned); while capturing, also a node of the graph:
        ``replay(result)`` is a function doing it again into the same arrays. ``writes``: the existing arrays it
        writes (plain), put back at the capture's end."""
        capture = self.capture
        if capture is not None:
            if self.current_stream() is not capture.stream:
                raise RuntimeError(f"{name} was launched on another stream than the one capturing: a graph would "
                                   "not hold it")
            capture.undo += [(a, a.copy()) for a in writes]
        result = compute()
        self.launches.append(name)
        if capture is not None:
            capture.nodes.append((name, replay(result)))
        return result

    def refuse_in_capture(self, what):
        if self.capture is not None:
            raise RuntimeError(f"{CAPTURE_REFUSES} ({what})")

    def read(self, what):
        """A number read back to the host: the host waits for the GPU; refused while capturing."""
        self.refuse_in_capture(f"{what} reads a device array back to the host")
        self.reads.append(what)

    def upload(self):
        self.refuse_in_capture("a copy from host memory")
        self.uploads += 1

    def memory(self, address, count, dtype):
        """The ``count`` numbers of ``dtype`` at ``address``, as a NumPy array over that memory (a kernel that
        reads addresses: RMSprop's table). The memory must lie inside a live device array's buffer: anything
        else would be a wild pointer on a GPU."""
        nbytes = count * numpy.dtype(dtype).itemsize
        for owner in list(self.owners.values()):
            start = owner.__array_interface__["data"][0]
            if start <= address and address + nbytes <= start + owner.nbytes:
                raw = (ctypes.c_byte * nbytes).from_address(address)
                return numpy.ctypeslib.as_array(raw).view(dtype)
        raise ValueError(f"address {address:#x} ({nbytes} bytes) lies in no live device array")


def module(device, sources=None):
    """A fake ``cupy`` module on ``device`` (the module's docstring says what it does). Each call makes a new
    ``ndarray`` class: array_api_compat caches what it learns per class. ``sources``: None runs each kernel's
    NumPy model; a schedule (``"forward"``, ...) runs its CUDA C, compiled for the CPU (tests/cuda_on_the_cpu.py)."""
    class ndarray(numpy.ndarray):  # noqa: N801  cupy's name
        __module__ = "cupy"

        def __array_finalize__(self, parent):
            root = self
            while isinstance(root.base, numpy.ndarray):
                root = root.base
            device.owners[id(root)] = root

        def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
            refuse_host(ufunc.__name__, inputs)
            if method not in ("__call__", "reduce"):
                return NotImplemented
            call, ins, outs = getattr(ufunc, method), plain(inputs), plain(out)  # numpy passes out as a tuple
            name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"

            def compute():
                if out is None:
                    return wrap(call(*ins, **kwargs))  # new arrays
                call(*ins, out=outs, **kwargs)  # in place: x += y
                return out[0] if len(out) == 1 else out

            def replay(result):
                targets = plain(result if isinstance(result, tuple) else (result,))
                return lambda: call(*ins, out=targets, **kwargs)
            return device.launch(name, list(outs or ()), compute, replay)

        def __array_function__(self, function, types_, args, kwargs):
            name = function.__name__
            if name == "empty_like":
                return empty_like(*args, **kwargs)
            refuse_host(name, (args, kwargs))
            a, k = plain(args), plain(kwargs)
            if k.get("out") is not None:
                return device.launch(name, [k["out"]], lambda: (function(*a, **k), kwargs["out"])[1],
                                     lambda result: lambda: function(*a, **k))
            result = function(*a, **k)
            if not isinstance(result, (numpy.ndarray, numpy.generic)):
                return result  # a shape, a dtype, a Python bool: nothing on the device
            if isinstance(result, numpy.ndarray) and any(numpy.may_share_memory(result, x)
                                                         for x in arrays_in((a, k))):
                return result.view(type(self))  # a view: no kernel
            result = wrap(result)
            return device.launch(name, [], lambda: result,
                                 lambda r: lambda: numpy.copyto(plain(r), function(*a, **k)))

        def __getitem__(self, key):
            whole, k = plain(self), plain(key)
            result = whole[k]
            if isinstance(result, numpy.generic):  # CuPy gives a 0-d array, a view
                result = whole[(*k, ...) if isinstance(k, tuple) else (k, ...)]
            if numpy.may_share_memory(result, whole):
                return result.view(type(self))
            result = wrap(result)
            return device.launch("getitem", [], lambda: result,
                                 lambda r: lambda: numpy.copyto(plain(r), whole[k]))

        def __setitem__(self, key, value):
            if type(value) is numpy.ndarray:
                device.upload()
            target, k, v = plain(self), plain(key), plain(value)
            device.launch("setitem", [target], lambda: target.__setitem__(k, v),
                          lambda _: lambda: target.__setitem__(k, v))

        # methods that CuPy runs as kernels, through the functions above
        def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
            return numpy.astype(self, dtype, copy=copy)

        def copy(self, order="C"):
            return numpy.copy(self, order=order)

        def reshape(self, *shape, order="C"):
            return numpy.reshape(self, shape[0] if len(shape) == 1 else shape, order=order)

        def ravel(self, order="C"):
            return numpy.ravel(self, order=order)

        def fill(self, value):
            self[...] = value

        def sum(self, *args, **kwargs):
            return numpy.sum(self, *args, **kwargs)

        def mean(self, *args, **kwargs):
            return numpy.mean(self, *args, **kwargs)

        def max(self, *args, **kwargs):
            return numpy.max(self, *args, **kwargs)

        def min(self, *args, **kwargs):
            return numpy.min(self, *args, **kwargs)

        def argmax(self, *args, **kwargs):
            return numpy.argmax(self, *args, **kwargs)

        def any(self, *args, **kwargs):
            return numpy.any(self, *args, **kwargs)

        def all(self, *args, **kwargs):
            return numpy.all(self, *args, **kwargs)

        def set(self, data):  # a copy from host memory into this array
            if type(data) is not numpy.ndarray or data.shape != self.shape:
                raise ValueError(f"set: a NumPy array of shape {self.shape} is needed")
            device.upload()
            plain(self)[...] = data

        # reads back to the host
        def get(self):
            device.read("get()")
            return numpy.array(plain(self))

        def item(self):
            device.read("item()")
            return plain(self).item()

        def tolist(self):
            device.read("tolist()")
            return plain(self).tolist()

        def __float__(self):
            device.read("float()")
            return float(plain(self))

        def __int__(self):
            device.read("int()")
            return int(plain(self))

        def __bool__(self):
            device.read("bool()")
            return bool(plain(self))

        def __repr__(self):
            return f"cupy-on-the-cpu {plain(self)!r}"

    def wrap(x):
        """A NumPy result as a device array (a NumPy scalar as a 0-d array, as CuPy returns)."""
        if isinstance(x, tuple):
            return tuple(wrap(item) for item in x)
        return numpy.asarray(x).view(ndarray) if isinstance(x, (numpy.ndarray, numpy.generic)) else x

    def arrays_in(x):
        if isinstance(x, numpy.ndarray):
            return [x]
        if isinstance(x, (tuple, list)):
            return [a for item in x for a in arrays_in(item)]
        if isinstance(x, dict):
            return arrays_in(list(x.values()))
        return []

    def refuse_host(name, operands):
        if host_arrays(operands):
            raise TypeError(f"{name}: Unsupported type <class 'numpy.ndarray'> (CuPy takes no NumPy array as an "
                            "operand: move it to the device first)")

    # --- the namespace: NumPy's, but for what makes arrays
    def empty(shape, dtype=float, order="C"):
        return numpy.empty(shape, dtype, order).view(ndarray)

    def empty_like(a, dtype=None, order="K", subok=None, shape=None):
        return numpy.empty_like(plain(a), dtype=dtype, order=order, shape=shape).view(ndarray)

    def zeros(shape, dtype=float, order="C"):
        a = empty(shape, dtype, order)
        target = plain(a)
        return device.launch("memset", [], lambda: (target.fill(0), a)[1], lambda _: lambda: target.fill(0))

    def upload(data, dtype=None, order="K"):
        device.upload()
        return numpy.array(data, dtype=dtype, order=order, copy=True).view(ndarray)

    def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
        if not isinstance(a, ndarray):
            return upload(a, dtype, order or "K")
        if dtype is not None and numpy.dtype(dtype) != a.dtype:
            if copy is False:
                raise ValueError("asarray(copy=False) cannot change the dtype without a copy")
            return numpy.astype(a, dtype)
        return numpy.copy(a) if copy else a

    def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
        return asarray(obj, dtype, order, copy=copy)

    def ascontiguousarray(a, dtype=None):
        if not isinstance(a, ndarray):
            return upload(a, dtype, "C")
        if a.flags.c_contiguous and (dtype is None or numpy.dtype(dtype) == a.dtype):
            return a
        return numpy.ascontiguousarray(a, dtype=dtype)  # a kernel, through __array_function__

    def arange(*args, **kwargs):
        result = numpy.arange(*args, **kwargs).view(ndarray)
        return device.launch("arange", [], lambda: result,
                             lambda r: lambda: numpy.copyto(plain(r), numpy.arange(*args, **kwargs)))

    def on_launch(name, run, writes):
        """A RawKernel or ElementwiseKernel launch (tests/fake_cupy_kernels.py): its model runs now and at
        each replay, on the same arguments."""
        device.launch(name, plain(list(writes)), run, lambda _: run)

    cupy = fake_cupy_kernels.module(kernels_on_the_cpu(device), elementwise=ELEMENTWISE, structs={"Tensors": rmsprop.TABLE},
                                    on_launch=on_launch, sources=sources)
    cupy.__doc__ = "CuPy on the CPU (tests/cupy_on_the_cpu.py): NumPy's arrays, each kernel counted."
    cupy.__version__ = VERSION
    cupy.ndarray = ndarray
    for function in (empty, empty_like, zeros, asarray, array, ascontiguousarray, arange):
        setattr(cupy, function.__name__, function)
    cupy.get_default_memory_pool = cupy.get_default_pinned_memory_pool = lambda: types.SimpleNamespace(
        free_all_blocks=lambda: None)
    cupy.cuda = Cuda(device)
    cupy.device = device
    cupy.__getattr__ = lambda name: getattr(numpy, name)  # the rest of the namespace: NumPy's
    return cupy


# --- cupy.cuda: streams, events, memory pools, graphs

class Cuda:
    """``cupy.cuda`` as tinynet uses it (backend.py, models/graph.py)."""

    def __init__(self, device):
        self.device = device
        self.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, streamCaptureModeRelaxed=RELAXED,
                                             streamCaptureModeGlobal=GLOBAL)
        device.default_stream = Stream(device, "null")
        self.allocators = []

    def get_current_stream(self):
        return self.device.current_stream()

    def get_elapsed_time(self, start, end):  # milliseconds between two events: no clock here
        return 0.0

    def Stream(self, non_blocking=False):  # noqa: N802  cupy's name
        return Stream(self.device, "side")

    def MemoryPool(self):  # noqa: N802
        return types.SimpleNamespace(malloc=object(), free_all_blocks=lambda: None)

    @contextlib.contextmanager
    def using_allocator(self, malloc):
        self.allocators.append(malloc)
        try:
            yield
        finally:
            self.allocators.pop()


class Stream:
    def __init__(self, device, name):
        self.device, self.name = device, name

    def __enter__(self):
        self.device.streams.append(self)
        return self

    def __exit__(self, *error):
        self.device.streams.pop()

    def record(self):
        return types.SimpleNamespace(stream=self, synchronize=lambda: None)  # an event: every launch is done

    def wait_event(self, event):
        pass

    def synchronize(self):
        self.device.refuse_in_capture("synchronize()")

    def is_capturing(self):
        return self.device.capture is not None and self.device.capture.stream is self

    def begin_capture(self, mode=None):
        if mode != RELAXED:
            raise AssertionError(f"capture mode {mode}: tinynet captures in relaxed mode (CuPy's memory pool may "
                                 "call cudaMalloc during capture)")
        if self.device.capture is not None or self.device.current_stream() is not self:
            raise RuntimeError("begin_capture: one capture at a time, on the current stream")
        self.device.capture = Capture(self)

    def end_capture(self):
        capture, self.device.capture = self.device.capture, None
        if capture is None or capture.stream is not self:
            raise RuntimeError("end_capture: this stream is not capturing")
        for array, before in reversed(capture.undo):  # what the capture wrote, as it was: recorded, not run
            array[...] = before
        return Graph(self.device, capture.nodes)


class Graph:
    """A captured graph: its nodes (name, run), run in order at each ``launch``."""

    def __init__(self, device, nodes):
        self.device, self.nodes, self.launches = device, nodes, 0

    @property
    def kernels(self):
        return [name for name, _ in self.nodes]

    def launch(self, stream=None):
        self.device.refuse_in_capture("launching a graph")
        self.device.launches.append(GRAPH_LAUNCH)  # one launch, whatever the graph holds
        for _, run in self.nodes:
            run()
        self.launches += 1
        self.device.graph_launches += 1


# --- the kernels' NumPy models, as launches run them (arguments as a GPU gets them)

def gemm_kernel(name, args):
    gemm_on_the_cpu(name, plain(args))


def gather_batch(name, args):
    x, y, order, position, blocks_done, xb, yb, n, size, x_row, y_row = plain(args)
    xb[...], yb[...] = batches.model_gather_batch(x, y, order, position, blocks_done, int(size))


def softmax_crossentropy_kernel(name, args):
    z, y, p, dz, loss, rows, classes, n_batch, p_min = plain(args)
    assert int(rows) * int(classes) == z.size and n_batch == z.shape[0]
    p[...], dz[...], loss[...] = softmax_crossentropy.model_softmax_crossentropy(y, z)


def running_means_kernel(name, args):
    loss, y, y_hat, rows, classes, n, with_accuracy, total_loss, total_accuracy, *counts = plain(args)
    assert n == y.shape[0]
    running_means.model_running_means_add(loss, y, y_hat, total_loss, total_accuracy if with_accuracy else None,
                                          *counts)


def rmsprop_grid(args):
    table, count = args[0], int(args[1])
    return (min(rmsprop.MAX_BLOCKS, -(-int(table["start"][0, count]) // rmsprop.BLOCK)),)


def rmsprop_memory(device, args):
    """{address: the flat array there} for each w, g and v in the table: the kernel's memory."""
    table, count, dtype = args[0], int(args[1]), numpy.dtype(type(args[2]))
    start, memory = table["start"][0], {}
    for k in range(count):
        for field in ("w", "g", "v"):
            address = int(table[field][0, k])
            memory[address] = device.memory(address, int(start[k + 1] - start[k]), dtype)
    return memory


def kernels_on_the_cpu(device):
    """{kernel name: fake_cupy_kernels.CpuKernel} for every RawKernel in tinynet/kernels, on ``device``."""
    table = {name: fake_cupy_kernels.CpuKernel(grid=lambda args, name=name: tiles(name, args),
                                               block=(gemm.TILE, gemm.TILE), run=gemm_kernel)
             for name in gemm.KERNELS}
    grouped = GEMM_ON_THE_CPU["dense_backward"]
    table["dense_backward"] = fake_cupy_kernels.CpuKernel(grid=grouped.grid, block=grouped.block,
                                                          run=lambda name, args: grouped.run(name, plain(args)))
    table["gather_batch"] = fake_cupy_kernels.CpuKernel(
        grid=lambda args: (batches.blocks(int(args[8]), int(args[9]), int(args[10])),), block=(batches.BLOCK,),
        run=gather_batch)
    table["softmax_crossentropy"] = fake_cupy_kernels.CpuKernel(grid=lambda args: (1,),
                                                                block=(softmax_crossentropy.BLOCK,),
                                                                run=softmax_crossentropy_kernel)
    table["running_means_add"] = fake_cupy_kernels.CpuKernel(grid=lambda args: (1,), block=(running_means.BLOCK,),
                                                             run=running_means_kernel)

    def rmsprop_all(name, args):
        rmsprop.model_rmsprop_all(rmsprop_grid(args)[0], rmsprop.BLOCK, args, rmsprop_memory(device, args))

    def rmsprop_writes(args):  # w and v, reached through the table's addresses
        table, count = args[0], int(args[1])
        memory = rmsprop_memory(device, args)
        return [memory[int(table[field][0, k])] for k in range(count) for field in ("w", "v")]
    table["rmsprop_all"] = fake_cupy_kernels.CpuKernel(grid=rmsprop_grid, block=(rmsprop.BLOCK,), run=rmsprop_all,
                                                       writes=rmsprop_writes)
    return table


def relu_backward(args):
    a = plain(args)
    a["dx"][...] = relu.model_relu_backward(a["x"], a["dy"])


def rmsprop_update(args):
    """The per-parameter ElementwiseKernel (optimizers/rmsprop.py's CUPY_KERNEL), its body in NumPy."""
    a = plain(args)
    g, w, v, T = a["g"], a["w"], a["v"], a["w"].dtype.type
    g2 = numpy.where(numpy.abs(g) < a["root_tiny"], T(0), g * g)  # g**2, flushed to zero
    vi = a["rho"] * v + a["one_minus_rho"] * g2  # v = rho * v + (1 - rho) * g**2
    v[...] = numpy.where(vi < a["tiny"], T(0), vi)  # flush to zero
    w[...] = w - (a["lr"] * g) / numpy.sqrt(v + a["eps"])  # w = w - lr * g / sqrt(v + eps)


ELEMENTWISE = {relu.RELU_BACKWARD[3]: relu_backward, rmsprop_optimizer.CUPY_KERNEL["name"]: rmsprop_update}


def clear_kernel_caches():
    """Forget every compiled kernel and the captures' memory pool (each is made on first use, from whichever
    ``cupy`` was imported then)."""
    for cached in (gemm._module, gemm._workspace, batches._module, relu._kernel, rmsprop._module, running_means._module,
                   softmax_crossentropy._module, rmsprop_optimizer.compiled_update_step, graph.shared_pool):
        cached.cache_clear()
