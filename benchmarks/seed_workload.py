"""The seed workload: tinynet against its peers, side by side, on the CPU or a GPU.

    python benchmarks/seed_workload.py                  # CPU: tinynet, PyTorch (with and without flush-to-zero), Keras
    python benchmarks/seed_workload.py --systems tinynet,keras --epochs 3
    python benchmarks/seed_workload.py --floor          # also time the matrix products alone
    python benchmarks/seed_workload.py --device gpu     # GPU: tinynet on CuPy (its CUDA graph) against PyTorch,
                                                        # eager and as one CUDA graph, at batch 32, 128 and 512,
                                                        # and tinynet's graph against its eager step (200 steps)
    python benchmarks/seed_workload.py --epochs 1 --limit 2048    # a quick check of this script, not the workload

The workload: Dense(512, relu) - Dense(512, relu) - Dense(10, softmax) on the
60,000 MNIST training images, RMSprop (Keras's defaults), batch 32 (--batch-sizes), shuffled
every epoch, validation on the 10,000 test images (batch 32) after each epoch.
An epoch's time includes its validation; on a GPU every epoch is timed with a
synchronize at both edges. Before the clock starts each system trains a
throwaway copy of the model on a few batches, the last one partial, with
validation, through the same code path it is timed on (tinynet: ``fit``), so
the kernels it uses are compiled and loaded outside the timed epochs; the timed
model then starts from the seed's initial weights.

Each system runs in a fresh process of its own, one after the other (so one
system's threads, caches or flush-to-zero setting never touch another's), and
the table compares per-epoch medians. ``tinynet-k8`` is tinynet compiled with ``steps_per_execution=8``
(on a GPU, eight steps per CUDA graph launch; on the CPU the same as ``tinynet``), and ``tinynet-nosplit`` is
tinynet with split-K off (``gemm.BUSY_BLOCKS = 0``: each matrix product of the CUDA graph sums all of K in one
block; on the CPU the same as ``tinynet``), each at the first batch size only. ``torch-graph`` is PyTorch's fastest way
to run such a step, written as PyTorch's CUDA-graph documentation shows it (whole-network capture): static
input buffers, ``RMSprop(capturable=True)``, three warm-up steps on a side stream (real steps of the timed
model, before the clock starts), ``torch.cuda.graph``, then per batch a gather into the buffers and a
``replay()``; the last partial batch runs eagerly. On the CPU (a check of this script, e.g. gpu_check.sh's
dry run) it runs the same code with each replay an eager step, since the CPU has no CUDA graphs. Batch sizes
after the first run min(--epochs, 3) epochs. ``--check-graph``: tinynet's CUDA graph against the same step run
eagerly, 200 steps from the same weights (on the CPU: both eager, a check of this script). ``--kernel-times`` (a
GPU only): each kernel of the captured step, timed inside a CUDA graph, the matrix products at several targets
of split-K (``gemm.BUSY_BLOCKS``: tinynet's, 0 for off, 132 and twice tinynet's). Both run before the systems.
Each comparison (tinynet's median epoch, tinynet / each system) is printed as soon as both systems have run, with issue 19's limit where it sets one (PASS or FAIL on a GPU; shown, not judged,
on the CPU), so that a time limit that cuts a later system loses none of them.

Peers that are not installed are skipped
with the command that installs them: ``pip install torch==2.13.0`` (the CPU
build) and ``pip install tensorflow-cpu keras``; on ``--device gpu`` a PyTorch
without CUDA is skipped with the reason. A system that fails is reported and the
others still run; the exit status is then 1.
"""
import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy

SYSTEMS = ("tinynet", "tinynet-k8", "tinynet-nosplit", "tinynet-eager", "torch-ftz", "torch", "torch-graph", "keras")
STEPS_PER_EXECUTION = {"tinynet-k8": 8}  # tinynet-k8: compile(steps_per_execution=8), 8 steps per CUDA graph
FIRST_SIZE_ONLY = ("tinynet-k8", "tinynet-nosplit")  # variants of tinynet, run at the first batch size only
INSTALL = {"torch": "pip install torch==2.13.0", "torch-ftz": "pip install torch==2.13.0",
           "torch-graph": "pip install torch==2.13.0", "keras": "pip install tensorflow-cpu keras"}
