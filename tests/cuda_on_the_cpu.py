"""CUDA on the CPU: tinynet's kernels run from their very CUDA C source, compiled by the host's C++ compiler, so
that what a GPU would run, and not a transcription of it, is tested on any machine.

Each kernel's NumPy model (``model_*`` in tinynet/kernels) is written by hand after its C, so it can agree with
itself while the C has an index wrong. Here the C itself runs. ``PRELUDE`` gives the source what CUDA gives it:
- ``threadIdx``, ``blockIdx``, ``blockDim``, ``gridDim``: globals, set before a thread runs;
- ``__shared__ T name[...];`` is rewritten (``shared_memory``, on its one line) into a reference to an array that
  each block gets anew, from malloc, filled with a poison (0xFF bytes: NaN, -1; or 0x7F: 3.4e38, 2139062143), as
  CUDA's shared memory is undefined when a block starts: a read of an entry no thread of the block wrote shows,
  and AddressSanitizer sees the array's bounds (blocks run one after another, each to its end);
- ``__syncthreads()``: each thread of a block is a *fiber*, a stack of its own on which it runs until it reaches
  ``__syncthreads()`` or its end; then the next thread runs. When every thread has reached the barrier, all go on.
  So the threads of a block run one at a time, in the order ``schedule`` says, between barriers;
- ``atomicAdd``: a plain read-add-write (one thread runs at a time); ``__threadfence()``: nothing to order;
  ``__ldcg`` (a load that bypasses the L1 cache): a load;
- ``exp``, ``log``, ``sqrt``, ``fabs``, ``isnan``, ``isfinite``: C++'s. The host's libm's exp and log may differ
  from CUDA's by a few units in the last place (CUDA's expf is within 2); sqrt, division, products and sums are
  IEEE-rounded on both, and ``-ffp-contract=off`` keeps every product and sum rounded by itself, as
  ``--fmad=false`` does on the GPU.

What running the C finds that a model cannot:
- an index or stride written wrong in the C (the output differs from the model's);
- a missing ``__syncthreads()``: with ``schedule="reverse"`` or a shuffled one, a thread runs before the threads
  whose shared-memory writes it reads, and reads poison or stale numbers; the output then differs between
  schedules;
- a ``__syncthreads()`` that not every thread of the block reaches (undefined behaviour in CUDA): an error here;
- a read or write outside an array, shared memory's included: run the tests with AddressSanitizer
  (``TINYNET_CUDA_ASAN=1`` and libasan preloaded; tests/test_kernel_sources_on_the_cpu.py does so in a
  subprocess), and the first such access stops the process, naming the kernel and the line of C.

What it cannot find: anything about warps (none of tinynet's kernels uses a warp's shuffles or votes); races
within one phase between barriers (a thread runs a whole phase uninterrupted, so two threads' plain ``+=`` on one
address both count; in tinynet's kernels only thread 0 reads and writes a shared total); memory ordering between
blocks running at once (blocks run one after another here; ``schedule`` orders them too); an out-of-bounds access
to a kernel's own local array after its first ``__syncthreads()`` (AddressSanitizer forgets a fiber's stack at each
switch; tinynet's kernels have no local arrays); the GPU's limits on registers, shared memory and the 4 KB of
kernel arguments; the module's compile options other than ``--fmad=false`` (refused); and speed.

A launch takes CuPy's arguments as CuPy's RawKernel does: ``kernel(grid, block, args)``, an array for each
pointer (its address is passed; ``None`` is NULL), a NumPy scalar for each value (its bytes are passed), and a
NumPy array of size one for a struct passed by value. Arrays are NumPy arrays (host memory is the device here).
"""
import ctypes
import hashlib
import itertools
import os
import re
import shutil
import subprocess
import tempfile

import numpy
import pytest

import fake_cupy_kernels

