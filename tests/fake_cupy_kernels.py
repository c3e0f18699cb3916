"""A stand-in for CuPy's kernel calls, so that tinynet's Python wrappers around its CUDA kernels run on any machine.

``module(kernels)`` is a module to put in ``sys.modules["cupy"]`` (with pytest's ``monkeypatch.setitem``). Its
arrays are NumPy arrays, and it has what the wrappers call:

- ``RawModule(code=..., options=..., name_expressions=...).get_function(name)``: a kernel which, called as CuPy's
  are, ``kernel(grid, block, args)``, first checks what a GPU would only show by crashing or by wrong numbers:
    1. the arguments against the kernel's C signature, read from ``code``: their count; a pointer gets a
       C-contiguous array of the pointed-to type (``const T* A`` with T = float: float32) or None (NULL); an
       ``int`` gets a numpy.int32, a ``float`` a numpy.float32, a ``double`` a numpy.float64 (CuPy passes a value
       as its NumPy type says: a Python int would arrive as a 64-bit integer);
    2. the launch: within CUDA's limits, with the block the kernel needs, and the grid that covers its output
       as its index arithmetic maps blocks to entries: too few blocks leave entries unwritten, too many lie
       wholly outside it;
  then runs the kernel's CPU model (``CpuKernel.run``), which writes the outputs into the arrays given.
  Templates are named as CuPy wants them, ``"gemm_nn<float>"``, and must be among the module's name_expressions.
  A struct passed by value (``const Tensors<T> tensors``) gets a NumPy array of size one whose dtype is the
  struct's, from ``module(structs={"Tensors": dtype})`` (CuPy copies such an array's bytes into the arguments).
- ``ElementwiseKernel(in_params, out_params, operation, name, options=...)``: checks each call's arguments against
  its parameters and records them in ``calls``, by parameter name; it computes nothing, unless
  ``module(elementwise={name: model})`` has a model for it: ``model(args)``, with the arguments by parameter name
  (outputs included), writes the outputs.

With ``module(sources="forward")`` (or ``"reverse"``, ``"shuffle <seed>"``), a launch runs the kernel's CUDA C
itself, compiled for the CPU by tests/cuda_on_the_cpu.py with its threads in that order, instead of its model;
ElementwiseKernels too. The checks above are made all the same.

Every launch goes through ``module(on_launch=...)``, ``on_launch(name, run, writes)``: ``run()`` does the work
(the model), ``writes`` are the arrays it writes (the non-const pointers, plus ``CpuKernel.writes(args)``: memory
a kernel reaches through addresses); the default runs it at once. tests/cupy_on_the_cpu.py records launches there.

Each RawModule and ElementwiseKernel made is kept in ``made``, and each kernel launch in ``launches``, so that a
test can see what tinynet handed CuPy (tests/test_cuda_sources.py compiles exactly that with NVRTC).
"""
import dataclasses
import math
import re
import types
from typing import Callable

import numpy

C_TYPES = {"float": numpy.float32, "double": numpy.float64, "int": numpy.int32, "unsigned int": numpy.uint32,
           "long long": numpy.int64, "bool": numpy.bool_}
MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK = (1024, 1024, 64)  # blockDim.x, .y, .z
MAX_GRID = (2 ** 31 - 1, 65535, 65535)  # gridDim.x, .y, .z


@dataclasses.dataclass
class CpuKernel:
    """What the fake needs to know of one kernel beyond its signature: ``grid(args)``, the blocks it needs along
    x, y (, z) to cover its output for these arguments; ``block``, the block it must be launched with (None: any);
    ``run(name, args)``, its CPU model, writing the outputs (``name`` is the kernel's name without template
    arguments; None: only check the call); ``writes(args)``, arrays it writes that are not among its pointer
    arguments (None: none)."""
    grid: Callable
    block: tuple = None
    run: Callable = None
    writes: Callable = None


@dataclasses.dataclass
class Param:
    """One parameter of a kernel's C signature: ``const T* A`` is Param("T", "A", pointer=True, const=True)."""
    ctype: str
    name: str
    pointer: bool
    const: bool