# 2*m*n*k per product: forward and dW for the three layers, dx for the last two (the input needs none)
# Issue 19's "Done when" on a GPU: tinynet's median epoch at batch 32 (stretch 0.10 s), and tinynet / peer
MEDIAN_LIMIT, MEDIAN_STRETCH = 0.15, 0.10
RATIO_LIMITS = {("torch-graph", 32): 0.35, ("torch", 32): 0.05, ("torch", 128): 0.5, ("torch", 512): 0.5}
STEP_FLOP = 2 * 32 * (2 * (784 * 512 + 512 * 512 + 512 * 10) + 512 * 512 + 512 * 10)


def warm_up_size(batch_size):
    """Samples of the warm-up run: three full batches and a partial one."""
    return 3 * batch_size + batch_size // 2


WARM_UP = warm_up_size(32)


class Skipped(Exception):
    """A system that cannot run here (say, PyTorch without CUDA on --device gpu): the reason."""


def load(data_dir, limit=None):
    from tinynet.datasets import mnist
    from tinynet.utils import to_categorical
    (x, y), (x_val, y_val) = mnist.load_data(data_dir)
    x, y, x_val, y_val = x[:limit], y[:limit], x_val[:limit], y_val[:limit]
    prep = lambda images: (images.reshape(len(images), 784) / 255).astype("float32")  # noqa: E731
    return prep(x), to_categorical(y, 10).astype("float32"), prep(x_val), to_categorical(y_val, 10).astype("float32")


# --- one system per process -------------------------------------------------
def run_tinynet(data, epochs, seed, profile, device, batch_size=32, jit_compile="auto", steps_per_execution=1):
    import tinynet
    tinynet.backend.set_backend("cupy" if device == "gpu" else "numpy")
    from tinynet.layers import Dense
    from tinynet.models import Sequential
    x, y, x_val, y_val = data

    def new_model():
        tinynet.utils.set_random_seed(seed)  # the same initial weights, and batch order, for each
        model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                            Dense(10, activation="softmax")])
        model.compile(loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile,
                      steps_per_execution=steps_per_execution)
        return model

    # Warm-up through fit itself: every kernel fit uses (the gathers, the step, the running sums, the
    # finite check, validation) is compiled before the clock starts; the timed model starts afresh.
    w = slice(0, warm_up_size(batch_size))
    new_model().fit(x[w], y[w], batch_size=batch_size, epochs=1, verbose=0, validation_data=(x_val[w], y_val[w]))
    model = new_model()
    if profile:
        import cProfile
        import pstats
        cProfile.runctx("model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)", globals(), locals(),
                        "/tmp/tinynet.prof")
        pstats.Stats("/tmp/tinynet.prof", stream=sys.stderr).sort_stats("tottime").print_stats(12)
    tinynet.backend.synchronize()
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, validation_data=(x_val, y_val))
    return history.epoch_seconds, history.history["val_accuracy"]


