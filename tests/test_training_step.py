"""The training step a reader follows (Sequential.train_step), and what fit does around it: the path a trace
takes, validation_split, a backend switch, layers of your own checked by name, and undoing a bad step."""
import sys

import numpy as np
import pytest

import tinynet
from tinynet import backend
from tinynet.layers import Dense, Layer
from tinynet.models import Sequential
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed, to_categorical
from conftest import dev


def mnist_shaped_model():
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=64, features=784, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, features), dtype="float32"), to_categorical(np.arange(n) % classes, classes)


def traced_files(call):
    """The tinynet files each Python call of ``call()`` enters, in order, repeats of one file merged."""
    path = []

    def tracer(frame, event, arg):
        name = frame.f_code.co_filename.replace("\\", "/")
        file = name.split("/tinynet/")[-1]
        if event == "call" and "/tinynet/" in name and file != "backend.py":  # backend.xp(): the array library
            if not path or path[-1] != file:
                path.append(file)

    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(None)
    return path


@pytest.mark.host_only("traces Python calls; the path is the same on every backend")
def test_one_step_of_the_mnist_model_follows_the_path_the_guide_describes():
    model, (x, y) = mnist_shaped_model(), data()
    model.fit(x, y, epochs=1, verbose=0)  # the optimizer is built and RMSprop's update compiled
    x, y = dev(x[:32]), dev(y[:32])
    path = traced_files(lambda: model.train_step(x, y))
    assert path[:14] == [
        "models/sequential.py",  # train_step
        "layers/dense.py", "layers/relu.py", "layers/dense.py", "layers/relu.py",  # forward, layers 1 and 2
        "layers/dense.py",  # layer 3 up to its logits z (forward_linear)
        "losses/softmax_crossentropy.py", "layers/softmax.py",  # the loss applies the softmax: p, log p
        "losses/softmax_crossentropy.py",  # L, then dL/dz = (p - y) / N
        "layers/dense.py",  # layer 3 (backward_linear), then layer 2 (backward), which calls
        "layers/relu.py", "layers/dense.py",  # its ReLU's backward, then its own backward_linear
        "layers/relu.py", "layers/dense.py"]  # the same for layer 1
    assert path[14:16] == ["models/sequential.py", "optimizers/optimizer.py"]  # the trainable parameters; apply
    assert set(path[16:]) == {"optimizers/rmsprop.py", "optimizers/optimizer.py"}  # each parameter's update,
    # which reads the learning rate, a property of the base class


def test_validation_split_holds_out_the_last_samples_as_keras_does():
    x, y = data(100, features=8, classes=2)
    set_random_seed(1)
    model = Sequential([Dense(4, activation="relu", input_shape=(8,)), Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=10, epochs=1, verbose=0, validation_split=0.2)
    assert history.params["steps"] == 8  # 80 training samples, batch 10
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[80:], y[80:], batch_size=10, verbose=0)[0])
    with pytest.raises(ValueError, match="validation_split must be a fraction in"):
        model.fit(x, y, validation_split=1.0, verbose=0)
    with pytest.raises(ValueError, match="leaves no training samples"):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)