INSTALL = "apt-get install g++ (a C++17 compiler; tests/cuda_on_the_cpu.py compiles tinynet's CUDA kernels with it)"
ASAN = os.environ.get("TINYNET_CUDA_ASAN") == "1"  # compile with AddressSanitizer (libasan must be preloaded)
SCHEDULES = {"forward": 0, "reverse": 1}  # any other: "shuffle <seed>", a new random order at each barrier
CXX_FLAGS = ["-std=c++17", "-O1", "-g", "-fPIC", "-shared", "-ffp-contract=off", "-Wall", "-Wno-unused-variable",
             "-Wno-unused-function"]
ASAN_FLAGS = ["-fsanitize=address", "-fno-omit-frame-pointer"]

PRELUDE = r"""
// --- CUDA on the CPU (tests/cuda_on_the_cpu.py): what CUDA gives a kernel, for the host's C++ compiler ---------
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>
#include <sys/mman.h>
#include <ucontext.h>

struct dim3 { unsigned int x, y, z; };
dim3 threadIdx, blockIdx, blockDim, gridDim;  // CUDA's built-ins: set by the scheduler before a thread runs

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
using std::exp; using std::log; using std::sqrt; using std::fabs;
using std::isnan; using std::isinf; using std::isfinite; using std::min; using std::max;

#if defined(__SANITIZE_ADDRESS__)  // tell AddressSanitizer which stack is in use when a fiber switches
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
#endif

namespace cuda_on_the_cpu {
enum State { RUNNABLE, AT_BARRIER, DONE };
struct Thread { ucontext_t context; State state; dim3 index; void* stack; };
const size_t STACK = 256 * 1024;  // bytes of stack per thread (mapped lazily: only the pages touched cost)
const size_t GUARD = 4096;        // a page below each stack that may not be touched
Thread* threads = nullptr;        // one per thread of a block, reused by every block and launch
unsigned capacity = 0;
Thread* running = nullptr;        // the thread that runs now
ucontext_t scheduler;             // where a thread returns to at a barrier and at its end
void (*body)(void*) = nullptr;    // the kernel call every thread makes, and its data
void* body_data = nullptr;
unsigned long long random_state = 0;
unsigned long long block_serial = 0;  // a new number for each block of each launch: its shared memory is new
int poison = 0xFF;                    // the byte that fills a block's shared memory before it runs

unsigned next_random() {  // a 64-bit LCG (Knuth's MMIX constants): the shuffled schedules
    random_state = random_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(random_state >> 33);
}

// AddressSanitizer keeps track of which stack is in use: each switch is announced (start) and completed
// (finish), with the bounds of the stack switched to (the scheduler's are learnt when a thread first starts).
#if defined(__SANITIZE_ADDRESS__)
const void* scheduler_stack = nullptr;
size_t scheduler_stack_size = 0;
#endif

void to_thread(Thread& t) {  // from the scheduler to thread t, until it reaches a barrier or its end
#if defined(__SANITIZE_ADDRESS__)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, t.stack, STACK);
    swapcontext(&scheduler, &t.context);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    swapcontext(&scheduler, &t.context);
#endif
}

void thread_main() {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(nullptr, &scheduler_stack, &scheduler_stack_size);
#endif
    body(body_data);
    running->state = DONE;  // then uc_link: back to the scheduler
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(nullptr, scheduler_stack, scheduler_stack_size);  // this stack is done with
#endif
}

void syncthreads() {  // from the running thread back to the scheduler, until every thread is at the barrier
    running->state = AT_BARRIER;
#if defined(__SANITIZE_ADDRESS__)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, scheduler_stack, scheduler_stack_size);
    swapcontext(&running->context, &scheduler);
    __sanitizer_finish_switch_fiber(fake, &scheduler_stack, &scheduler_stack_size);
#else
    swapcontext(&running->context, &scheduler);
#endif
}

// `order` of n items: 0 forward, 1 reverse, else shuffled (Fisher-Yates with next_random).
void arrange(unsigned* order, unsigned n, int schedule) {
    for (unsigned i = 0; i < n; i++) order[i] = schedule == 1 ? n - 1 - i : i;
    if (schedule > 1) {
        for (unsigned i = n - 1; i > 0 && n > 1; i--) {
            unsigned j = next_random() % (i + 1), t = order[i];
            order[i] = order[j]; order[j] = t;
        }
    }
}

// Runs the `count` threads of one block to their ends, phase by phase (a phase ends when every thread has
// reached __syncthreads() or its end). 0, or 1 when some threads ended while others wait at a barrier.
int run_block(unsigned count, int schedule, unsigned* order) {
    for (unsigned i = 0; i < count; i++) {
        Thread& t = threads[i];
        getcontext(&t.context);
        t.context.uc_stack.ss_sp = t.stack;
        t.context.uc_stack.ss_size = STACK;
        t.context.uc_link = &scheduler;
        makecontext(&t.context, thread_main, 0);
        t.state = RUNNABLE;
        t.index = {i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y)};
    }
    for (;;) {
        arrange(order, count, schedule);
        for (unsigned k = 0; k < count; k++) {
            Thread& t = threads[order[k]];
            if (t.state == RUNNABLE) {
                threadIdx = t.index;
                running = &t;
                to_thread(t);
            }
        }
        unsigned waiting = 0, done = 0;
        for (unsigned i = 0; i < count; i++) {
            waiting += threads[i].state == AT_BARRIER;
            done += threads[i].state == DONE;
        }
        if (waiting == 0) return 0;
        if (done > 0) return 1;
        for (unsigned i = 0; i < count; i++) threads[i].state = RUNNABLE;
    }
}

// One launch: every block of `grid`, one after another in the schedule's order, each of `block` threads.
// 0; 1: a barrier that not every thread reached; 2: no memory for the threads' stacks.
int run_grid(const unsigned* grid, const unsigned* block, int schedule, unsigned long long seed) {
    random_state = seed;
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    unsigned count = block[0] * block[1] * block[2];
    unsigned long long blocks = (unsigned long long)grid[0] * grid[1] * grid[2];
    if (count > capacity) {
        Thread* more = (Thread*)realloc(threads, count * sizeof(Thread));
        if (!more) return 2;
        threads = more;
        for (unsigned i = capacity; i < count; i++) {
            // a stack, and below it a page that may not be touched: an overflow stops at once, not in a neighbour
            char* mapped = (char*)mmap(nullptr, GUARD + STACK, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (mapped == MAP_FAILED || mprotect(mapped, GUARD, PROT_NONE) != 0) return 2;
            threads[i].stack = mapped + GUARD;
            capacity = i + 1;
        }
    }
    unsigned* order = (unsigned*)malloc(count * sizeof(unsigned));
    unsigned* block_order = (unsigned*)malloc(blocks * sizeof(unsigned));
    if (!order || !block_order) { free(order); free(block_order); return 2; }
    arrange(block_order, (unsigned)blocks, schedule);
    int result = 0;
    for (unsigned long long k = 0; k < blocks && result == 0; k++) {
        unsigned b = block_order[k];
        blockIdx = {b % grid[0], (b / grid[0]) % grid[1], b / (grid[0] * grid[1])};
        block_serial++;
        poison = schedule == 0 ? 0xFF : schedule == 1 ? 0x7F : (next_random() & 1 ? 0xFF : 0x7F);
        result = run_block(count, schedule, order);
    }
    free(order);
    free(block_order);
    return result;
}

// A kernel and its arguments as cuLaunchKernel takes them: args[i] points to argument i's value.
template <typename P> using value_of = typename std::remove_cv<typename std::remove_reference<P>::type>::type;
template <typename... P> struct Launch {
    void (*kernel)(P...);
    void** args;
    template <size_t... I> void call(std::index_sequence<I...>) {
        kernel(*static_cast<value_of<P>*>(args[I])...);
    }
    static void run(void* self) { static_cast<Launch*>(self)->call(std::index_sequence_for<P...>{}); }
};
template <typename... P>
int launch(void (*kernel)(P...), const unsigned* grid, const unsigned* block, void** args, int schedule,
           unsigned long long seed) {
    Launch<P...> call{kernel, args};
    body = &Launch<P...>::run;
    body_data = &call;
    return run_grid(grid, block, schedule, seed);
}
}  // namespace cuda_on_the_cpu

namespace {  // internal linkage: each library its own arrays
// `__shared__ T name[N];` becomes `T (&name)[N] = shared_array<T[N], ID>();`: the block's array, new for each block
template <typename A, int ID> A& shared_array() {
    static A* storage = nullptr;
    static unsigned long long serial = ~0ULL;
    if (serial != cuda_on_the_cpu::block_serial) {
        free(storage);
        storage = static_cast<A*>(malloc(sizeof(A)));
        memset(static_cast<void*>(storage), cuda_on_the_cpu::poison, sizeof(A));
        serial = cuda_on_the_cpu::block_serial;
    }
    return *storage;
}
}  // namespace

inline void __syncthreads() { cuda_on_the_cpu::syncthreads(); }
inline void __threadfence() {}  // one thread runs at a time: every write is seen at once
template <typename T> T atomicAdd(T* address, T value) { T old = *address; *address = old + value; return old; }
template <typename T> T __ldcg(const T* address) { return *address; }  // a load that bypasses L1: a load here
// --- the kernel's source --------------------------------------------------------------------------------------
"""