def run_torch(data, epochs, seed, flush_denormal, device, batch_size=32, graph=False):
    import torch
    if device == "gpu" and not torch.cuda.is_available():
        raise Skipped(f"this PyTorch ({torch.__version__}) has no usable CUDA device "
                      "(torch.cuda.is_available() is False); install a CUDA build of PyTorch to compare on the GPU")
    torch.set_flush_denormal(flush_denormal)
    device = "cuda" if device == "gpu" else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    x, y, x_val, y_val = (torch.from_numpy(a).to(device) for a in data)  # the whole set on the device, once
    labels, labels_val = y.argmax(1), y_val.argmax(1)
    loss_fn = torch.nn.CrossEntropyLoss()

    def new_model():
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                    torch.nn.ReLU(), torch.nn.Linear(512, 10)).to(device)
        for layer in model[::2]:  # Keras's initialisation: glorot_uniform kernels, zero biases
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=0.001, alpha=0.9, eps=1e-7,  # Keras's defaults
                                        capturable=graph and device == "cuda")  # its state on the GPU, for capture
        return model, optimizer

    def step(model, optimizer, xb, lb):
        loss = loss_fn(model(xb), lb)
        loss.backward()
        optimizer.step()
        return loss

    def validate(model, n_val):
        xv, lv, b = x_val[:n_val], labels_val[:n_val], batch_size
        with torch.no_grad():  # counted on the device, read once
            right = sum((model(xv[i:i + b]).argmax(1) == lv[i:i + b]).sum() for i in range(0, n_val, b))
        return int(right) / n_val

    def epoch(model, optimizer, n, n_val):
        """One epoch on the first n samples, then validation on the first n_val: the accuracy."""
        order = torch.randperm(n, device=device)
        for i in range(0, n, batch_size):
            batch = order[i:i + batch_size]
            optimizer.zero_grad()
            step(model, optimizer, x[batch], labels[batch])
        return validate(model, n_val)

    def graphed_epoch(model, optimizer):
        """PyTorch's whole-network capture (docs: CUDA Graphs): static buffers, warm-up on a side stream,
        capture, then for each full batch a gather into the buffers and a replay; returns the epoch."""
        static_x = torch.empty((batch_size, x.shape[1]), device=device)
        static_labels = torch.empty(batch_size, dtype=labels.dtype, device=device)

        def fill(batch):  # the batch's samples into the static buffers, without a new allocation
            torch.index_select(x, 0, batch, out=static_x)
            torch.index_select(labels, 0, batch, out=static_labels)

        fill(torch.arange(batch_size, device=device))
        if device == "cuda":
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up: real steps, before the clock starts
                    optimizer.zero_grad(set_to_none=True)
                    step(model, optimizer, static_x, static_labels)
            torch.cuda.current_stream().wait_stream(side)
            g = torch.cuda.CUDAGraph()
            optimizer.zero_grad(set_to_none=True)  # backward makes .grad in the graph's private pool
            with torch.cuda.graph(g):
                step(model, optimizer, static_x, static_labels)
            replay = g.replay
        else:  # the CPU has no CUDA graphs: the same buffers, each replay an eager step (a check of this script)
            def replay():
                optimizer.zero_grad(set_to_none=True)
                step(model, optimizer, static_x, static_labels)

        def run(n, n_val):
            order, full = torch.randperm(n, device=device), n - n % batch_size
            for i in range(0, full, batch_size):
                fill(order[i:i + batch_size])
                replay()  # forward, backward and update: one launch
            if full < n:  # the last partial batch, eagerly
                optimizer.zero_grad(set_to_none=True)
                step(model, optimizer, x[order[full:]], labels[order[full:]])
            return validate(model, n_val)
        return run

    warm = warm_up_size(batch_size)
    if graph:
        model, optimizer = new_model()
        run = graphed_epoch(model, optimizer)  # warm-up steps and the capture, before the clock
        validate(model, warm)
    else:
        epoch(*new_model(), warm, warm)  # warm-up: the same code path, on a throwaway model
        model, optimizer = new_model()
        run = functools.partial(epoch, model, optimizer)
    seconds, accuracies = [], []
    for _ in range(epochs):
        sync()
        start = time.perf_counter()
        accuracies.append(run(len(x), len(x_val)))
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds, accuracies


def run_keras(data, epochs, seed, batch_size=32):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    keras.utils.set_random_seed(seed)
    x, y, x_val, y_val = data
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(512, activation="relu"),
                              keras.layers.Dense(512, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])

    class Timer(keras.callbacks.Callback):
        seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # Keras calls this after the epoch's validation
            self.seconds.append(time.perf_counter() - self.start)

    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, validation_data=(x_val, y_val),
                        callbacks=[Timer()])
    return Timer.seconds, history.history["val_accuracy"]


