"""Record Keras's per-step training losses of the MNIST convnet, for tests/test_keras_parity_convnet.py.

The model is Keras's "Simple MNIST convnet" (examples/mnist_cnn.py): Conv2D(32, 3, relu) on (28, 28, 1),
MaxPooling2D(2), Conv2D(64, 3, relu), MaxPooling2D(2), Flatten, Dropout, Dense(10, softmax), compiled with
Adam (Keras's defaults) and categorical_crossentropy. Dropout is kept in the model but with rate 0: both
Keras (``Dropout.call``: ``if training and self.rate > 0``) and tinynet then pass the input through untouched,
so the layer list is the example's while no random mask (which the two generators could never share) enters.

Both sides start from the same weights (``initial_weights``: regenerated from one NumPy seed, so the JSON
holds only the losses) and see the same batches in the same order (``batches``: the first STEPS * BATCH
MNIST training images, unshuffled, /255). This file imports only NumPy, so the test imports it too.
Run it where Keras is installed (it is not a tinynet dependency); the losses were taken on JAX:

    python -m venv kerasenv && kerasenv/bin/pip install keras==3.15.1 "jax[cpu]"
    export KERAS_BACKEND=jax TINYNET_DATA_DIR=../shared/data/mnist
    kerasenv/bin/python tests/keras_reference/make_keras_convnet.py

It rewrites ``keras_convnet.json`` beside this file (about 5 KiB): the float32 losses the test checks, and
``losses_float64``, the same run computed in float64 (in a second process, with ``jax_enable_x64``). tinynet in
float64 follows those to 1.6e-15 relative at all 100 steps (same formulas), while Keras's own float32 run
drifts from them by 1e-4 by step 100: see the test's docstring for why float32 cannot agree more closely late on.
"""
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STEPS, BATCH, SEED = 100, 128, 2222
# (kind, shape of each weight) in Keras's order: kernel then bias, layer by layer
WEIGHT_SHAPES = [("conv", (3, 3, 1, 32)), ("bias", (32,)), ("conv", (3, 3, 32, 64)), ("bias", (64,)),
                 ("dense", (1600, 10)), ("bias", (10,))]


def initial_weights(seed=SEED):
    """Glorot-uniform kernels (Keras's fans: a conv kernel (kh, kw, in, out) has fan_in kh*kw*in and fan_out
    kh*kw*out) and small random biases, as float32, in Keras's order (``model.set_weights``)."""
    rng = np.random.default_rng(seed)
    weights = []
    for kind, shape in WEIGHT_SHAPES:
        if kind == "bias":
            weights.append(rng.uniform(-0.1, 0.1, shape).astype("float32"))
            continue
        receptive = int(np.prod(shape[:-2]))  # kh * kw for a conv kernel, 1 for a dense one
        limit = np.sqrt(6 / (receptive * shape[-2] + receptive * shape[-1]))
        weights.append(rng.uniform(-limit, limit, shape).astype("float32"))
    return weights


def _read_idx(path, header):
    """The bytes after an IDX file's header, as uint8 (NumPy alone: the Keras environment has no tinynet)."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def batches(steps=STEPS):
    """(x, y) for each of the first ``steps`` batches: x (BATCH, 28, 28, 1) float32 in [0, 1] (uint8 / 255 in
    float64, then rounded once to float32), y one-hot float32 (BATCH, 10)."""
    folder = Path(os.environ.get("TINYNET_DATA_DIR") or HERE.parents[2] / "shared/data/mnist")
    n = steps * BATCH
    images = _read_idx(folder / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)[:n]
    labels = _read_idx(folder / "train-labels-idx1-ubyte.gz", 8)[:n]
    x = (images / 255).astype("float32")
    y = np.eye(10, dtype="float32")[labels]
    return [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, n, BATCH)]


def keras_losses(floatx):
    """Keras's loss at each of the STEPS training steps, computing in ``floatx`` ('float32', or 'float64')."""
    import keras
    from keras import layers

    keras.config.set_floatx(floatx)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.0),  # the example's Dropout(0.5), off: see the docstring
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.set_weights([w.astype(floatx) for w in initial_weights()])  # the float32 values, exactly
    losses = []
    for x, y in batches():
        model.reset_metrics()  # so train_on_batch reports this batch's loss alone
        losses.append(float(model.train_on_batch(x.astype(floatx), y.astype(floatx))))
    return losses


def main():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if sys.argv[1:] == ["--float64"]:  # the child process: float64 from the start, then its losses on stdout
        import jax
        jax.config.update("jax_enable_x64", True)  # else JAX quietly computes float64 arrays in float32
        print(json.dumps(keras_losses("float64")))
        return
    import keras

    assert keras.backend.backend() == "jax", "float64 is switched on with jax_enable_x64: run with KERAS_BACKEND=jax"
    losses = keras_losses("float32")
    # float64 in a fresh process: switched on after a float32 model, it gave other numbers (1e-9 at step 1)
    child = subprocess.run([sys.executable, __file__, "--float64"], capture_output=True, text=True, check=True)
    losses_float64 = json.loads(child.stdout.splitlines()[-1])
    record = {"keras": keras.__version__, "backend": keras.backend.backend(), "seed": SEED, "batch_size": BATCH,
              "losses": losses, "losses_float64": losses_float64}
    (HERE / "keras_convnet.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{len(losses)} steps, loss {losses[0]:.6f} -> {losses[-1]:.6f} (float64: {losses_float64[-1]:.6f})")


if __name__ == "__main__":
    main()
