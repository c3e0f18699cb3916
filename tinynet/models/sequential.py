"""Sequential: a stack of layers, each feeding the next, trained like a Keras model."""
import math
import time
import warnings

import numpy

from tinynet import arguments, backend, losses, metrics as metrics_module, optimizers
from tinynet.callbacks import History
from tinynet.layers import Layer, Softmax
from tinynet.layers.layer import snake_case
from tinynet.losses import CategoricalCrossentropy
from tinynet.models.summary import summary_text
from tinynet.utils import Progbar
from tinynet.utils import random

CHECK_EVERY = 100  # steps between checks for a non-finite loss (a host read, i.e. a sync, on a GPU)


class Sequential:
    """``Sequential([Dense(512, activation='relu', input_shape=(784,)), ...])``."""

    def __init__(self, layers=None, name="sequential"):
        self.name = name
        self.layers = []
        self.optimizer = self.loss = None
        self.metrics = []
        self.history = None
        if isinstance(layers, Layer):
            raise TypeError("Sequential takes a list of layers: Sequential([Dense(...), ...]).")
        for layer in layers or ():
            self.add(layer)

    # --- building -----------------------------------------------------------
    def add(self, layer):
        """Append a layer; it gets a Keras-style name (dense, dense_1, ...) if it has none.

        A layer belongs to one model, once: it caches its input for the backward pass.
        """
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a tinynet layer such as Dense(10), got {layer!r}.")
        if layer.model is not None:
            where = "this model" if layer.model is self else f"the model {layer.model.name!r}"
            raise ValueError(f"Layer {layer.name!r} is already in {where}; a layer can be used once. "
                             "Create a new layer for each place, e.g. Dense(10), and copy weights across "
                             "with new.set_weights(old.get_weights()) if you want them equal.")
        unnamed = layer.name is None
        if unnamed:
            taken = {other.name for other in self.layers}
            base = name = snake_case(type(layer).__name__)
            i = 0
            while name in taken:
                i += 1
                name = f"{base}_{i}"
            layer.name = name
        self.layers.append(layer)
        try:
            if self.layers[0].input_shape is not None:
                self.build(self.layers[0].input_shape)
        except Exception:  # the model stays as it was
            self.layers.pop()
            layer.name = None if unnamed else layer.name
            raise
        layer.model = self

    def build(self, input_shape):
        """Create every layer's parameters for inputs of ``input_shape`` (batch axis first)."""
        shape = (None, *tuple(input_shape)[1:])
        for i, layer in enumerate(self.layers):
            layer.needs_input_gradient = i > 0  # nothing uses dL/dx of the data
            if layer.built and tuple(layer.input_shape[1:]) != tuple(shape[1:]):
                raise ValueError(f"Layer {layer.name!r} was built for inputs {layer.input_shape}, "
                                 f"but it receives {shape}.")
            if layer.input_shape is not None and tuple(layer.input_shape[1:]) != tuple(shape[1:]):
                raise ValueError(f"Layer {layer.name!r} was given input_shape={layer.input_shape[1:]}, but the "
                                 f"layer before it outputs {shape}. Only the first layer needs an input_shape: "
                                 "remove it from the others.")
            if not layer.built:
                layer.build(shape)
            shape = layer.output_shape

    @property
    def built(self):
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def input_shape(self):
        return self.layers[0].input_shape if self.layers else None

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built else None

    # --- the two passes -----------------------------------------------------
    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, layers=None):
        """Backpropagate dL/dy through ``layers`` (default: all), last layer first.

        Returns dL/dx of the first layer's input, or None when that layer skips it
        (a first Dense layer does: the data needs no gradient).
        """
        for layer in reversed(self.layers if layers is None else layers):
            dy = layer.backward(dy)
        return dy

    def compute_loss(self, y, y_pred):
        """The loss of ``y_pred = forward(x)`` against targets ``y`` (a 0-d array).

        When the model ends in a softmax and the loss is categorical crossentropy,
        the loss is computed from the softmax's input (the logits), as Keras does:
        it is the same number, but never takes log(0), and its gradient is simply
        dL/dz = (softmax(z) - y) / N (see ``compute_gradients``).
        """
        softmax = self._fused_softmax()
        if softmax is not None:
            return self._logits_loss.forward(y, softmax.z)
        return self.loss.forward(y, y_pred)

    def compute_gradients(self, x, y):
        """One forward and one backward pass: fills every layer's ``grads``.

        Returns ``(loss, y_pred)``. Nothing is updated: that is the optimizer's job.
        """
        y_pred = self.forward(x)
        loss = self.compute_loss(y, y_pred)
        if self._fused_softmax() is not None:
            dz = self._logits_loss.backward()  # dL/dz = (softmax(z) - y) / N: skips the softmax's backward
            last = self.layers[-1]
            dy = dz if isinstance(last, Softmax) else last.backward_linear(dz)
            self.backward(dy, self.layers[:-1])
        else:
            self.backward(self.loss.backward())  # starts from dL/dy_pred
        return loss, y_pred

    def _fused_softmax(self):
        """The final Softmax when the loss is crossentropy on its probabilities, else None."""
        if not isinstance(self.loss, CategoricalCrossentropy) or self.loss.from_logits:
            return None
        last = self.layers[-1]
        softmax = last if isinstance(last, Softmax) else getattr(last, "activation", None)
        return softmax if isinstance(softmax, Softmax) else None

    # --- training -----------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer, the loss and the metrics, by object or by Keras name."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'.")
        if isinstance(metrics, str):  # else 'accuracy' would be read letter by letter
            raise ValueError(f"metrics must be a list, e.g. metrics=[{metrics!r}].")
        metrics = [metrics_module.get(m) for m in metrics or ()]
        names = [m.name for m in metrics]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"metrics lists {name!r} twice; each metric is reported under its name, once.")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self._logits_loss = CategoricalCrossentropy(from_logits=True)
        self.metrics = metrics

    def fit(self, x, y, batch_size=32, epochs=1, verbose="auto", validation_data=None, shuffle=True):
        """Train for ``epochs`` passes over (x, y) in mini-batches; returns a ``History``."""
        self._require_compiled("fit")
        batch_size, verbose = self._check_batching(batch_size, verbose)
        epochs = arguments.integer(epochs, "epochs", minimum=0)
        shuffle = arguments.one_of(shuffle, "shuffle", (True, False))
        if validation_data is not None and (not isinstance(validation_data, (tuple, list))
                                            or len(validation_data) != 2):
            raise ValueError("validation_data must be a tuple (x_val, y_val).")
        x, y = self._prepare(x, y, "x and y")
        if validation_data is not None:
            x_val, y_val = self._prepare(*validation_data, "validation_data")
        self.optimizer.build(self._params())  # refuses another model's optimizer before any work
        n = x.shape[0]
        steps = math.ceil(n / batch_size)
        self.history = history = History(params={"verbose": verbose, "epochs": epochs, "steps": steps})
        xp = backend.xp()
        for epoch in range(epochs):
            if verbose and epochs > 1:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar = Progbar(steps, verbose=verbose)
            start = time.perf_counter()
            saved = self._copy_state()  # to roll back to if the loss stops being finite
            order = random.generator().permutation(n) if shuffle else numpy.arange(n)  # on the host
            order = backend.to_device(order, dtype=xp.int64)  # one copy per epoch, then batches are cut on the device
            sums = _RunningSums(steps, self.metrics)
            for step in range(steps):
                batch = order[_batch(step, batch_size, n)]  # this step's sample numbers
                xb, yb = xp.take(x, batch, axis=0), xp.take(y, batch, axis=0)
                loss, y_pred = self.train_step(xb, yb)
                sums.add(step, loss, yb, y_pred)
                if step + 1 == steps or (step + 1) % CHECK_EVERY == 0 or bar.due(step + 1):
                    sums.check_finite(epoch, step, on_failure=lambda: self._restore_state(saved))
                    if step + 1 < steps:
                        bar.update(step + 1, sums.means().items())
            logs = sums.means()
            if validation_data is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate(x_val, y_val, batch_size).items()})
            history.append(epoch, logs, seconds=time.perf_counter() - start)
            bar.update(steps, logs.items())
        return history

    def train_step(self, x, y):
        """One step of gradient descent on one batch (backend arrays): returns (loss, y_pred)."""
        loss, y_pred = self.compute_gradients(x, y)
        self.apply_gradients()
        return loss, y_pred

    def apply_gradients(self):
        """The optimizer's update of every parameter, from the gradients the backward pass left."""
        grads = [g for layer in self.layers for g in layer.grads.values()]
        self.optimizer.apply(grads, self._params())

    def train_on_batch(self, x, y):
        """One training step on one batch of NumPy data; returns the batch's loss
        (before the update), or [loss, metrics...] when metrics were compiled."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y, "x and y")
        self.optimizer.build(self._params())
        loss, y_pred = self.compute_gradients(x, y)
        if not math.isfinite(float(loss)):
            raise FloatingPointError(f"The loss of this batch is {float(loss)}: the weights were left unchanged. "
                                     "Usual causes: a learning rate too high, or inputs not scaled.")
        self.apply_gradients()
        return self._as_results(float(loss), [float(m(y, y_pred)) for m in self.metrics])

    def _as_results(self, loss, metric_values):
        return [loss] + metric_values if self.metrics else loss

    def evaluate(self, x, y, batch_size=32, verbose="auto"):
        """``[loss, accuracy, ...]`` on (x, y), or the loss alone without metrics."""
        self._require_compiled("evaluate")
        batch_size, verbose = self._check_batching(batch_size, verbose)
        x, y = self._prepare(x, y, "x and y")
        logs = self._evaluate(x, y, batch_size, verbose=verbose)
        return self._as_results(logs["loss"], [logs[m.name] for m in self.metrics])

    def predict(self, x, batch_size=32, verbose="auto"):
        """The model's outputs for ``x``, as a NumPy array."""
        batch_size, verbose = self._check_batching(batch_size, verbose)
        x = self._prepare_x(x, "x")
        if x.shape[0] == 0:
            return numpy.zeros((0, *self.output_shape[1:]), dtype=backend.floatx)
        steps = math.ceil(x.shape[0] / batch_size)
        bar = Progbar(steps, verbose=verbose)
        outputs = []
        for step in range(steps):
            outputs.append(self.forward(x[_batch(step, batch_size, x.shape[0])]))
            bar.update(step + 1)
        return backend.to_numpy(backend.xp().concat(outputs, axis=0))

    def _evaluate(self, x, y, batch_size, verbose=0):
        """Loss and metrics over (x, y), batch by batch: a dict of Python floats."""
        steps = math.ceil(x.shape[0] / batch_size)
        bar = Progbar(steps, verbose=verbose)
        sums = _RunningSums(steps, self.metrics)
        for step in range(steps):
            batch = _batch(step, batch_size, x.shape[0])
            y_pred, y_true = self.forward(x[batch]), y[batch]
            sums.add(step, self.compute_loss(y_true, y_pred), y_true, y_pred)
            if bar.due(step + 1):
                bar.update(step + 1, sums.means().items())
        return sums.means()

    # --- weights and counts -------------------------------------------------
    def _params(self):
        return [p for layer in self.layers for p in layer.params.values()]

    def _copy_state(self):
        """Copies of the weights and the optimizer's state, on the device."""
        arrays = self._params() + [s for s in self.optimizer.slots if s is not None]
        return self.optimizer.iterations, [(a, backend.xp().asarray(a, copy=True)) for a in arrays]

    def _restore_state(self, saved):
        self.optimizer.iterations, arrays = saved
        for array, copy in arrays:
            array[...] = copy

    def count_params(self):
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self):
        """All parameters as NumPy arrays, layer by layer: kernel (in, units), then bias (units,)."""
        self._require_built("get_weights")
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Set all parameters from a list shaped like ``get_weights()``."""
        self._require_built("set_weights")
        weights = list(weights)
        expected = sum(len(layer.params) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"The model has {expected} weight arrays, but {len(weights)} were given; "
                             "pass a list shaped like model.get_weights().")
        for layer in self.layers:
            layer.set_weights(weights[:len(layer.params)])
            weights = weights[len(layer.params):]

    def summary(self, print_fn=None, line_length=None):
        """Print the layers, their output shapes and parameter counts, as Keras does."""
        self._require_built("summary")
        text = summary_text(self, line_length)
        (print_fn or (lambda s: print(s, end="")))(text)

    # --- checks that turn mistakes into clear messages ----------------------
    def _require_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"Call model.compile(loss=..., ...) before model.{what}(), "
                               "e.g. model.compile(loss='categorical_crossentropy', metrics=['accuracy']).")

    @staticmethod
    def _check_batching(batch_size, verbose):
        """``batch_size`` and ``verbose`` as fit, evaluate and predict use them ('auto' is 1)."""
        verbose = arguments.one_of(verbose, "verbose", ("auto", 0, 1, 2))
        return arguments.integer(batch_size, "batch_size"), 1 if verbose == "auto" else int(verbose)

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"model.{what}() needs the model to be built: give the first layer an "
                             "input_shape, e.g. Dense(512, input_shape=(784,)), or call fit() first.")

    def _prepare_x(self, x, role):
        """Check the inputs against the model and move them to the backend (float32), once."""
        x = _numbers(x, role)
        if x.ndim == 0:
            raise ValueError(f"{role}: expected an array of samples, one per row, got the single number {x}.")
        if not self.layers:
            raise ValueError("The model has no layers: add some with model.add(...).")
        if not self.built:
            self.build(x.shape)
        expected = self.input_shape
        if tuple(x.shape[1:]) != tuple(expected[1:]):
            hint = ""
            if x.ndim > len(expected) and math.prod(x.shape[1:]) == math.prod(expected[1:]):
                hint = f" Flatten each sample first: x = x.reshape(len(x), {math.prod(expected[1:])})."
            raise ValueError(f"{role}: the model expects inputs of shape {expected}, "
                             f"got an array of shape {tuple(x.shape)}.{hint}")
        if x.dtype.kind in "ui" and x.size and x.max() > 1:
            warnings.warn(f"{role}: the inputs are integers up to {x.max()} (dtype {x.dtype}). A network learns "
                          "poorly from unscaled inputs: scale them to about 0..1 first, e.g. x = x / 255 "
                          "for pixels.", stacklevel=3)
        return backend.to_device(x)

    def _prepare(self, x, y, role):
        """Check (x, y) for training or evaluation, and move both to the backend, once."""
        x, y = self._prepare_x(x, role), _numbers(y, role)
        if y.ndim == 0 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{role}: x and y must have the same number of samples, "
                             f"got {x.shape[0]} inputs and {y.shape[0] if y.ndim else 'a single number as'} "
                             "targets.")
        if x.shape[0] == 0:
            raise ValueError(f"{role}: there are no samples (x has shape {tuple(x.shape)}); "
                             "pass at least one.")
        self.loss.check_shapes(y.shape, (y.shape[0], *self.output_shape[1:]))
        y = backend.to_device(y)
        for name, data in (("x", x), ("y", y)):
            row = _first_non_finite(data)
            if row is not None:
                raise ValueError(f"{role}: {name}[{row}] holds NaN or infinity; remove or fix that sample.")
        return x, y

    # --- saving -------------------------------------------------------------
    def save(self, filepath, overwrite=True):
        """Write the architecture, weights and compile settings to a ``.npz`` file, which
        ``tinynet.models.load_model(filepath)`` reads back (the format: ``tinynet.models.saving``)."""
        from tinynet.models import saving  # imported here: saving itself imports Sequential
        saving.save_model(self, filepath, overwrite=overwrite)


def _batch(step, batch_size, n):
    """The index of batch number ``step``: its rows, then ``...`` for the other axes
    (the last batch may be smaller; the array API wants slices within bounds)."""
    return slice(step * batch_size, min((step + 1) * batch_size, n)), ...


def _numbers(data, role):
    """``data`` as an array of numbers (NumPy, or the backend's own), or a TypeError naming ``role``."""
    try:
        array = _as_array(data)
    except (TypeError, ValueError) as error:  # ragged lists, for one
        raise TypeError(f"{role}: expected an array of numbers ({error}).") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{role}: expected numbers, got an array of dtype {array.dtype}.")
    return array


def _first_non_finite(a):
    """The index of the first row of ``a`` that holds NaN or infinity, or None (one host read)."""
    xp = backend.xp()
    bad = ~xp.isfinite(xp.reshape(a, (a.shape[0], -1)))
    bad_rows = xp.any(bad, axis=1)
    if not bool(xp.any(bad_rows)):
        return None
    return int(xp.argmax(xp.astype(bad_rows, xp.int8)))


def _as_array(data):
    """Lists and the like become NumPy arrays; arrays (NumPy or the backend's) pass through."""
    return data if hasattr(data, "__array_namespace__") else numpy.asarray(data)


class _RunningSums:
    """The loss and metrics summed over the batches seen so far, kept on the backend.

    ``means()`` reads them back to the host (the only sync), as Keras shows them:
    running means over the samples seen this epoch.
    """

    def __init__(self, steps, metrics):
        self.metrics = metrics
        self.batch_losses = backend.zeros(steps)  # for locating a non-finite loss
        self.sums = {name: 0.0 for name in ["loss"] + [m.name for m in metrics]}
        self.seen = 0

    def add(self, step, loss, y, y_pred):
        n = y.shape[0]
        self.batch_losses[step] = loss
        self.sums["loss"] = self.sums["loss"] + loss * n
        for m in self.metrics:
            self.sums[m.name] = self.sums[m.name] + m(y, y_pred) * n
        self.seen += n

    def means(self):
        """{name: running mean}, sorted by name like Keras's logs (accuracy, loss)."""
        return {name: float(total) / self.seen for name, total in sorted(self.sums.items())}

    def check_finite(self, epoch, step, on_failure):
        """Raise if a loss so far is NaN or infinite, after calling ``on_failure()`` (the rollback)."""
        first = _first_non_finite(self.batch_losses[:step + 1])  # the first non-finite step
        if first is None:
            return
        on_failure()
        raise FloatingPointError(
            f"The loss became {float(self.batch_losses[first])} at epoch {epoch + 1}, step {first + 1}: "
            f"training stopped, and the weights were rolled back to where epoch {epoch + 1} began. "
            "Usual causes: a learning rate too high, or inputs not scaled (divide pixels by 255).")