def matmul_floor(device, steps, repeats=5):
    """Seconds per epoch (``steps`` batches of 32) of the eight matrix products of a step, alone:
    NumPy's BLAS on the CPU, CuPy's cuBLAS on the GPU (with a synchronize at both edges)."""
    from tinynet import backend
    backend.set_backend("cupy" if device == "gpu" else "numpy")
    rng = numpy.random.default_rng(0)
    f = lambda *shape: backend.to_device(rng.standard_normal(shape))  # noqa: E731  float32, on the device
    x, w1, w2, w3 = f(32, 784), f(784, 512), f(512, 512), f(512, 10)
    h1, h2, d3, d2, d1 = f(32, 512), f(32, 512), f(32, 10), f(32, 512), f(32, 512)

    def step():
        x @ w1, h1 @ w2, h2 @ w3  # forward
        h2.T @ d3, d3 @ w3.T, h1.T @ d2, d2 @ w2.T, x.T @ d1  # backward (the first layer needs no dL/dx)

    step()  # warm-up: cuBLAS picks and loads its kernels
    times = []
    for _ in range(repeats):
        backend.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        backend.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_graph(data, device, seed, steps=200):
    """tinynet's CUDA graph against its eager step: ``steps`` steps of batch 32, unshuffled, from the same
    weights. The graph's weights must equal, bit for bit, those of the same step run eagerly with the same
    kernels (``backend.own_gemm()``); against the usual eager step (cuBLAS, which sums in another order) the
    largest relative difference is reported. On the CPU both runs are eager: a check of this script."""
    import contextlib
    import warnings
    import tinynet
    from tinynet.layers import Dense
    from tinynet.models import Sequential
    gpu = device == "gpu"
    tinynet.backend.set_backend("cupy" if gpu else "numpy")
    n = min(steps * 32, len(data[0]))
    x, y = data[0][:n], data[1][:n]

    def trained(jit_compile, own_gemm):
        tinynet.utils.set_random_seed(seed)
        model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                            Dense(10, activation="softmax")])
        model.compile(loss="categorical_crossentropy", jit_compile=jit_compile)
        with warnings.catch_warnings(), (tinynet.backend.own_gemm() if own_gemm else contextlib.nullcontext()):
            # a graph that falls back to eager fails the check (other warnings, say a library's deprecation, do not)
            warnings.filterwarnings("error", message=".*fit trains without a CUDA graph")
            model.fit(x, y, epochs=1, shuffle=False, verbose=0)
        return model.get_weights()

    graphed = trained(True if gpu else "auto", own_gemm=False)
    same_kernels, cublas = trained(False, own_gemm=True), trained(False, own_gemm=False)
    identical = all(numpy.array_equal(a, b) for a, b in zip(graphed, same_kernels))
    largest = lambda other: max(float(numpy.abs(a - b).max() / numpy.abs(b).max())  # noqa: E731
                                for a, b in zip(graphed, other))
    relative, apart = largest(cublas), largest(same_kernels)
    what = "tinynet's CUDA graph" if gpu else "the CPU (no CUDA graph: both eager)"
    try:
        nodes = graph_nodes(x, y, seed) if gpu else "the graph's nodes: counted on a GPU only"
    except Exception as error:  # a diagnostic: it reports, the check above decides
        nodes = f"the graph's nodes: not counted ({type(error).__name__}: {error})"
    return {"ok": identical, "text": f"graph vs eager, {math.ceil(n / 32)} steps from the same weights on {what}: "
            f"{'bit-identical' if identical else f'DIFFERENT ({apart:.2e} largest relative difference)'} to the "
            f"eager step with the same kernels (done when bit-identical, or <= 1e-6 with the reason: "
            f"{'PASS' if identical else 'within 1e-6: needs the reason' if apart <= 1e-6 else 'FAIL'}); "
            f"{relative:.2e} largest relative difference from the eager step with {'cuBLAS' if gpu else 'NumPy'}; "
            f"{nodes}"}


