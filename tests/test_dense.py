"""Tests for tinynet.layers.Dense: y = activation(x @ W + b)."""
import math

import numpy as np
import pytest

from conftest import dev, host
from tinynet import gradcheck
from tinynet.layers import Dense, ReLU, Softmax
from tinynet.utils import set_random_seed

N, IN, UNITS = 4, 5, 3


def built_dense(activation=None, use_bias=True, seed=0):
    """A Dense(3) on 5 inputs, with a random (non-zero) bias so its gradient counts."""
    set_random_seed(seed)
    layer = Dense(UNITS, activation=activation, use_bias=use_bias)
    layer.build((None, IN))
    if use_bias:
        bias = np.random.default_rng(seed + 100).uniform(-0.5, 0.5, UNITS)
        layer.set_weights([layer.get_weights()[0], bias])
    return layer


def inputs(seed=0):
    return np.random.default_rng(seed).standard_normal((N, IN))


def linear_part(layer, x):
    """z = x @ W + b, by NumPy in float64."""
    weights = [w.astype("float64") for w in layer.get_weights()]
    return x @ weights[0] + (weights[1] if len(weights) == 2 else 0.0)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
def test_gradcheck(activation, use_bias):
    layer, x = built_dense(activation, use_bias), inputs()
    z = linear_part(layer, x)
    assert np.abs(z).min() > 1e-3  # ReLU's kink at 0 is far from every z for these seeds
    report = gradcheck.check_layer(layer, x)
    assert report.ok, str(report)
    assert set(report.results) == {"x", "kernel"} | ({"bias"} if use_bias else set())


def test_forward_against_hand_computation():
    layer = Dense(2)
    layer.build((None, 3))
    layer.set_weights([np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([0.5, -1.0])])
    x = dev([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
    # row 1: (1 - 5, 2 - 6) + b = (-3.5, -5);  row 2: (2 + 3, 4 + 4) + b = (5.5, 7)
    expected = np.array([[-3.5, -5.0], [5.5, 7.0]])
    np.testing.assert_array_equal(host(layer.forward(x)), expected)

    relu = Dense(2, activation="relu")
    relu.build((None, 3))
    relu.set_weights(layer.get_weights())
    np.testing.assert_array_equal(host(relu.forward(x)), [[0.0, 0.0], [5.5, 7.0]])


def test_forward_matches_numpy_on_random_weights():
    layer, x = built_dense(), inputs().astype("float32")
    np.testing.assert_allclose(host(layer.forward(dev(x))), linear_part(layer, x), rtol=1e-6, atol=1e-6)


def test_softmax_activation_rows_are_probabilities():
    layer, x = built_dense("softmax"), inputs().astype("float32")
    z = linear_part(layer, x)
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = host(layer.forward(dev(x)))
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


def test_shapes():
    layer = Dense(UNITS)
    layer.build((None, IN))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (IN, UNITS) and bias.shape == (UNITS,)  # Keras order and shapes
    assert kernel.dtype == np.float32 and bias.dtype == np.float32
    assert layer.input_shape == (None, IN) and layer.output_shape == (None, UNITS)
    assert layer.forward(dev(np.zeros((7, IN)))).shape == (7, UNITS)
    assert layer.count_params() == IN * UNITS + UNITS
    layer.forward(dev(np.ones((7, IN))))
    assert layer.backward(dev(np.ones((7, UNITS)))).shape == (7, IN)
    assert layer.grads["kernel"].shape == (IN, UNITS) and layer.grads["bias"].shape == (UNITS,)


def test_no_bias_has_only_a_kernel():
    layer = Dense(UNITS, use_bias=False)
    layer.build((None, IN))
    assert list(layer.params) == ["kernel"]
    assert layer.count_params() == IN * UNITS


def test_call_builds_on_first_use():
    layer = Dense(UNITS)
    assert not layer.built
    y = layer(dev(np.ones((2, IN))))
    assert layer.built and y.shape == (2, UNITS)


def test_glorot_uniform_limit_and_zero_bias():
    set_random_seed(0)
    layer = Dense(512)
    layer.build((None, 784))
    kernel, bias = layer.get_weights()
    limit = math.sqrt(6 / (784 + 512))  # 0.06804
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.999 * limit  # 401,408 draws reach close to the edge
    assert abs(kernel.mean()) < 1e-3
    assert kernel.std() == pytest.approx(limit / math.sqrt(3), rel=0.01)  # std of U(-a, a) = a / sqrt(3)
    np.testing.assert_array_equal(bias, np.zeros(512))


def test_images_given_to_a_flat_layer():
    layer = Dense(10)
    layer.build((None, 784))
    with pytest.raises(ValueError, match="Flatten") as info:
        layer(dev(np.zeros((2, 28, 28))))
    assert "reshape(len(x), 784)" in str(info.value)
    assert "(2, 28, 28)" in str(info.value)


def test_building_on_images_explains_flatten():
    with pytest.raises(ValueError, match="Flatten") as info:
        Dense(10)(dev(np.zeros((2, 28, 28))))
    assert "reshape(len(x), 784)" in str(info.value)


def test_wrong_feature_count_is_a_clear_error():
    layer = Dense(10)
    layer.build((None, 784))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 784\).*\(2, 100\)"):
        layer(dev(np.zeros((2, 100))))


@pytest.mark.host_only("an error message: no arrays")
def test_unknown_activation_lists_known_ones():
    with pytest.raises(ValueError) as info:
        Dense(3, activation="tanh")
    message = str(info.value)
    assert "'tanh'" in message
    for known in ("relu", "softmax", "linear"):
        assert known in message


@pytest.mark.parametrize("units, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError), ("3", TypeError),
                                          (True, TypeError)])
