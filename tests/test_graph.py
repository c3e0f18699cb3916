"""tinynet/models/graph.py, the captured training step, on the CPU: its bookkeeping (warm up, capture, replay,
the partial batch, falling back, jit_compile=True's errors) with a stand-in for CuPy's CUDA module that behaves
as a graph does: capture records the step without running it, and a launch runs the recorded step again on
the same static arrays, with none of the step's Python. On a GPU, benchmarks/gpu_check.sh checks the real one."""
import functools
import re
import types
import warnings
import weakref
from contextlib import contextmanager

import numpy as np
import pytest

from tinynet import backend
from tinynet.layers import Dense, Dropout, Layer
from tinynet.metrics.running_means import RunningMeans
from tinynet.models import Sequential, graph, load_model
from tinynet.models.batches import Batches
from tinynet.optimizers import Adam
from tinynet.utils import set_random_seed, to_categorical

pytestmark = pytest.mark.host_only("a stand-in for CuPy's CUDA module, on NumPy arrays")


class FakeCuda:
    """``cupy.cuda`` as graph.py uses it. Capturing records the calls of ``model.fit_step`` made while the
    stream captures (one per step it holds), then puts back every array it wrote (weights, optimizer state, the batch position, the
    running means): a captured step does not run. ``launch`` runs that call again with the very arguments it
    was given, the host's ``step`` included (a graph cannot see the host's later values), and leaves
    ``optimizer.iterations`` alone (a replay runs no Python)."""

    def __init__(self, model):
        self.model, self.log, self.capturing, self.recorded = model, [], False, None
        self.runtime = types.SimpleNamespace(streamCaptureModeRelaxed="relaxed")
        self.current = FakeStream(self, "current")
        step = model.fit_step

        def fit_step(data, step_, means):  # what capture sees of the step: its arguments
            if self.capturing:
                if not self.recorded:  # what the recorded steps will write, as it was before them
                    self.saved = written_by_a_step(model, data, means)
                self.recorded.append((step, data, step_, means))
            return step(data, step_, means)
        model.fit_step = fit_step

    def get_current_stream(self):
        return self.current

    def Stream(self, non_blocking=False):  # noqa: N802  cupy's name
        self.log.append("new side stream")
        return FakeStream(self, "side")

    def MemoryPool(self):  # noqa: N802
        return types.SimpleNamespace(malloc="captures' pool", free_all_blocks=lambda: self.log.append("free blocks"))

    @contextmanager
    def using_allocator(self, malloc):
        self.log.append(f"allocate from {malloc}")
        yield
        self.log.append("allocate from the default pool")


def written_by_a_step(model, data, means):
    """Copies of every array a step writes, and the arrays: ``restore`` puts them back."""
    arrays = [w for layer in model.layers for w in layer.weights.values()] + model.optimizer.state_arrays()
    arrays += [data.position, *means.totals.values(), means.samples, means.batches, means.first_bad, means.bad_loss]
    return [(a, np.array(a, copy=True)) for a in arrays]


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
        self.cuda.capturing, self.cuda.recorded = True, []

    def end_capture(self):
        self.cuda.capturing = False
        if self.cuda.recorded:
            for array, copy in self.cuda.saved:
                array[...] = copy  # what the step wrote, as it was: recorded, not run
        self.cuda.log.append("end capture")
        return FakeGraph(self.cuda, self.cuda.recorded)


class FakeGraph:
    def __init__(self, cuda, recorded):
        self.cuda, self.recorded, self.launches = cuda, recorded, 0

    def launch(self, stream=None):
        optimizer = self.cuda.model.optimizer
        iterations = optimizer.iterations
        for fit_step, data, step, means in self.recorded:
            fit_step(data, step, means)  # the host's step as it was at capture: only the device moves on
        optimizer.iterations = iterations  # no Python runs in a replay
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
        monkeypatch.setattr(graph, "shared_pool", functools.cache(lambda: fakes[-1].MemoryPool()))  # this test's own
        monkeypatch.setattr(graph, "backend", types.SimpleNamespace(
            get_backend=lambda: "cupy", own_gemm=backend.own_gemm, xp=backend.xp))
        return fakes[-1]
    return use