def kernel_signatures(code):
    """{kernel name: (template parameter names, [Param, ...])} for each ``__global__`` function in ``code``."""
    found = {}
    pattern = r'(?:template\s*<([^>]*)>\s*)?(?:extern\s+"C"\s+)?__global__\s+void\s+(\w+)\s*\(([^)]*)\)'
    for template, name, params in re.findall(pattern, code):
        names = [t.split()[-1] for t in template.split(",")] if template.strip() else []
        found[name] = (names, [parse_param(p) for p in params.split(",") if p.strip()])
    return found


def parse_param(text):
    """``const T* __restrict__ A`` -> Param("T", "A", pointer=True, const=True)."""
    words = text.replace("*", " * ").replace("__restrict__", " ").split()
    name, words = words[-1], words[:-1]
    pointer = "*" in words
    const = "const" in words[:words.index("*")] if pointer else "const" in words
    ctype = " ".join(w for w in words if w not in ("const", "*"))
    return Param(ctype, name, pointer, const)


def module(kernels=None, elementwise=None, structs=None, on_launch=None, sources=None):
    """A fake ``cupy`` module whose RawModules run ``kernels`` ({kernel name: CpuKernel}) on the CPU, and whose
    ElementwiseKernels run ``elementwise`` ({name: model}) when it has one; ``structs``: {C struct name: NumPy
    dtype}; ``on_launch(name, run, writes)``: each launch; ``sources``: None to run the models, or a schedule to
    run the kernels' CUDA C (the module's docstring says what each does)."""
    kernels, elementwise, structs = kernels or {}, elementwise or {}, structs or {}
    on_launch = on_launch or (lambda name, run, writes: run())
    cupy = types.ModuleType("cupy")
    cupy.__doc__ = "A stand-in for CuPy's kernel calls (tests/fake_cupy_kernels.py): arrays are NumPy arrays."
    cupy.ndarray = numpy.ndarray
    cupy.float32, cupy.float64, cupy.int32 = numpy.float32, numpy.float64, numpy.int32
    cupy.asarray, cupy.ascontiguousarray = numpy.asarray, numpy.ascontiguousarray
    cupy.empty, cupy.zeros, cupy.empty_like = numpy.empty, numpy.zeros, numpy.empty_like
    cupy.made, cupy.launches = [], []
    cupy.cuda = types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(is_capturing=lambda: False))

    class RawModule:
        def __init__(self, code, options=(), name_expressions=None, **unused):
            self.code, self.options, self.name_expressions = code, tuple(options), tuple(name_expressions or ())
            self.signatures = kernel_signatures(code)
            self.compiled = None  # the CUDA C compiled for the CPU, when ``sources`` asks for it (on first use)
            cupy.made.append(self)

        def get_function(self, name_expression):
            name, _, template_args = name_expression.partition("<")
            if name not in self.signatures:
                raise AttributeError(f"no __global__ function {name!r} in the module's code")
            template, params = self.signatures[name]
            if template and name_expression not in self.name_expressions:
                raise ValueError(f"{name_expression!r} is not among the RawModule's name_expressions "
                                 f"{self.name_expressions}: CuPy cannot find a template kernel it did not compile")
            args = [a.strip() for a in template_args.rstrip(">").split(",")] if template_args else []
            if len(args) != len(template):
                raise ValueError(f"{name_expression!r}: {name} takes template arguments <{', '.join(template)}>")
            ctypes_ = dict(zip(template, args))  # {"T": "float"}
            return RawKernel(name, name_expression, [dataclasses.replace(p, ctype=instantiate(p.ctype, ctypes_))
                                                     for p in params], self)

    class RawKernel:
        def __init__(self, name, name_expression, params, raw_module):
            self.name, self.name_expression, self.params = name, name_expression, params
            self.raw_module = raw_module

        def run_source(self, grid, block, args):
            """The kernel's CUDA C, run on the CPU (tests/cuda_on_the_cpu.py) on ``args`` seen as plain arrays."""
            import cuda_on_the_cpu
            module_ = self.raw_module
            if set(module_.options) != {"--fmad=false"}:  # what -ffp-contract=off on the CPU stands for
                raise NotImplementedError(f"{self.name}: tests/cuda_on_the_cpu.py runs kernels compiled with "
                                          f"--fmad=false only, got {module_.options}")
            if module_.compiled is None:
                module_.compiled = cuda_on_the_cpu.RawModule(module_.code, module_.name_expressions, structs)
            module_.compiled.get_function(self.name_expression)(grid, block, [as_plain(a) for a in args], sources)

        def __call__(self, grid, block, args, **unused):
            check_arguments(self.name_expression, self.params, args, structs)
            model = kernels.get(self.name)
            if model is None:
                raise NotImplementedError(f"no CpuKernel for {self.name}: pass one to fake_cupy_kernels.module")
            check_launch(self.name_expression, grid, block, model.block, model.grid(args))
            cupy.launches.append((self.name_expression, grid, block))
            if model.run is not None or sources:
                writes = [arg for p, arg in zip(self.params, args) if p.pointer and not p.const and arg is not None]
                writes += list(model.writes(args)) if model.writes else []
                run = (lambda: self.run_source(grid, block, args)) if sources else lambda: model.run(self.name, args)
                on_launch(self.name_expression, run, writes)

    class ElementwiseKernel:
        def __init__(self, in_params, out_params, operation, name="kernel", options=(), **unused):
            self.in_params, self.out_params, self.operation = in_params, out_params, operation
            self.name, self.options, self.calls = name, tuple(options), []
            self.params = [(text, False) for text in split_params(in_params)] + \
                          [(text, True) for text in split_params(out_params)]
            cupy.made.append(self)

        def __call__(self, *args):
            inputs = len(split_params(self.in_params))
            given = len(args) > inputs
            if len(args) == inputs:  # outputs left out: CuPy makes them, shaped and typed like the inputs
                first = next(arg for arg in args if isinstance(arg, numpy.ndarray))
                args = (*args, *(cupy.empty_like(first) for _ in split_params(self.out_params)))
            if len(args) != len(self.params):
                raise TypeError(f"{self.name} takes {len(self.params)} arguments "
                                f"({self.in_params} -> {self.out_params}), got {len(args)}")
            types_, shapes = {}, []
            for ((ctype, name, _raw), is_out), arg in zip(self.params, args):
                if is_out and not isinstance(arg, numpy.ndarray):
                    raise TypeError(f"{self.name}: output {name} must be an array, got {type(arg).__name__}")
                if isinstance(arg, numpy.ndarray):
                    shapes.append(arg.shape)
                    if types_.setdefault(ctype, arg.dtype) != arg.dtype:
                        raise TypeError(f"{self.name}: {name} is {arg.dtype}, but {ctype} is {types_[ctype]}")
                elif not isinstance(arg, (int, float, numpy.generic)):
                    raise TypeError(f"{self.name}: {name} must be an array or a scalar, got {type(arg).__name__}")
            outs = [arg.shape for ((_, _, _), is_out), arg in zip(self.params, args) if is_out]
            if any(shape != numpy.broadcast_shapes(*shapes) for shape in outs):
                raise ValueError(f"{self.name}: the outputs' shapes {outs} are not the inputs' {shapes}")
            by_name = {name: arg for ((_, name, _), _), arg in zip(self.params, args)}
            self.calls.append(by_name)
            model = elementwise.get(self.name)
            if sources:
                import cuda_on_the_cpu
                compiled = cuda_on_the_cpu.ElementwiseKernel(self.in_params, self.out_params, self.operation,
                                                             self.name)
                model = lambda by_name: compiled(*[as_plain(a) for a in by_name.values()])  # noqa: E731
            if model is not None:
                outputs = args[inputs:]
                on_launch(self.name, lambda: model(by_name), outputs if given else [])
                return outputs[0] if len(outputs) == 1 else outputs
            return None

    cupy.RawModule, cupy.ElementwiseKernel = RawModule, ElementwiseKernel
    return cupy


