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
import os
from pathlib import Path

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
