"""Tests for tinynet.optimizers.SGD, step by step, against Keras's formulas.

    momentum = 0:    w = w - lr * g
    momentum > 0:    v = momentum * v - lr * g;  w = w + v
    nesterov=True:   v = momentum * v - lr * g;  w = w + momentum * v - lr * g

Parameters and gradients go to the backend with ``to_device`` and come back
with ``to_numpy``, so the tests also hold on a non-NumPy backend.
"""
import numpy as np
import pytest

from tinynet import backend, optimizers
from tinynet.optimizers import SGD, Optimizer

f32 = np.float32


def dev(values):
    return backend.to_device(np.asarray(values))


def host(array):
    return backend.to_numpy(array)


def run(opt, w0, grads):
    """Apply ``grads`` one by one to a copy of ``w0`` on the backend; returns w after each step (NumPy)."""
    w, seen = dev(np.array(w0)), []  # a copy: on NumPy to_device may hand back w0 itself
    for g in grads:
        opt.apply([dev(g)], [w])
        seen.append(host(w))
    return seen


def keras_steps(w, grads, lr, momentum, nesterov):
    """Keras's update_step, written out in float32 in Keras's order of operations."""
    w, v, seen = np.array(w, "float32"), np.zeros(np.shape(w), "float32"), []
    lr, momentum = f32(lr), f32(momentum)
    for g in grads:
        g = np.asarray(g, "float32")
        if momentum == 0:
            w = w - g * lr
        else:
            v = v * momentum - g * lr
            w = w + (v * momentum - g * lr if nesterov else v)
        seen.append(w)
    return seen, v


def test_defaults_are_keras_defaults():
    opt = SGD()
    assert (opt.learning_rate, opt.momentum, opt.nesterov) == (0.01, 0.0, False)
    assert opt.iterations == 0 and opt.slots is None
    assert isinstance(opt, Optimizer)


def test_plain_steps_by_hand():
    steps = run(SGD(learning_rate=0.1), [1.0, -2.0], [[0.5, -1.0], [2.0, 0.0]])
    np.testing.assert_allclose(steps[0], [1.0 - 0.05, -2.0 + 0.1], rtol=1e-7)  # w - 0.1 g
    np.testing.assert_allclose(steps[1], [0.95 - 0.2, -1.9], rtol=1e-7)


def test_plain_sgd_keeps_no_state():
    opt = SGD()
    w = dev([[1.0, 2.0], [3.0, 4.0]])
    opt.apply([dev(np.ones((2, 2)))], [w])
    assert opt.slots == [None]
    assert opt.count_params() == 2  # only the iteration counter and the learning rate, as in Keras
    np.testing.assert_allclose(host(w), [[0.99, 1.99], [2.99, 3.99]], rtol=1e-7)


def test_momentum_steps_by_hand():
    # lr = 0.1, momentum = 0.9, gradient 1 every step, w from 0:
    #   v1 = -0.1,               w1 = -0.1
    #   v2 = 0.9 * -0.1 - 0.1 = -0.19,   w2 = -0.29
    #   v3 = 0.9 * -0.19 - 0.1 = -0.271, w3 = -0.561
    opt = SGD(learning_rate=0.1, momentum=0.9)
    steps = run(opt, [0.0], [[1.0]] * 3)
    np.testing.assert_allclose(np.concatenate(steps), [-0.1, -0.29, -0.561], rtol=1e-6)
    np.testing.assert_allclose(host(opt.slots[0]), [-0.271], rtol=1e-6)


def test_nesterov_steps_by_hand():
    # The same run with nesterov=True: w moves by momentum * v - lr * g
    #   v1 = -0.1,   w1 = 0.9 * -0.1 - 0.1 = -0.19
    #   v2 = -0.19,  w2 = -0.19 + 0.9 * -0.19 - 0.1 = -0.461
    #   v3 = -0.271, w3 = -0.461 + 0.9 * -0.271 - 0.1 = -0.8049
    opt = SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    steps = run(opt, [0.0], [[1.0]] * 3)
    np.testing.assert_allclose(np.concatenate(steps), [-0.19, -0.461, -0.8049], rtol=1e-6)
    np.testing.assert_allclose(host(opt.slots[0]), [-0.271], rtol=1e-6)