def kernel_times(launches=50, repeats=5, inputs=784, units=512, classes=10, batch=32):
    """A table: each kernel of the seed model's captured step (batch 32), the GPU's time per launch inside a CUDA
    graph, which is what a replay pays for it; the matrix products at several gemm.BUSY_BLOCKS (split-K). Each
    kernel's ``launches`` launches are captured into one graph (after one eager call: compiled, buffers made),
    replayed once, then ``repeats`` replays are timed with CUDA events; the median, per launch. An empty kernel
    gives the floor a node costs. The sizes are the seed model's unless given."""
    import cupy
    import tinynet
    from tinynet.kernels import batches, gemm, rmsprop, running_means, softmax_crossentropy
    tinynet.backend.set_backend("cupy")
    rng = numpy.random.default_rng(0)
    f = lambda *shape: cupy.asarray(rng.standard_normal(shape, dtype=numpy.float32))  # noqa: E731
    i, u, c, b = inputs, units, classes, batch
    x, w1, w2, w3, b1, b2, b3 = f(b, i), f(i, u), f(u, u), f(u, c), f(u), f(u), f(c)
    h1, h2, z, d2, d1 = f(b, u), f(b, u), f(b, c), f(b, u), f(b, u)
    y = cupy.asarray(numpy.eye(c, dtype=numpy.float32)[rng.integers(0, c, b)])
    data_x, data_y, order = f(1024, i), f(1024, c), cupy.arange(1024, dtype=cupy.int64)
    position, blocks_done = cupy.zeros((), cupy.int64), cupy.zeros((), cupy.int32)
    loss, totals = cupy.zeros((), cupy.float32), [cupy.zeros((), cupy.float32) for _ in range(2)]
    counts = [cupy.zeros((), cupy.int64) for _ in range(3)] + [cupy.zeros((), cupy.float32)]
    params = [(w, cupy.zeros_like(w), cupy.zeros_like(w)) for w in (w1, b1, w2, b2, w3, b3)]
    nothing = cupy.RawKernel("extern \"C\" __global__ void nothing() {}", "nothing")
    products = {  # name: the call, and (rows, n, k) of each of its products' C and K
        f"gemm_bias_relu: x W1 + b1, relu ({b}x{i} @ {i}x{u})": (lambda: gemm.dense_relu(x, w1, b1), [(b, u, i)]),
        f"gemm_bias_relu: h1 W2 + b2, relu ({b}x{u} @ {u}x{u})": (lambda: gemm.dense_relu(h1, w2, b2),
                                                                   [(b, u, u)]),
        f"gemm_bias: h2 W3 + b3 ({b}x{u} @ {u}x{c})": (lambda: gemm.matmul(h2, w3, b3), [(b, c, u)]),
        "dense_backward: [dW3; db3] and dx3": (lambda: gemm.dense_gradients(h2, z, w3), [(u + 1, c, b), (b, u, c)]),
        "dense_backward: [dW2; db2] and dx2, mask": (lambda: gemm.dense_gradients(h1, d2, w2, h2),
                                                     [(u + 1, u, b), (b, u, u)]),
        f"gemm_tn_db: [dW1; db1], mask ({i + 1}x{b} @ {b}x{u})": (lambda: gemm.weight_gradients(x, d1, h1),
                                                                   [(i + 1, u, b)])}
    numbers = sum(w.size for w, _, _ in params)
    others = {
        "gather_batch: x, y of one batch": lambda: batches.gather_batch(data_x, data_y, order, position, blocks_done,
                                                                        b),
        f"softmax_crossentropy: p, dz, loss ({b}x{c})": lambda: softmax_crossentropy.softmax_crossentropy(y, z),
        f"rmsprop_all: 6 parameters, {numbers:,} numbers": lambda: rmsprop.rmsprop_all(params, 0.001, 0.9, 1e-7),
        "running_means_add: loss and accuracy": lambda: running_means.running_means_add(loss, y, z, *totals,
                                                                                         *counts),
        "an empty kernel (the floor of a node)": lambda: nothing((1,), (1,), ())}
    stream = cupy.cuda.Stream(non_blocking=True)
    stream.wait_event(cupy.cuda.get_current_stream().record())  # the inputs' copies and memsets (default stream)

    def per_launch(call):
        with stream:
            call()  # eager: compiled, split-K's buffers made
            stream.begin_capture(mode=cupy.cuda.runtime.streamCaptureModeRelaxed)
            for _ in range(launches):
                call()
            graph = stream.end_capture()
            graph.launch(stream=stream)
            times = []
            for _ in range(repeats):
                start = stream.record()
                graph.launch(stream=stream)
                end = stream.record()
                end.synchronize()
                times.append(cupy.cuda.get_elapsed_time(start, end) * 1000 / launches)  # ms -> us per launch
        return statistics.median(times)

    busy = gemm.BUSY_BLOCKS
    budgets = list(dict.fromkeys([busy, 0, 132, 2 * busy]))  # BUSY_BLOCKS: tinynet's, off, one block per SM, more
    lines = [f"kernel times inside a CUDA graph, microseconds per launch (median of {repeats} replays of "
             f"{launches} launches), {i}-{u}-{u}-{c} at batch {b}; the matrix products at several "
             f"gemm.BUSY_BLOCKS (split-K's target of blocks; 0: off, {busy}: tinynet's), each with its splits of K:",
             f"  {'':52}" + "".join(f"{f'BUSY_BLOCKS={v}':>18}" for v in budgets)]
    summed = dict.fromkeys(budgets, 0.0)  # each budget's products, then the other kernels added
    for name, (call, shapes) in products.items():
        row = f"  {name:52}"
        for budget in budgets:
            gemm.BUSY_BLOCKS = budget
            try:
                t = per_launch(call)
                shown = "+".join(str(gemm.splits(*shape)) for shape in shapes)  # each product's splits of K
            finally:
                gemm.BUSY_BLOCKS = busy
            summed[budget] += t
            row += f"{t:11.1f} {f'({shown})':>6}"
        lines.append(row)
    rest = 0.0
    for name, call in others.items():
        t = per_launch(call)
        rest += t if "empty" not in name else 0.0
        lines.append(f"  {name:52} {t:10.1f}")
    lines.append((f"  {'the 10 kernels of a step, summed':52}"
                  + "".join(f"{summed[v] + rest:11.1f} {'':6}" for v in budgets)).rstrip())
    return "\n".join(lines)


