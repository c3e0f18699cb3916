"""tinynet/models/graph.py, the captured training step, on the CPU: its bookkeeping (warm up, capture, replay,
the partial batch, falling back, jit_compile=True's errors) with a stand-in for CuPy's CUDA module that behaves
as a graph does: capture records the step without running it, and a launch runs the recorded step again on
the same static arrays, with none of the step's Python. On a GPU, benchmarks/gpu_check.sh checks the real one."""
import types
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

from tinynet import backend
from tinynet.layers import Dense, Dropout, Layer
from tinynet.models import Sequential, batches, graph, load_model, rollback
from tinynet.optimizers import Adam
from tinynet.utils import set_random_seed, to_categorical

pytestmark = pytest.mark.host_only("a stand-in for CuPy's CUDA module, on NumPy arrays")


class FakeCuda:
    """``cupy.cuda`` as graph.py uses it. Capturing records the one call of ``model.train_step`` made while the
    stream captures, then puts the weights and optimizer state back (a captured step does not run). ``launch``
    runs that call again on the arrays it was given (the static buffers), writes the results into the arrays it
    returned during capture, and leaves ``optimizer.iterations`` alone (a replay runs no Python)."""

    def __init__(self, model):
        self.model, self.log, self.capturing, self.recorded = model, [], False, None
        self.runtime = types.SimpleNamespace(streamCaptureModeRelaxed="relaxed")
        self.current = FakeStream(self, "current")
        step = model.train_step

        def train_step(x, y):  # what capture sees of the step: its inputs and its outputs
            if not self.capturing:
                return step(x, y)
            loss, y_hat = step(x, y)
            self.recorded = (step, x, y, np.array(loss), y_hat)  # np.array: the loss as an array launch can fill
            return self.recorded[3], y_hat
        model.train_step = train_step

    def get_current_stream(self):
        return self.current

    def Stream(self, non_blocking=False):  # noqa: N802  cupy's name
        self.log.append("new side stream")
        return FakeStream(self, "side")

    def MemoryPool(self):  # noqa: N802
        return types.SimpleNamespace(malloc="private pool")

    @contextmanager
    def using_allocator(self, malloc):
        self.log.append(f"allocate from {malloc}")
        yield
        self.log.append("allocate from the default pool")


class FakeStream:
    def __init__(self, cuda, name):
        self.cuda, self.name = cuda, name

    def __enter__(self):
        self.cuda.log.append(f"on {self.name}")

    def __exit__(self, *error):
        self.cuda.log.append(f"off {self.name}")

    def record(self):
        return self.name

    def wait_event(self, event):
        self.cuda.log.append(f"{self.name} waits for {event}")

    def begin_capture(self, mode=None):
        assert self.name == "side" and not self.cuda.capturing, "capture on the side stream, once"
        self.cuda.log.append(f"begin capture ({mode})")
        self.cuda.capturing, self.saved = True, rollback.snapshot(self.cuda.model)

    def end_capture(self):
        model = self.cuda.model
        self.cuda.capturing = False
        rollback.restore(model, (model.optimizer.iterations, self.saved[1]))  # the weights as they were
        self.cuda.log.append("end capture")
        return FakeGraph(self.cuda, self.cuda.recorded)


class FakeGraph:
    def __init__(self, cuda, recorded):
        self.cuda, self.recorded, self.launches = cuda, recorded, 0

    def launch(self, stream=None):
        step, x, y, loss, y_hat = self.recorded
        optimizer = self.cuda.model.optimizer
        iterations = optimizer.iterations
        new_loss, new_y_hat = step(x, y)
        optimizer.iterations = iterations  # no Python runs in a replay
        loss[...], y_hat[...] = new_loss, new_y_hat
        self.launches += 1
        self.cuda.log.append(f"launch on {stream.name}")