def test_the_replayed_step_trains_exactly_as_the_eager_one(on_fake_gpu):
    """100 samples at batch 32 (three full batches and one of 4), two shuffled epochs: batch 1 warms up, batch 2
    is captured and launched, the full batches after it are replays, the batch of 4 runs eagerly. Each replay
    sees the host's step as it was at capture, so only what is kept on the device moves it to the next batch."""
    x, y = data()
    eager, captured = new_model(), new_model()
    fake = on_fake_gpu(captured)
    step_function = graph.training_step(captured)
    assert isinstance(step_function, graph.CapturedStep)
    runs = [(eager, eager.fit_step), (captured, step_function)]
    runs = [(model, function, Batches(x, y, 32, True), RunningMeans(model.metrics)) for model, function in runs]
    for epoch in range(2):
        logs = []
        for model, function, batches, means in runs:
            set_random_seed(10 + epoch)  # the same order for both
            batches.new_epoch(), means.reset()
            for step in range(batches.steps):
                function(batches, step, means)
            logs.append(means.read())
        assert logs[0] == logs[1] and set(logs[0]) == {"loss", "accuracy"}
    assert step_function.warm_ups == 1 and step_function.replays == 2 + 3 and step_function.graph.launches == 5
    assert step_function.size == 32
    assert captured.optimizer.iterations == eager.optimizer.iterations == 8
    assert all(np.array_equal(a, b) for a, b in zip(captured.get_weights(), eager.get_weights()))
    assert fake.log[:9] == ["new side stream", "side waits for current", "on side", "off side",
                            "current waits for side", "free blocks", "allocate from captures' pool", "on side",
                            "begin capture (relaxed)"]
    assert fake.log[9:13] == ["end capture", "off side", "allocate from the default pool", "launch on current"]


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
    assert graph.training_step(model) == model.fit_step


def test_jit_compile_false_trains_eagerly_on_cupy_too(on_fake_gpu):
    model = new_model(jit_compile=False)
    fake = on_fake_gpu(model)
    assert graph.training_step(model) == model.fit_step and fake.log == []


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
        step_function = graph.training_step(captured)
        runs = [(eager.fit_step, Batches(x, y, 32, False), RunningMeans([])),
                (step_function, Batches(x, y, 32, False), RunningMeans([]))]
        with pytest.warns(RuntimeWarning) as warned:
            for function, batches, means in runs:
                batches.new_epoch()
                for step in range(batches.steps):
                    function(batches, step, means)
        assert runs[0][2].read() == runs[1][2].read()
    finally:
        HostReader.fake = None
    assert len(warned) == 1
    assert str(warned[0].message).startswith("layer 'host_reader' (HostReader) failed while the training step was "
                                             "captured into a CUDA graph (RuntimeError: operation not permitted")
    assert not fake.capturing and step_function.graph is None and "end capture" in fake.log  # capture ended
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


def test_a_nan_mid_epoch_stops_fit_naming_the_step_and_rolls_back_as_eager_fit_does(on_fake_gpu):
    """Step 6's batch (samples 40-47, unshuffled) holds numbers so large that its logits overflow: a replay's loss
    is NaN. The first bad step is noted on the device, so the graph names the same step as eager training, and
    puts back the same weights."""
    x, y = data()
    x[40:48] = 3e38
    errors = []
    for jit_compile in (False, True):
        model = new_model(jit_compile=jit_compile)
        before = model.get_weights()
        if jit_compile:
            on_fake_gpu(model)
        with pytest.raises(FloatingPointError) as caught, np.errstate(all="ignore"):
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        errors.append(str(caught.value))
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    assert errors[0] == errors[1]
    assert re.match(r"The loss became nan at epoch 1, step 6: training stopped, and the weights "
                    r"were rolled back to where epoch 1 began", errors[1]), errors[1]


