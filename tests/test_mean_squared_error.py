"""Tests for tinynet.losses.MeanSquaredError: L = sum((y_hat - y)**2) / (N * D).

Inputs go to the backend with ``to_device`` and results come back with
``to_numpy``, so the tests also hold on a non-NumPy backend.
"""
import numpy as np
import pytest

from tinynet import backend, gradcheck, losses
from tinynet.layers import Dense
from tinynet.losses import MeanSquaredError, mean_squared_error
from tinynet.models import Sequential
from tinynet.optimizers import SGD


def dev(values, dtype="float32"):
    return backend.to_device(np.asarray(values), dtype=dtype)


def value(array):
    return float(backend.to_numpy(array))


def test_keras_docstring_example():
    # keras.losses.MeanSquaredError()([[0., 1.], [0., 0.]], [[1., 1.], [1., 0.]]) -> 0.5
    loss = MeanSquaredError()(dev([[0.0, 1.0], [0.0, 0.0]]), dev([[1.0, 1.0], [1.0, 0.0]]))
    assert loss.shape == () and backend.to_numpy(loss).dtype == np.float32
    assert value(loss) == 0.5


def test_mean_over_outputs_then_over_the_batch_by_hand():
    y = dev([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y_hat = dev([[1.0, 4.0, 0.0], [1.0, -1.0, 2.0]])
    # sample 1: (0 + 4 + 9) / 3 = 13/3;  sample 2: (1 + 1 + 4) / 3 = 2;  mean: (13/3 + 2) / 2 = 19/6
    assert value(mean_squared_error(y, y_hat)) == pytest.approx(19 / 6, rel=1e-6)


def test_the_notebooks_starting_line():
    # y_hat = -2 x + 40 on the notebook's ten points: sum((y - y_hat)**2) / 10 = 4755 / 10
    x = np.arange(10.0)
    y = np.array([10, 20, 25, 30, 40, 45, 40, 50, 60, 55.0])
    loss = mean_squared_error(dev(y[:, None]), dev((-2 * x + 40)[:, None]))
    assert value(loss) == 475.5


def test_gradient_by_hand():
    loss = MeanSquaredError()
    loss(dev([[1.0, 2.0], [3.0, 4.0]]), dev([[2.0, 2.0], [0.0, 5.0]]))
    # dL/dy_hat = 2 (y_hat - y) / (N D) = 2 * [[1, 0], [-3, 1]] / 4
    np.testing.assert_array_equal(backend.to_numpy(loss.backward()), [[0.5, 0.0], [-1.5, 0.5]])


def test_perfect_predictions_cost_nothing_and_push_nowhere():
    loss = MeanSquaredError()
    y = dev([[0.25, -3.0, 7.5]])
    assert value(loss(y, y)) == 0.0
    np.testing.assert_array_equal(backend.to_numpy(loss.backward()), 0.0)


@pytest.mark.parametrize("shape", [(5, 1), (4, 3), (2, 3, 4)])
def test_gradcheck(shape):
    rng = np.random.default_rng(sum(shape))
    y, y_hat = rng.standard_normal(shape), rng.standard_normal(shape)
    report = gradcheck.check_loss(MeanSquaredError(), y, y_hat)
    assert report.ok, str(report)


def test_gradcheck_with_flat_targets():
    rng = np.random.default_rng(7)
    report = gradcheck.check_loss(MeanSquaredError(), rng.standard_normal(6), rng.standard_normal((6, 1)))
    assert report.ok, str(report)


def test_flat_targets_are_one_column_as_in_keras():
    loss = MeanSquaredError()
    y_hat = dev([[1.0], [2.0], [4.0]])
    flat = value(loss(dev([1.0, 1.0, 1.0]), y_hat))
    grad = backend.to_numpy(loss.backward())
    assert flat == value(loss(dev([[1.0], [1.0], [1.0]]), y_hat)) == pytest.approx((0 + 1 + 9) / 3)
    assert grad.shape == (3, 1)  # shaped like the predictions, not like (3, 3)
    np.testing.assert_allclose(grad, [[0.0], [2 / 3], [2.0]], rtol=1e-6)


def test_float64_stays_float64():
    loss = MeanSquaredError()(dev([[0.1]], "float64"), dev([[0.4]], "float64"))
    assert backend.to_numpy(loss).dtype == np.float64
    assert value(loss) == pytest.approx(0.09, rel=1e-14)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match=r"mean_squared_error.*\(3, 2\).*\(3, 1\)"):
        MeanSquaredError()(dev(np.zeros((3, 2))), dev(np.zeros((3, 1))))
    with pytest.raises(ValueError, match=r"\(3,\).*\(3, 2\)"):  # flat targets only for one output
        MeanSquaredError()(dev(np.zeros(3)), dev(np.zeros((3, 2))))


@pytest.mark.parametrize("name", ["mse", "mean_squared_error"])
def test_get_by_keras_name(name):
    assert type(losses.get(name)) is MeanSquaredError
    assert losses.get(name) is not losses.get(name)  # a fresh loss each time


def test_compile_with_names_trains_a_line_by_hand_computed_steps():
    # One Dense(1) unit is y_hat = w x + b. With mse, dL/dw = 2/N sum((y_hat - y) x), dL/db = 2/N sum(y_hat - y).
    x = np.array([[0.0], [1.0], [2.0], [3.0]], "float32")
    y = np.array([1.0, 3.0, 5.0, 7.0], "float32")  # y = 2x + 1, given flat as Keras allows
    model = Sequential([Dense(1, input_shape=(1,))])
    model.compile(optimizer="sgd", loss="mse")
    assert type(model.optimizer) is SGD and type(model.loss) is MeanSquaredError
    model.set_weights([np.zeros((1, 1), "float32"), np.zeros(1, "float32")])
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    # step 1 from w = b = 0: loss = (1 + 9 + 25 + 49) / 4 = 21; dL/dw = -2/4 (0 + 3 + 10 + 21) = -17, dL/db = -8
    #   w = 0 + 0.01 * 17 = 0.17, b = 0 + 0.01 * 8 = 0.08
    # step 2: y_hat = 0.17 x + 0.08; errors y_hat - y = [-0.92, -2.75, -4.58, -6.41]
    #   loss = (0.8464 + 7.5625 + 20.9764 + 41.0881) / 4 = 17.61835
    #   dL/dw = 2/4 (0 - 2.75 - 9.16 - 19.23) = -15.57;  dL/db = 2/4 (-14.66) = -7.33
    assert history.history["loss"] == pytest.approx([21.0, 17.61835], rel=1e-6)
    kernel, bias = model.get_weights()
    assert float(kernel[0, 0]) == pytest.approx(0.17 + 0.1557, rel=1e-6)
    assert float(bias[0]) == pytest.approx(0.08 + 0.0733, rel=1e-6)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(
        np.mean((y - ((0.17 + 0.1557) * x[:, 0] + 0.08 + 0.0733)) ** 2), rel=1e-5)


def test_gradcheck_a_model_with_mse():
    rng = np.random.default_rng(3)
    model = Sequential([Dense(4, activation="relu", input_shape=(3,)), Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    report = gradcheck.check_model(model, rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))
    assert report.ok, str(report)
