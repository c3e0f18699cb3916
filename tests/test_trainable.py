"""``layer.trainable = False`` freezes a layer, as in Keras: fit leaves its weights bit-identical."""
import numpy as np
import pytest

from tinynet.layers import Dense
from tinynet.models import Sequential
from tinynet.utils import set_random_seed



def model_and_data():
    set_random_seed(0)
    model = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype="float32"), np.eye(3)[rng.integers(0, 3, 32)]
    return model, x, y


def test_a_frozen_layer_stays_bit_identical_through_fit():
    model, x, y = model_and_data()
    model.layers[0].trainable = False
    model.compile(loss="categorical_crossentropy")
    frozen, other = model.layers[0].get_weights(), model.layers[1].get_weights()
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    for before, after in zip(frozen, model.layers[0].get_weights()):
        np.testing.assert_array_equal(after, before)
    assert not np.array_equal(model.layers[1].get_weights()[0], other[0])  # the rest trains
    assert model.optimizer.count_params() == 2 + 8 * 3 + 3  # state for the trainable weights only, as in Keras


def test_freezing_after_training_began_asks_to_compile_again():
    model, x, y = model_and_data()
    model.compile(loss="categorical_crossentropy")
    model.fit(x, y, verbose=0)
    model.layers[0].trainable = False
    with pytest.raises(ValueError, match=r"a layer's trainable was changed.*compile again after such a change"):
        model.fit(x, y, verbose=0)
    model.compile(loss="categorical_crossentropy")  # as Keras asks: a new optimizer, for the trainable weights
    frozen = model.layers[0].get_weights()
    model.fit(x, y, verbose=0)
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], frozen[0])


def test_set_weights_still_sets_a_frozen_layer():
    model, _, _ = model_and_data()
    model.layers[0].trainable = False
    weights = [np.full_like(w, 0.5) for w in model.get_weights()]
    model.set_weights(weights)  # frozen means fit leaves it alone, not that it cannot be set
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], weights[0])


def test_a_trainable_that_is_not_a_flag_is_named_before_training():
    model, x, y = model_and_data()
    model.compile(loss="categorical_crossentropy")
    model.layers[1].trainable = "no"
    with pytest.raises(TypeError, match=r"model.layers\[1\].trainable must be True or False, got 'no'"):
        model.fit(x, y, verbose=0)
    with pytest.raises(TypeError, match="trainable must be True or False"):
        Dense(3, trainable=0)
    assert Dense(3, trainable=np.False_).trainable is False


@pytest.mark.parametrize("name, value, error", [("nesterov", "no", TypeError), ("momentum", 5.0, ValueError),
                                                ("learning_rate", "fast", TypeError)])
def test_optimizer_settings_changed_after_compile_are_checked_before_fit(name, value, error):
    from tinynet.optimizers import SGD
    model, x, y = model_and_data()
    model.compile(optimizer=SGD(momentum=0.9), loss="categorical_crossentropy")
    before = model.get_weights()
    try:
        setattr(model.optimizer, name, value)
    except error:  # learning_rate is a checked property: refused at once
        return
    with pytest.raises(error, match=rf"^model.optimizer \(SGD\): {name} must be"):
        model.fit(x, y, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