ERRORS = {1: "a __syncthreads() that not every thread of the block reached (some threads ended while others "
             "waited there): undefined behaviour on a GPU", 2: "no memory for the threads' stacks"}


SHARED = re.compile(r"__shared__\s+([A-Za-z_][\w:<>, ]*?)\s+([A-Za-z_]\w*)\s*((?:\[[^\]]+\])*)\s*;")


def shared_memory(code):
    """``code`` with each ``__shared__ T name[...];`` made ``T (&name)[...] = shared_array<T[...], id>();`` (on the
    same line): the array of the block that runs, poisoned (the module's docstring). Any other form is refused."""
    ids = itertools.count()
    code = SHARED.sub(lambda m: f"{m[1]} (&{m[2]}){m[3]} = shared_array<{m[1]}{m[3]}, {next(ids)}>();", code)
    if "__shared__" in code:
        raise ValueError("a __shared__ declaration that is not `__shared__ T name[...];` (one variable, no "
                         "initialiser): tests/cuda_on_the_cpu.py cannot give it a block's shared memory")
    return code


def compiler():
    """The C++ compiler's path; a skip saying how to install one (a failure in CI: nothing skips silently)."""
    found = shutil.which(os.environ.get("CXX", "g++"))
    if found is None:
        message = f"no C++ compiler: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}. CI is set, so this fails instead of skipping.")
        pytest.skip(message)
    return found


