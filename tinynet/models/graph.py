"""The training step as one CUDA graph: captured once, replayed for every batch (``compile(jit_compile=...)``).

Why: on a GPU each CuPy call costs the host 25-100 microseconds, while the GPU's own work in a step of a
small model takes a few: the GPU waits for Python. A CUDA graph records every kernel that one call of
``model.fit_step`` launches, and replays them all with one launch, without running the step's Python.

What is captured is ``Sequential.fit_step`` itself: the batch cut from the epoch's order, ``train_step`` on it
(forward, loss, backward, update: the code a learner reads), its loss and metrics added to the running means.
Layers, losses and optimizers know nothing of graphs. Nothing in it is read back to the host, so nothing
waits for the GPU inside an epoch: the batch's place in the epoch, the loss and metric sums and the first
non-finite loss are all kept on the device, in arrays written in place (``Batches``, ``RunningMeans``), which
is what lets one recorded step do the next step's work at each replay. The recipe is PyTorch's
(``torch.cuda.graph``):
  1. warm up: the first batch's step runs eagerly on a side stream (kernels compiled, state created);
  2. capture: the second batch's step is recorded on the side stream (relaxed capture mode, so that CuPy's
     memory pool may call cudaMalloc; matrix products by tinynet's own kernels, ``backend.own_gemm()``, since
     capture refuses cuBLAS; memory from a pool of captures' own, ``capture_pool``, so that nothing allocated
     later can take the graph's buffers); then the graph is launched once: that batch's step;
  3. replay: every later batch of that size is one launch.
A batch of another size (the last one, when the batch size does not divide the data) runs eagerly.

A replay runs none of the step's Python, so the step may change nothing on the host that the next step
reads: ``optimizer.iterations`` is counted here, and a layer or optimizer whose step depends on host state
(Dropout's random mask, Adam's step size computed from ``iterations``) cannot be captured. ``CAPTURABLE``
lists what can; for anything else ``fit`` warns once, naming it, and trains eagerly (``jit_compile=True``
makes that an error).
"""
import functools
import warnings
import weakref

from tinynet import arguments, backend
from tinynet.models import rollback

JIT_COMPILE = ("auto", True, False)
WARM_UP_STEPS = 1  # eager steps of the batch shape before it is captured
# Known to run on the GPU alone, with no host state that changes between steps (by class name, exactly:
# a subclass may change what a step does). Conv2D, MaxPooling2D, BatchNormalization: not yet checked on a GPU.
CAPTURABLE = {"layer": {"Dense", "ReLU", "Softmax", "Flatten"}, "optimizer": {"SGD", "RMSprop"},
              "loss": {"SoftmaxCrossentropy", "CategoricalCrossentropy", "MeanSquaredError"}}


def check_jit_compile(value):
    """``compile``'s ``jit_compile``: ``'auto'`` (a CUDA graph on CuPy, eager elsewhere), True or False."""
    if isinstance(value, str):
        if value not in JIT_COMPILE:
            raise ValueError(f"jit_compile must be 'auto', True or False, got {value!r}.")
        return value
    try:
        return arguments.flag(value, "jit_compile")  # True or False, NumPy's bools too
    except TypeError:
        raise TypeError(f"jit_compile must be 'auto', True or False, got {value!r} ({type(value).__name__}).") from None


def training_step(model):
    """What ``fit`` calls for each batch: ``model.fit_step``, or on CuPy (unless ``jit_compile=False``) a
    ``CapturedStep`` replaying it. Checked before any work: ``jit_compile=True`` on another backend, or
    with something that cannot be captured, is an error."""
    jit_compile = model.jit_compile
    if backend.get_backend() != "cupy":
        if jit_compile is True:
            raise ValueError(f"jit_compile=True captures the training step in a CUDA graph, which needs the 'cupy' "
                             f"backend; this one is {backend.get_backend()!r}. Compile with jit_compile='auto' "
                             "(a graph on a GPU, eager elsewhere) or False.")
        return model.fit_step
    return model.fit_step if jit_compile is False else CapturedStep(model, required=jit_compile is True)


def not_capturable(model):
    """Why ``model``'s step cannot be captured ("layer 'dropout' (Dropout)"), or None when it can."""
    for layer in model.layers:
        for part in (layer, getattr(layer, "activation", None)):
            if part is not None and type(part).__name__ not in CAPTURABLE["layer"]:
                return f"layer {layer.name!r} ({type(part).__name__})"
    for kind, part in (("optimizer", model.optimizer), ("loss", model.train_loss)):
        if type(part).__name__ not in CAPTURABLE[kind]:
            return f"the {kind} {type(part).__name__}"
    return None


def cuda():
    """CuPy's CUDA module (streams, graphs, memory pools); tests put a stand-in here."""
    import cupy
    return cupy.cuda


@functools.cache
def shared_pool():
    """The memory pool that captured steps share, one for the process (made on first use): ``capture_pool``."""
    return cuda().MemoryPool()


def capture_pool(live):
    """The memory pool a new capture allocates from. Not CuPy's default pool: nothing allocated outside a capture
    may take a graph's buffers. Not a new pool per graph either: CuPy gives a pool's memory back to the GPU only
    when asked (``free_all_blocks``), never when the pool is dropped, so each ``fit`` would keep its graph's memory
    for good. So one pool is shared, and since a graph is replayed only inside its own ``fit``, what earlier
    captures left in it is given back here (CuPy keeps freed blocks per stream, and each capture's stream is new:
    they would not be reused). A step still ``live`` (a ``fit`` running at the same time) may still replay a graph
    from the shared pool: then the capture gets a pool of its own."""
    shared = shared_pool()
    if any(step.pool is shared for step in live):
        return cuda().MemoryPool()
    shared.free_all_blocks()  # no live graph uses them: what earlier captures freed, on their ended streams
    return shared