# CUgraphNodeType (CUDA driver API), the kinds a training step's graph may hold
NODE_TYPES = {0: "kernel", 1: "memcpy", 2: "memset", 3: "host", 4: "child graph", 5: "empty", 10: "alloc",
              11: "free"}


def graph_nodes(x, y, seed):
    """One of fit's steps (``Sequential.fit_step``, batch 32, with accuracy) captured as tinynet's graph.py
    captures it (after a warm-up step, relaxed mode, tinynet's own matrix products), and its nodes counted by
    the CUDA driver (cuGraphGetNodes, cuGraphNodeGetType): what each replay launches. CuPy's Graph keeps no
    cudaGraph_t, so the capture is done here with CuPy's runtime calls, and the graph is never launched."""
    import ctypes
    import collections
    import cupy
    import tinynet
    from tinynet.layers import Dense
    from tinynet.metrics.running_means import RunningMeans
    from tinynet.models import Sequential
    from tinynet.models.batches import Batches
    tinynet.utils.set_random_seed(seed)
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    data, means = Batches(tinynet.backend.to_device(x[:64]), tinynet.backend.to_device(y[:64]), 32, False), \
        RunningMeans(model.metrics)
    data.new_epoch()
    stream, runtime = cupy.cuda.Stream(non_blocking=True), cupy.cuda.runtime
    stream.wait_event(cupy.cuda.get_current_stream().record())  # after the uploads above, as graph.py waits
    with tinynet.backend.own_gemm(), stream:
        model.fit_step(data, 0, means)  # the warm-up: kernels compiled, the optimizer's state made
        stream.synchronize()
        runtime.streamBeginCapture(stream.ptr, runtime.streamCaptureModeRelaxed)
        try:
            model.fit_step(data, 1, means)  # recorded, not run
        except BaseException:
            try:
                runtime.streamEndCapture(stream.ptr)  # leave capture mode; the error that matters is this one
            except Exception:
                pass
            raise
        graph = runtime.streamEndCapture(stream.ptr)
    try:
        driver = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_size_t()
        if driver.cuGraphGetNodes(ctypes.c_void_p(graph), None, ctypes.byref(count)) != 0:
            return "the graph's nodes: cuGraphGetNodes failed"
        nodes, kinds = (ctypes.c_void_p * count.value)(), collections.Counter()
        driver.cuGraphGetNodes(ctypes.c_void_p(graph), nodes, ctypes.byref(count))
        for node in nodes:
            kind = ctypes.c_int()
            driver.cuGraphNodeGetType(ctypes.c_void_p(node), ctypes.byref(kind))
            kinds[NODE_TYPES.get(kind.value, f"type {kind.value}")] += 1
    finally:
        runtime.graphDestroy(graph)
    return f"{count.value} nodes per step ({', '.join(f'{n} {kind}' for kind, n in kinds.most_common())})"