def test_nothing_is_read_back_inside_an_epoch_between_the_tenths_of_a_second(on_fake_gpu, monkeypatch):
    """The running means and the non-finite flag are read at the epoch's end, and otherwise at most every
    READ_EVERY seconds: here the clock stands still, so once per epoch each, however many steps."""
    from tinynet.callbacks import progress
    from tinynet.metrics import running_means
    reads = {"read": 0, "first_non_finite": 0}
    for name in reads:
        original = getattr(running_means.RunningMeans, name)

        def counted(self, name=name, original=original):
            reads[name] += 1
            return original(self)
        monkeypatch.setattr(running_means.RunningMeans, name, counted)
    monkeypatch.setattr(progress.time, "perf_counter", lambda: 0.0)
    model = new_model()
    on_fake_gpu(model)
    model.fit(*data(), epochs=2, verbose=0)  # 4 steps an epoch: warm-up, capture, replay, eager
    assert reads == {"read": 2, "first_non_finite": 2}


def test_steps_per_execution_replays_several_steps_per_launch_and_learns_what_eager_fit_learns(on_fake_gpu):
    """100 samples at batch 8: 12 full batches and one of 4. K = 4: batch 1 warms up, batches 2-5 are captured
    and launched, 6-9 one replay, 10-12 eager (four full ones are not left), then the batch of 4; epoch 2: three
    replays of four steps, then the batch of 4."""
    x, y = data()
    eager, captured = new_model(jit_compile=False), new_model()
    captured.compile(loss="categorical_crossentropy", metrics=["accuracy"], steps_per_execution=4)
    on_fake_gpu(captured)
    made = []
    training_step = graph.training_step
    graph_step = lambda model: made.append(training_step(model)) or made[-1]  # noqa: E731
    histories = []
    for model in (eager, captured):
        set_random_seed(5)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(graph, "training_step", graph_step)
            histories.append(model.fit(x, y, batch_size=8, epochs=2, verbose=0).history)
    assert histories[0] == histories[1]
    assert all(np.array_equal(a, b) for a, b in zip(captured.get_weights(), eager.get_weights()))
    step = made[1]
    assert (step.warm_ups, step.replays, step.graph.launches) == (1, 2 + 3, 2 + 3)
    assert captured.optimizer.iterations == eager.optimizer.iterations == 26


def test_a_fit_captures_into_the_pool_an_earlier_fits_graph_used_unless_that_graph_may_still_run(on_fake_gpu,
                                                                                                 monkeypatch):
    """CuPy gives a memory pool's blocks back only when asked, never when the pool is dropped: a pool per graph
    would keep each fit's graph's memory for good. A fit's CapturedStep is gone when the fit returns, so the next
    fit captures into the same pool; while a step lives (a fit running at the same time), another gets its own."""
    x, y = data(64)
    model = new_model()
    on_fake_gpu(model)
    made, training_step = [], graph.training_step
    monkeypatch.setattr(graph, "training_step", lambda model_: made.append(training_step(model_)) or made[-1])
    model.fit(x, y, epochs=1, verbose=0)
    first = made.pop()
    pool = first.pool
    assert first.graph is not None and pool is graph.shared_pool() and first in graph.CapturedStep.live
    gone = weakref.ref(first)
    del first  # as at the end of fit: nothing else holds the step, and it goes (no cycle waits for the collector)
    assert gone() is None
    log = graph.cuda().log
    del log[:]
    model.fit(x, y, epochs=1, verbose=0)
    assert made[0].pool is pool  # the same pool again, not a new one
    # what the first capture left is given back first (CuPy keeps it per stream, and this capture's is new)
    assert log.index("free blocks") < log.index("allocate from captures' pool") < log.index("begin capture (relaxed)")
    del log[:]
    model.fit(x, y, epochs=1, verbose=0)  # made[0] lives on: its graph could still be replayed
    assert made[1].graph is not None and made[1].pool is not pool and made[1].pool is not None
    assert "free blocks" not in log  # the shared pool is left alone


@pytest.mark.parametrize("value, error", [(0, ValueError), (2.0, TypeError), ("4", TypeError)])
def test_compile_checks_steps_per_execution(value, error):
    with pytest.raises(error, match=r"steps_per_execution must be an integer of at least 1"):
        new_model().compile(loss="mse", steps_per_execution=value)


def test_steps_per_execution_is_kept_by_add_and_saved(tmp_path):
    model = Sequential([Dense(4, input_shape=(3,))])
    model.compile(loss="mse", steps_per_execution=8)
    model.add(Dense(2))
    assert model.steps_per_execution == 8
    model.save(tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").steps_per_execution == 8
