"""Tests for tinynet.backend: choosing the array library, and the host/device boundary.

Tests marked ``host_only("switches backends itself")`` run once and call
``set_backend`` themselves; the others run on every backend under test.
"""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import array_api_compat
import array_api_strict
import numpy as np
import pytest

from tinynet import backend
from tinynet.layers import Dense, Layer
from tinynet.models import Sequential

REPO = Path(__file__).resolve().parents[1]
INSTALL_HINT = 'pip install ".[gpu]"'  # never "tinynet[gpu]": tinynet on PyPI is another package


# --- choosing a backend ------------------------------------------------------------
@pytest.mark.host_only("switches backends itself")
def test_set_backend_and_get_backend():
    backend.set_backend("strict")
    assert backend.get_backend() == "strict" and backend.xp() is array_api_strict
    backend.set_backend("numpy")
    assert backend.get_backend() == "numpy" and backend.xp() is np


@pytest.mark.host_only("switches backends itself")
def test_unknown_backend_lists_the_choices():
    backend.set_backend("strict")
    with pytest.raises(ValueError) as info:
        backend.set_backend("torch")
    message = str(info.value)
    assert "'torch'" in message
    for name in ("numpy", "cupy", "strict", "auto"):
        assert name in message
    assert backend.get_backend() == "strict"  # a failed switch leaves the backend as it was


@pytest.mark.host_only("switches backends itself")
@pytest.mark.parametrize("name, expected", [("NumPy", "numpy"), (" STRICT ", "strict"), ("\tnumpy\n", "numpy")])
def test_backend_names_ignore_case_and_spaces(name, expected):
    backend.set_backend(name)  # as TINYNET_BACKEND=' NumPy ' is read
    assert backend.get_backend() == expected


@pytest.mark.host_only("switches backends itself")
@pytest.mark.parametrize("name", [None, 1, b"numpy", np])
def test_a_backend_name_that_is_not_a_string(name):
    backend.set_backend("strict")
    with pytest.raises(TypeError, match=r"backend is named by a string such as 'numpy', got .*\("
                                        f"{type(name).__name__}\\)"):
        backend.set_backend(name)
    assert backend.get_backend() == "strict"


@pytest.mark.host_only("switches backends itself")
@pytest.mark.parametrize("name", ["", "  ", "num py"])
def test_blank_or_misspelt_names_are_unknown(name):
    with pytest.raises(ValueError, match=f"Unknown backend {name!r}. Known backends: numpy, cupy, strict, auto"):
        backend.set_backend(name)
    assert backend.get_backend() == "numpy"


@pytest.mark.host_only("switches backends itself")
def test_auto_picks_the_gpu_only_when_one_is_usable():
    backend.set_backend("auto")
    assert backend.get_backend() == ("cupy" if backend.gpu_available() else "numpy")


@pytest.mark.host_only("asks about the GPU: no arrays")
def test_gpu_available_means_gpu_problem_is_none():
    problem = backend.gpu_problem()
    assert backend.gpu_available() == (problem is None)
    assert problem is None or problem.endswith(".")  # a sentence, quoted in error messages


@pytest.mark.host_only("CuPy is hidden, so no GPU: no arrays")
def test_without_cupy_there_is_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail, on any machine
    assert backend.gpu_available() is False
    assert backend.gpu_problem().startswith("CuPy cannot be imported (ModuleNotFoundError: import of cupy halted")


@pytest.mark.host_only("switches backends itself")
def test_cupy_without_a_gpu_says_why_and_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # no GPU, even on a machine that has one
    with pytest.raises(RuntimeError) as info:
        backend.set_backend("cupy")
    message = str(info.value)
    assert INSTALL_HINT in message and "cupy-cuda12x" in message  # how to install
    assert backend.gpu_problem() in message  # why: the original import error
    assert backend.get_backend() == "numpy"  # still usable


@pytest.mark.host_only("a fake CuPy: no arrays")
def test_cupy_13_is_refused_with_the_version_and_how_to_upgrade(fake_cupy):
    fake_cupy.__version__ = "13.6.0"  # CuPy 13 has no cupy.astype and no cupy.concat
    assert backend.gpu_problem() == "CuPy 13.6.0 is installed, but tinynet needs CuPy 14 or later."
    with pytest.raises(RuntimeError) as info:
        backend.set_backend("cupy")
    assert backend.gpu_problem() in str(info.value) and "cupy-cuda12x" in str(info.value)
    assert backend.get_backend() == "numpy"
    fake_cupy.__version__ = "14.0.0rc1"
    assert backend.gpu_problem() is None