def as_plain(x):
    """An array seen as a plain NumPy array (a view of the same memory); anything else as it is."""
    return x.view(numpy.ndarray) if isinstance(x, numpy.ndarray) and type(x) is not numpy.ndarray else x


def split_params(text):
    """CuPy's parameter list ``"T g, raw T x"`` -> [("T", "g", False), ("T", "x", True)]."""
    params = []
    for part in text.split(","):
        words = part.split()
        raw = words[0] == "raw"
        params.append((" ".join(words[raw:-1]), words[-1], raw))
    return params


def instantiate(ctype, template_args):
    """A parameter's C type with the template's arguments put in: ``T`` -> ``float``, ``Tensors<T>`` ->
    ``Tensors<float>``."""
    return re.sub(r"\b\w+\b", lambda word: template_args.get(word.group(), word.group()), ctype)


def check_arguments(kernel, params, args, structs=None):
    """TypeError, naming the parameter, for each argument a GPU would misread (the module's docstring lists them)."""
    if len(args) != len(params):
        signature = ", ".join(f"{p.ctype}{'*' if p.pointer else ''} {p.name}" for p in params)
        raise TypeError(f"{kernel}({signature}) takes {len(params)} arguments, got {len(args)}")
    for p, arg in zip(params, args):
        struct = p.ctype.partition("<")[0]
        if not p.pointer and struct in (structs or {}):  # a struct by value: a NumPy array of size one, its bytes
            if not (type(arg) is numpy.ndarray and arg.size == 1 and arg.dtype == structs[struct]):
                raise TypeError(f"{kernel}: {p.name} is a {p.ctype} passed by value: it needs a NumPy array of "
                                f"size one and dtype {structs[struct]}, got {type(arg).__name__} "
                                f"{getattr(arg, 'dtype', '')}")
            continue
        dtype = numpy.dtype(C_TYPES[p.ctype])
        if p.pointer:
            if arg is None:  # CuPy passes None as a NULL pointer
                continue
            if not isinstance(arg, numpy.ndarray) or arg.dtype != dtype:
                raise TypeError(f"{kernel}: {p.name} is a {p.ctype}*: it needs an array of {dtype}, got "
                                f"{getattr(arg, 'dtype', type(arg).__name__)}")
            if not arg.flags.c_contiguous:
                raise TypeError(f"{kernel}: {p.name} is read as flat row-major memory, but the array given is "
                                "not C-contiguous: pass cupy.ascontiguousarray(...) (a transposed view needs its "
                                "own kernel)")
            if not p.const and not arg.flags.writeable:
                raise TypeError(f"{kernel}: {p.name} is written, but the array given is read-only")
        elif not (isinstance(arg, numpy.generic) and arg.dtype == dtype):
            got = f"numpy.{arg.dtype}" if isinstance(arg, numpy.generic) else f"a Python {type(arg).__name__}"
            raise TypeError(f"{kernel}: {p.name} is a C {p.ctype}: pass numpy.{dtype}(...), got {got} "
                            "(CuPy passes a value with its NumPy type's size; a Python int is 64 bits)")


