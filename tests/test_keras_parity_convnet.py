"""The MNIST convnet (examples/mnist_cnn.py) follows Keras step by step, given the same weights and batches.

keras_reference/keras_convnet.json holds the per-step training losses of Keras 3.15.1 (on JAX) for the
example's model, with Dropout's rate set to 0 in both (a random mask cannot be shared), Adam with Keras's
defaults, batch 128, 100 steps over the first 12,800 MNIST images, unshuffled; recorded by
keras_reference/make_keras_convnet.py from the same seeded weights. Keras is not needed to run this test.

What float32 allows (measured on numpy, relative differences):
- The first 22 steps agree to float32 rounding: 0 or one unit in the last place (at most 1.2e-7).
- Then the gap grows, a hundredfold from step 25 to step 100: 3.8e-5 at step 50, 1.2e-4 at step 100
  (3.2e-4 at most, at step 94). This is float32 rounding amplified by training, not a different formula:
  computing in float64 (tinynet with the default dtype of ``backend.to_device`` and ``backend.zeros`` set
  to float64), tinynet and Keras agree to 1.6e-15 at every one of the 100 steps (``losses_float64`` in the
  JSON), while Keras's own float32 run is 7.1e-5 from its float64 run at step 50 and 3.4e-4 at step 100.
  Adam divides each gradient by its own running size, so a weight whose gradient is a near-cancelling sum
  moves by a full step whichever way its last bits fall; the gap then feeds on itself. The loss of a single
  step cannot be matched to 1e-5 that late, by tinynet or by Keras itself in float64.
- Keras's running loss, the mean of the losses so far (what its progress bar shows as ``loss``), agrees to
  1.1e-8 at step 10, 3.6e-7 at step 50 and 5.0e-6 at step 100: the per-step gaps have both signs.
"""
import json
import sys
from pathlib import Path

import numpy as np

from conftest import load_example, mnist_dir
from tinynet.layers import Dropout

REFERENCE = Path(__file__).parent / "keras_reference"
sys.path.insert(0, str(REFERENCE))
import make_keras_convnet as reference  # noqa: E402


def test_convnet_losses_follow_keras(monkeypatch):
    monkeypatch.setenv("TINYNET_DATA_DIR", str(mnist_dir()))
    keras = np.array(json.loads((REFERENCE / "keras_convnet.json").read_text())["losses"])
    model = load_example("mnist_cnn").build_model("simple")
    dropout = model.layers[5]
    assert isinstance(dropout, Dropout) and dropout.rate == 0.5  # the example's Dropout(0.5)...
    dropout.rate = 0.0  # ...off, as in the reference: y = x while training too
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.set_weights(reference.initial_weights())
    ours = np.array([model.train_on_batch(x, y) for x, y in reference.batches()])

    for step in (10, 50, 100):  # the running loss, the mean over steps 1..step, as Keras's progress bar shows it
        np.testing.assert_allclose(ours[:step].mean(), keras[:step].mean(), rtol=1e-5,
                                   err_msg=f"the running loss at step {step}")
    np.testing.assert_allclose(ours[:20], keras[:20], rtol=1e-6)  # each step: float32 rounding at first...
    np.testing.assert_allclose(ours, keras, rtol=1e-3)  # ...then rounding grown by training (see the docstring)