@pytest.mark.host_only("an error message: no arrays")
def test_units_must_be_a_positive_int(units, error):
    with pytest.raises(error, match="units must be an integer of at least 1"):
        Dense(units)


@pytest.mark.host_only("an unbuilt layer: no arrays")
def test_numpy_integers_are_integers():
    assert Dense(np.int64(4), input_shape=(np.int32(3),)).units == 4


@pytest.mark.host_only("an error message: no arrays")
@pytest.mark.parametrize("input_shape, message", [(784, r"input_shape=\(784,\), not input_shape=784"),
                                                  ("784", "input_shape must be a tuple such as"),
                                                  ((784.0,), "each entry of input_shape must be an integer"),
                                                  ((), "input_shape must be a tuple such as")])
def test_input_shape_must_be_a_tuple_of_ints(input_shape, message):
    with pytest.raises(TypeError, match=message):
        Dense(10, input_shape=input_shape)


@pytest.mark.host_only("an error message: no arrays")
def test_use_bias_and_name_are_checked():
    with pytest.raises(TypeError, match="use_bias must be True or False, got 'no'"):
        Dense(3, use_bias="no")
    with pytest.raises(TypeError, match="name must be a string"):
        Dense(3, name=5)


@pytest.mark.host_only("an unbuilt layer: no arrays")
def test_activation_objects_and_linear():
    assert Dense(3, activation="linear").activation is None
    assert isinstance(Dense(3, activation="relu").activation, ReLU)
    softmax = Softmax()
    assert type(Dense(3, activation=softmax).activation) is Softmax


def test_get_config_and_from_config():
    layer = Dense(7, activation="softmax", use_bias=False, input_shape=(5,), name="out")
    config = layer.get_config()
    assert config == {"name": "out", "trainable": True, "input_shape": [5], "units": 7, "activation": "softmax",
                      "use_bias": False}
    copy = Dense.from_config(config)
    assert (copy.name, copy.units, type(copy.activation), copy.use_bias, copy.input_shape, copy.trainable) == \
        ("out", 7, Softmax, False, (None, 5), True)
    assert Dense(3).get_config()["input_shape"] is None
    assert ReLU.from_config(ReLU(name="r").get_config()).name == "r"


@pytest.mark.host_only("a flag: no arrays")
def test_trainable_as_keras_has_it():
    layer = Dense(3)
    assert layer.trainable is True  # the default
    layer.trainable = np.False_  # a flag, NumPy's bools too
    assert not layer.trainable and layer.get_config()["trainable"] is False
    assert Dense.from_config(layer.get_config()).trainable is False  # saved and loaded with the layer
    assert Dense(3, trainable=False).trainable is False and ReLU(trainable=False).get_config()["trainable"] is False
    assert Dense.from_config({"units": 3}).trainable is True  # a config from before trainable: the default
    for value in (0, "no", None):
        layer.trainable = value  # checked where it is read: fit, train_on_batch, evaluate, save
        with pytest.raises(TypeError, match=r"^trainable must be True or False, got "):
            layer.get_config()
        with pytest.raises(TypeError, match=r"^trainable must be True or False, got "):
            Dense(3, trainable=value)


