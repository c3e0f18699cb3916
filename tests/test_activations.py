"""Tests for tinynet.activations.get: names, classes and objects to activation layers."""
import numpy as np
import pytest

from conftest import dev, host
from tinynet import activations
from tinynet.layers import Layer, ReLU, Softmax


@pytest.mark.host_only("names to objects: no arrays")
def test_by_name():
    assert type(activations.get("relu")) is ReLU
    assert type(activations.get("softmax")) is Softmax


@pytest.mark.host_only("names to objects: no arrays")
def test_each_call_gives_a_new_layer():
    assert activations.get("relu") is not activations.get("relu")  # layers cache their inputs


@pytest.mark.parametrize("identifier", [None, "linear"])
@pytest.mark.host_only("names to objects: no arrays")
def test_linear_is_none(identifier):
    assert activations.get(identifier) is None


@pytest.mark.host_only("names to objects: no arrays")
def test_by_object_and_by_class():
    relu = ReLU()
    copy = activations.get(relu)
    assert type(copy) is ReLU and copy is not relu  # each layer gets its own: an activation caches its input
    assert type(activations.get(Softmax)) is Softmax


@pytest.mark.host_only("names to objects: no arrays")
@pytest.mark.parametrize("identifier", [7, ["relu"], "sigmoid"])
def test_unknown_activations_list_the_known_ones(identifier):
    with pytest.raises(ValueError, match=r"Unknown activation .*Known: relu, softmax"):
        activations.get(identifier)


def test_named_activation_computes_its_function():
    x = dev([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(host(activations.get("relu").forward(x)), [[0.0, 0.0, 2.0]])
    np.testing.assert_allclose(host(activations.get("softmax").forward(x)).sum(), 1.0)


@pytest.mark.parametrize("identifier", ["tanh", "ReLU", "sigmoid"])
@pytest.mark.host_only("an error message: no arrays")
def test_unknown_name_lists_known_ones(identifier):
    with pytest.raises(ValueError) as info:
        activations.get(identifier)
    message = str(info.value)
    assert repr(identifier) in message
    assert "relu" in message and "softmax" in message and "linear" in message


@pytest.mark.host_only("an error message: no arrays")
def test_a_non_layer_class_is_rejected():
    class NotALayer:
        pass

    with pytest.raises(ValueError, match="Unknown activation"):
        activations.get(NotALayer)
    assert issubclass(ReLU, Layer)


@pytest.mark.parametrize("identifier, name", [("relu", "relu"), ("softmax", "softmax"), (None, "linear"),
                                              ("linear", "linear")])
def test_serialize_names_what_get_built(identifier, name):
    assert activations.serialize(activations.get(identifier)) == name


def test_an_activation_of_your_own_is_serialized_by_its_class_and_settings():
    class Cube(Layer):
        pass

    assert activations.serialize(Cube()) == {"class_name": "Cube", "config": {"name": None, "trainable": True,
                                                                          "input_shape": None}}


@pytest.mark.host_only("an error before any array")
def test_a_layer_with_weights_is_refused_as_an_activation():
    from tinynet.layers import Dense

    with pytest.raises(ValueError, match=r"^activation must be a layer without weights, such as 'relu' .*Dense has "
                                         r"weights \(kernel, bias\).*add it to the model as a layer of its own: "
                                         r"Sequential\(\[\.\.\., Dense\(3\), Dense\(\.\.\.\)\]\)"):
        Dense(3, activation=Dense(5), input_shape=(2,))  # predict gave (1, 5) and the inner layer never trained
    with pytest.raises(ValueError, match="^activation must be a layer without weights"):
        activations.get(Dense(5), (None, 3))
    with pytest.raises(TypeError, match=r"^The activation Dense cannot be made without arguments .*units"):
        Dense(3, activation=Dense)


@pytest.mark.host_only("an error before any array")
def test_an_activation_that_changes_the_shape_is_refused():
    from tinynet.layers import Dense

    class Halve(Layer):  # no weights, but half as many outputs as inputs
        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], input_shape[-1] // 2)

    with pytest.raises(ValueError, match=r"^activation must keep the shape of its input, as relu and softmax do; "
                                         r"Halve turns \(None, 4\) into \(None, 2\)"):
        Dense(4, activation=Halve())


def test_a_layer_without_weights_of_ones_own_is_an_activation():
    from tinynet.layers import Dense

    class Cube(Layer):
        def forward(self, x):
            self.x = x
            return x * x * x  # y = x**3

        def backward(self, dy):
            return dy * 3 * self.x * self.x  # dL/dx = dL/dy * 3 x**2

    layer = Dense(2, activation=Cube(), use_bias=False)
    layer.build((None, 1))
    layer.set_weights([np.array([[2.0, -1.0]])])
    np.testing.assert_array_equal(host(layer(dev([[1.5]]))), [[27.0, -3.375]])
