"""Flush to zero in the training step, as TensorFlow's CPU mode has it (tinynet/optimizers/rmsprop.py says why):
a confident model's step, whose exact numbers would include subnormal floats, computes none in g**2, v, p or dz."""
import numpy as np
import pytest

from conftest import host
from tinynet import backend
from tinynet.kernels import rmsprop as kernel
from tinynet.layers import Dense
from tinynet.losses import SoftmaxCrossentropy
from tinynet.models import Sequential
from tinynet.optimizers import rmsprop

TINY = np.finfo(np.float32).smallest_normal  # 1.2e-38: below it (and above 0), a float32 is subnormal
N = 4


def subnormals(a):
    a = np.asarray(a, dtype=np.float64)
    return int(np.count_nonzero((a != 0) & (np.abs(a) < TINY)))


def confident_model():
    """One softmax layer whose logits for the (one-hot) inputs rule out class 1 by 20 (nothing small), class 2
    by 46 (p = e**-46 ~ 1e-20 is normal, but g = p / N makes g**2 ~ 7e-42), class 3 by 86 (p ~ 4e-38 is normal,
    but p / N in dz is subnormal) and classes 4 to 9 by 100 (p ~ 4e-44 is subnormal itself)."""
    kernel = np.zeros((N, 10), "float32")
    kernel[:, 1:] = [-20, -46, -86] + [-100] * 6
    model = Sequential([Dense(10, activation="softmax", input_shape=(N,))])
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    model.set_weights([kernel, np.zeros(10, "float32")])
    x, y = np.eye(N, dtype="float32"), np.eye(10, dtype="float32")[[0] * N]
    return model, x, y, kernel


def test_the_exact_step_would_compute_subnormals():
    """The case is real: in exact arithmetic (float64 here), p, dz and g**2 hold numbers below float32's normal range."""
    _, x, y, kernel = confident_model()
    z = (x @ kernel).astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - y) / N
    g = (x.T @ dz).astype(np.float32).astype(np.float64)
    assert subnormals(p.astype(np.float32)) == N * 6  # e**-100, in classes 4 to 9
    assert subnormals(dz.astype(np.float32)) == N * 7  # and e**-86 / N
    assert subnormals((g * g).astype(np.float32)) == N  # (e**-46 / N)**2 (the smaller ones are 0 in float32)


def test_a_confident_models_step_computes_no_subnormal(monkeypatch):
    model, x, y, _ = confident_model()
    seen = {}
    backward = SoftmaxCrossentropy.backward

    def watched_backward(self):
        seen["p"], seen["dz"] = host(self.p), host(dz := backward(self))
        return dz

    real_update = rmsprop.compiled_update_step(backend.get_backend()) or rmsprop.update_step

    def watched_update(w, g, v, lr, rho, eps):
        seen.setdefault("g", []).append(host(g))
        seen.setdefault("g**2", []).append(host(rmsprop.squared(g)))
        real_update(w, g, v, lr, rho, eps)
        seen.setdefault("v", []).append(host(v))

    real_update_all = kernel.rmsprop_all

    def watched_update_all(tensors, lr, rho, eps):  # on CuPy, RMSprop.apply updates all parameters at once
        for _, g, _ in tensors:
            seen.setdefault("g", []).append(host(g))
            seen.setdefault("g**2", []).append(host(rmsprop.squared(g)))
        real_update_all(tensors, lr, rho, eps)
        seen.setdefault("v", []).extend(host(v) for _, _, v in tensors)

    monkeypatch.setattr(SoftmaxCrossentropy, "backward", watched_backward)
    monkeypatch.setattr(rmsprop, "compiled_update_step", lambda name: watched_update)
    monkeypatch.setattr(kernel, "rmsprop_all", watched_update_all)
    loss = model.train_on_batch(x, y)
    assert abs(loss) < 1e-8  # confident and right
    assert seen["p"].shape == (N, 10) and len(seen["v"]) == 2  # kernel and bias
    counts = {name: subnormals(seen[name]) if name in ("p", "dz") else sum(map(subnormals, seen[name]))
              for name in ("p", "dz", "g**2", "v")}
    assert counts == {"p": 0, "dz": 0, "g**2": 0, "v": 0}
    # what was flushed: the p of e**-86 and e**-100 count as 0; e**-20 and e**-46 are kept
    assert np.all(seen["p"][:, 3:] == 0) and np.all(seen["p"][:, 1:3] > 0)
    kernel_g = seen["g"][0]
    assert np.all((kernel_g[:, 2] > 0) & (kernel_g[:, 2] < 1e-19))  # g**2 would be subnormal: counted as 0
    assert np.all(seen["g**2"][0][:, 2] == 0) and np.all(seen["v"][0][:, 2] == 0)
    assert np.all(seen["v"][0][:, 1] > 0)  # e**-20: an ordinary small gradient, kept


@pytest.mark.host_only("NumPy's floating-point error state")
def test_squared_never_computes_a_subnormal():
    """g**2 as the step computes it: no operation underflows (NumPy raises on a subnormal result here)."""
    root = np.float32(2.0**-63)  # sqrt(smallest_normal), exactly: root * root == smallest_normal
    g = np.array([1e-30, -1e-20, np.nextafter(root, 0), root, -root, 3e-19, 1.0, 0.0, np.nan, 1e-45], "float32")
    with np.errstate(under="raise"):
        g2 = rmsprop.squared(g)
    assert g2.dtype == np.float32 and subnormals(g2) == 0
    np.testing.assert_array_equal(g2[:6], [0, 0, 0, TINY, TINY, np.float32(3e-19) ** 2])
    assert g2[6] == 1 and g2[7] == 0 and np.isnan(g2[8]) and g2[9] == 0  # a NaN stays NaN
    exact = g.astype(np.float64) ** 2
    flushed = exact.astype(np.float32) < TINY  # what the flush counts as 0: exactly the subnormal squares
    np.testing.assert_array_equal(g2 == 0, flushed | (g == 0))
