"""The seed workload: tinynet against its peers, side by side, on the CPU or a GPU.

    python benchmarks/seed_workload.py                  # CPU: tinynet, PyTorch (with and without flush-to-zero), Keras
    python benchmarks/seed_workload.py --systems tinynet,keras --epochs 3
    python benchmarks/seed_workload.py --floor          # also time the matrix products alone
    python benchmarks/seed_workload.py --device gpu     # GPU: tinynet on CuPy against PyTorch eager on CUDA

The workload: Dense(512, relu) - Dense(512, relu) - Dense(10, softmax) on the
60,000 MNIST training images, RMSprop (Keras's defaults), batch 32, shuffled
every epoch, validation on the 10,000 test images (batch 32) after each epoch.
An epoch's time includes its validation; on a GPU every epoch is timed with a
synchronize at both edges.

Each system runs in a fresh process of its own, one after the other (so one
system's threads, caches or flush-to-zero setting never touch another's), and
the table compares per-epoch medians. Peers that are not installed are skipped
with the command that installs them: ``pip install torch==2.13.0`` (the CPU
build) and ``pip install tensorflow-cpu keras``.
"""
import argparse
import json
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
EPOCH_FLOP = STEP_FLOP * 60000 / 32


def load(data_dir):
    from tinynet.datasets import mnist
    from tinynet.utils import to_categorical
    (x, y), (x_val, y_val) = mnist.load_data(data_dir)
    prep = lambda images: (images.reshape(len(images), 784) / 255).astype("float32")  # noqa: E731
    return prep(x), to_categorical(y, 10).astype("float32"), prep(x_val), to_categorical(y_val, 10).astype("float32")


# --- one system per process -------------------------------------------------
def run_tinynet(data, epochs, seed, profile, device):
    import tinynet
    tinynet.backend.set_backend("cupy" if device == "gpu" else "numpy")
    from tinynet.layers import Dense
    from tinynet.models import Sequential
    x, y, x_val, y_val = data
    tinynet.utils.set_random_seed(seed)
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(x[:32], y[:32])  # compile the kernels before the clock starts, as the peers warm up
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
    torch.manual_seed(seed)
    torch.set_flush_denormal(flush_denormal)
    device = "cuda" if device == "gpu" else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    x, y, x_val, y_val = (torch.from_numpy(a).to(device) for a in data)  # the whole set on the device, once
    labels, labels_val = y.argmax(1), y_val.argmax(1)
    model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                torch.nn.ReLU(), torch.nn.Linear(512, 10)).to(device)
    for layer in model[::2]:  # Keras's initialisation: glorot_uniform kernels, zero biases
        torch.nn.init.xavier_uniform_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.001, alpha=0.9, eps=1e-7)  # Keras's defaults
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds, accuracies = [], []
    for _ in range(epochs):
        sync()
        start = time.perf_counter()
        order = torch.randperm(len(x), device=device)
        for i in range(0, len(x), 32):
            batch = order[i:i + 32]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), labels[batch])
            loss.backward()
            optimizer.step()
        with torch.no_grad():  # counted on the device, read once
            right = sum((model(x_val[i:i + 32]).argmax(1) == labels_val[i:i + 32]).sum()
                        for i in range(0, len(x_val), 32))
        right = int(right)
        sync()
        seconds.append(time.perf_counter() - start)
        accuracies.append(right / len(x_val))
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


def matmul_floor(repeats=5):
    """Seconds per epoch of the eight matrix products of a batch-32 step, alone (NumPy's BLAS)."""
    rng = numpy.random.default_rng(0)
    f = lambda *shape: rng.standard_normal(shape).astype("float32")  # noqa: E731
    x, w1, w2, w3 = f(32, 784), f(784, 512), f(512, 512), f(512, 10)
    h1, h2, d3, d2, d1 = f(32, 512), f(32, 512), f(32, 10), f(32, 512), f(32, 512)

    def step():
        x @ w1, h1 @ w2, h2 @ w3  # forward
        h2.T @ d3, d3 @ w3.T, h1.T @ d2, d2 @ w2.T, x.T @ d1  # backward (the first layer needs no dL/dx)

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(1875):
            step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(args):
    data = load(args.data_dir)
    if args.worker == "tinynet":
        seconds, accuracies = run_tinynet(data, args.epochs, args.seed, args.profile, args.device)
    elif args.worker.startswith("torch"):
        seconds, accuracies = run_torch(data, args.epochs, args.seed, args.worker == "torch-ftz", args.device)
    else:
        seconds, accuracies = run_keras(data, args.epochs, args.seed)
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
    parser.add_argument("--profile", action="store_true", help="profile one extra tinynet epoch (to stderr)")
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    systems = args.systems or (",".join(SYSTEMS) if args.device == "cpu" else "tinynet,torch")
    print(f"seed workload on the {args.device.upper()}: 784-512-512-10, RMSprop, batch 32, {args.epochs} epochs, "
          f"validation included; {os.cpu_count()} cores, NumPy {numpy.__version__}", flush=True)
    results = {}
    for system in systems.split(","):
        if not installed(system):
            print(f"{system:>10}: skipped, not installed ({INSTALL[system]})", flush=True)
            continue
        command = [sys.executable, __file__, "--worker", system, "--device", args.device,
                   "--epochs", str(args.epochs), "--seed", str(args.seed)]
        command += ["--data-dir", args.data_dir] * bool(args.data_dir) + ["--profile"] * args.profile
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
        results[system] = result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{system:>10}: epochs " + " ".join(f"{s:5.2f}" for s in result["seconds"])
              + f" s; median {statistics.median(result['seconds']):5.2f} s; "
              f"val_accuracy {result['val_accuracy'][-1]:.4f}", flush=True)
    if "tinynet" in results:
        ours = statistics.median(results["tinynet"]["seconds"])
        for system, result in results.items():
            if system != "tinynet":
                print(f"tinynet / {system}: {ours / statistics.median(result['seconds']):.2f}x")
    if args.floor:
        floor = matmul_floor()
        print(f"matrix products alone: {floor:.2f} s per epoch ({EPOCH_FLOP / floor / 1e9:.0f} GFLOP/s)"
              + (f"; tinynet's median epoch is {ours / floor:.2f}x that" if "tinynet" in results else ""))


if __name__ == "__main__":
    main()
