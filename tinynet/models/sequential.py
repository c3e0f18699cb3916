"""Sequential: a stack of layers, each feeding the next, trained like a Keras model."""
import math
import time

import array_api_compat
import numpy

from tinynet import backend, losses, metrics as metrics_module, optimizers
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
        for layer in layers or ():
            self.add(layer)

    # --- building -----------------------------------------------------------
    def add(self, layer):
        """Append a layer; it gets a Keras-style name (dense, dense_1, ...) if it has none."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a tinynet layer such as Dense(10), got {layer!r}.")
        if layer.name is None:
            taken = {other.name for other in self.layers}
            base = name = snake_case(type(layer).__name__)
            i = 0
            while name in taken:
                i += 1
                name = f"{base}_{i}"
            layer.name = name
        self.layers.append(layer)
        if self.layers[0].input_shape is not None:
            self.build(self.layers[0].input_shape)

    def build(self, input_shape):
        """Create every layer's parameters for inputs of ``input_shape`` (batch axis first)."""
        shape = (None, *tuple(input_shape)[1:])
        for i, layer in enumerate(self.layers):
            layer.needs_input_gradient = i > 0  # nothing uses dL/dx of the data
            if not layer.built:
                layer.build(shape)
            elif tuple(layer.input_shape[1:]) != tuple(shape[1:]):
                raise ValueError(f"Layer {layer.name!r} was built for inputs {layer.input_shape}, "
                                 f"but it receives {shape}.")
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
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self._logits_loss = CategoricalCrossentropy(from_logits=True)
        self.metrics = [metrics_module.get(m) for m in metrics or ()]

    def fit(self, x, y, batch_size=32, epochs=1, verbose="auto", validation_data=None, shuffle=True):
        """Train for ``epochs`` passes over (x, y) in mini-batches; returns a ``History``."""
        self._require_compiled("fit")
        x, y = self._prepare(x, y, "x and y")
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val).")
            x_val, y_val = self._prepare(*validation_data, "validation_data")
        verbose = 1 if verbose == "auto" else verbose
        n = x.shape[0]
        steps = math.ceil(n / batch_size)
        self.history = history = History(params={"verbose": verbose, "epochs": epochs, "steps": steps})
        xp = backend.xp()
        for epoch in range(epochs):
            if verbose and epochs > 1:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar = Progbar(steps, verbose=verbose)
            start = time.perf_counter()
            order = random.generator().permutation(n) if shuffle else numpy.arange(n)  # on the host
            order = backend.to_device(order, dtype=xp.int64)  # one copy per epoch, then batches are cut on the device
            sums = _RunningSums(steps, self.metrics)
            for step in range(steps):
                batch = order[_batch(step, batch_size, n)]  # this step's sample numbers
                xb, yb = xp.take(x, batch, axis=0), xp.take(y, batch, axis=0)
                loss, y_pred = self.train_step(xb, yb)
                sums.add(step, loss, yb, y_pred)
                if step + 1 == steps or (step + 1) % CHECK_EVERY == 0 or bar.due(step + 1):
                    sums.check_finite(epoch, step)
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
        params = [p for layer in self.layers for p in layer.params.values()]
        grads = [g for layer in self.layers for g in layer.grads.values()]
        self.optimizer.apply(grads, params)
        return loss, y_pred

    def train_on_batch(self, x, y):
        """One training step on one batch of NumPy data; returns the batch's loss
        (before the update), or [loss, metrics...] when metrics were compiled."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y, "x and y")
        loss, y_pred = self.train_step(x, y)
        return self._as_results(float(loss), [float(m(y, y_pred)) for m in self.metrics])

    def _as_results(self, loss, metric_values):
        return [loss] + metric_values if self.metrics else loss

    def evaluate(self, x, y, batch_size=32, verbose="auto"):
        """``[loss, accuracy, ...]`` on (x, y), or the loss alone without metrics."""
        self._require_compiled("evaluate")
        x, y = self._prepare(x, y, "x and y")
        logs = self._evaluate(x, y, batch_size, verbose=1 if verbose == "auto" else verbose)
        return self._as_results(logs["loss"], [logs[m.name] for m in self.metrics])

    def predict(self, x, batch_size=32, verbose="auto"):
        """The model's outputs for ``x``, as a NumPy array."""
        x = self._prepare_x(x, "x")
        steps = math.ceil(x.shape[0] / batch_size)
        bar = Progbar(steps, verbose=1 if verbose == "auto" else verbose)
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

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"model.{what}() needs the model to be built: give the first layer an "
                             "input_shape, e.g. Dense(512, input_shape=(784,)), or call fit() first.")

    def _prepare_x(self, x, role):
        """Check the inputs against the model and move them to the backend (float32), once."""
        x = _as_array(x)
        if not array_api_compat.array_namespace(x).isdtype(x.dtype, ("bool", "integral", "real floating")):
            raise TypeError(f"{role}: expected numbers, got an array of dtype {x.dtype}.")
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
        return backend.to_device(x)

    def _prepare(self, x, y, role):
        x = self._prepare_x(x, role)
        y = _as_array(y)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{role}: x and y must have the same number of samples, "
                             f"got {x.shape[0]} inputs and {y.shape[0]} targets.")
        self.loss.check_shapes(y.shape, (y.shape[0], *self.output_shape[1:]))
        return x, backend.to_device(y)

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


def _as_array(data):
    """Lists and the like become NumPy arrays; arrays (NumPy or the backend's) pass through."""
    return data if backend.is_backend_array(data) else numpy.asarray(data)


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

    def check_finite(self, epoch, step):
        xp = backend.xp()
        finite = xp.isfinite(self.batch_losses[:step + 1])
        if bool(xp.all(finite)):
            return
        first = int(xp.argmax(xp.astype(~finite, xp.int8)))  # the first non-finite step
        raise FloatingPointError(
            f"The loss became {float(self.batch_losses[first])} at epoch {epoch + 1}, step {first + 1}: "
            "training stopped. Usual causes: a learning rate too high, inputs not scaled "
            "(divide pixels by 255), or NaN/inf values in the data.")
