"""Tests for tinynet.losses.CategoricalCrossentropy: L = -mean_n sum_i y_ni log p_ni."""
import numpy as np
import pytest

from conftest import dev, host
from tinynet import backend, gradcheck, losses
from tinynet.losses import CategoricalCrossentropy, categorical_crossentropy
from tinynet.layers import Softmax

# The example of Keras's categorical_crossentropy docstring.
Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype="float32")
P = np.array([[0.9, 0.05, 0.05], [0.05, 0.89, 0.06], [0.05, 0.01, 0.94]], dtype="float32")
PER_SAMPLE = [0.10536, 0.11653, 0.06188]  # -log 0.9, -log 0.89, -log 0.94


def test_keras_docstring_example_per_sample():
    for n in range(3):
        loss = categorical_crossentropy(dev(Y[n:n + 1]), dev(P[n:n + 1]))
        assert float(loss) == pytest.approx(PER_SAMPLE[n], abs=1e-5)


def test_keras_docstring_example_mean():
    loss = CategoricalCrossentropy()(dev(Y), dev(P))
    assert loss.shape == () and loss.dtype == backend.as_dtype("float32")  # a 0-d array on the device
    assert float(loss) == pytest.approx(np.mean(PER_SAMPLE), abs=1e-5)
    assert float(loss) == pytest.approx(-np.log([0.9, 0.89, 0.94]).mean(), rel=1e-6)


def test_keras_class_docstring_example():
    # keras.losses.CategoricalCrossentropy()([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]) -> 1.177
    y = dev([[0, 1, 0], [0, 0, 1]])
    p = dev([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    assert float(CategoricalCrossentropy()(y, p)) == pytest.approx(1.1769392, abs=1e-6)


def test_zero_probability_for_the_true_class_is_clipped_to_1e_7():
    loss = CategoricalCrossentropy()
    value = float(loss(dev([[1.0, 0.0, 0.0]]), dev([[0.0, 1.0, 0.0]])))
    assert value == pytest.approx(-np.log(np.float32(1e-7)), rel=1e-6)
    assert value == pytest.approx(16.118, abs=1e-3)
    np.testing.assert_array_equal(host(loss.backward()), 0.0)  # the clip is flat: no gradient


def test_probability_one_is_clipped_to_1_minus_1e_7():
    y, p = dev([[0.0, 1.0]]), dev([[0.0, 1.0]])
    value = CategoricalCrossentropy()(y, p)
    one, eps = np.float32(1.0), np.float32(1e-7)
    expected = -np.log(np.clip(one, eps, one - eps))  # 1 - 1e-7 is 0.99999988 in float32
    assert value.dtype == backend.as_dtype("float32")
    assert float(value) == float(expected)
    assert float(value) == pytest.approx(1.19e-7, rel=1e-2)


def test_unnormalised_rows_are_renormalised():
    loss = CategoricalCrossentropy()
    np.testing.assert_allclose(float(loss(dev(Y), dev(P * 7.5))), float(loss(dev(Y), dev(P))), rtol=1e-6)
    p = dev([[2.0, 1.0, 1.0]])  # renormalised: [0.5, 0.25, 0.25]
    assert float(loss(dev(Y[:1]), p)) == pytest.approx(np.log(2.0), rel=1e-6)


def test_soft_labels():
    y = dev([[0.25, 0.75]])
    p = dev([[0.5, 0.5]])
    assert float(CategoricalCrossentropy()(y, p)) == pytest.approx(np.log(2.0), rel=1e-6)


def test_from_logits_matches_probabilities():
    z = dev(np.random.default_rng(0).standard_normal((6, 4)), "float64")  # float64: compared to 1e-10
    y = dev(np.eye(4)[[0, 1, 2, 3, 0, 1]], "float64")
    p = Softmax().forward(z)
    assert float(backend.xp().min(p)) > 1e-3  # away from the clip
    from_logits = CategoricalCrossentropy(from_logits=True)(y, z)
    from_probs = CategoricalCrossentropy()(y, p)
    assert float(from_logits) == pytest.approx(float(from_probs), rel=1e-10)


def test_from_logits_is_stable_for_huge_logits():
    z = dev([[1000.0, 0.0, -1000.0]])
    y = np.array([[0.0, 0.0, 1.0]])
    assert float(CategoricalCrossentropy(from_logits=True)(dev(y), z)) == pytest.approx(2000.0)  # no clip, no inf
    assert float(CategoricalCrossentropy(from_logits=True)(dev(y[:, ::-1]), z)) == pytest.approx(0.0, abs=1e-6)


def test_gradcheck_probabilities():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 1.0, (5, 4))
    p /= p.sum(axis=1, keepdims=True)
    y = np.eye(4)[rng.integers(0, 4, 5)]
    report = gradcheck.check_loss(CategoricalCrossentropy(), y, p)
    assert report.ok, str(report)


def test_gradcheck_unnormalised_probabilities():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.1, 2.0, (5, 4))  # rows sum to anything: the renormalisation has a gradient too
    y = np.eye(4)[rng.integers(0, 4, 5)]
    report = gradcheck.check_loss(CategoricalCrossentropy(), y, p)
    assert report.ok, str(report)