def test_validation_batch_size_is_keras_s_and_defaults_to_batch_size():
    x, y = data(100, features=8, classes=2)
    set_random_seed(1)
    model = Sequential([Dense(4, activation="relu", input_shape=(8,)), Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    for validation_batch_size, evaluated_at in ((7, 7), (None, 10)):
        history = model.fit(x[:80], y[:80], batch_size=10, epochs=1, verbose=0, validation_data=(x[80:], y[80:]),
                            validation_batch_size=validation_batch_size)
        val_loss, val_accuracy = model.evaluate(x[80:], y[80:], batch_size=evaluated_at, verbose=0)
        assert history.history["val_loss"] == [val_loss] and history.history["val_accuracy"] == [val_accuracy]
    with pytest.raises(TypeError, match="validation_batch_size"):
        model.fit(x, y, verbose=0, validation_split=0.2, validation_batch_size=2.5)


@pytest.mark.host_only("switches backends itself")
def test_switching_backend_carries_the_model_and_its_optimizer_across():
    x, y = data(40, features=6, classes=3)
    models = []
    for _ in range(2):  # twins: the same initial weights, the same steps
        set_random_seed(3)
        models.append(Sequential([Dense(5, activation="relu", input_shape=(6,)), Dense(3, activation="softmax")]))
        models[-1].compile(loss="categorical_crossentropy")
        models[-1].fit(x, y, epochs=1, verbose=0, shuffle=False)
    model, twin = models
    backend.set_backend("strict")  # after building and training on NumPy
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)  # moved at once: weights, v and the step count
    assert model.backend == "strict" and backend.is_backend_array(model.layers[0].params["kernel"])
    assert model.optimizer.params[0] is model.layers[0].params["kernel"]
    backend.set_backend("numpy")
    twin.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict(x, verbose=0), twin.predict(x, verbose=0), rtol=1e-6)
    assert model.backend == "numpy" and model.optimizer.iterations == twin.optimizer.iterations == 4


class Forgetful(Layer):
    """A layer of one's own that multiplies by w, with a mistake chosen by ``mistake``."""

    def __init__(self, mistake, **kwargs):
        super().__init__(**kwargs)
        self.mistake = mistake

    def build(self, input_shape):
        self.params["w"] = backend.to_device(np.ones(input_shape[1:]))
        super().build(input_shape)

    def forward(self, x):
        self.x = x
        y = x * self.params["w"]
        return None if self.mistake == "forward returns nothing" else y

    def backward(self, dy):
        if self.mistake != "no grads":
            self.grads["w"] = backend.xp().sum(dy * self.x, axis=0)  # dL/dw = sum over the batch of dy * x
        if self.mistake == "backward returns nothing":
            return None
        dx = dy * self.params["w"]  # dL/dx = dy * w
        return dx[:, :1] if self.mistake == "backward changes the shape" else dx


@pytest.mark.parametrize("mistake, error, words", [
    ("forward returns nothing", TypeError, "forward must return its output y, an array; it returned NoneType"),
    ("no grads", ValueError, "backward must set self.grads['w'] to dL/dw"),
    ("backward returns nothing", TypeError, "backward must return dL/dx"),
    ("backward changes the shape", ValueError, "backward returned an array of shape (8, 1)")])
