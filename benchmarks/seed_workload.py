"""The seed workload: tinynet against its peers, side by side, on the CPU or a GPU.

    python benchmarks/seed_workload.py                  # CPU: tinynet, PyTorch (with and without flush-to-zero), Keras
    python benchmarks/seed_workload.py --systems tinynet,keras --epochs 3
    python benchmarks/seed_workload.py --floor          # also time the matrix products alone
    python benchmarks/seed_workload.py --device gpu     # GPU: tinynet on CuPy against PyTorch eager on CUDA
    python benchmarks/seed_workload.py --epochs 1 --limit 2048    # a quick check of this script, not the workload

The workload: Dense(512, relu) - Dense(512, relu) - Dense(10, softmax) on the
60,000 MNIST training images, RMSprop (Keras's defaults), batch 32, shuffled
every epoch, validation on the 10,000 test images (batch 32) after each epoch.
An epoch's time includes its validation; on a GPU every epoch is timed with a
synchronize at both edges. Before the clock starts each system trains a
throwaway copy of the model on a few batches, the last one partial, with
validation, through the same code path it is timed on (tinynet: ``fit``), so
the kernels it uses are compiled and loaded outside the timed epochs; the timed
model then starts from the seed's initial weights.

Each system runs in a fresh process of its own, one after the other (so one
system's threads, caches or flush-to-zero setting never touch another's), and
the table compares per-epoch medians. Peers that are not installed are skipped
with the command that installs them: ``pip install torch==2.13.0`` (the CPU
build) and ``pip install tensorflow-cpu keras``; on ``--device gpu`` a PyTorch
without CUDA is skipped with the reason. A system that fails is reported and the
others still run; the exit status is then 1.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy

SYSTEMS = ("tinynet", "torch-ftz", "torch", "keras")
INSTALL = {"torch": "pip install torch==2.13.0", "torch-ftz": "pip install torch==2.13.0",
           "keras": "pip install tensorflow-cpu keras"}
# 2*m*n*k per product: forward and dW for the three layers, dx for the last two (the input needs none)
STEP_FLOP = 2 * 32 * (2 * (784 * 512 + 512 * 512 + 512 * 10) + 512 * 512 + 512 * 10)
WARM_UP = 3 * 32 + 16  # samples of the warm-up run: three full batches and a partial one


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
def run_tinynet(data, epochs, seed, profile, device):
    import tinynet
    tinynet.backend.set_backend("cupy" if device == "gpu" else "numpy")
    from tinynet.layers import Dense
    from tinynet.models import Sequential
    x, y, x_val, y_val = data

    def new_model():
        tinynet.utils.set_random_seed(seed)  # the same initial weights, and batch order, for each
        model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                            Dense(10, activation="softmax")])
        model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    # Warm-up through fit itself: every kernel fit uses (the gathers, the step, the running sums, the
    # finite check, validation) is compiled before the clock starts; the timed model starts afresh.
    w = slice(0, WARM_UP)
    new_model().fit(x[w], y[w], epochs=1, verbose=0, validation_data=(x_val[w], y_val[w]))
    model = new_model()
    if profile:
        import cProfile
        import pstats
        cProfile.runctx("model.fit(x, y, epochs=1, verbose=0)", globals(), locals(), "/tmp/tinynet.prof")
        pstats.Stats("/tmp/tinynet.prof", stream=sys.stderr).sort_stats("tottime").print_stats(12)
    tinynet.backend.synchronize()
    history = model.fit(x, y, epochs=epochs, verbose=0, validation_data=(x_val, y_val))  # its epoch
    return history.epoch_seconds, history.history["val_accuracy"]


def run_torch(data, epochs, seed, flush_denormal, device):
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
        optimizer = torch.optim.RMSprop(model.parameters(), lr=0.001, alpha=0.9, eps=1e-7)  # Keras's defaults
        return model, optimizer

    def epoch(model, optimizer, n, n_val):
        """One epoch on the first n samples, then validation on the first n_val: the accuracy."""
        order = torch.randperm(n, device=device)
        for i in range(0, n, 32):
            batch = order[i:i + 32]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), labels[batch])
            loss.backward()
            optimizer.step()
        xv, lv = x_val[:n_val], labels_val[:n_val]
        with torch.no_grad():  # counted on the device, read once
            right = sum((model(xv[i:i + 32]).argmax(1) == lv[i:i + 32]).sum() for i in range(0, n_val, 32))
        return int(right) / n_val

    epoch(*new_model(), WARM_UP, WARM_UP)  # warm-up: the same code path, on a throwaway model
    model, optimizer = new_model()
    seconds, accuracies = [], []
    for _ in range(epochs):
        sync()
        start = time.perf_counter()
        accuracies.append(epoch(model, optimizer, len(x), len(x_val)))
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds, accuracies


def run_keras(data, epochs, seed):
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

    history = model.fit(x, y, epochs=epochs, verbose=0, validation_data=(x_val, y_val), callbacks=[Timer()])
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


def worker(args):
    data = load(args.data_dir, args.limit)
    try:
        if args.worker == "tinynet":
            seconds, accuracies = run_tinynet(data, args.epochs, args.seed, args.profile, args.device)
        elif args.worker.startswith("torch"):
            seconds, accuracies = run_torch(data, args.epochs, args.seed, args.worker == "torch-ftz", args.device)
        else:
            seconds, accuracies = run_keras(data, args.epochs, args.seed)
    except Skipped as reason:
        print(json.dumps({"skipped": str(reason)}))
        return
    print(json.dumps({"seconds": seconds, "val_accuracy": [float(a) for a in accuracies]}))


# --- the side-by-side table ---------------------------------------------------
def installed(system):
    module = {"torch": "torch", "torch-ftz": "torch", "keras": "keras"}.get(system)
    if module is None:
        return True
    import importlib.util
    return importlib.util.find_spec(module) is not None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--systems", default=None, help=f"comma-separated, from {', '.join(SYSTEMS)} "
                        "(default: all on the CPU; tinynet,torch on a GPU)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="the MNIST folder (default: $TINYNET_DATA_DIR, else download)")
    parser.add_argument("--floor", action="store_true", help="also time the matrix products alone")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use only the first N training and validation images (a quick check, not the workload)")
    parser.add_argument("--profile", action="store_true", help="profile one extra tinynet epoch (to stderr)")
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    systems = args.systems or (",".join(SYSTEMS) if args.device == "cpu" else "tinynet,torch")
    unknown = sorted(set(systems.split(",")) - set(SYSTEMS))
    if unknown:
        parser.error(f"--systems: unknown {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    if args.limit is not None and args.limit < WARM_UP:
        parser.error(f"--limit: at least {WARM_UP} images (the warm-up run's), got {args.limit}")
    images = f"the first {args.limit} images" if args.limit else "60,000 images"
    print(f"seed workload on the {args.device.upper()}: 784-512-512-10, RMSprop, batch 32, {args.epochs} epochs "
          f"of {images}, validation included; {os.cpu_count()} cores, NumPy {numpy.__version__}", flush=True)
    results, failed = {}, []
    for system in systems.split(","):
        if not installed(system):
            print(f"{system:>10}: skipped, not installed ({INSTALL[system]})", flush=True)
            continue
        command = [sys.executable, __file__, "--worker", system, "--device", args.device,
                   "--epochs", str(args.epochs), "--seed", str(args.seed)]
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
        results[system] = result
        print(f"{system:>10}: epochs " + " ".join(f"{s:5.2f}" for s in result["seconds"])
              + f" s; median {statistics.median(result['seconds']):5.2f} s; "
              f"val_accuracy {result['val_accuracy'][-1]:.4f}", flush=True)
    if "tinynet" in results:
        ours = statistics.median(results["tinynet"]["seconds"])
        for system, result in results.items():
            if system != "tinynet":
                print(f"tinynet / {system}: {ours / statistics.median(result['seconds']):.2f}x")
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
                  + (f"; tinynet's median epoch is {ours / floor:.2f}x that" if "tinynet" in results else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