@pytest.mark.host_only("reads pyproject.toml")
def test_the_gpu_extra_asks_for_cupy_14_and_array_api_compat_is_a_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["gpu"] == [f"cupy-cuda12x>={backend.CUPY_MIN_MAJOR}"]
    assert backend.CUPY_MIN_MAJOR >= 14  # cupy.astype and cupy.concat, which tinynet calls, are new in 14.0
    assert any(requirement.startswith("array-api-compat") for requirement in project["dependencies"])


@pytest.mark.host_only("switches backends itself")
def test_cupy_on_this_machine():
    if backend.gpu_available():
        pytest.skip("a GPU is usable here: set_backend('cupy') succeeds (the cupy backend runs the whole suite)")
    assert backend.gpu_available() is False
    with pytest.raises(RuntimeError) as info:
        backend.set_backend("cupy")
    assert INSTALL_HINT in str(info.value) and backend.gpu_problem() in str(info.value)


@pytest.mark.host_only("runs Python in a subprocess")
@pytest.mark.parametrize("value, expected", [("strict", "strict"), (" Strict ", "strict"), ("numpy", "numpy"),
                                             ("NumPy", "numpy"), ("", "numpy"), ("  ", "numpy")])
def test_tinynet_backend_variable_is_read_at_import(value, expected):
    result = import_tinynet(value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def import_tinynet(value):
    """``import tinynet`` in a fresh Python with TINYNET_BACKEND=value; it prints the backend chosen."""
    env = {**os.environ, "TINYNET_BACKEND": value}
    return subprocess.run([sys.executable, "-c", "import tinynet; print(tinynet.backend.get_backend())"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.host_only("runs Python in a subprocess")
@pytest.mark.parametrize("value", ["garbage", "numpy,strict", "gpu"])
def test_a_bad_tinynet_backend_variable_is_named_at_import(value):
    result = import_tinynet(value)
    assert result.returncode == 1 and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]  # the error itself, on one line
    assert last == (f"ValueError: The environment variable TINYNET_BACKEND={value!r} cannot be used: "
                    f"Unknown backend {value!r}. Known backends: numpy, cupy, strict, auto. "
                    "Change it, or unset it to run on 'numpy'.")
    assert "set_backend" not in result.stderr  # raised where the variable is read, not from deep inside
    assert "During handling" not in result.stderr  # and without a chained second traceback


@pytest.mark.host_only("runs Python in a subprocess; asks about the GPU")
def test_tinynet_backend_cupy_works_or_names_the_variable():
    result = import_tinynet(" CuPy ")
    if backend.gpu_available():
        assert result.returncode == 0 and result.stdout.strip() == "cupy", result.stderr
        return
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1
    assert last.startswith("RuntimeError: The environment variable TINYNET_BACKEND=' CuPy ' cannot be used: "
                           "The 'cupy' backend needs a usable GPU.")
    assert "cupy-cuda12x" in last and last.endswith("Change it, or unset it to run on 'numpy'.")


# --- the host/device boundary, on every backend ------------------------------------------
def test_to_device_gives_float32_on_the_active_device(backend_name):
    x = backend.to_device([[1, 2], [3, 4]])  # a list of ints, on the host
    assert x.dtype == backend.xp().float32 and x.shape == (2, 2)
    # .device: 'cpu' on NumPy, the GPU on CuPy, the stand-in GPU 'device1' on strict
    assert type(x) is type(backend.zeros(1)) and x.device == backend.zeros(1).device
    if backend_name == "strict":
        assert x.device == array_api_strict.Device("device1")  # not strict's default CPU device
    assert backend.to_device(np.arange(3), dtype="int64").dtype == backend.xp().int64
    assert backend.to_device(np.ones(2, "float32"), dtype="float64").dtype == backend.as_dtype("float64")


def test_to_device_copies(backend_name):
    source = np.array([1.0, 2.0, 3.0], "float32")
    x = backend.to_device(source)
    source[0] = 100.0  # the caller's array changes...
    x[1] = -1.0  # ...and so does the backend's
    np.testing.assert_array_equal(backend.to_numpy(x), [1.0, -1.0, 3.0])  # neither sees the other
    np.testing.assert_array_equal(source, [100.0, 2.0, 3.0])


def test_is_backend_array_agrees_with_array_api_compat(backend_name):
    on_device = backend.zeros(3)
    assert backend.is_backend_array(on_device)
    assert array_api_compat.array_namespace(on_device, use_compat=False) is backend.xp()
    assert backend.is_backend_array(backend.to_device([1.0]))
    assert backend.is_backend_array(np.zeros(3)) == (backend_name == "numpy")  # host data, unless host is the device
    for not_an_array in ([1.0, 2.0], 3.0, "x", None):
        assert not backend.is_backend_array(not_an_array)
    if backend_name == "cupy":  # the real thing: no __array_namespace__ on CuPy 14.2's arrays
        assert array_api_compat.is_cupy_array(on_device)


@pytest.mark.host_only("a fake CuPy: its arrays wrap NumPy's")
def test_a_cupy_array_without_array_namespace_stays_on_the_device(fake_cupy):
    backend.set_backend("cupy")  # the fake: a GPU that answers
    x = fake_cupy.ndarray([1, 2, 3])
    assert not hasattr(x, "__array_namespace__") and array_api_compat.is_cupy_array(x)
    with pytest.raises(TypeError, match="Implicit conversion"):  # what np.asarray(x) does on a GPU
        np.asarray(x)
    y = backend.to_device(x)  # device -> device: cast, copied, never through NumPy
    assert type(y) is fake_cupy.ndarray and y.dtype == np.float32 and not np.shares_memory(y.data, x.data)
    np.testing.assert_array_equal(y.data, [1.0, 2.0, 3.0])
    assert type(backend.to_device(np.arange(2))) is fake_cupy.ndarray  # host -> device: asarray
    assert backend.is_backend_array(x) and not backend.is_backend_array(np.arange(3))


def test_to_numpy_returns_a_numpy_copy(backend_name):
    x = backend.to_device([1.0, 2.0, 3.0])
    on_host = backend.to_numpy(x)
    assert type(on_host) is np.ndarray and on_host.dtype == np.float32
    np.testing.assert_array_equal(on_host, [1.0, 2.0, 3.0])
    on_host[0] = 100.0
    np.testing.assert_array_equal(backend.to_numpy(x), [1.0, 2.0, 3.0])  # the source is untouched
    assert backend.to_numpy(backend.xp().sum(x)).shape == ()  # 0-d arrays too


def test_zeros_on_the_active_device(backend_name):
    z = backend.zeros((2, 3))
    assert z.shape == (2, 3) and z.dtype == backend.xp().float32
    assert z.device == backend.to_device([0.0]).device
    np.testing.assert_array_equal(backend.to_numpy(z), np.zeros((2, 3)))
    assert backend.zeros(4, dtype="int64").dtype == backend.xp().int64


def test_synchronize_and_free_memory_leave_arrays_alone(backend_name):
    x = backend.to_device([1.0, 2.0])
    y = x * 2
    assert backend.synchronize() is None and backend.free_memory() is None  # no-ops on the CPU backends
    np.testing.assert_array_equal(backend.to_numpy(y), [2.0, 4.0])


def test_as_dtype(backend_name):
    xp = backend.xp()
    assert backend.as_dtype("float32") == xp.float32 and backend.as_dtype("int64") == xp.int64
    assert backend.as_dtype(xp.float64) == xp.float64  # a dtype object passes through


# --- the point of the strict backend: it catches what a GPU would ---------------------------
class NumpyInForward(Layer):
    """A buggy layer: it turns its input into a NumPy array (on a GPU: a silent copy, or an error)."""

    def forward(self, x):
        self.x = x
        return np.asarray(x) * 2

    def backward(self, dy):
        return dy * 2


class HostArrayAdded(Layer):
    """A buggy layer: it adds a NumPy array (a host array) to its input."""

    def forward(self, x):
        return x + np.ones(x.shape[1:], "float32")

    def backward(self, dy):
        return dy


@pytest.mark.host_only("switches backends itself")
@pytest.mark.parametrize("planted", [NumpyInForward, HostArrayAdded])
def test_a_planted_host_device_mix_fails_on_strict_but_not_on_numpy(planted):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 3)).astype("float32"), np.eye(2)[rng.integers(0, 2, 16)]

    def fit():
        model = Sequential([Dense(4, input_shape=(3,)), planted(), Dense(2, activation="softmax")])
        model.compile(loss="categorical_crossentropy")
        model.fit(x, y, batch_size=8, verbose=0)

    backend.set_backend("numpy")
    fit()  # "works": on the CPU a NumPy array is both host and device, so nothing can tell
    backend.set_backend("strict")
    with pytest.raises((TypeError, RuntimeError), match="(?i)numpy"):  # as CuPy would: no implicit
        fit()  # conversion to NumPy ("Can't convert ... to a NumPy array"), no NumPy operand
