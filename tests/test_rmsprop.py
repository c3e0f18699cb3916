"""Tests for tinynet.optimizers.RMSprop, step by step, exactly in float32.

    v = rho * v + (1 - rho) * g**2
    w = w - learning_rate * g / sqrt(v + epsilon)
"""
import numba
import numpy as np
import pytest

from conftest import dev, host
from tinynet import backend, optimizers
from tinynet.optimizers import Optimizer, RMSprop, rmsprop

f32 = np.float32


def expected_steps(w, grads, lr, rho, eps):
    """The same updates by hand, in float32, in the same order of operations."""
    w, v = w.copy(), np.zeros_like(w)
    for g in grads:
        v = f32(rho) * v
        v = v + f32(1 - rho) * (g * g)
        w = w - f32(lr) * g / np.sqrt(v + f32(eps))
    return w, v


@pytest.mark.host_only("hyperparameters only: no arrays")
def test_defaults_are_keras_defaults():
    opt = RMSprop()
    assert (opt.learning_rate, opt.rho, opt.epsilon) == (0.001, 0.9, 1e-7)
    assert opt.iterations == 0 and opt.slots is None


def test_first_step_by_hand():
    w = dev([1.0, -2.0, 0.5])
    g = dev([0.5, -1.0, 0.0])
    RMSprop().apply([g], [w])  # updates w in place
    # v = 0.1 g**2;  step = 0.001 g / sqrt(0.1 g**2 + 1e-7) ~ 0.001 sign(g) / sqrt(0.1) = 0.0031623 sign(g)
    np.testing.assert_allclose(host(w), [1.0 - 0.0031623, -2.0 + 0.0031623, 0.5], atol=2e-7)


def test_three_steps_exact_in_float32():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 2)).astype("float32")
    grads = [rng.standard_normal((3, 2)).astype("float32") for _ in range(3)]
    w = dev(w0)
    opt = RMSprop()
    for g in grads:
        opt.apply([dev(g)], [w])
    w_expected, v_expected = expected_steps(w0, grads, lr=0.001, rho=0.9, eps=1e-7)
    float32 = backend.as_dtype("float32")
    assert w.dtype == float32 and opt.slots[0].dtype == float32
    np.testing.assert_array_equal(host(w), w_expected)
    np.testing.assert_array_equal(host(opt.slots[0]), v_expected)


def test_custom_hyperparameters_exact_in_float32():
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(4).astype("float32")
    grads = [rng.standard_normal(4).astype("float32") * 10 ** k for k in range(-2, 2)]
    w = dev(w0)
    opt = RMSprop(learning_rate=0.05, rho=0.8, epsilon=1e-3)
    for g in grads:
        opt.apply([dev(g)], [w])
    w_expected, v_expected = expected_steps(w0, grads, lr=0.05, rho=0.8, eps=1e-3)
    np.testing.assert_array_equal(host(w), w_expected)
    np.testing.assert_array_equal(host(opt.slots[0]), v_expected)


def test_several_parameters_each_with_its_own_state():
    kernel, bias = dev(np.ones((2, 2))), dev(np.zeros(2))
    g_kernel, g_bias = dev(np.full((2, 2), 2.0)), dev([1.0, -3.0])
    opt = RMSprop()
    opt.apply([g_kernel, g_bias], [kernel, bias])
    assert len(opt.slots) == 2
    assert opt.slots[0].shape == (2, 2) and opt.slots[1].shape == (2,)
    np.testing.assert_array_equal(host(opt.slots[0]), f32(0.1) * f32(4.0))
    np.testing.assert_array_equal(host(opt.slots[1]), f32(1 - 0.9) * np.array([1.0, 9.0], "float32"))


def test_state_persists_across_apply_calls():
    w = dev([1.0])
    g = dev([1.0])
    opt = RMSprop()
    opt.apply([g], [w])
    slot = opt.slots[0]
    first_step = 1.0 - float(w[0])
    opt.apply([g], [w])
    assert opt.slots[0] is slot  # updated in place, not rebuilt
    v1, v2 = 0.1, 0.9 * 0.1 + 0.1  # = 0.19
    assert float(slot[0]) == pytest.approx(v2, rel=1e-6)
    second_step = 1.0 - first_step - float(w[0])
    assert first_step == pytest.approx(0.001 / np.sqrt(v1 + 1e-7), rel=1e-4)
    assert second_step == pytest.approx(0.001 / np.sqrt(v2 + 1e-7), rel=1e-4)  # smaller: v grew