_built = {}  # source's hash -> the loaded library: each source is compiled once per process
_folder = None


def build(source):
    """``source`` compiled into a shared library and loaded (ctypes.CDLL); once per source and process. The files
    go to a temporary folder that is removed when the process ends."""
    global _folder
    flags = CXX_FLAGS + (ASAN_FLAGS if ASAN else [])
    key = hashlib.sha256((source + " ".join(flags)).encode()).hexdigest()[:16]
    if key not in _built:
        if _folder is None:
            _folder = tempfile.TemporaryDirectory(prefix="tinynet-cuda-on-the-cpu-")
        cpp, library = (os.path.join(_folder.name, f"{key}.{ext}") for ext in ("cpp", "so"))
        with open(cpp, "w") as file:
            file.write(source)
        done = subprocess.run([compiler(), *flags, cpp, "-o", library], capture_output=True, text=True)
        if done.returncode != 0:
            numbered = "\n".join(f"{i:4} {line}" for i, line in enumerate(source.splitlines(), 1))
            pytest.fail(f"the C++ compiler refuses the kernel source:\n{done.stderr}\n--- the source:\n{numbered}",
                        pytrace=False)
        _built[key] = ctypes.CDLL(library)
    return _built[key]


def schedule_code(schedule):
    """(schedule number, seed) for ``"forward"``, ``"reverse"`` or ``"shuffle <seed>"``."""
    if schedule in SCHEDULES:
        return SCHEDULES[schedule], 0
    word, _, seed = schedule.partition(" ")
    if word != "shuffle" or not seed.isdigit():
        raise ValueError(f"schedule {schedule!r}: use 'forward', 'reverse' or 'shuffle <seed>'")
    return 2, int(seed)


