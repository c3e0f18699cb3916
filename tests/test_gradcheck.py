"""Tests for tinynet.gradcheck itself: it must pass right gradients and catch wrong ones."""
import numpy as np
import pytest

from conftest import dev, host
from tinynet import backend, gradcheck
from tinynet.gradcheck import GradcheckReport, check_layer, numerical_gradient
from tinynet.layers import Dense, Layer
from tinynet.losses import MeanSquaredError


class Square(Layer):
    """y = x**2, with a deliberately wrong backward: dy * x instead of 2 * dy * x."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, dy):
        return dy * self.x  # WRONG: the derivative of x**2 is 2x


class GoodSquare(Square):
    def backward(self, dy):
        return 2 * dy * self.x


class Scale(Layer):
    """y = x * w (one weight per feature); ``wrong_w`` makes dL/dw wrong, dL/dx stays right."""

    def __init__(self, wrong_w=False):
        super().__init__()
        self.wrong_w = wrong_w

    def build(self, input_shape):
        self.params["w"] = backend.to_device(np.linspace(0.5, 1.5, input_shape[-1]))
        super().build(input_shape)

    def forward(self, x):
        self.x = x
        return x * self.params["w"]

    def backward(self, dy):
        dw = backend.xp().sum(dy * self.x, axis=0)  # dL/dw = sum over the batch of dy * x
        self.grads["w"] = dw + 0.1 if self.wrong_w else dw
        return dy * self.params["w"]


X = np.random.default_rng(0).standard_normal((3, 4))


def test_catches_a_wrong_backward():
    report = check_layer(Square(), X)
    assert not report.ok
    assert not report.results["x"]["ok"]
    text = str(report)
    assert text.startswith("gradient check (FAILED")
    assert "x" in text and "FAIL" in text
    assert text.count("      at (") == 3  # the three worst entries, with their indices
    # the wrong analytic gradient is exactly half the true one (r x vs 2 r x)
    for index, analytic, numeric in report.results["x"]["worst"]:
        assert analytic == pytest.approx(numeric / 2, rel=1e-6)
        assert f"analytic {analytic:+.8e}  numeric {numeric:+.8e}" in text


def test_a_correct_custom_layer_passes():
    report = check_layer(GoodSquare(), X)
    assert report.ok, str(report)
    assert str(report).startswith("gradient check (passed")
    assert "at (" not in str(report)
    assert report.results["x"]["max_abs_error"] < 1e-7


def test_names_the_failing_parameter():
    report = check_layer(Scale(wrong_w=True), X)
    assert not report.ok
    assert report.results["x"]["ok"] and not report.results["w"]["ok"]
    lines = str(report).splitlines()
    failing = [line for line in lines if "FAIL " in line]
    assert len(failing) == 1 and failing[0].split()[0] == "w"
    assert report.results["w"]["max_abs_error"] == pytest.approx(0.1, rel=1e-5)
    assert check_layer(Scale(), X).ok


def test_does_not_modify_the_layer():
    layer = Dense(3, activation="relu")
    layer.build((None, 4))
    before = layer.get_weights()
    check_layer(layer, X)
    after = layer.get_weights()
    assert [w.dtype for w in after] == [np.float32, np.float32]  # not moved to float64
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert layer.grads == {}  # the copy was checked, not this one

    unbuilt = Dense(3)
    check_layer(unbuilt, X)
    assert not unbuilt.built and unbuilt.params == {}


def test_numerical_gradient_of_a_simple_function():
    xp = backend.xp()
    original = np.array([[1.0, -2.0], [0.5, 3.0]])
    a = dev(original, "float64")  # nudged in place on the device, as check_layer does
    grad = numerical_gradient(lambda: xp.sum(a**3 + xp.sin(a)), a)
    np.testing.assert_allclose(grad, 3 * original**2 + np.cos(original), rtol=1e-8)
    np.testing.assert_array_equal(host(a), original)  # every nudge undone


def test_numerical_gradient_is_exact_for_a_quadratic():
    original = np.array([2.0, -1.0, 0.0])
    a = dev(original, "float64")
    grad = numerical_gradient(lambda: float(a @ a), a, eps=1e-3)  # central differences: exact up to rounding
    np.testing.assert_allclose(grad, 2 * original, atol=1e-9)


@pytest.mark.host_only("the report compares NumPy arrays on the host")
def test_report_tolerances():
    report = GradcheckReport(rtol=1e-3, atol=0.0)
    report.add("close", np.array([1.0005, 2.0]), np.array([1.0, 2.0]))  # 5e-4 <= 1e-3 * 1
    report.add("far", np.array([1.002, 2.0]), np.array([1.0, 2.0]))  # 2e-3 > 1e-3 * 1
    assert report.results["close"]["ok"] and not report.results["far"]["ok"]
    assert not report.ok
    assert report.results["far"]["worst"][0][0] == (0,)


@pytest.mark.host_only("the report compares NumPy arrays on the host")
def test_report_shape_mismatch():
    with pytest.raises(ValueError, match=r"analytic gradient has shape \(3,\).*\(2,\)"):
        GradcheckReport(1e-5, 1e-8).add("kernel", np.zeros(3), np.zeros(2))


def test_check_loss_catches_a_wrong_loss_gradient():
    from tinynet.losses import CategoricalCrossentropy

    class HalfGradient(CategoricalCrossentropy):
        def backward(self):
            return super().backward() / 2

    y = np.eye(3)[[0, 2]]
    z = np.array([[0.2, -0.4, 1.0], [1.5, 0.0, -0.3]])
    assert gradcheck.check_loss(CategoricalCrossentropy(from_logits=True), y, z).ok
    assert not gradcheck.check_loss(HalfGradient(from_logits=True), y, z).ok


def test_check_model_catches_a_wrong_layer():
    from tinynet.models import Sequential
    from tinynet.utils import set_random_seed

    set_random_seed(0)
    model = Sequential([Dense(4, input_shape=(4,)), Scale(wrong_w=True), Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    report = gradcheck.check_model(model, X, np.eye(3)[[0, 1, 2]])
    assert not report.ok
    assert [name for name, r in report.results.items() if not r["ok"]] == ["scale.w"]
    assert model.layers[0].get_weights()[0].dtype == np.float32  # the model itself untouched


# --- mistakes: a clear error before any work ----------------------------------
def compiled_model():
    from tinynet.models import Sequential

    model = Sequential([Dense(4, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    return model


Y = np.eye(3)[[0, 1, 2]]


@pytest.mark.parametrize("layer, given", [("dense", "'dense'"), (Dense, "the class Dense: create one, Dense")])
def test_check_layer_expects_a_layer(layer, given):
    with pytest.raises(TypeError, match=rf"check_layer expects a layer, such as Dense\(3\), got {given}"):
        check_layer(layer, X)


def test_check_loss_and_check_model_expect_theirs():
    with pytest.raises(TypeError, match=r"check_loss expects a loss, .* got 'mse'"):
        gradcheck.check_loss("mse", Y, Y)
    with pytest.raises(TypeError, match=r"check_model expects a compiled model, .* got 'model'"):
        gradcheck.check_model("model", X[:3], Y)


@pytest.mark.parametrize("argument, value, error, expected", [
    ("eps", 0, ValueError, "a number above 0"), ("eps", -1e-6, ValueError, "a number above 0"),
    ("eps", "1e-6", TypeError, "a number above 0"), ("eps", float("inf"), ValueError, "a number above 0"),
    ("rtol", -1e-5, ValueError, "a number of at least 0"), ("atol", float("nan"), ValueError, "a number of at least 0"),
    ("seed", -1, ValueError, "an integer of at least 0")])
def test_bad_tolerances(argument, value, error, expected):
    with pytest.raises(error, match=rf"{argument} must be {expected}"):
        check_layer(Dense(3), X, **{argument: value})
    if argument != "seed":
        with pytest.raises(error, match=rf"{argument} must be {expected}"):
            gradcheck.check_loss(MeanSquaredError(), Y, Y, **{argument: value})
        with pytest.raises(error, match=rf"{argument} must be {expected}"):
            gradcheck.check_model(compiled_model(), X[:3], Y, **{argument: value})


def test_check_model_on_an_uncompiled_model():
    from tinynet.models import Sequential

    with pytest.raises(RuntimeError, match=r"Call model\.compile\(loss=\.\.\., \.\.\.\) before check_model"):
        gradcheck.check_model(Sequential([Dense(3, input_shape=(4,))]), X[:3], Y)


def with_nan(a, row):
    a = np.array(a, "float64")
    a[row, 0] = np.nan
    return a


def test_empty_or_non_finite_data_in_check_layer_and_check_loss():
    with pytest.raises(ValueError, match=r"check_layer: x has no entries \(shape \(0, 4\)\)"):
        check_layer(Dense(3), X[:0])
    with pytest.raises(ValueError, match=r"check_layer: x\[1\] holds NaN or infinity"):
        check_layer(Dense(3), with_nan(X, 1))
    with pytest.raises(ValueError, match=r"check_layer: x must be an array of samples, one per row"):
        check_layer(Dense(3), 2.0)
    with pytest.raises(TypeError, match=r"check_layer: x: expected numbers, got an array of dtype <U1"):
        check_layer(Dense(3), [["a", "b"]])
    with pytest.raises(ValueError, match=r"check_loss: y_true has no entries"):
        gradcheck.check_loss(MeanSquaredError(), Y[:0], Y[:0])
    with pytest.raises(ValueError, match=r"check_loss: y_pred\[2\] holds NaN or infinity"):
        y_pred = dev([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.3, np.inf, 0.4]], "float64")  # on the device
        gradcheck.check_loss(MeanSquaredError(), Y, y_pred)


def test_empty_or_non_finite_data_in_check_model():
    with pytest.raises(ValueError, match=r"check_model: there are no samples \(x has shape \(0, 4\)\)"):
        gradcheck.check_model(compiled_model(), X[:0], Y[:0])
    with pytest.raises(ValueError, match=r"check_model: x\[0\] holds NaN or infinity"):
        gradcheck.check_model(compiled_model(), with_nan(X[:3], 0), Y)
    with pytest.raises(ValueError, match=r"check_model: y\[2\] holds NaN or infinity"):
        gradcheck.check_model(compiled_model(), X[:3], with_nan(Y, 2))


def test_check_layer_refuses_x_of_another_width():
    with pytest.raises(ValueError, match=r"the layer takes inputs of shape \(None, 5\), but x has shape \(3, 4\): "
                                         r"pass an x of shape \(3, 5\)"):
        check_layer(Dense(3, input_shape=(5,)), X)


def test_integer_x_is_checked_in_float64():
    x = np.arange(8).reshape(2, 4)
    report = check_layer(Dense(3, activation="relu"), x / 8 + 0.1)
    assert report.ok, str(report)
    report = check_layer(Dense(3), x)  # cast to float64: the check still passes
    assert report.ok, str(report)
    assert report.results["x"]["max_abs_error"] < 1e-6


def test_check_model_passes_a_correct_model():
    report = gradcheck.check_model(compiled_model(), X[:3], Y)
    assert report.ok, str(report)
    assert list(report.results) == ["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"]


def test_check_model_keeps_one_dropout_mask_through_the_check():
    from tinynet.gradcheck import check_model
    from tinynet.layers import Dropout
    from tinynet.models import Sequential
    from tinynet.utils import set_random_seed
    set_random_seed(0)
    model = Sequential([Dense(5, input_shape=(4,)), Dropout(0.5), Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 4)), np.eye(3)[rng.integers(0, 3, 6)]
    report = check_model(model, x, y)
    assert report.ok, str(report)


@pytest.mark.host_only("an error before any array")
def test_check_layer_with_its_arguments_swapped_says_the_order():
    with pytest.raises(TypeError, match=r"got an array of shape \(3, 4\); the order is check_layer\(layer, \.\.\.\)"):
        check_layer(np.ones((3, 4)), Dense(3))