def test_iterations_count_updates():
    w, g = dev(np.zeros(3)), dev(np.ones(3))
    opt = RMSprop()
    for i in range(1, 6):
        opt.apply([g], [w])
        assert opt.iterations == i


def test_count_params_like_keras():
    opt = RMSprop()
    assert opt.count_params() == 0  # nothing before the first step
    opt.apply([dev(np.ones((3, 4))), dev(np.ones(4))], [dev(np.zeros((3, 4))), dev(np.zeros(4))])
    assert opt.count_params() == 12 + 4 + 2  # one v per weight, plus iterations and learning rate


def test_zero_gradient_does_not_move_the_weights():
    w = dev([0.25, -4.0])
    RMSprop().apply([dev(np.zeros(2))], [w])
    np.testing.assert_array_equal(host(w), [0.25, -4.0])


@pytest.mark.host_only("names to objects: no arrays")
def test_get_by_name_and_object():
    opt = optimizers.get("rmsprop")
    assert type(opt) is RMSprop and opt.learning_rate == 0.001
    assert optimizers.get("rmsprop") is not opt  # a fresh optimizer each time
    mine = RMSprop(learning_rate=0.01)
    assert optimizers.get(mine) is mine
    assert isinstance(mine, Optimizer)
    assert type(optimizers.get(RMSprop)) is RMSprop  # the class, as Keras users sometimes write it
    with pytest.raises(ValueError, match=r"Unknown optimizer \['rmsprop'\]"):
        optimizers.get(["rmsprop"])


@pytest.mark.host_only("an error message: no arrays")
def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError) as info:
        optimizers.get("adagrad")
    assert "'adagrad'" in str(info.value) and "rmsprop" in str(info.value)


# --- the compiled update equals the array update, bit for bit ---------------------
def run(optimizer_class, w0, grads):
    w = backend.to_device(w0, dtype=w0.dtype.name)
    optimizer = optimizer_class(learning_rate=0.01, rho=0.8, epsilon=1e-6)
    for g in grads:
        optimizer.apply([backend.to_device(g, dtype=g.dtype.name)], [w])
    return backend.to_numpy(w), backend.to_numpy(optimizer.slots[0])


def run_update(update, w0, grads):
    """Apply ``update`` (rmsprop.update_step, or its compiled version) to one parameter, step after step."""
    w = backend.to_device(w0, dtype=w0.dtype.name)
    v = backend.xp().zeros_like(w)
    for g in grads:
        update(w, backend.to_device(g, dtype=g.dtype.name), v, 0.01, 0.8, 1e-6)
    return backend.to_numpy(w), backend.to_numpy(v)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_update_is_bit_identical_to_the_array_update(dtype, backend_name):
    if backend_name == "strict":  # no compiler there: apply runs update_step itself
        assert rmsprop.compiled_update_step(backend_name) is None
        return
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((64, 33)).astype(dtype)
    # gradients over 40 orders of magnitude, then zeros so that v decays to the flush threshold
    grads = [(rng.standard_normal((64, 33)) * 10.0 ** rng.integers(-25, 3, (64, 33))).astype(dtype) for _ in range(20)]
    grads += [np.zeros((64, 33), dtype)] * 300
    w_fused, v_fused = run_update(rmsprop.compiled_update_step(backend_name), w0, grads)
    w_ref, v_ref = run_update(rmsprop.update_step, w0, grads)
    np.testing.assert_array_equal(w_fused, w_ref)
    np.testing.assert_array_equal(v_fused, v_ref)
    w_opt, v_opt = run(RMSprop, w0, grads)  # what RMSprop.apply runs is the compiled update
    np.testing.assert_array_equal(w_opt, w_ref)
    np.testing.assert_array_equal(v_opt, v_ref)


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_g_squared_below_the_smallest_normal_counts_as_0_in_every_version(dtype, backend_name):
    """Flush to zero of g**2 (the module's docstring says why), at its threshold |g| = sqrt(smallest_normal),
    the same in update_step and in the compiled update."""
    t = np.dtype(dtype).type
    tiny = np.finfo(dtype).smallest_normal
    root = np.sqrt(t(tiny))  # exact: 2**-63 in float32, 2**-511 in float64
    below = np.nextafter(root, t(0))
    g = np.array([below, -below, root, 3 * root, 0.0, 1.0], dtype)
    w0 = np.ones(len(g), dtype)
    results = [run_update(rmsprop.update_step, w0, [g])]
    if backend_name != "strict":
        results.append(run_update(rmsprop.compiled_update_step(backend_name), w0, [g]))
    for w, v in results:
        # v = (1 - rho) g**2 with rho = 0.8: 0 below the threshold; 0.2 * smallest_normal is subnormal, so 0 too;
        # 0.2 * 9 * smallest_normal is normal and kept
        np.testing.assert_array_equal(v, [0, 0, 0, t(1 - 0.8) * (t(3 * root) * t(3 * root)), 0, t(1 - 0.8)])
        assert v[3] >= tiny
        np.testing.assert_array_equal(w[:2], w0[:2] - t(0.01) * g[:2] / np.sqrt(t(1e-6)))  # w still moves
    np.testing.assert_array_equal(results[0][0], results[-1][0])
    np.testing.assert_array_equal(results[0][1], results[-1][1])