def test_gradcheck_logits():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 4)) * 3
    y = np.eye(4)[rng.integers(0, 4, 5)]
    report = gradcheck.check_loss(CategoricalCrossentropy(from_logits=True), y, z)
    assert report.ok, str(report)


def test_logits_gradient_is_softmax_minus_y_over_n():
    z = dev([[0.0, np.log(3.0)], [0.0, 0.0]], "float64")  # float64: compared to 1e-12
    y = dev([[1.0, 0.0], [0.0, 1.0]], "float64")
    loss = CategoricalCrossentropy(from_logits=True)
    loss(y, z)
    np.testing.assert_allclose(host(loss.backward()), [[(0.25 - 1) / 2, 0.75 / 2], [0.5 / 2, (0.5 - 1) / 2]],
                               rtol=1e-12)


@pytest.mark.parametrize("labels", [np.array([0, 1, 2]), np.array([[0], [1], [2]])])
def test_integer_labels_point_to_to_categorical(labels):
    with pytest.raises(ValueError, match="to_categorical") as info:
        CategoricalCrossentropy()(dev(labels, "int64"), dev(P))
    assert "to_categorical(y, 3)" in str(info.value)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 3\)"):
        CategoricalCrossentropy()(dev(np.zeros((3, 4))), dev(P))


@pytest.mark.host_only("names to objects: no arrays")
def test_get_by_name_and_object():
    assert type(losses.get("categorical_crossentropy")) is CategoricalCrossentropy
    loss = CategoricalCrossentropy(from_logits=True)
    assert losses.get(loss) is loss
    assert type(losses.get(CategoricalCrossentropy)) is CategoricalCrossentropy
    # tinynet's own functions, as Keras takes keras.losses.categorical_crossentropy: their classes
    assert type(losses.get(losses.categorical_crossentropy)) is CategoricalCrossentropy
    assert type(losses.get(losses.mean_squared_error)) is losses.MeanSquaredError
    assert not losses.get(losses.categorical_crossentropy).from_logits


@pytest.mark.host_only("an error message: no arrays")
def test_a_function_of_ones_own_is_told_to_become_a_loss_class():
    def my_loss(y_true, y_pred):
        return ((y_true - y_pred) ** 2).mean()

    with pytest.raises(ValueError, match=r"^The loss 'my_loss' is a function; tinynet needs its gradient too\. Write "
                                         r"a subclass of tinynet.losses.Loss with forward\(y_true, y_pred\) and "
                                         r"backward\(\).*categorical_crossentropy, mean_squared_error, mse\.$"):
        losses.get(my_loss)


def test_compile_takes_tinynets_loss_function():
    from tinynet.layers import Dense
    from tinynet.models import Sequential

    model = Sequential([Dense(2, activation="softmax", input_shape=(3,))])
    model.compile(loss=losses.categorical_crossentropy)
    assert type(model.loss) is CategoricalCrossentropy
    assert np.isfinite(model.train_on_batch(np.eye(3)[:2], np.eye(2)))


@pytest.mark.host_only("an error message: no arrays")
def test_unknown_loss_lists_known_ones():
    with pytest.raises(ValueError) as info:
        losses.get("huber")
    assert "'huber'" in str(info.value) and "categorical_crossentropy" in str(info.value)


@pytest.mark.host_only("a shape check: no arrays")
@pytest.mark.parametrize("loss", [CategoricalCrossentropy(), losses.MeanSquaredError()])
def test_targets_one_hot_encoded_twice_are_named(loss):
    with pytest.raises(ValueError, match=r"got targets of shape \(4, 3, 2\).* The targets look one-hot encoded twice: "
                                         r"to_categorical on rows that were one-hot already gives \(N, 3, 2\)\. Apply "
                                         r"it once, to the integer labels\.$"):
        loss.check_shapes((4, 3, 2), (4, 3))