def worker(args):
    if args.worker == "kernel-times":
        print(json.dumps({"text": kernel_times()}))
        return
    data = load(args.data_dir, args.limit)
    if args.worker == "check-graph":
        print(json.dumps(check_graph(data, args.device, args.seed)))
        return
    runs = {}
    try:
        for i, batch_size in enumerate(int(b) for b in getattr(args, "batch_sizes", "32").split(",")):
            epochs = args.epochs if i == 0 else min(args.epochs, 3)
            if args.worker.startswith("tinynet"):
                if args.worker == "tinynet-nosplit":
                    from tinynet.kernels import gemm
                    gemm.BUSY_BLOCKS = 0  # split-K off: gemm.splits() is 1 for every product
                profile = getattr(args, "profile", False) and i == 0
                jit_compile = args.worker != "tinynet-eager" and "auto"  # tinynet-eager: False
                seconds, accuracies = run_tinynet(data, epochs, args.seed, profile, args.device, batch_size,
                                                  jit_compile, STEPS_PER_EXECUTION.get(args.worker, 1))
            elif args.worker.startswith("torch"):
                seconds, accuracies = run_torch(data, epochs, args.seed, args.worker == "torch-ftz", args.device,
                                                batch_size, graph=args.worker == "torch-graph")
            else:
                seconds, accuracies = run_keras(data, epochs, args.seed, batch_size)
            runs[batch_size] = {"seconds": seconds, "val_accuracy": [float(a) for a in accuracies]}
    except Skipped as reason:
        print(json.dumps({"skipped": str(reason)}))
        return
    print(json.dumps({"runs": runs}))


# --- the side-by-side table ---------------------------------------------------
def verdict(value, limit, judged):
    """``(done when <= limit: PASS)``, or FAIL; on the CPU the GPU's limit is shown, not judged."""
    return f"(done when <= {limit}: {('PASS' if value <= limit else 'FAIL') if judged else 'not judged on the CPU'})"


def compare(results, shown, judged):
    """Print what tinynet's and the other systems' results finished so far allow, each line once: tinynet's median
    epoch at the first batch size against the limit, and tinynet / each system at each batch size both ran, with
    the limit where issue 19 sets one."""
    if "tinynet" not in results:
        return
    for i, (batch_size, run) in enumerate(results["tinynet"].items()):
        median = statistics.median(run["seconds"])
        if i == 0 and "median" not in shown:
            shown.add("median")
            stretch = f"; stretch <= {MEDIAN_STRETCH}: {'met' if median <= MEDIAN_STRETCH else 'not met'}" * judged
            print(f"tinynet median epoch at batch {batch_size}: {median:.3f} s "
                  f"{verdict(median, MEDIAN_LIMIT, judged)[:-1]}{stretch})", flush=True)
        for system, result in results.items():
            if system == "tinynet" or batch_size not in result or (system, batch_size) in shown:
                continue
            shown.add((system, batch_size))
            ratio = median / statistics.median(result[batch_size]["seconds"])
            limit = RATIO_LIMITS.get((system, batch_size))
            print(f"tinynet / {system}" + f" at batch {batch_size}" * (i > 0) + f": {ratio:.2f}x"
                  + (f" {verdict(ratio, limit, judged)}" if limit is not None else ""), flush=True)


