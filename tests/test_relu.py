"""Tests for tinynet.layers.ReLU: y = max(x, 0)."""
import numpy as np
import pytest

from conftest import dev, host
from tinynet import backend, gradcheck
from tinynet.layers import ReLU


def test_zeroes_negatives_and_keeps_positives():
    x = dev([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    y = ReLU().forward(x)
    np.testing.assert_array_equal(host(y), [[0.0, 0.0, 0.0, 0.5, 3.0]])
    assert y.dtype == backend.as_dtype("float32") and y.shape == x.shape


def test_backward_passes_gradient_only_where_x_is_positive():
    layer = ReLU()
    layer.forward(dev([[-1.0, 2.0, 0.0, 4.0]]))
    dx = layer.backward(dev([[10.0, 20.0, 30.0, 40.0]]))
    np.testing.assert_array_equal(host(dx), [[0.0, 20.0, 0.0, 40.0]])  # slope 0 at x = 0, as in Keras


def test_gradcheck_away_from_the_kink():
    x = np.random.default_rng(0).standard_normal((4, 6))
    x[np.abs(x) < 0.1] = 0.5  # keep every input away from 0, where max(x, 0) has no derivative
    report = gradcheck.check_layer(ReLU(), x)
    assert report.ok, str(report)
    assert list(report.results) == ["x"]  # no parameters


@pytest.mark.host_only("ReLU has no parameters: no arrays")
def test_no_parameters_and_same_shape_out():
    layer = ReLU()
    layer.build((None, 7))
    assert layer.params == {} and layer.count_params() == 0
    assert layer.output_shape == (None, 7)
    assert layer.get_weights() == []


def test_called_as_a_function_it_takes_any_shape():
    relu = ReLU()
    assert host(relu(dev(np.full((2, 3), -1.0)))).tolist() == [[0, 0, 0]] * 2
    assert host(relu(dev(np.ones((4, 5))))).shape == (4, 5)  # no weights: its first shape does not bind it