def test_a_nan_gradient_leaves_nan_in_v_as_keras_does():
    w0 = np.ones(2, "float32")
    grads = [np.array([np.nan, 1.0], "float32")]
    for w, v in (run(RMSprop, w0, grads), run_update(rmsprop.update_step, w0, grads)):
        assert np.isnan(v[0]) and np.isnan(w[0])  # the flush never turns NaN into 0
        assert v[1] == np.float32(0.2)  # (1 - rho) * g**2 with rho = 0.8


# --- Numba never blocks training: without a writable cache folder, it compiles without the cache -----------
@pytest.mark.host_only("Numba compiles for the NumPy backend")
def test_numba_without_a_cache_folder_compiles_without_one_and_says_so(monkeypatch):
    from numba.core import caching

    def no_folder_writable(locator):  # as Numba finds it, trying a temporary file in each place it may cache to
        raise PermissionError(13, "Permission denied", locator.get_cache_path())

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(caching._CacheLocator, "ensure_cache_path", no_folder_writable)
    with pytest.raises(RuntimeError, match="no locator available"):  # what fit used to fail with
        numba.njit(cache=True)(lambda x: x)
    with pytest.warns(RuntimeWarning, match=r"^Numba cannot cache RMSprop's compiled update \(cannot cache "
                                            r"function .*no locator available.*\): it is compiled afresh in each run"
                                            r".*Set NUMBA_CACHE_DIR to a writable folder"):
        update = rmsprop._numba_update_step()
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(5).astype("float32"), [rng.standard_normal(5).astype("float32")] * 3
    np.testing.assert_array_equal(run_update(update, w0, grads)[0], run_update(rmsprop.update_step, w0, grads)[0])


FIT_WITHOUT_A_CACHE = """
import warnings, numpy, tinynet
from tinynet.layers import Dense
warnings.simplefilter("default")
model = tinynet.Sequential([Dense(3, activation="softmax", input_shape=(4,))])
model.compile(loss="categorical_crossentropy")  # RMSprop, compiled by Numba
x, y = numpy.ones((8, 4)), tinynet.utils.to_categorical(numpy.arange(8) % 3)
for _ in range(2):
    model.fit(x, y, epochs=2, verbose=0)
print("trained", tinynet.__file__)
"""


@pytest.mark.host_only("a subprocess on the NumPy backend")
def test_fit_works_where_neither_the_install_nor_home_can_be_written(tmp_path):
    """The usual container or CI runner: tinynet installed read-only, HOME not writable, NUMBA_CACHE_DIR unset.
    Read-only permissions stop everyone but root, so each folder Numba would cache in is made impossible for
    root too: the package's __pycache__ is a file, and HOME is a file (so ~/.cache cannot be made)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import tinynet

    install = tmp_path / "site-packages"
    shutil.copytree(Path(tinynet.__file__).parent, install / "tinynet", ignore=shutil.ignore_patterns("__pycache__"))
    (install / "tinynet" / "optimizers" / "__pycache__").write_text("not a folder")
    (tmp_path / "home").write_text("not a folder")
    for folder, _, files in os.walk(install):
        os.chmod(folder, 0o555)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_") and k != "XDG_CACHE_HOME"}
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(install), TINYNET_BACKEND="numpy")
    try:
        done = subprocess.run([sys.executable, "-c", FIT_WITHOUT_A_CACHE], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    finally:
        for folder, _, _ in os.walk(install):
            os.chmod(folder, 0o755)  # so that pytest can remove it
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"trained {install / 'tinynet' / '__init__.py'}"
    assert done.stderr.count("Numba cannot cache RMSprop's compiled update") == 1, done.stderr  # said once
