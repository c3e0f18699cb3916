"""Shared test helpers: the backend every test runs on, and where the real MNIST files are.

Every test runs once per backend: ``numpy``, ``strict`` (array_api_strict on a
non-default device, which like CuPy refuses implicit conversion to NumPy and any
host/device mix) and ``cupy`` when a GPU is usable. ``TINYNET_TEST_BACKENDS``
(e.g. ``cupy`` or ``numpy,strict``) picks them by hand. Tests that never touch
backend arrays carry ``@pytest.mark.host_only("why")`` and run once, on NumPy.

Layers, losses, metrics and optimizers take arrays of the active backend, as
``fit`` hands them: tests move their data there with ``dev(x)`` and bring results
back with ``host(y)`` before NumPy's assertions. ``fit``, ``predict``,
``evaluate``, ``train_on_batch`` and ``set_weights`` take NumPy: the public API.
"""
import contextlib
import os
import sys
import types
from pathlib import Path

import numpy
import pytest

from tinynet import backend


def backends_under_test():
    chosen = os.environ.get("TINYNET_TEST_BACKENDS")
    if chosen:
        return [name.strip() for name in chosen.split(",") if name.strip()]
    return ["numpy", "strict"] + (["cupy"] if backend.gpu_available() else [])


BACKENDS_UNDER_TEST = backends_under_test()


def pytest_configure(config):
    config.addinivalue_line("markers", "host_only(reason): the test touches no backend arrays; run it on NumPy only")


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("host_only")
    if marker is not None and not marker.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: host_only needs a reason, host_only('...').")
    names = ["numpy"] if marker else BACKENDS_UNDER_TEST
    metafunc.parametrize("backend_name", names, indirect=True, scope="function")


@pytest.fixture(autouse=True)
def backend_name(request):
    """Run the test on ``request.param``'s backend, then go back to NumPy."""
    backend.set_backend(request.param)
    yield request.param
    backend.set_backend("numpy")


def dev(x, dtype="float32"):
    """Test data (NumPy, lists) -> an array on the active backend, as ``dtype``."""
    return backend.to_device(x, dtype=dtype)


def host(x):
    """A backend array -> a NumPy copy, for NumPy's assertions."""
    return backend.to_numpy(x)


@contextlib.contextmanager
def on_numpy():
    """``with on_numpy():`` tinynet on NumPy, then back to the backend that was active: a test on CuPy computes
    its reference with the readable lines on the host."""
    before = backend.get_backend()
    backend.set_backend("numpy")
    try:
        yield
    finally:
        backend.set_backend(before)


@pytest.fixture
def fake_cupy(monkeypatch):
    """A module named ``cupy`` (version 14.2.0, which ``fake_cupy.__version__`` may change) with one GPU
    that answers and the few functions ``tinynet.backend`` calls: the ``cupy`` backend on any machine.

    Its ``ndarray`` is what the host/device boundary sees of a ``cupy.ndarray``: no
    ``__array_namespace__`` (CuPy 14.2's arrays have none), and, like CuPy, no implicit conversion
    to NumPy. Both are made anew for each test (array_api_compat caches what it learns per class).
    For tests marked host_only.
    """
    class ndarray:  # noqa: N801  cupy's name
        def __init__(self, data):
            self.data = numpy.asarray(data)
            self.dtype, self.shape = self.data.dtype, self.data.shape

        def __array__(self, *args, **kwargs):  # CuPy's own message
            raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
                            "construct a NumPy array explicitly.")

        def sum(self):
            return self.data.sum()

        def get(self):
            return self.data.copy()

    cupy = types.ModuleType("cupy")
    cupy.__version__ = "14.2.0"
    cupy.ndarray = ndarray
    cupy.float32, cupy.float64, cupy.int64 = numpy.float32, numpy.float64, numpy.int64
    cupy.asarray = lambda x, dtype=None: ndarray(numpy.array(x, dtype=dtype))
    cupy.astype = lambda x, dtype, copy=True: ndarray(x.data.astype(dtype, copy=copy))
    cupy.zeros = lambda shape, dtype=None: ndarray(numpy.zeros(shape, dtype))
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return cupy