def installed(system):
    module = {"torch": "torch", "torch-ftz": "torch", "torch-graph": "torch", "keras": "keras"}.get(system)
    if module is None:
        return True
    import importlib.util
    return importlib.util.find_spec(module) is not None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--systems", default=None, help=f"comma-separated, from {', '.join(SYSTEMS)} "
                        "(default: tinynet, torch-ftz, torch, keras on the CPU; tinynet, torch-graph, torch, "
                        "tinynet-nosplit, tinynet-k8 on a GPU)")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default: 32 on the CPU, 32,128,512 "
                        "on a GPU); sizes after the first run min(--epochs, 3) epochs")
    parser.add_argument("--check-graph", action="store_true", help="also check tinynet's CUDA graph against its "
                        "eager step, 200 steps from the same weights")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="the MNIST folder (default: $TINYNET_DATA_DIR, else download)")
    parser.add_argument("--floor", action="store_true", help="also time the matrix products alone")
    parser.add_argument("--kernel-times", action="store_true", help="also time each kernel of tinynet's captured "
                        "step inside a CUDA graph, the products at several split-K targets (a GPU only)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use only the first N training and validation images (a quick check, not the workload)")
    parser.add_argument("--profile", action="store_true", help="profile one extra tinynet epoch (to stderr)")
    parser.add_argument("--worker", choices=(*SYSTEMS, "check-graph", "kernel-times"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    systems = args.systems or ("tinynet,torch-ftz,torch,keras" if args.device == "cpu" else
                                  "tinynet,torch-graph,torch,tinynet-nosplit,tinynet-k8")
    unknown = sorted(set(systems.split(",")) - set(SYSTEMS))
    if unknown:
        parser.error(f"--systems: unknown {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    args.batch_sizes = args.batch_sizes or ("32" if args.device == "cpu" else "32,128,512")
    try:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        sizes = [0]
    if min(sizes) < 1:
        parser.error(f"--batch-sizes: positive whole numbers, comma-separated, e.g. 32,128; got {args.batch_sizes!r}")
    if args.limit is not None and args.limit < warm_up_size(max(sizes)):
        parser.error(f"--limit: at least {warm_up_size(max(sizes))} images (the warm-up run's), got {args.limit}")
    images = f"the first {args.limit} images" if args.limit else "60,000 images"
    later = f" (then {', '.join(map(str, sizes[1:]))}: {min(args.epochs, 3)} epochs)" if len(sizes) > 1 else ""
    print(f"seed workload on the {args.device.upper()}: 784-512-512-10, RMSprop, batch {sizes[0]}{later}, "
          f"{args.epochs} epochs of {images}, validation included; {os.cpu_count()} cores, NumPy {numpy.__version__}",
          flush=True)
    results, failed, shown = {}, [], set()
    # The diagnostics first: quick, and what matters most when something fails on a GPU (the time limit of
    # gpu_check.sh's step then cuts the long runs, not them).
    if args.check_graph:
        command = [sys.executable, __file__, "--worker", "check-graph", "--device", args.device, "--seed",
                   str(args.seed)] + ["--data-dir", args.data_dir] * bool(args.data_dir)
        command += ["--limit", str(args.limit)] * bool(args.limit)
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        check = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
        print(check["text"] if check else f"graph vs eager: FAILED (exit status {done.returncode}; its error is above)",
              flush=True)
        if not (check and check["ok"]):
            failed.append("check-graph")
    if args.kernel_times and args.device != "gpu":
        print("kernel times: measured on a GPU only (--device gpu)", flush=True)
    elif args.kernel_times:  # in a process of its own, as the systems: a crash there stops nothing else
        done = subprocess.run([sys.executable, __file__, "--worker", "kernel-times", "--device", "gpu"],
                              stdout=subprocess.PIPE, text=True)
        times = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
        print(times["text"] if times else f"kernel times: FAILED (exit status {done.returncode}; its error is above)",
              flush=True)
        if not times:
            failed.append("kernel-times")
    for system in systems.split(","):
        if not installed(system):
            print(f"{system:>10}: skipped, not installed ({INSTALL[system]})", flush=True)
            continue
        command = [sys.executable, __file__, "--worker", system, "--device", args.device,
                   "--epochs", str(args.epochs), "--seed", str(args.seed),
                   "--batch-sizes", str(sizes[0]) if system in FIRST_SIZE_ONLY else args.batch_sizes]
        command += ["--data-dir", args.data_dir] * bool(args.data_dir) + ["--profile"] * args.profile
        command += ["--limit", str(args.limit)] * bool(args.limit)
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # its errors go to our stderr
        if done.returncode != 0:
            print(f"{system:>10}: FAILED (exit status {done.returncode}; its error is above)", flush=True)
            failed.append(system)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if "skipped" in result:
            print(f"{system:>10}: skipped, {result['skipped']}", flush=True)
            continue
        results[system] = {int(b): run for b, run in result["runs"].items()}
        for i, (batch_size, run) in enumerate(results[system].items()):
            epochs = " ".join(f"{s:5.2f}" for s in run["seconds"])
            print(f"{system:>10}: " + f"batch {batch_size}: " * (i > 0) + f"epochs {epochs} s; median "
                  f"{statistics.median(run['seconds']):5.2f} s; val_accuracy {run['val_accuracy'][-1]:.4f}", flush=True)
        compare(results, shown, args.device == "gpu")  # now: a later system cut by a time limit loses nothing
    ours = statistics.median(results["tinynet"][sizes[0]]["seconds"]) if sizes[0] in results.get("tinynet", {}) \
        else None
    if args.floor:
        steps = math.ceil((args.limit or 60000) / 32)
        try:
            floor = matmul_floor(args.device, steps)
        except RuntimeError as error:  # --device gpu without a usable GPU
            print(f"matrix products alone: FAILED ({error})")
            failed.append("floor")
        else:
            print(f"matrix products alone on the {args.device.upper()}: {floor:.3f} s per epoch "
                  f"({STEP_FLOP * steps / floor / 1e9:.0f} GFLOP/s)"
                  + (f"; tinynet's median epoch is {ours / floor:.2f}x that" if ours else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