def test_a_layer_of_your_own_that_breaks_the_contract_is_named_before_training(mistake, error, words):
    model = Sequential([Dense(3, input_shape=(4,)), Forgetful(mistake, name="mine"), Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    before = model.get_weights()
    x, y = data(8, features=4, classes=2)
    with pytest.raises(error, match="Layer 'mine'") as caught:
        model.fit(x, y, verbose=0)
    assert words in str(caught.value)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing trained


def test_a_layer_of_your_own_that_keeps_the_contract_trains():
    set_random_seed(0)
    model = Sequential([Dense(3, input_shape=(4,)), Forgetful(None), Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    x, y = data(8, features=4, classes=2)
    model.fit(x, y, verbose=0)
    assert not np.array_equal(model.layers[1].get_weights()[0], np.ones(3))


def test_train_on_batch_undoes_a_step_that_leaves_weights_non_finite():
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile(optimizer=SGD(learning_rate=1e30), loss="mse")
    x, y = np.full((4, 3), 1e10, "float32"), np.zeros((4, 2), "float32")
    before = model.get_weights()
    with pytest.raises(FloatingPointError, match="NaN or infinite: the weights were left unchanged"):
        model.train_on_batch(x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


class Interrupting:
    """A metric that raises KeyboardInterrupt at the fifth batch, as Ctrl-C would."""
    name, calls = "interrupts", 0

    def __call__(self, y_true, y_pred):
        self.calls += 1
        if self.calls == 5:
            raise KeyboardInterrupt
        return backend.xp().mean(y_pred)


@pytest.mark.host_only("a terminal's progress line")
def test_ctrl_c_in_fit_ends_the_progress_line(monkeypatch, capsys):
    import io
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, "stdout", terminal)
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile(loss="mse")
    model.metrics = [Interrupting()]
    monkeypatch.setattr(tinynet.utils.progbar.Progbar, "due", lambda self, step: True)
    with pytest.raises(KeyboardInterrupt):
        model.fit(np.ones((40, 3), "float32"), np.zeros((40, 2), "float32"), batch_size=4, verbose=1)
    assert terminal.getvalue().startswith("\r") and terminal.getvalue().endswith("\n")


def test_fit_rolls_back_an_epoch_whose_last_update_made_weights_non_finite():
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile(optimizer=SGD(learning_rate=1e30), loss="mse")
    x, y = np.full((4, 3), 1e10, "float32"), np.zeros((4, 2), "float32")
    before = model.get_weights()
    with pytest.raises(FloatingPointError, match="NaN or infinite: training stopped, and the weights were rolled "
                                                 "back to where epoch 1 began"):
        model.fit(x, y, batch_size=4, verbose=0)  # one step: its loss is finite, its update is not
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_trainable_false_freezes_every_layer_as_in_keras():
    x, y = data(16, features=4, classes=2)
    model = Sequential([Dense(3, input_shape=(4,)), Dense(2, activation="softmax")])
    model.trainable = False
    model.compile(loss="categorical_crossentropy")
    before = model.get_weights()
    model.fit(x, y, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.trainable is False and not any(layer.trainable for layer in model.layers)
    with pytest.raises(TypeError, match="trainable must be True or False"):
        model.trainable = "no"


def test_a_layer_of_your_own_without_backward_or_setup_is_named():
    class NoBackward(Layer):
        def forward(self, x):
            return x

    class NoSetup(Layer):
        def __init__(self):
            pass

    model = Sequential([Dense(2, input_shape=(3,)), NoBackward(), Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    with pytest.raises(NotImplementedError, match=r"Layer 'no_backward' \(NoBackward\) defines no backward\(dy\)"):
        model.fit(np.ones((4, 3), "float32"), np.eye(2, dtype="float32")[[0, 1, 0, 1]], verbose=0)
    with pytest.raises(TypeError, match=r"must call super\(\).__init__\(\*\*kwargs\)"):
        Sequential([NoSetup()])


def test_set_weights_given_a_dict_says_a_list():
    model = Sequential([Dense(2, input_shape=(3,))])
    with pytest.raises(TypeError, match=r"set_weights takes a list of arrays in the order get_weights\(\) gives"):
        model.set_weights({"kernel": np.ones((3, 2))})
    with pytest.raises(TypeError, match=r"Layer 'dense': set_weights takes a list .*\(kernel, bias\), not a dict"):
        model.layers[0].set_weights({"kernel": np.ones((3, 2))})


def nan_at_step_6(watch=lambda model: None):
    """Step 6's batch (samples 40-47, unshuffled) holds numbers so large that its logits overflow: fit stops,
    naming step 6, with the epoch rolled back. ``watch(model)`` runs before fit; returns what it returned."""
    rng = np.random.default_rng(1)
    x, y = rng.random((100, 5), dtype="float32"), to_categorical(np.arange(100) % 3, 3)
    x[40:48] = 3e38
    set_random_seed(0)
    model = Sequential([Dense(8, activation="relu", input_shape=(5,)), Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    watched, before = watch(model), model.get_weights()
    with pytest.raises(FloatingPointError, match=r"^The loss became nan at epoch 1, step 6: training stopped, "
                                                 r"and the weights were rolled back to where epoch 1 began"), \
            np.errstate(all="ignore"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0
    return watched


def test_a_nan_mid_epoch_stops_fit_naming_its_step_and_rolls_the_epoch_back():
    """On CuPy step 6 is a replay of the captured graph: the first bad step is noted on the device all the same."""
    nan_at_step_6()