def mnist_dir():
    """The folder with the four MNIST files: $TINYNET_DATA_DIR, or ../shared/data/mnist.

    In CI (CI=true) a missing folder is a failure, never a silent skip.
    """
    folder = Path(os.environ.get("TINYNET_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared/data/mnist")
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        message = f"MNIST files not found in {folder}: set TINYNET_DATA_DIR to the folder holding them."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


# Digits drawn as a learner would draw them: strokes between points in a unit square, (x, y), y down.
ONE = [[(0.5, 0.15), (0.5, 0.85)]]
SEVEN = [[(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)]]


def draw_digit(strokes, width=200, height=200, linewidth=None):
    """Black strokes on white paper, rendered with matplotlib: an (height, width, 3) uint8 RGB array."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.axis("off")
    for stroke in strokes:
        xs, ys = zip(*stroke)
        ax.plot(xs, ys, color="black", linewidth=linewidth or min(width, height) * 0.08,
                solid_capstyle="round", solid_joinstyle="round")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def transparent(picture, ink_colour, hidden_colour=(0, 0, 0)):
    """The strokes of a black-on-white drawing in ``ink_colour`` on a transparent sheet, as RGBA: alpha holds
    the drawing (antialiased edges partly transparent); the transparent pixels' colour is ``hidden_colour``."""
    import numpy as np

    alpha = 255 - picture[..., 0]
    rgba = np.zeros((*picture.shape[:2], 4), np.uint8)
    rgba[..., :3] = np.where(alpha[..., None] > 0, ink_colour, hidden_colour)
    rgba[..., 3] = alpha
    return rgba


def png_claiming(width, height):
    """A tiny PNG whose header claims ``width`` x ``height`` pixels, as a huge photo's does."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # the IHDR chunk's width and height...
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # ...and its checksum
    return bytes(data)


def small_mnist_model():
    """784 -> 64 (relu) -> 10 (softmax), compiled as the notebook's model."""
    from tinynet.layers import Dense
    from tinynet.models import Sequential

    model = Sequential([Dense(64, activation="relu", input_shape=(784,)), Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="session")
def mnist_weights():
    """The weights of a small MNIST classifier trained once, on NumPy, for one epoch on
    12,000 images (about a second; 90% accurate), with the validation images and labels:
    ``(weights, x_valid uint8 (10000, 28, 28), y_valid)``."""
    import tinynet
    from tinynet.datasets import mnist

    (x_train, y_train), (x_valid, y_valid) = mnist.load_data(mnist_dir())
    previous = backend.get_backend()
    backend.set_backend("numpy")
    try:
        tinynet.utils.set_random_seed(0)
        model = small_mnist_model()
        model.fit(x_train[:12000].reshape(-1, 784) / 255, tinynet.utils.to_categorical(y_train[:12000], 10),
                  batch_size=64, epochs=1, verbose=0)
        return model.get_weights(), x_valid, y_valid
    finally:
        backend.set_backend(previous)


@pytest.fixture
def mnist_model(mnist_weights):
    """That classifier, rebuilt on the backend under test: ``(model, x_valid, y_valid)``."""
    weights, x_valid, y_valid = mnist_weights
    model = small_mnist_model()
    model.set_weights(weights)
    return model, x_valid, y_valid


def load_example(name):
    """examples/<name>.py as a module (examples/ is a folder of scripts, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def draw_example():
    """examples/draw.py, the page that reads a digit as you draw it."""
    return load_example("draw")


def serving(server):
    """Run an http.server in a thread: a context manager that yields its URL, then shuts it down."""
    import threading

    @contextlib.contextmanager
    def running():
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            host, port = server.server_address[:2]
            yield f"http://{host}:{port}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    return running()
