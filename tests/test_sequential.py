"""Tests for tinynet.models.Sequential: gradients, training, evaluation, weights and errors."""
import re
import warnings

import numpy as np
import pytest

from conftest import dev, host
from tinynet import gradcheck
from tinynet.callbacks import History
from tinynet.layers import Dense, Layer, ReLU, Softmax
from tinynet.losses import CategoricalCrossentropy, SoftmaxCrossentropy
from tinynet.models import Sequential
from tinynet.optimizers import RMSprop
from tinynet.utils import set_random_seed, to_categorical

KEYS = ["accuracy", "loss", "val_accuracy", "val_loss"]


def blobs(n=300, seed=0):
    """Three Gaussian blobs in 2-D, one per class: a problem a small MLP learns in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    labels = rng.integers(0, 3, n)
    x = (centers[labels] + rng.standard_normal((n, 2))).astype("float32")
    return x, to_categorical(labels, 3), labels


def blob_model(seed=0, learning_rate=0.01, metrics=("accuracy",)):
    set_random_seed(seed)
    model = Sequential([Dense(16, activation="relu", input_shape=(2,)), Dense(3, activation="softmax")])
    model.compile(optimizer=RMSprop(learning_rate=learning_rate), loss="categorical_crossentropy",
                  metrics=list(metrics))
    return model


@pytest.fixture
def trained():
    """A model fitted on 240 blob points for 6 epochs, validated on the other 60.

    Built anew for each test (a fraction of a second): a model's arrays belong to
    the backend that made them, and each test runs on every backend.
    """
    x, y, labels = blobs()
    model = blob_model()
    history = model.fit(x[:240], y[:240], batch_size=32, epochs=6, verbose=0, validation_data=(x[240:], y[240:]))
    return model, history, (x[240:], y[240:], labels[240:])


# --- gradients: the path fit uses, checked against finite differences -----------
def gradcheck_data(n=8, n_in=5, n_out=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), np.eye(n_out)[rng.integers(0, n_out, n)]


def assert_away_from_relu_kinks(model, x):
    """Every ReLU input is at least 1e-3 from 0, where the derivative jumps."""
    model.forward(dev(x, "float64"))
    for layer in model.layers:
        relu = layer if isinstance(layer, ReLU) else getattr(layer, "activation", None)
        if isinstance(relu, ReLU):
            assert np.abs(host(relu.x)).min() > 1e-3, layer.name


def check(model, x, y):
    assert_away_from_relu_kinks(model, x)
    report = gradcheck.check_model(model, x, y)
    assert report.ok, str(report)
    n_arrays = sum(len(layer.params) for layer in model.layers)
    assert len(report.results) == n_arrays
    return report


def test_gradcheck_relu_relu_softmax_fused_with_crossentropy():
    set_random_seed(5)
    model = Sequential([Dense(7, activation="relu", input_shape=(5,)), Dense(6, activation="relu"),
                        Dense(4, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    assert type(model.train_loss) is SoftmaxCrossentropy  # decided by compile: trains on the logits
    assert model.loss_applies_softmax  # the last layer stops at z = x W + b
    report = check(model, *gradcheck_data(seed=5))
    assert set(report.results) == {f"{name}.{key}" for name in ("dense", "dense_1", "dense_2")
                                   for key in ("kernel", "bias")}


def test_gradcheck_standalone_softmax_layer():
    set_random_seed(1)
    model = Sequential([Dense(7, activation="relu", input_shape=(5,)), Dense(4), Softmax()])
    model.compile(loss="categorical_crossentropy")
    assert type(model.train_loss) is SoftmaxCrossentropy and model.loss_applies_softmax  # Softmax() passes z on
    check(model, *gradcheck_data(seed=1))


def test_gradcheck_linear_output_with_from_logits():
    set_random_seed(2)
    model = Sequential([Dense(7, activation="relu", input_shape=(5,)), Dense(4)])
    model.compile(loss=CategoricalCrossentropy(from_logits=True))
    assert model.train_loss is model.loss
    check(model, *gradcheck_data(seed=2))


def test_gradcheck_linear_output_as_probabilities():
    """Dense(activation=None) read as (unnormalised) probabilities: the loss renormalises them."""
    set_random_seed(3)
    model = Sequential([Dense(7, activation="relu", input_shape=(5,)), Dense(4)])
    kernel, _ = model.layers[1].get_weights()
    model.layers[1].set_weights([0.1 * kernel, np.full(4, 3.0)])  # outputs in about (2, 4): far from the clip
    model.compile(loss="categorical_crossentropy")
    x, y = gradcheck_data(seed=3)
    assert model.train_loss is model.loss and host(model.forward(dev(x, "float64"))).min() > 1.0
    check(model, x, y)


def test_a_custom_last_layer_with_a_softmax_activation_trains_on_its_probabilities():
    class Scale(Layer):  # a layer of one's own, with an activation but no linear part apart
        def __init__(self):
            super().__init__()
            self.activation = Softmax()

        def forward(self, x):
            return self.activation.forward(2.0 * x)

        def backward(self, dy):
            return 2.0 * self.activation.backward(dy)

    model = Sequential([Dense(4, input_shape=(5,)), Scale()])
    model.compile(loss="categorical_crossentropy")
    assert model.train_loss is model.loss  # no fused path for it, and no error
    check(model, *gradcheck_data())


def test_fused_loss_equals_crossentropy_of_the_probabilities():
    set_random_seed(4)
    model = Sequential([Dense(6, activation="relu", input_shape=(5,)), Dense(4, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    x, y = gradcheck_data(seed=4)
    x, y = dev(x, "float64"), dev(y, "float64")  # float64: compared to 1e-12
    p = model.forward(x)
    assert float(model.test_step(x, y)[0]) == pytest.approx(float(CategoricalCrossentropy()(y, p)), rel=1e-12)


# --- training ----------------------------------------------------------------------
def test_fit_learns_separable_blobs(trained):
    model, history, (x_val, y_val, labels_val) = trained
    assert history.history["accuracy"][-1] >= 0.95
    assert history.history["val_accuracy"][-1] >= 0.95
    assert history.history["val_loss"][-1] < 0.2


def test_history_keys_and_lengths(trained):
    model, history, _ = trained
    assert isinstance(history, History) and model.history is history
    assert sorted(history.history) == KEYS and list(history.history) == KEYS
    assert all(len(values) == 6 for values in history.history.values())
    assert history.epoch == list(range(6))
    assert all(type(v) is float for values in history.history.values() for v in values)
    assert history.params["epochs"] == 6 and history.params["steps"] == 8  # ceil(240 / 32)


def test_training_loss_decreases(trained):
    losses = trained[1].history["loss"]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] / 5


def test_evaluate_matches_the_last_validation_figures(trained):
    model, history, (x_val, y_val, _) = trained
    loss, accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert loss == history.history["val_loss"][-1]
    assert accuracy == history.history["val_accuracy"][-1]


def test_evaluate_without_metrics_returns_the_loss():
    x, y, _ = blobs(60)
    model = blob_model(metrics=())
    loss = model.evaluate(x, y, verbose=0)
    assert type(loss) is float
    p = model.predict(x, verbose=0)
    assert loss == pytest.approx(float(CategoricalCrossentropy()(dev(y, "float64"), dev(p))), rel=1e-5)
    assert sorted(model.fit(x, y, epochs=1, verbose=0).history) == ["loss"]


def test_predict_returns_probabilities(trained):
    model, _, (x_val, y_val, labels_val) = trained
    p = model.predict(x_val, verbose=0)
    assert type(p) is np.ndarray and p.dtype == np.float32 and p.shape == (60, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert np.mean(p.argmax(axis=1) == labels_val) == pytest.approx(accuracy)


def test_predict_batches_agree_with_one_batch(trained):
    model, _, (x_val, _, _) = trained
    # float32 rounding: cuBLAS picks other kernels (other summation orders) for other batch shapes, and
    # differs by 1.1e-6 relative on an H200 (issue 19's run); NumPy's OpenBLAS agrees more closely.
    np.testing.assert_allclose(model.predict(x_val, batch_size=7, verbose=0),
                               model.predict(x_val, batch_size=60, verbose=0), rtol=1e-5)


def test_train_on_batch_returns_the_loss_before_the_update():
    x, y, _ = blobs(32)
    model = blob_model()
    before = float(model.test_step(dev(x), dev(y))[0])  # float32, as train_on_batch moves them
    loss, accuracy = model.train_on_batch(x, y)
    assert loss == before
    assert 0.0 <= accuracy <= 1.0
    assert float(model.test_step(dev(x), dev(y))[0]) < before
    assert model.optimizer.iterations == 1


def test_train_on_batch_without_metrics_returns_a_float():
    x, y, _ = blobs(32)
    assert type(blob_model(metrics=()).train_on_batch(x, y)) is float


def test_set_random_seed_makes_runs_identical():
    x, y, _ = blobs()

    def run(seed):
        model = blob_model(seed)
        model.fit(x, y, epochs=2, verbose=0)  # shuffled: the batch order comes from the seed too
        return model.get_weights()

    first, second, other = run(7), run(7), run(8)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_shuffle_false_is_reproducible_whatever_the_generator_state():
    x, y, _ = blobs()
    initial = blob_model(0).get_weights()
    results = []
    for seed in (1, 2):
        model = blob_model(seed)
        model.set_weights(initial)
        set_random_seed(seed)  # a different generator state each time: shuffle=False must not use it
        model.fit(x, y, epochs=2, shuffle=False, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_float64_inputs_are_accepted_and_cast_to_float32():
    x, y, _ = blobs()

    def run(dtype):
        model = blob_model(5)
        history = model.fit(x.astype(dtype), y.astype(dtype), epochs=2, verbose=0)
        return model, history

    model64, history64 = run("float64")
    model32, history32 = run("float32")
    assert history64.history == history32.history
    p = model64.predict(x.astype("float64"), verbose=0)
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p, model32.predict(x, verbose=0))


def test_fit_builds_a_model_without_input_shape():
    x, y, _ = blobs(64)
    set_random_seed(0)
    model = Sequential([Dense(4, activation="relu"), Dense(3, activation="softmax")])
    assert not model.built
    model.compile(loss="categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert model.built and model.input_shape == (None, 2) and model.output_shape == (None, 3)
    assert [w.shape for w in model.get_weights()] == [(2, 4), (4,), (4, 3), (3,)]


# --- weights -------------------------------------------------------------------------
def test_get_weights_shapes_in_keras_order():
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                        Dense(10, activation="softmax")])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)]
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert model.count_params() == 669706


def test_set_weights_round_trip():
    x, _, _ = blobs(20)
    source, target = blob_model(1), blob_model(2)
    assert not np.array_equal(source.predict(x, verbose=0), target.predict(x, verbose=0))
    target.set_weights(source.get_weights())
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(source.predict(x, verbose=0), target.predict(x, verbose=0))


def test_backend_arrays_are_taken_as_numpy_is():
    x, y, _ = blobs(64)
    on_host, on_device = blob_model(), blob_model()
    history_host = on_host.fit(x, y, epochs=2, shuffle=False, verbose=0)
    history_device = on_device.fit(dev(x), dev(y), epochs=2, shuffle=False, verbose=0)  # already on the backend
    assert history_device.history["loss"] == history_host.history["loss"]
    np.testing.assert_array_equal(on_device.predict(dev(x), verbose=0), on_host.predict(x, verbose=0))
    assert on_device.evaluate(dev(x), dev(y), verbose=0) == on_host.evaluate(x, y, verbose=0)
    assert on_device.train_on_batch(dev(x[:8]), dev(y[:8])) == on_host.train_on_batch(x[:8], y[:8])


def test_get_weights_returns_copies():
    x, y, _ = blobs(64)
    model = blob_model()
    saved = model.get_weights()
    snapshot = [w.copy() for w in saved]
    model.fit(x, y, epochs=1, verbose=0)
    for w, s in zip(saved, snapshot):
        np.testing.assert_array_equal(w, s)  # training did not change what get_weights returned
    saved[0][...] = 0.0
    assert np.abs(model.get_weights()[0]).max() > 0  # nor does writing to it change the model
    model.set_weights(snapshot)
    for w, s in zip(model.get_weights(), snapshot):
        np.testing.assert_array_equal(w, s)


def test_set_weights_wrong_count():
    model = blob_model()
    with pytest.raises(ValueError, match="4 weight arrays, but 3 were given"):
        model.set_weights(model.get_weights()[:3])


def test_set_weights_wrong_shape():
    model = blob_model()
    weights = model.get_weights()
    weights[2] = weights[2].T  # kernel (16, 3) given as (3, 16)
    with pytest.raises(ValueError, match=r"'dense_1'.*kernel has shape \(16, 3\).*\(3, 16\)"):
        model.set_weights(weights)


# --- names -----------------------------------------------------------------------------
def test_layers_are_named_like_keras():
    model = Sequential([Dense(3, input_shape=(4,)), Dense(3), Dense(2), ReLU(), Softmax(), ReLU()])
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "dense_2", "re_lu", "softmax", "re_lu_1"]


def test_given_names_are_kept_and_skipped():
    model = Sequential([Dense(3, input_shape=(4,), name="dense_1"), Dense(3), Dense(3), Dense(2, name="out")])
    assert [layer.name for layer in model.layers] == ["dense_1", "dense", "dense_2", "out"]


@pytest.mark.host_only("an error message: no arrays")
def test_add_rejects_non_layers():
    with pytest.raises(TypeError, match="Dense"):
        Sequential().add("dense")


# --- errors that say what to do -------------------------------------------------------------
def test_fit_before_compile():
    x, y, _ = blobs(10)
    model = Sequential([Dense(3, input_shape=(2,))])
    for call in (lambda: model.fit(x, y), lambda: model.evaluate(x, y), lambda: model.train_on_batch(x, y)):
        with pytest.raises(RuntimeError, match=r"model\.compile\(loss="):
            call()


def test_compile_needs_a_loss():
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        Sequential([Dense(3, input_shape=(2,))]).compile(optimizer="rmsprop")


@pytest.mark.parametrize("argument, name, known", [
    ("loss", "huber", "categorical_crossentropy"),
    ("optimizer", "adagrad", "adam"),
    ("metrics", "precision", "accuracy"),
])
def test_unknown_names_list_known_ones(argument, name, known):
    model = Sequential([Dense(3, input_shape=(2,))])
    kwargs = {"loss": "categorical_crossentropy", argument: [name] if argument == "metrics" else name}
    with pytest.raises(ValueError) as info:
        model.compile(**kwargs)
    assert repr(name) in str(info.value) and known in str(info.value)


def test_metrics_must_be_a_list():
    with pytest.raises(ValueError, match=r"metrics=\['accuracy'\]"):
        Sequential([Dense(3, input_shape=(2,))]).compile(loss="categorical_crossentropy", metrics="accuracy")


def test_x_and_y_lengths_must_match():
    x, y, _ = blobs(20)
    model = blob_model()
    with pytest.raises(ValueError, match="same number of samples, got 20 inputs and 19 targets"):
        model.fit(x, y[:19], verbose=0)


def test_targets_of_the_wrong_width():
    x, y, _ = blobs(20)
    with pytest.raises(ValueError, match=r"\(20, 4\).*\(20, 3\)"):
        blob_model().fit(x, np.eye(4)[:1].repeat(20, axis=0), verbose=0)


def test_validation_data_must_be_a_pair():
    x, y, _ = blobs(20)
    with pytest.raises(ValueError, match=r"validation_data must be a tuple \(x_val, y_val\)"):
        blob_model().fit(x, y, validation_data=(x, y, y), verbose=0)


def test_a_built_layer_reused_with_other_inputs():
    layer = Dense(3)
    layer.build((None, 5))
    with pytest.raises(ValueError, match=r"'dense_1' takes inputs of shape \(None, 5\).*receives \(None, 4\)"):
        Sequential([Dense(4, input_shape=(2,)), layer])


def test_images_to_a_flat_model_hint_flatten():
    model = Sequential([Dense(10, activation="softmax", input_shape=(784,))])
    model.compile(loss="categorical_crossentropy")
    images, y = np.zeros((5, 28, 28), "float32"), np.eye(10)[:5]
    for call in (lambda: model.fit(images, y, verbose=0), lambda: model.predict(images, verbose=0),
                 lambda: model.forward(dev(images))):
        with pytest.raises(ValueError, match="Flatten") as info:
            call()
        assert "reshape(len(x), 784)" in str(info.value) and "(5, 28, 28)" in str(info.value)


def test_forward_checks_the_shape_of_its_input():
    model = Sequential([Dense(3, activation="relu", input_shape=(4,)), Dense(2)])
    for x in (np.zeros(4), np.zeros((2, 5))):  # one sample without its batch axis; the wrong features
        with pytest.raises(ValueError, match=r"model.forward: the model expects inputs of shape \(None, 4\), "
                                             rf"got an array of shape {re.escape(str(x.shape))}"):
            model.forward(dev(x))


def test_integer_labels_hint_to_categorical():
    x, _, labels = blobs(20)
    model = blob_model()
    with pytest.raises(ValueError, match=r"to_categorical\(y, 3\)"):
        model.fit(x, labels, verbose=0)
    with pytest.raises(ValueError, match="to_categorical"):
        model.fit(x, to_categorical(labels, 3), validation_data=(x, labels), verbose=0)


def test_non_numeric_inputs():
    model = blob_model()
    with pytest.raises(TypeError, match="expected numbers"):
        model.predict(np.array([["a", "b"]]), verbose=0)


def test_infinite_inputs_are_refused_before_training():
    x, y, _ = blobs(40)
    x[15, 0] = np.inf
    model = blob_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"x\[15\] holds NaN or infinity"):
        model.fit(x, y, batch_size=10, epochs=3, shuffle=False, verbose=0)
    y = y.astype("float32")
    y[3, 0] = np.nan
    for call in (model.train_on_batch, model.evaluate):
        with pytest.raises(ValueError, match=r"y\[3\] holds NaN or infinity"):
            call(blobs(20)[0], y[:20])
    for w, w0 in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)


def test_huge_learning_rate_diverges_with_a_clear_error():
    x, y, _ = blobs(100)
    model = blob_model(learning_rate=1e30)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=r"at epoch \d+, step \d+") as info:
        model.fit(x, y, batch_size=10, epochs=5, verbose=0)
    assert "learning rate" in str(info.value)


@pytest.mark.host_only("an unbuilt model: no arrays")
def test_summary_of_an_unbuilt_model():
    with pytest.raises(ValueError, match="input_shape"):
        Sequential([Dense(3)]).summary()


# --- what fit prints ------------------------------------------------------------------------
VALUES = r" - accuracy: \d\.\d{4} - loss: \d\.\d{4} - val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}"


def fit_printing(verbose, epochs=2):
    x, y, _ = blobs()
    model = blob_model()
    return model.fit(x[:240], y[:240], epochs=epochs, verbose=verbose, validation_data=(x[240:], y[240:]))


def test_verbose_0_prints_nothing(capsys):
    fit_printing(0)
    assert capsys.readouterr().out == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    history = fit_printing(2, epochs=3)
    lines = capsys.readouterr().out.splitlines()
    assert lines[::2] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert len(lines) == 6
    for epoch, line in enumerate(lines[1::2]):
        assert re.fullmatch(r"8/8 - \d+s - \d+(s|ms|us)/step" + VALUES, line), line
        assert f"loss: {history.history['loss'][epoch]:.4f} " in line
        assert line.endswith(f"val_loss: {history.history['val_loss'][epoch]:.4f}")


@pytest.mark.parametrize("verbose", [1, "auto"])
def test_verbose_1_to_a_file_prints_finished_lines(capsys, verbose):
    history = fit_printing(verbose)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out  # not a terminal: no redraws, no colours
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for epoch, line in enumerate(lines[1::2]):
        assert re.fullmatch(r"8/8 ━━━━━━━━━━━━━━━━━━━━ \d+s \d+(s|ms|us)/step" + VALUES, line), line
        assert f"accuracy: {history.history['accuracy'][epoch]:.4f} " in line


def test_one_epoch_prints_no_epoch_header(capsys):
    fit_printing(1, epochs=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("8/8 ━")


def test_evaluate_and_predict_verbose(capsys):
    x, y, _ = blobs(64)
    model = blob_model()
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    loss, accuracy = model.evaluate(x, y, batch_size=32, verbose=1)
    line = capsys.readouterr().out
    assert re.fullmatch(r"2/2 ━{20} \d+s \d+(s|ms|us)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}\n", line), line
    assert f"loss: {loss:.4f}" in line and f"accuracy: {accuracy:.4f}" in line


def test_the_first_layer_skips_the_gradient_of_the_data():
    model = Sequential([Dense(4, activation="relu", input_shape=(3,)), Dense(2, activation="softmax")])
    assert [layer.needs_input_gradient for layer in model.layers] == [False, True]
    model.compile(loss="categorical_crossentropy")
    x, y = np.ones((5, 3), "float32"), np.eye(2, dtype="float32")[[0, 1, 0, 1, 1]]
    model.train_step(dev(x), dev(y))
    assert model.layers[0].backward(dev(np.ones((5, 4), "float32"))) is None  # dL/dx of the data: not computed
    assert Dense(2, input_shape=(3,)).needs_input_gradient  # a layer on its own still returns dL/dx


# --- state has one owner: the silent failures ----------------------------
def test_one_activation_object_for_two_layers_gives_right_gradients():
    relu = ReLU()
    set_random_seed(0)
    model = Sequential([Dense(6, activation=relu, input_shape=(5,)), Dense(6, activation=relu),
                        Dense(4, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    x, y = gradcheck_data()
    assert model.layers[0].activation is not model.layers[1].activation
    check(model, x, y)


@pytest.mark.host_only("an error before any array is made")
def test_the_same_layer_twice_is_refused():
    dense = Dense(4, input_shape=(3,))
    model = Sequential([dense])
    with pytest.raises(ValueError, match=r"Layer 'dense' is already in this model.*Create a new layer"):
        model.add(dense)
    with pytest.raises(ValueError, match=r"Layer 'dense' is already in the model 'sequential'"):
        Sequential([dense])
    assert model.layers == [dense]


def test_a_layer_that_does_not_fit_leaves_the_model_as_it_was():
    model = Sequential([Dense(4, input_shape=(3,))])
    late = Dense(2, input_shape=(100,))
    with pytest.raises(ValueError, match=r"'dense_1' takes inputs of shape \(None, 100\).*"
                                         r"receives \(None, 4\)\. Only the first layer needs an input_shape"):
        model.add(late)
    assert len(model.layers) == 1 and late.name is None and late.model is None
    model.add(Dense(2, input_shape=(4,)))  # an input_shape that agrees is fine
    assert model.output_shape == (None, 2)


@pytest.mark.host_only("an error message: no arrays")
def test_sequential_wants_a_list():
    with pytest.raises(TypeError, match=r"Sequential\(\[Dense"):
        Sequential(Dense(3))


def test_a_layer_added_after_fit_asks_for_a_new_compile():
    x, y, _ = blobs(60)
    model = blob_model()
    model.fit(x, y, epochs=1, verbose=0)
    model.layers.pop()
    model.add(Dense(3, activation="softmax"))
    with pytest.raises(ValueError, match=r"RMSprop was built for other parameters.*compile again"):
        model.fit(x, y, epochs=1, verbose=0)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")  # a new optimizer: it trains
    model.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("n_hidden", [8, 64])  # smaller and larger than the first model
def test_one_optimizer_in_two_models_is_refused(n_hidden):
    x, y, _ = blobs(60)
    first = blob_model()
    optimizer = first.optimizer
    first.fit(x, y, epochs=1, verbose=0)
    second = Sequential([Dense(n_hidden, activation="relu", input_shape=(2,)), Dense(3, activation="softmax")])
    second.compile(optimizer=optimizer, loss="categorical_crossentropy")
    before = second.get_weights()
    for train in (lambda: second.fit(x, y, verbose=0), lambda: second.train_on_batch(x, y)):
        with pytest.raises(ValueError, match=r"RMSprop was built for other parameters \(4 arrays\)"):
            train()
    for w, w0 in zip(second.get_weights(), before):
        np.testing.assert_array_equal(w, w0)


@pytest.mark.host_only("an error message: no arrays")
def test_a_metric_listed_twice_is_refused():
    model = Sequential([Dense(3, input_shape=(2,))])
    with pytest.raises(ValueError, match="metrics lists 'accuracy' twice"):
        model.compile(loss="mse", metrics=["accuracy", "accuracy"])


def test_a_non_finite_loss_in_train_on_batch_leaves_the_weights_unchanged():
    x, y, _ = blobs(20)
    model = blob_model(learning_rate=1e30)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="the weights were left unchanged"):
        for _ in range(20):  # the weights blow up, and soon the loss is not finite
            before = model.get_weights()
            model.train_on_batch(x, y)
    for w, w0 in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_a_diverging_fit_rolls_back_to_the_start_of_the_epoch():
    x, y, _ = blobs(100)
    model = blob_model(learning_rate=1e30)
    before = model.get_weights()
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="rolled back to where epoch 1 began"):
        model.fit(x, y, batch_size=10, epochs=5, verbose=0)
    for w, w0 in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    assert model.optimizer.iterations == 0 and not any(np.any(host(v)) for v in model.optimizer.slots)


# --- arguments checked before any work ------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    ({"batch_size": 0}, ValueError, "batch_size must be an integer of at least 1, got 0"),
    ({"batch_size": -5}, ValueError, "batch_size must be an integer of at least 1"),
    ({"batch_size": 32.5}, TypeError, "batch_size must be an integer"),
    ({"epochs": -1}, ValueError, "epochs must be an integer of at least 0"),
    ({"epochs": "5"}, TypeError, "epochs must be an integer"),
    ({"verbose": "yes"}, ValueError, "verbose must be one of 'auto', 0, 1, 2, got 'yes'"),
    ({"verbose": 3}, ValueError, "verbose must be one of"),
    ({"shuffle": "no"}, TypeError, "shuffle must be True or False"),
    ({"validation_data": np.zeros((2, 2))}, ValueError, r"validation_data must be a tuple \(x_val, y_val\)"),
])
def test_fit_checks_its_arguments_before_any_work(kwargs, error, message, capsys):
    x, y, _ = blobs(20)
    model = blob_model()
    before = model.get_weights()
    with pytest.raises(error, match=message):
        model.fit(x, y, **kwargs)
    assert capsys.readouterr().out == ""  # not even "Epoch 1/..."
    for w, w0 in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)


def test_evaluate_and_predict_check_batch_size_and_verbose():
    x, y, _ = blobs(20)
    model = blob_model()
    with pytest.raises(ValueError, match="batch_size must be an integer of at least 1"):
        model.evaluate(x, y, batch_size=0)
    with pytest.raises(ValueError, match="verbose must be one of"):
        model.predict(x, verbose="loud")


def test_numpy_integer_batch_size_and_zero_epochs_work():
    x, y, _ = blobs(20)
    model = blob_model()
    history = model.fit(x, y, batch_size=np.int64(5), epochs=0, verbose=0)
    assert history.history == {}
    model.fit(x, y, batch_size=np.int64(5), epochs=1, verbose=0)


def test_empty_inputs():
    x, y, _ = blobs(20)
    model = blob_model()
    for call in (lambda: model.fit(x[:0], y[:0], verbose=0), lambda: model.evaluate(x[:0], y[:0], verbose=0),
                 lambda: model.train_on_batch(x[:0], y[:0])):
        with pytest.raises(ValueError, match=r"there are no samples \(x has shape \(0, 2\)\)"):
            call()
    empty = model.predict(x[:0], verbose=0)
    assert empty.shape == (0, 3) and empty.dtype == np.float32


def test_strings_and_ragged_targets_are_type_errors():
    x, y, _ = blobs(4)
    model = blob_model()
    with pytest.raises(TypeError, match=r"expected numbers, got an array of dtype <U1"):
        model.fit(x, [["a", "b", "c"]] * 4, verbose=0)
    with pytest.raises(TypeError, match="expected an array of numbers"):
        model.fit(x, [[1, 0, 0], [0, 1]] * 2, verbose=0)


def test_set_weights_takes_lists():
    model = blob_model()
    weights = [w.tolist() for w in model.get_weights()]
    weights[-1] = [1.0, 2.0, 3.0]
    model.set_weights(weights)
    np.testing.assert_array_equal(model.get_weights()[-1], [1, 2, 3])
    weights[-1] = ["a", "b", "c"]
    with pytest.raises(TypeError, match=r"Layer 'dense_1': the value given for bias: expected numbers, "
                                        r"got an array of dtype <U1"):
        model.set_weights(weights)


def test_set_weights_sets_all_or_none():
    model = blob_model()
    before = model.get_weights()
    for bad, error, message in [
        (lambda w: w.__setitem__(3, np.zeros(7)), ValueError, r"'dense_1': bias has shape \(3,\)"),
        (lambda w: w.__setitem__(3, w[3] + 1j), TypeError, "the value given for bias: expected numbers, got an array of dtype complex"),
        (lambda w: w.__setitem__(3, np.full(3, 1e300)), ValueError, "bias holds NaN or infinity, or numbers too large for float32"),
    ]:
        weights = [w + 1 for w in model.get_weights()]
        bad(weights)
        with pytest.raises(error, match=message):
            model.set_weights(weights)
        for w, w0 in zip(model.get_weights(), before):
            np.testing.assert_array_equal(w, w0)  # the first layer, checked fine, was not set either


def test_unscaled_pixels_warn_with_the_fix():
    x = np.random.default_rng(0).integers(0, 256, (30, 2)).astype("uint8")
    y = to_categorical(np.arange(30) % 3, 3)
    model = blob_model()
    with pytest.warns(UserWarning, match=r"integers up to 255 \(dtype uint8\).*x = x / 255"):
        model.fit(x, y, epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x / 255, y, epochs=1, verbose=0)  # scaled: no warning



@pytest.mark.parametrize("loss", [SoftmaxCrossentropy(), CategoricalCrossentropy(from_logits=True)])
def test_a_softmax_before_a_loss_on_logits_warns(loss):
    model = Sequential([Dense(3, activation="softmax", input_shape=(2,))])
    with pytest.warns(UserWarning, match="the softmax is applied twice"):
        model.compile(loss=loss)


def test_train_step_builds_and_checks_the_optimizer():
    x, y, _ = blobs(20)
    model = blob_model()
    model.train_step(dev(x), dev(y))  # called directly, before any fit
    assert model.optimizer.iterations == 1
    model.layers.pop()
    model.add(Dense(3, activation="softmax"))
    with pytest.raises(ValueError, match="RMSprop was built for other parameters"):
        model.train_step(dev(x), dev(y))
