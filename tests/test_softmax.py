"""Tests for tinynet.layers.Softmax: y_i = exp(z_i) / sum_j exp(z_j), row by row."""
import numpy as np

from conftest import dev, host
from tinynet import backend, gradcheck
from tinynet.layers import Softmax


def test_known_values():
    y = Softmax().forward(dev([[0.0, 0.0], [0.0, np.log(3.0)], [1.0, 2.0]], "float64"))  # float64: rtol 1e-12
    e = np.exp(1.0)
    np.testing.assert_allclose(host(y), [[0.5, 0.5], [0.25, 0.75], [1 / (1 + e), e / (1 + e)]], rtol=1e-12)


def test_rows_sum_to_one():
    z = np.random.default_rng(0).standard_normal((8, 10)).astype("float32") * 5
    y = Softmax().forward(dev(z))
    assert y.dtype == backend.as_dtype("float32") and y.shape == (8, 10)
    y = host(y)
    assert (y > 0).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(y.argmax(axis=1), z.argmax(axis=1))


def test_stable_for_huge_inputs():
    z = dev([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0], [-1000.0, -1000.0, -999.0]])
    with np.errstate(over="raise", invalid="raise"):  # no overflow, no nan (exp(-2000) may underflow to 0)
        y = host(Softmax().forward(z))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)
    e = np.exp(1.0)
    np.testing.assert_allclose(y[2], [1 / (2 + e), 1 / (2 + e), e / (2 + e)], rtol=1e-6)


def test_invariant_to_adding_a_constant():
    z = dev(np.random.default_rng(1).standard_normal((3, 4)), "float64")  # float64: rtol 1e-12
    np.testing.assert_allclose(host(Softmax().forward(z + 50.0)), host(Softmax().forward(z)), rtol=1e-12)


def test_gradcheck():
    x = np.random.default_rng(2).standard_normal((4, 5)) * 2
    report = gradcheck.check_layer(Softmax(), x)
    assert report.ok, str(report)


def test_backward_against_the_jacobian():
    z = [[0.3, -1.2, 2.0]]
    layer = Softmax()
    y = host(layer.forward(dev(z, "float64")))[0]  # float64: rtol 1e-12
    dy = np.array([[1.0, -2.0, 0.5]])
    jacobian = np.diag(y) - np.outer(y, y)  # dy_i/dz_k = y_i (delta_ik - y_k)
    np.testing.assert_allclose(host(layer.backward(dev(dy, "float64")))[0], jacobian.T @ dy[0], rtol=1e-12)