def new_model(*extra, optimizer="rmsprop", jit_compile="auto"):
    set_random_seed(0)
    model = Sequential([Dense(8, activation="relu", input_shape=(5,)), *extra, Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return model


def data(n=100):
    rng = np.random.default_rng(1)
    return rng.random((n, 5), dtype=np.float32), to_categorical(np.arange(n) % 3, 3).astype(np.float32)


@pytest.fixture
def on_fake_gpu(monkeypatch):
    """graph.py sees the 'cupy' backend and a FakeCuda for the model given: ``on_fake_gpu(model)``."""
    fakes = []

    def use(model):
        fakes.append(FakeCuda(model))
        monkeypatch.setattr(graph, "cuda", lambda: fakes[-1])
        monkeypatch.setattr(graph, "backend", types.SimpleNamespace(
            get_backend=lambda: "cupy", own_gemm=backend.own_gemm, xp=backend.xp))
        return fakes[-1]
    return use


def test_the_replayed_step_trains_exactly_as_the_eager_one(on_fake_gpu):
    """100 samples at batch 32 (three full batches and one of 4), two epochs: batch 1 warms up, batch 2 is
    captured and launched, the full batches after it are replays, the batch of 4 runs eagerly."""
    x, y = data()
    eager, captured = new_model(), new_model()
    fake = on_fake_gpu(captured)
    step = graph.training_step(captured)
    assert isinstance(step, graph.CapturedStep)
    for epoch in range(2):
        for xb, yb in batches.batches(x, y, 32, shuffle=False):
            loss_e, y_hat_e = eager.train_step(xb, yb)
            loss_c, y_hat_c = step(xb, yb)
            assert float(loss_c) == float(loss_e) and np.array_equal(y_hat_c, y_hat_e)
    assert step.warm_ups == 1 and step.replays == 6 - 2 and step.graph.launches == 1 + 4
    assert step.shapes == ((32, 5), (32, 3))
    assert captured.optimizer.iterations == eager.optimizer.iterations == 8
    assert all(np.array_equal(a, b) for a, b in zip(captured.get_weights(), eager.get_weights()))
    assert fake.log[:8] == ["new side stream", "side waits for current", "on side", "off side",
                            "current waits for side", "allocate from private pool", "on side",
                            "begin capture (relaxed)"]
    assert fake.log[8:12] == ["end capture", "off side", "allocate from the default pool", "launch on current"]


def test_fit_replays_the_graph_and_learns_exactly_what_eager_fit_learns(on_fake_gpu):
    x, y = data()
    eager, captured = new_model(jit_compile=False), new_model(jit_compile=True)
    set_random_seed(5)
    history_e = eager.fit(x, y, epochs=3, verbose=0, validation_split=0.2)
    on_fake_gpu(captured)
    set_random_seed(5)
    history_c = captured.fit(x, y, epochs=3, verbose=0, validation_split=0.2)
    assert history_c.history == history_e.history
    assert all(np.array_equal(a, b) for a, b in zip(captured.get_weights(), eager.get_weights()))


def test_auto_on_numpy_trains_eagerly():
    model = new_model()
    assert graph.training_step(model) == model.train_step


def test_jit_compile_false_trains_eagerly_on_cupy_too(on_fake_gpu):
    model = new_model(jit_compile=False)
    fake = on_fake_gpu(model)
    assert graph.training_step(model) == model.train_step and fake.log == []


def test_jit_compile_true_needs_the_cupy_backend_and_says_so_before_any_work():
    model = new_model(jit_compile=True)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"jit_compile=True .* needs the 'cupy' backend; this one is 'numpy'"
                                         r".*jit_compile='auto'"):
        model.fit(*data(), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


@pytest.mark.parametrize("extra, optimizer, named", [
    ([Dropout(0.5)], "rmsprop", "layer 'dropout' (Dropout)"),
    ([], Adam(), "the optimizer Adam")])
def test_what_cannot_be_captured_trains_eagerly_with_one_warning_naming_it(on_fake_gpu, extra, optimizer, named):
    x, y = data()
    model = new_model(*extra, optimizer=optimizer)
    fake = on_fake_gpu(model)
    with pytest.warns(RuntimeWarning) as warned:
        model.fit(x, y, epochs=2, verbose=0)
    assert len(warned) == 1 and str(warned[0].message).startswith(f"{named} cannot be captured into a CUDA graph")
    assert "jit_compile=False" in str(warned[0].message)
    assert fake.log == [] and model.optimizer.iterations == 8  # no stream, no capture: every step eager


def test_under_jit_compile_true_what_cannot_be_captured_is_an_error_before_any_work(on_fake_gpu):
    model = new_model(Dropout(0.5), jit_compile=True)
    on_fake_gpu(model)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"^jit_compile=True: layer 'dropout' \(Dropout\) cannot be captured"):
        model.fit(*data(), verbose=0)
    assert model.optimizer.iterations == 0
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


class HostReader(Layer):
    """A layer of your own that reads a value back to the host, which a capturing stream refuses."""
    fake = None

    def forward(self, x, training=False):
        if self.fake is not None and self.fake.capturing:
            raise RuntimeError("operation not permitted when stream is capturing")
        return x

    def backward(self, dy):
        return dy


def test_a_capture_that_fails_warns_naming_the_layer_and_the_step_runs_eagerly(on_fake_gpu, monkeypatch):
    monkeypatch.setitem(graph.CAPTURABLE, "layer", {*graph.CAPTURABLE["layer"], "HostReader"})
    x, y = data()
    eager, captured = new_model(HostReader()), new_model(HostReader())
    fake = on_fake_gpu(captured)
    HostReader.fake = fake
    try:
        step = graph.training_step(captured)
        with pytest.warns(RuntimeWarning) as warned:
            for xb, yb in batches.batches(x, y, 32, shuffle=False):
                assert float(step(xb, yb)[0]) == float(eager.train_step(xb, yb)[0])
    finally:
        HostReader.fake = None
    assert len(warned) == 1
    assert str(warned[0].message).startswith("layer 'host_reader' (HostReader) failed while the training step was "
                                             "captured into a CUDA graph (RuntimeError: operation not permitted")
    assert not fake.capturing and step.graph is None and "end capture" in fake.log  # the capture was ended
    assert captured.optimizer.iterations == eager.optimizer.iterations == 4
    assert all(np.array_equal(a, b) for a, b in zip(captured.get_weights(), eager.get_weights()))


def test_under_jit_compile_true_a_failed_capture_is_an_error_and_the_weights_go_back(on_fake_gpu, monkeypatch):
    monkeypatch.setitem(graph.CAPTURABLE, "layer", {*graph.CAPTURABLE["layer"], "HostReader"})
    model = new_model(HostReader(), jit_compile=True)
    fake = on_fake_gpu(model)
    HostReader.fake = fake
    before = model.get_weights()
    try:
        with pytest.raises(RuntimeError, match=r"^jit_compile=True: layer 'host_reader' \(HostReader\) failed"):
            model.fit(*data(), verbose=0)
    finally:
        HostReader.fake = None
    assert not fake.capturing and model.optimizer.iterations == 0  # the warm-up step was undone too
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


@pytest.mark.parametrize("value, error", [("yes", ValueError), ("AUTO", ValueError), (1, TypeError),
                                          (None, TypeError)])
def test_compile_checks_jit_compile(value, error):
    model = new_model()
    with pytest.raises(error, match=r"jit_compile must be 'auto', True or False, got "):
        model.compile(loss="mse", jit_compile=value)


def test_jit_compile_is_auto_by_default_kept_by_add_and_saved(tmp_path):
    model = Sequential([Dense(4, input_shape=(3,))])
    model.compile(loss="mse")
    assert model.jit_compile == "auto"
    model.compile(loss="mse", jit_compile=False)
    model.add(Dense(2))
    assert model.jit_compile is False
    model.save(tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").jit_compile is False


def test_no_warning_when_everything_can_be_captured(on_fake_gpu):
    model = new_model()
    on_fake_gpu(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(*data(), epochs=1, verbose=0)


def test_compile_takes_numpy_bools_for_jit_compile():
    model = new_model()
    model.compile(loss="mse", jit_compile=np.False_)
    assert model.jit_compile is False