class CapturedStep:
    """``step(data, step, means)`` does what ``model.fit_step(data, step, means)`` does, by replaying a CUDA
    graph of it for every batch as large as the first (the module's docstring says how). ``data`` and
    ``means`` must be the same objects at every call (``fit``'s): the graph reads and writes their arrays.
    With ``compile(steps_per_execution=K)``, one graph holds K steps in a row: a launch does the step it was
    called for and the next K - 1, and the calls for those find their step done (``self.done_ahead``)."""

    live = weakref.WeakSet()  # every CapturedStep not yet garbage: its fit may still replay its graph

    def __init__(self, model, required=False):
        self.model, self.required, self.steps = model, required, model.steps_per_execution
        self.size = self.graph = self.stream = self.pool = None
        self.warm_ups = self.replays = self.done_ahead = 0
        self.saved, self.problem = None, not_capturable(model)
        if self.problem is not None:
            self.give_up(f"{self.problem} cannot be captured into a CUDA graph: its step depends on state kept on "
                         f"the host (only {', '.join(sorted(CAPTURABLE['layer']))} layers, "
                         f"{' and '.join(sorted(CAPTURABLE['optimizer']))} are known to be capturable)", ValueError)
        self.saved = rollback.snapshot(model) if required else None  # what a failed capture goes back to

    def __call__(self, data, step, means):
        if self.done_ahead:  # done by the last launch, with the steps before it
            self.done_ahead -= 1
            return None
        size = data.size(step)
        other_size = self.size is not None and size != self.size  # the epoch's last, smaller batch
        # a capture or a replay does K steps: fewer than K batches of this size are left from here
        too_few = self.warm_ups == WARM_UP_STEPS and data.size(step + self.steps - 1) != size
        if self.problem is not None or other_size or too_few:
            return self.model.fit_step(data, step, means)  # eager
        self.size = size
        if self.graph is not None:
            return self.replay()
        if self.warm_ups < WARM_UP_STEPS:
            self.warm_ups += 1
            return self.warm_up(data, step, means)
        return self.capture(data, step, means)

    def warm_up(self, data, step, means):
        """One eager step on a side stream, with the kernels the graph will use."""
        cuda_ = cuda()
        current = cuda_.get_current_stream()
        self.stream = self.stream or cuda_.Stream(non_blocking=True)
        self.stream.wait_event(current.record())  # after what the current stream queued (the epoch's order)
        with self.stream, backend.own_gemm():
            self.model.fit_step(data, step, means)
        current.wait_event(self.stream.record())  # what follows on the current stream waits for the step

    def capture(self, data, step, means):
        """Record the step (and the next K - 1), then launch the graph once: those batches' steps."""
        cuda_, optimizer = cuda(), self.model.optimizer
        iterations, pool = optimizer.iterations, capture_pool(CapturedStep.live)
        try:
            with cuda_.using_allocator(pool.malloc), self.stream, backend.own_gemm():
                self.stream.begin_capture(mode=cuda_.runtime.streamCaptureModeRelaxed)
                try:
                    for later in range(step, step + self.steps):
                        self.model.fit_step(data, later, means)  # recorded, not run
                except BaseException:
                    end_quietly(self.stream)
                    raise
                graph = self.stream.end_capture()
        except Exception as error:
            optimizer.iterations = iterations  # the steps did not run
            self.give_up(f"{culprit(self.model, error)} failed while the training step was captured into a "
                         f"CUDA graph ({type(error).__name__}: {error})", RuntimeError, error)
            return self.model.fit_step(data, step, means)
        optimizer.iterations = iterations  # the launch below counts the steps
        self.graph, self.pool = graph, pool
        CapturedStep.live.add(self)
        return self.replay()

    def replay(self):
        """K steps (K = steps_per_execution, usually 1): one launch, on the current stream."""
        self.graph.launch(stream=cuda().get_current_stream())
        self.model.optimizer.iterations += self.steps  # the steps' Python counts these; a replay runs no Python
        self.replays += 1
        self.done_ahead = self.steps - 1

    def give_up(self, reason, error_type, cause=None):
        """Train eagerly from now on, with one warning; under ``jit_compile=True``, an error instead (the
        weights put back as ``fit`` found them)."""
        self.problem = reason
        if self.required:
            if self.saved is not None:
                rollback.restore(self.model, self.saved)
            raise error_type(f"jit_compile=True: {reason}. Compile with jit_compile='auto' to train without a "
                             "graph (with a warning), or False.") from cause
        warnings.warn(f"{reason}; fit trains without a CUDA graph (eagerly). Compile with jit_compile=False "
                      "to choose that without this warning.", RuntimeWarning, stacklevel=4)


def end_quietly(stream):
    """End a capture that failed: the stream must leave capture mode; the (invalid) graph is dropped."""
    try:
        stream.end_capture()
    except Exception:  # cudaErrorStreamCaptureInvalidated: expected after a failure
        pass


def culprit(model, error):
    """Which of ``model``'s layers raised ``error`` ("layer 'dense_1' (Dense)"): the innermost frame of its
    traceback that is a method of one of them; else "the training step"."""
    owners = {id(part): layer for layer in model.layers
              for part in (layer, getattr(layer, "activation", None)) if part is not None}
    found, frame = None, error.__traceback__
    while frame is not None:
        found = owners.get(id(frame.tb_frame.f_locals.get("self")), found)
        frame = frame.tb_next
    return "the training step" if found is None else f"layer {found.name!r} ({type(found).__name__})"