@pytest.mark.parametrize("initializer, error, message", [
    (lambda shape: np.ones(3), ValueError, r"returned an array of shape \(3,\) for the kernel of shape \(4, 3\): an "
                                           r"initializer takes a shape and returns an array of that shape\."),
    (lambda shape: np.full(shape, np.nan), ValueError, "returned NaN or infinity"),
    (lambda shape: np.full(shape, 1e39), ValueError, "returned NaN or infinity, or numbers too large for float32"),
    (lambda shape: None, TypeError, "returned no array of numbers: expected an array of numbers, got NoneType"),
])
def test_an_initializer_returning_a_wrong_array_is_named_with_its_layer(initializer, error, message):
    def my_init(shape):
        return initializer(shape)

    layer = Dense(3, kernel_initializer=my_init, name="hidden")
    with pytest.raises(error, match=r"^Layer 'hidden': kernel_initializer my_init " + message):
        layer.build((None, 4))
    with pytest.raises(error, match=r"^Layer 'Dense': bias_initializer my_init "):  # not yet named by a model
        Dense(4, bias_initializer=my_init).build((None, 4))


def test_an_initializer_may_return_any_array_of_numbers():
    layer = Dense(2, kernel_initializer=lambda shape: [[1, 2], [3, 4]], bias_initializer=lambda shape: np.ones(shape))
    layer.build((None, 2))
    assert [host(p).dtype for p in layer.params.values()] == [np.float32, np.float32]
    np.testing.assert_array_equal(host(layer(dev([[1.0, 1.0]]))), [[5.0, 7.0]])


@pytest.mark.host_only("a MemoryError before any array")
def test_weights_too_large_for_memory_say_so():
    with pytest.raises(MemoryError, match=r"^Layer 'Dense': its 1000000 x 1000000 kernel \(3725.3 GiB in float32\) "
                                          r"does not fit in memory; use fewer units\."):
        Dense(10**6).build((None, 10**6))


def test_calling_a_layer_on_a_list_works_as_on_an_array():
    layer = Dense(1, kernel_initializer=lambda shape: np.full(shape, 2.0))
    y = layer([[1, 2], [3, 4]])  # a list of samples, as Keras takes it: float32 on the backend
    assert y.dtype == backend_float32()
    np.testing.assert_array_equal(host(y), [[6.0], [14.0]])
    with pytest.raises(TypeError, match=r"^Layer 'Dense': x: expected numbers, got an array of dtype <U"):
        layer([["a", "b"]])
    with pytest.raises(ValueError, match=r"^Layer 'Dense': x must be a batch of samples, one per row, got the single "
                                         r"number 5.0\."):
        layer(5.0)


def backend_float32():
    from tinynet import backend
    return backend.as_dtype("float32")


@pytest.mark.parametrize("built", [False, True])
def test_one_sample_without_its_batch_axis_gets_the_reshape_that_fixes_it(built):
    layer = Dense(3, input_shape=(4,) if built else None)
    if built:
        layer.build((None, 4))
        fix = r"Layer 'Dense' expects inputs of shape \(None, 4\), got an array of shape \(4,\)\. If x is one " \
              r"sample, add the batch axis: x = x.reshape\(1, 4\)\.$"
    else:
        fix = r"Dense expects inputs of shape \(batch, features\), got \(None,\)\. If x is one sample of 4 " \
              r"numbers, add the batch axis: x.reshape\(1, 4\); if it is 4 samples of one number each: x.reshape\(4, 1\)"
    with pytest.raises(ValueError, match=fix):
        layer(dev(np.ones(4)))


@pytest.mark.parametrize("shape, fix", [((28, 28), r"If x is one sample, add the batch axis: x = x.reshape\(1, 784\)"),
                                        ((784,), r"If x is one sample, add the batch axis: x = x.reshape\(1, 784\)"),
                                        ((5, 28, 28), r"Flatten each sample first: x = x.reshape\(len\(x\), 784\)"),
                                        ((5, 10), r"\(5, 10\)\.$")])
def test_a_model_given_one_image_or_one_row_says_how_to_reshape(shape, fix):
    from tinynet.models import Sequential

    model = Sequential([Dense(3, input_shape=(784,))])
    with pytest.raises(ValueError, match=r"x: the model expects inputs of shape \(None, 784\), got an array of "
                                         rf"shape .*{fix}"):
        model.predict(np.zeros(shape), verbose=0)