def test_momentum_cancels_a_gradient_that_flips():
    # g = +1, -1: v1 = -0.1, v2 = 0.5 * -0.1 + 0.1 = 0.05: the second step is half as long, backwards
    steps = run(SGD(learning_rate=0.1, momentum=0.5), [0.0], [[1.0], [-1.0]])
    np.testing.assert_allclose(np.concatenate(steps), [-0.1, -0.05], rtol=1e-6)


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True), (0.3, True)])
def test_many_steps_exact_in_float32(momentum, nesterov):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 2)).astype("float32")
    grads = [rng.standard_normal((3, 2)).astype("float32") for _ in range(5)]
    opt = SGD(learning_rate=0.05, momentum=momentum, nesterov=nesterov)
    steps = run(opt, w0, grads)
    expected, v = keras_steps(w0, grads, 0.05, momentum, nesterov)
    for got, want in zip(steps, expected):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    if momentum:
        np.testing.assert_array_equal(host(opt.slots[0]), v)


def test_several_parameters_each_with_its_own_velocity():
    kernel, bias = dev(np.ones((2, 2))), dev(np.zeros(2))
    opt = SGD(learning_rate=0.5, momentum=0.9)
    opt.apply([dev(np.full((2, 2), 2.0)), dev([1.0, -3.0])], [kernel, bias])
    assert [host(s).shape for s in opt.slots] == [(2, 2), (2,)]
    np.testing.assert_allclose(host(opt.slots[0]), -1.0)  # v = -0.5 * 2
    np.testing.assert_allclose(host(opt.slots[1]), [-0.5, 1.5])
    np.testing.assert_allclose(host(kernel), 0.0)
    np.testing.assert_allclose(host(bias), [-0.5, 1.5])
    assert opt.count_params() == 4 + 2 + 2  # one velocity per weight, plus iterations and learning rate


def test_velocity_is_updated_in_place_and_iterations_count():
    opt = SGD(momentum=0.9)
    w = dev([1.0])
    opt.apply([dev([1.0])], [w])
    slot = opt.slots[0]
    opt.apply([dev([1.0])], [w])
    assert opt.slots[0] is slot and opt.iterations == 2
    np.testing.assert_allclose(host(slot), [-0.019], rtol=1e-6)  # 0.9 * -0.01 - 0.01


def test_zero_gradient_with_no_velocity_does_not_move_the_weights():
    w = dev([0.25, -4.0])
    SGD(momentum=0.9, nesterov=True).apply([dev([0.0, 0.0])], [w])
    np.testing.assert_array_equal(host(w), [0.25, -4.0])


@pytest.mark.parametrize("momentum, error", [(-0.1, ValueError), (1.5, ValueError), ("0.9", TypeError),
                                             (float("nan"), ValueError)])
def test_momentum_must_be_between_0_and_1(momentum, error):
    with pytest.raises(error, match=r"momentum must be a number in \[0, 1\]"):
        SGD(momentum=momentum)


def test_nesterov_must_be_a_bool():
    with pytest.raises(TypeError, match="nesterov must be True or False, got 'yes'"):
        SGD(momentum=0.9, nesterov="yes")


def test_get_by_name_and_object():
    opt = optimizers.get("sgd")
    assert type(opt) is SGD and (opt.learning_rate, opt.momentum, opt.nesterov) == (0.01, 0.0, False)
    assert optimizers.get("sgd") is not opt  # a fresh optimizer each time
    mine = SGD(learning_rate=0.1, momentum=0.9)
    assert optimizers.get(mine) is mine


def test_unknown_name_lists_sgd():
    with pytest.raises(ValueError) as info:
        optimizers.get("adagrad")
    assert "'adagrad'" in str(info.value) and "sgd" in str(info.value) and "rmsprop" in str(info.value)