def argument(param, value, keep):
    """The address of ``value`` as cuLaunchKernel wants it for ``param``: a pointer's value is the array's address
    (0 for None); a scalar's, its bytes; a struct's, the bytes of a size-one NumPy array. ``keep`` holds what must
    live until the launch."""
    if param.pointer:
        pointer = ctypes.c_void_p(None if value is None else value.__array_interface__["data"][0])
        keep.append(pointer)
        return ctypes.addressof(pointer)
    if isinstance(value, numpy.ndarray):  # a struct by value: its bytes
        return value.__array_interface__["data"][0]
    scalar = numpy.array(value)  # a NumPy scalar: its bytes, as its dtype says
    keep.append(scalar)
    return scalar.__array_interface__["data"][0]


class RawModule:
    """A CUDA module as CuPy's ``RawModule(code=..., name_expressions=...)``, compiled for the CPU: kernels by
    name expression (``"gemm_nn<float>"``), each a ``RawKernel``. ``structs``: {C struct name: its NumPy dtype},
    for a struct passed by value."""

    def __init__(self, code, name_expressions=(), structs=None):
        self.code, self.name_expressions, self.structs = code, tuple(name_expressions), structs or {}
        self.signatures = fake_cupy_kernels.kernel_signatures(code)
        self.entry_names = self.name_expressions + tuple(  # a kernel that is no template needs no name expression
            name for name, (template, _) in self.signatures.items()
            if not template and name not in self.name_expressions)
        entries = "".join(f'extern "C" int tinynet_launch_{i}(const unsigned* grid, const unsigned* block, void** '
                          f'args, int schedule, unsigned long long seed) {{\n    return cuda_on_the_cpu::launch('
                          f'&{name}, grid, block, args, schedule, seed);\n}}\n'
                          for i, name in enumerate(self.entry_names))
        self.library = build(PRELUDE + shared_memory(code) + "\n// --- one entry point per name expression\n" + entries)

    def get_function(self, name_expression):
        if name_expression not in self.entry_names:
            raise ValueError(f"{name_expression!r} is not a kernel of this module, nor among its name expressions "
                             f"{self.name_expressions}")
        name, _, template_args = name_expression.partition("<")
        template, params = self.signatures[name]
        values = [a.strip() for a in template_args.rstrip(">").split(",")] if template_args else []
        params = [fake_cupy_kernels.Param(fake_cupy_kernels.instantiate(p.ctype, dict(zip(template, values))),
                                          p.name, p.pointer, p.const) for p in params]
        entry = getattr(self.library, f"tinynet_launch_{self.entry_names.index(name_expression)}")
        return RawKernel(name_expression, params, entry, self.structs)


class RawKernel:
    """One kernel: ``kernel(grid, block, args, schedule="forward")`` runs it on the CPU (the module's docstring)."""

    def __init__(self, name_expression, params, entry, structs):
        self.name_expression, self.params, self.entry, self.structs = name_expression, params, entry, structs

    def __call__(self, grid, block, args, schedule="forward"):
        fake_cupy_kernels.check_arguments(self.name_expression, self.params, args, self.structs)
        grid, block = (fake_cupy_kernels.to_dims(d) for d in (grid, block))
        keep = []
        pointers = (ctypes.c_void_p * max(len(args), 1))(*[argument(p, a, keep) for p, a in zip(self.params, args)])
        code, seed = schedule_code(schedule)
        result = self.entry((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), pointers, code,
                            ctypes.c_ulonglong(seed))
        if result:
            raise RuntimeError(f"{self.name_expression}, grid {grid}, block {block}: {ERRORS[result]}")


