"""The convnet workload: tinynet against Keras, side by side, on Keras's "Simple MNIST convnet".

    python benchmarks/cnn_workload.py                     # 3 rounds of 100 steps each, real MNIST
    python benchmarks/cnn_workload.py --steps 20 --rounds 2 --data random    # a quick check
    python benchmarks/cnn_workload.py --keras-python /path/to/kerasenv/bin/python

The workload: Conv2D(32, 3, relu) - MaxPooling2D(2) - Conv2D(64, 3, relu) -
MaxPooling2D(2) - Flatten - Dropout(0.5) - Dense(10, softmax), 34,826
parameters, Adam (Keras's defaults), batch 128, ``--steps`` training steps
through ``fit`` (no validation), on the first ``steps * 128`` MNIST training
images scaled to 0..1, or on random images of that shape (``--data random``).

Each measurement is a fresh process of its own that first trains two batches
through the same ``fit`` (so Keras's XLA compilation, and tinynet's first
allocations, fall outside the clock), then times ``--steps`` steps. The systems
alternate, tinynet Keras tinynet Keras ..., for ``--rounds`` rounds, so a noisy
neighbour on a shared CPU slows both alike; the table gives the minimum and the
median seconds per 100 steps and per epoch-equivalent (422 steps: Keras's
example trains on 54,000 images, 60,000 less its validation split of 0.1), and
the ratio tinynet / Keras of each.

Keras runs with its own interpreter, ``--keras-python`` (default
``$KERAS_PYTHON``, else /work/kerasenv/bin/python), on the JAX backend. When there
is none, tinynet is timed alone and the script says how to make one:
``python3 -m venv kerasenv && kerasenv/bin/pip install keras "jax[cpu]"``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy

BATCH = 128
EPOCH_STEPS = 422  # ceil(54,000 / 128): an epoch of Keras's example, validation split off
WARM_UP = 2 * BATCH
DEFAULT_KERAS_PYTHON = "/work/kerasenv/bin/python"
MAKE_KERAS = 'python3 -m venv kerasenv && kerasenv/bin/pip install keras "jax[cpu]"'


# --- one measurement per process; the worker imports only NumPy and its own system ---------------------
def time_tinynet(x, y, seed):
    import tinynet
    from tinynet.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from tinynet.models import Sequential
    tinynet.backend.set_backend("numpy")
    tinynet.utils.set_random_seed(seed)
    model = Sequential([Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(2),
                        Conv2D(64, 3, activation="relu"), MaxPooling2D(2), Flatten(), Dropout(0.5),
                        Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x[:WARM_UP], y[:WARM_UP], batch_size=BATCH, epochs=1, verbose=0)  # warm-up, outside the clock
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return time.perf_counter() - start


def time_keras(x, y, seed):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Conv2D(64, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dropout(0.5),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x[:WARM_UP], y[:WARM_UP], batch_size=BATCH, epochs=1, verbose=0)  # XLA compiles the step here
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return time.perf_counter() - start


def worker(system, data, seed):
    with numpy.load(data) as arrays:
        x, y = arrays["x"], arrays["y"]
    seconds = (time_tinynet if system == "tinynet" else time_keras)(x, y, seed)
    where = __import__("tinynet").__file__ if system == "tinynet" else __import__("keras").__version__
    print(json.dumps({"seconds": seconds, "from": where}))


# --- the side-by-side table ---------------------------------------------------------------------------
def make_data(kind, steps, data_dir, folder):
    """A .npz with x (steps * 128, 28, 28, 1) float32 in 0..1 and y one-hot (steps * 128, 10) float32."""
    n = steps * BATCH
    if kind == "mnist":
        from tinynet.datasets import mnist
        (x, labels), _ = mnist.load_data(data_dir)
        if n > len(x):
            raise ValueError(f"--steps {steps}: {n} images wanted, MNIST has {len(x)}; use --data random")
        x, labels = x[:n], labels[:n]
    else:
        rng = numpy.random.default_rng(0)
        x, labels = rng.integers(0, 256, (n, 28, 28), dtype=numpy.uint8), rng.integers(0, 10, n)
    x = (x / 255).astype("float32").reshape(n, 28, 28, 1)
    y = numpy.eye(10, dtype="float32")[labels]
    path = os.path.join(folder, "workload.npz")
    numpy.savez(path, x=x, y=y)
    return path


def run_one(system, python, data, seed):
    """Seconds for the timed steps, from a fresh process; raises RuntimeError with its error when it fails."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's tinynet, not another
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [python, os.path.abspath(__file__), "--worker", system, "--data-file", data, "--seed", str(seed)]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{system} failed (exit status {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="timed training steps of batch 128, per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each system, alternating")
    parser.add_argument("--data", choices=["mnist", "random"], default="mnist")
    parser.add_argument("--data-dir", default=None, help="the MNIST folder (default: $TINYNET_DATA_DIR, else download)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras-python", default=os.environ.get("KERAS_PYTHON", DEFAULT_KERAS_PYTHON),
                        help="the interpreter with Keras and JAX (default: $KERAS_PYTHON, else %(default)s)")
    parser.add_argument("--worker", choices=["tinynet", "keras"], help=argparse.SUPPRESS)
    parser.add_argument("--data-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.data_file, args.seed)
    for flag, value in (("--steps", args.steps), ("--rounds", args.rounds)):
        if value < 1:
            parser.error(f"{flag} must be 1 or more, got {value}")

    systems = ["tinynet", "keras"]
    if not (os.path.isfile(args.keras_python) and os.access(args.keras_python, os.X_OK)):
        print(f"keras: skipped, no interpreter at {args.keras_python}; make one with\n"
              f"    {MAKE_KERAS}\nand pass --keras-python kerasenv/bin/python", flush=True)
        systems = ["tinynet"]
    pythons = {"tinynet": sys.executable, "keras": args.keras_python}
    print(f"convnet workload: 34,826 params, Adam, batch {BATCH}, {args.steps} steps of {args.data} data per "
          f"measurement, {args.rounds} rounds alternating {' '.join(systems)}; {os.cpu_count()} cores, "
          f"NumPy {numpy.__version__}", flush=True)
    seconds = {system: [] for system in systems}
    with tempfile.TemporaryDirectory(prefix="cnn-workload-") as folder:
        try:
            data = make_data(args.data, args.steps, args.data_dir, folder)
        except (OSError, ValueError) as e:
            parser.exit(1, f"{parser.prog}: error: {e}\n")
        for round_ in range(1, args.rounds + 1):
            for system in systems:
                try:
                    s = run_one(system, pythons[system], data, args.seed)
                except RuntimeError as e:
                    parser.exit(1, f"{parser.prog}: error: {e}\n")
                seconds[system].append(s)
                print(f"  round {round_} {system:>7}: {100 * s / args.steps:6.2f} s per 100 steps", flush=True)
    per_100 = {system: [100 * s / args.steps for s in values] for system, values in seconds.items()}
    for system, values in per_100.items():
        low, mid = min(values), statistics.median(values)
        print(f"{system:>7}: per 100 steps min {low:6.2f} s, median {mid:6.2f} s; per epoch-equivalent "
              f"({EPOCH_STEPS} steps) min {low * EPOCH_STEPS / 100:6.1f} s, median {mid * EPOCH_STEPS / 100:6.1f} s")
    if "keras" in per_100:
        ours, theirs = per_100["tinynet"], per_100["keras"]
        print(f"tinynet / keras: min {min(ours) / min(theirs):.2f}x, "
              f"median {statistics.median(ours) / statistics.median(theirs):.2f}x "
              "(on a shared CPU these move with the neighbours' load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
