"""Record what Keras computes for the convolutional layers and Adam, for the tests of each.

Small fixed inputs (``cases``: NumPy arrays drawn from a seeded generator, stored in the JSON too) go
through Keras 3 and the outputs and gradients are written to ``keras_layers.json`` beside this file:

- Conv2D forward, and the gradients of L = sum(y * r) for a fixed r, with respect to x, kernel and bias
  ('valid'; stride 2 with 'same' on odd sizes);
- MaxPooling2D forward and dL/dx on inputs full of ties ('valid'; overlapping 3x3 windows, stride 2, 'same');
- BatchNormalization, one step in each mode: the output, the new moving statistics, and the gradients;
- Adam: three updates of fixed parameters by fixed gradients (and with amsgrad=True).

Run it where Keras is installed (it is not a tinynet dependency); Keras picks its backend from KERAS_BACKEND:

    python -m venv kerasenv && kerasenv/bin/pip install keras==3.15.1 "jax[cpu]"
    KERAS_BACKEND=jax kerasenv/bin/python tests/keras_reference/make_keras_layers.py
"""
import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def cases(seed=22):
    """The inputs, as float32 NumPy arrays (the same for Keras and tinynet: the tests read them from the JSON)."""
    rng = np.random.default_rng(seed)

    def f32(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype("float32")

    ties = rng.integers(0, 3, (2, 7, 7, 2)).astype("float32")  # three values only: windows full of ties
    return {
        "conv_valid": {"config": {"filters": 3, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid"},
                       "x": f32(2, 6, 5, 2), "kernel": f32(3, 3, 2, 3, scale=0.3), "bias": f32(3)},
        "conv_same_stride2": {"config": {"filters": 4, "kernel_size": [3, 2], "strides": [2, 2], "padding": "same"},
                              "x": f32(2, 7, 5, 3), "kernel": f32(3, 2, 3, 4, scale=0.3), "bias": f32(4)},
        "pool_valid": {"config": {"pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}, "x": ties},
        "pool_same_overlapping": {"config": {"pool_size": [3, 3], "strides": [2, 2], "padding": "same"},
                                  "x": ties},
        "batch_normalization": {"config": {"momentum": 0.9, "epsilon": 0.001}, "x": f32(4, 3, 3, 2, scale=2.0) + 1,
                                "gamma": f32(2) + 1, "beta": f32(2), "moving_mean": f32(2),
                                "moving_variance": np.abs(f32(2)) + 0.5},
        "adam": {"w": f32(2, 3), "b": f32(3), "grads": [[f32(2, 3), f32(3)] for _ in range(3)]},
    }


def _r(shape, seed=7):
    """The fixed r of L = sum(y * r): dL/dy = r."""
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _gradients(layer, x, training):
    """y, dL/dx and dL/d(each trainable weight) for L = sum(y * r), and the non-trainable weights after the call."""
    import jax
    import jax.numpy as jnp
    import keras

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def loss(x, trainable):
        kwargs = {"training": training} if isinstance(layer, keras.layers.BatchNormalization) else {}
        y, new_non_trainable = layer.stateless_call(trainable, non_trainable, x, **kwargs)
        return jnp.sum(y * _r(y.shape)), (y, new_non_trainable)

    (dx, d_trainable), (y, new_non_trainable) = jax.grad(loss, argnums=(0, 1), has_aux=True)(jnp.asarray(x), trainable)
    return y, dx, d_trainable, new_non_trainable


def main():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    from keras import layers

    assert keras.backend.backend() == "jax", "the gradients are taken with jax.grad: run with KERAS_BACKEND=jax"
    record = {"keras": keras.__version__, "backend": keras.backend.backend()}
    for name, case in cases().items():
        if name.startswith(("conv", "pool")):
            if name.startswith("conv"):
                layer = layers.Conv2D(**case["config"])
                layer.build(case["x"].shape)
                layer.set_weights([case["kernel"], case["bias"]])
            else:
                layer = layers.MaxPooling2D(**case["config"])
                layer.build(case["x"].shape)
            y, dx, d_weights, _ = _gradients(layer, case["x"], training=True)
            out = {"y": y, "dx": dx, **dict(zip(["dkernel", "dbias"], d_weights))}
        elif name == "batch_normalization":
            out = {}
            for mode, training in (("training", True), ("inference", False)):
                layer = layers.BatchNormalization(**case["config"])
                layer.build(case["x"].shape)
                layer.set_weights([case["gamma"], case["beta"], case["moving_mean"], case["moving_variance"]])
                y, dx, (dgamma, dbeta), (moving_mean, moving_variance) = _gradients(layer, case["x"], training)
                out[mode] = {"y": y, "dx": dx, "dgamma": dgamma, "dbeta": dbeta, "moving_mean": moving_mean,
                             "moving_variance": moving_variance}
        else:  # adam
            out = {}
            for amsgrad in (False, True):
                w, b = keras.Variable(case["w"]), keras.Variable(case["b"])
                optimizer = keras.optimizers.Adam(amsgrad=amsgrad)
                steps = []
                for gw, gb in case["grads"]:
                    optimizer.apply_gradients([(gw, w), (gb, b)])
                    steps.append([np.asarray(w.value), np.asarray(b.value)])
                out["amsgrad" if amsgrad else "adam"] = steps
        record[name] = {"inputs": case, "keras": out}
    text = json.dumps(record, default=lambda a: np.asarray(a, dtype="float64").tolist())
    (HERE / "keras_layers.json").write_text(text + "\n")
    print(f"wrote {HERE / 'keras_layers.json'} ({len(text) // 1024} KiB)")


if __name__ == "__main__":
    main()