def check_launch(kernel, grid, block, needed_block, needed_grid):
    """ValueError unless grid x block is a launch CUDA accepts, with the block the kernel needs (if it says) and
    the grid it needs, axis by axis."""
    grid, block, needed_grid = (to_dims(d) for d in (grid, block, needed_grid))
    if math.prod(block) > MAX_THREADS_PER_BLOCK or any(b > limit for b, limit in zip(block, MAX_BLOCK)):
        raise ValueError(f"{kernel}: block {block} is over CUDA's limits "
                         f"({MAX_THREADS_PER_BLOCK} threads, {MAX_BLOCK})")
    if any(g > limit for g, limit in zip(grid, MAX_GRID)):
        raise ValueError(f"{kernel}: grid {grid} is over CUDA's limits {MAX_GRID}")
    if min(grid + block) < 1:
        raise ValueError(f"{kernel}: grid {grid} and block {block} must be at least 1 along each axis")
    if needed_block is not None and block != to_dims(needed_block):
        raise ValueError(f"{kernel}: needs blocks of {to_dims(needed_block)} threads, launched with {block}")
    for axis, g, needed in zip("xyz", grid, needed_grid):
        if g < needed:
            raise ValueError(f"{kernel}: grid {grid} leaves entries unwritten: {g} blocks along {axis}, "
                             f"{needed} needed")
        if g > needed:
            raise ValueError(f"{kernel}: grid {grid} launches blocks wholly outside the output: {g} blocks "
                             f"along {axis}, {needed} needed")


def to_dims(d):
    """A grid or block as CuPy takes it (an int, or 1 to 3 ints) -> (x, y, z)."""
    d = (d,) if isinstance(d, (int, numpy.integer)) else tuple(d)
    return d + (1,) * (3 - len(d))