C_TYPES = {numpy.dtype(dtype).name: c for c, dtype in fake_cupy_kernels.C_TYPES.items()}  # float32: "float", ...


class ElementwiseKernel:
    """CuPy's ``ElementwiseKernel(in_params, out_params, operation, name)``, compiled for the CPU for each dtype it
    is called with: ``kernel(*inputs, *outputs)`` runs ``operation`` for i = 0 ... n - 1, each array parameter
    bound to its i-th entry (a reference, so an output is written), each scalar a value, as CuPy's generated loop
    does. The arrays have one shape (no broadcasting; tinynet's calls need none); one that is not C-contiguous
    is worked on as a contiguous copy, copied back if written."""

    def __init__(self, in_params, out_params, operation, name="kernel"):
        self.ins = fake_cupy_kernels.split_params(in_params)
        self.outs = fake_cupy_kernels.split_params(out_params)
        self.operation, self.name = operation, name
        if any(raw for _, _, raw in self.ins + self.outs):
            raise NotImplementedError(f"{name}: a raw parameter (not used by tinynet's kernels)")

    def source(self, args):
        """The C++ of the loop for these arguments: typedefs for the type placeholders, then the loop."""
        params = [(p, False) for p in self.ins] + [(p, True) for p in self.outs]
        types = {ctype: C_TYPES[arg.dtype.name] for ((ctype, _, _), _), arg in zip(params, args)
                 if isinstance(arg, numpy.ndarray)}
        unpack, bind = [], []
        for j, (((ctype, name, _), is_out), arg) in enumerate(zip(params, args)):
            c_type = types.get(ctype) or C_TYPES[numpy.dtype(ctype).name]
            if isinstance(arg, numpy.ndarray):
                unpack.append(f"    {c_type}* _raw_{name} = *static_cast<{c_type}**>(_args[{j}]);")
                bind.append(f"        {'' if is_out else 'const '}{ctype}& {name} = _raw_{name}[i];")
            else:
                unpack.append(f"    const {c_type} {name} = *static_cast<const {c_type}*>(_args[{j}]);")
        typedefs = "".join(f"typedef {c} {ctype};\n" for ctype, c in types.items())
        return (f"{PRELUDE}{typedefs}\nextern \"C\" void tinynet_elementwise(void** _args, long long _n) {{\n"
                + "\n".join(unpack) + "\n    for (long long i = 0; i < _n; i++) {\n" + "\n".join(bind)
                + f"\n{self.operation}\n    }}\n}}\n")

    def __call__(self, *args):
        if len(args) != len(self.ins) + len(self.outs):
            raise TypeError(f"{self.name} takes {len(self.ins) + len(self.outs)} arguments, got {len(args)}")
        arrays = [a for a in args if isinstance(a, numpy.ndarray)]
        if len({a.shape for a in arrays}) != 1:
            raise ValueError(f"{self.name}: the arrays' shapes differ: {[a.shape for a in arrays]}")
        types = {ctype: a.dtype for (ctype, _, _), a in zip(self.ins + self.outs, args) if isinstance(a, numpy.ndarray)}
        work = [numpy.ascontiguousarray(a) if isinstance(a, numpy.ndarray)  # a scalar: as CuPy casts it, to its type
                else (types.get(ctype) or numpy.dtype(ctype)).type(a)
                for (ctype, _, _), a in zip(self.ins + self.outs, args)]
        keep = []
        pointers = (ctypes.c_void_p * len(work))(*[
            argument(fake_cupy_kernels.Param("", "", isinstance(a, numpy.ndarray), False), a, keep) for a in work])
        build(self.source(args)).tinynet_elementwise(pointers, ctypes.c_longlong(arrays[0].size))
        for a, w in zip(args[len(self.ins):], work[len(self.ins):]):
            if w is not a:
                a[...] = w  # a copy was written: back into the array given
