"""Tests for tinynet.kernels: the compiled RMSprop update equals the reference, bit for bit."""
import numpy as np
import pytest

from tinynet import backend, kernels
from tinynet.optimizers import RMSprop


def run(optimizer_class, w0, grads):
    w = backend.to_device(w0, dtype=w0.dtype.name)
    optimizer = optimizer_class(learning_rate=0.01, rho=0.8, epsilon=1e-6)
    for g in grads:
        optimizer.apply([backend.to_device(g, dtype=g.dtype.name)], [w])
    return backend.to_numpy(w), backend.to_numpy(optimizer.slots[0])


class ReferenceRMSprop(RMSprop):
    def step_function(self):
        return self.update_step  # the array-operation formula, never the compiled kernel


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_update_is_bit_identical_to_the_reference(dtype, backend_name):
    if kernels.rmsprop() is None:
        pytest.skip(f"the {backend_name} backend has no compiled kernel: RMSprop runs the reference there")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((64, 33)).astype(dtype)
    # gradients over 40 orders of magnitude, then zeros so that v decays to the flush threshold
    grads = [(rng.standard_normal((64, 33)) * 10.0 ** rng.integers(-25, 3, (64, 33))).astype(dtype) for _ in range(20)]
    grads += [np.zeros((64, 33), dtype)] * 300
    w_fused, v_fused = run(RMSprop, w0, grads)
    w_ref, v_ref = run(ReferenceRMSprop, w0, grads)
    np.testing.assert_array_equal(w_fused, w_ref)
    np.testing.assert_array_equal(v_fused, v_ref)


def test_strict_backend_has_no_kernel(backend_name):
    assert (kernels.rmsprop() is None) == (backend_name == "strict")


def test_v_is_flushed_to_zero_instead_of_becoming_subnormal():
    w0 = np.ones(3, "float32")
    grads = [np.array([1.0, 1e-3, 0.0], "float32")] + [np.zeros(3, "float32")] * 1000
    _, v = run(RMSprop, w0, grads)
    # v = 0.2 g**2 at first, then shrinks by rho = 0.8 per step: 0.8**1000 ~ 1e-97, far below 1.2e-38
    assert np.all(v == 0)
    _, v = run(RMSprop, w0, grads[:300])
    tiny = np.finfo(np.float32).tiny
    assert np.all((v == 0) | (v >= tiny))  # never subnormal
    assert v[0] > 0  # 0.2 * 0.8**299 ~ 1.6e-30 is still normal: kept


def test_a_nan_gradient_leaves_nan_in_v_as_keras_does():
    w0 = np.ones(2, "float32")
    grads = [np.array([np.nan, 1.0], "float32")]
    for optimizer_class in (RMSprop, ReferenceRMSprop):
        w, v = run(optimizer_class, w0, grads)
        assert np.isnan(v[0]) and np.isnan(w[0])  # the flush never turns NaN into 0
        assert v[1] == np.float32(0.2)  # (1 - rho) * g**2 with rho = 0.8
