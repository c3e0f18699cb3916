"""Record Keras's per-step training losses for tests/test_keras_parity.py.

Both sides start from the same weights (``initial_weights``) and see the same
batches in the same order (``batches``: the first MNIST training images, no
shuffling). Run it where Keras is installed (it is not a tinynet dependency):

    pip install keras==3.15.1 tensorflow-cpu==2.21.0
    TINYNET_DATA_DIR=../shared/data/mnist python tests/keras_reference/make_keras_losses.py

It rewrites ``keras_losses.json`` beside this file.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STEPS, BATCH = 200, 32
SIZES = [784, 512, 512, 10]


def initial_weights(seed=1234):
    """Glorot-uniform kernels and small random biases, as float32, in Keras's order."""
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        limit = np.sqrt(6 / (n_in + n_out))
        weights.append(rng.uniform(-limit, limit, (n_in, n_out)).astype("float32"))
        weights.append(rng.uniform(-0.1, 0.1, n_out).astype("float32"))
    return weights


def batches():
    """(x, y) for each of the STEPS batches: flattened, /255, one-hot, as the notebook does."""
    sys.path.insert(0, str(HERE.parents[1]))
    from tinynet.datasets import mnist
    (x, y), _ = mnist.load_data()
    x = x[:STEPS * BATCH].reshape(-1, 784) / 255
    y = np.eye(10)[y[:STEPS * BATCH]]
    return [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, STEPS * BATCH, BATCH)]


def main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from keras.layers import Dense
    model = keras.Sequential([keras.Input((784,)), Dense(512, activation="relu"),
                              Dense(512, activation="relu"), Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    model.set_weights(initial_weights())
    losses = []
    for x, y in batches():
        model.reset_metrics()  # so train_on_batch reports this batch's loss alone
        losses.append(float(model.train_on_batch(x, y)[0]))
    record = {"keras": keras.__version__, "backend": keras.backend.backend(), "batch_size": BATCH,
              "losses": losses}
    (HERE / "keras_losses.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{len(losses)} steps, loss {losses[0]:.6f} -> {losses[-1]:.6f}")


if __name__ == "__main__":
    main()
