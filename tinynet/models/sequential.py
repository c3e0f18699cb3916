"""Sequential: a stack of layers, each feeding the next, trained like a Keras model."""
import math
import warnings

import numpy

from tinynet import arguments, backend, losses, metrics as metrics_module, optimizers
from tinynet.callbacks import EpochProgress, History
from tinynet.callbacks.progress import first_non_finite
from tinynet.layers import Layer, Softmax
from tinynet.layers.layer import check_input_shape, snake_case
from tinynet.losses import CategoricalCrossentropy, SoftmaxCrossentropy
from tinynet.models.summary import print_summary
from tinynet.utils import Progbar, random


class Sequential:
    """``Sequential([Dense(512, activation='relu', input_shape=(784,)), ...])``."""

    def __init__(self, layers=None, name="sequential"):
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string such as 'mnist', got {name!r}.")
        self.name, self.layers, self.metrics = name, [], []
        self.optimizer = self.loss = self.history = None
        if isinstance(layers, Layer):
            raise TypeError("Sequential takes a list of layers: Sequential([Dense(...), ...]).")
        for layer in layers or ():
            self.add(layer)

    # --- building -----------------------------------------------------------
    def add(self, layer):
        """Append a layer, named as Keras names it (dense, dense_1, ...) if it has no name.
        A layer belongs to one model, once: it caches its input for the backward pass."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a tinynet layer such as Dense(10), got {layer!r}.")
        if layer.model is not None:
            where = "this model" if layer.model is self else f"the model {layer.model.name!r}"
            raise ValueError(f"Layer {layer.name!r} is already in {where}; a layer can be used once. "
                             "Create a new layer for each place, e.g. Dense(10), and copy weights across "
                             "with new.set_weights(old.get_weights()) if you want them equal.")
        given, taken = layer.name, {other.name for other in self.layers}
        if given in taken:
            raise ValueError(f"The model has a layer named {given!r} already; names must be unique "
                             "(the saved weights are filed under them). Give another name, or none.")
        if given is None:  # Keras's names: dense, dense_1, dense_2, ...
            base, i = snake_case(type(layer).__name__), 0
            layer.name = base
            while layer.name in taken:
                i += 1
                layer.name = f"{base}_{i}"
        self.layers.append(layer)
        try:
            if self.layers[0].input_shape is not None:
                self.build(self.layers[0].input_shape)
        except Exception:  # the model stays as it was
            self.layers.pop()
            layer.name = given
            raise
        layer.model = self
        if self.loss is not None:
            self._plan_training()  # the last layer changed

    def build(self, input_shape):
        """Create every layer's parameters for inputs of ``input_shape`` (batch axis first)."""
        shape = (None, *tuple(input_shape)[1:])
        for i, layer in enumerate(self.layers):
            layer.needs_input_gradient = i > 0  # nothing uses dL/dx of the data
            if layer.input_shape is not None and tuple(layer.input_shape[1:]) != shape[1:]:
                raise ValueError(f"Layer {layer.name!r} takes inputs of shape {layer.input_shape} (it was built "
                                 f"for them, or given that input_shape), but it receives {shape}. Only the first "
                                 "layer needs an input_shape: remove it from the others.")
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

    # --- one training step: forward, loss, backward, update ---------------
    def forward(self, x):
        """The model's output: each layer's forward pass in turn, ``y = f_L(...f_1(x))``."""
        check_input_shape(x, self.input_shape, "model.forward: the model")
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def train_step(self, x, y):
        """One step of gradient descent on one batch (backend arrays); returns (loss, y_hat)."""
        loss, y_hat = self.compute_gradients(x, y)  # forward pass, loss, backward pass
        self.optimizer.apply(self._gradients(), self._params())  # the update of each parameter, e.g. RMSprop's
        return loss, y_hat

    def compute_gradients(self, x, y):
        """Forward pass, loss, backward pass: fills every layer's ``grads`` (and updates nothing)."""
        loss, y_hat = self.compute_loss(x, y)
        dy = self.train_loss.backward()  # dL/dy_hat (dL/dz, when y_hat is the logits z)
        for backward in reversed(self.train_backward):
            dy = backward(dy)  # dL/d(output) of a layer -> dL/d(input), the previous layer's dL/d(output)
        return loss, y_hat

    def compute_loss(self, x, y):
        """The loss (a 0-d array) on one batch, along the training path; returns (loss, y_hat)."""
        for forward in self.train_forward:
            x = forward(x)  # y_hat: the output, or the logits z when the loss takes them
        return self.train_loss.forward(y, x), x

    def _plan_training(self):
        """Decide once what a training step runs: ``train_forward``, ``train_backward`` and ``train_loss``.
        A model ending in a softmax, trained with crossentropy on its probabilities, trains on the logits z
        instead, as Keras does: the last layer stops before its softmax, and ``SoftmaxCrossentropy`` takes z
        (the same loss, without log(0); dL/dz = (softmax(z) - y) / N)."""
        *hidden, last = self.layers
        forward, backward = [layer.forward for layer in hidden], [layer.backward for layer in hidden]
        loss, activation = self.loss, getattr(last, "activation", None)
        logits = isinstance(loss, SoftmaxCrossentropy) or (isinstance(loss, CategoricalCrossentropy)
                                                           and loss.from_logits)
        if logits and (isinstance(last, Softmax) or isinstance(activation, Softmax)):
            warnings.warn("The model ends in a softmax, but the loss expects logits (from_logits=True): the "
                          "softmax is applied twice. Use loss='categorical_crossentropy', or a last layer "
                          "without activation.", stacklevel=3)
        linear_part = isinstance(activation, Softmax) and hasattr(last, "forward_linear")  # Dense: z = x W + b
        if isinstance(loss, CategoricalCrossentropy) and not logits and (isinstance(last, Softmax) or linear_part):
            loss = SoftmaxCrossentropy()  # on z: a Softmax layer of its own is left out, a Dense stops before it
            if linear_part:
                forward.append(last.forward_linear)
                backward.append(last.backward_linear)
        else:
            forward.append(last.forward)
            backward.append(last.backward)
        self.train_forward, self.train_backward, self.train_loss = forward, backward, loss

    # --- training -----------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer, the loss and the metrics, by object or by Keras name."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'.")
        if metrics is not None and not isinstance(metrics, (list, tuple)):  # a str would be read letter by letter
            raise ValueError(f"metrics must be a list, e.g. metrics=['accuracy'], got {metrics!r}.")
        metrics = [metrics_module.get(m) for m in metrics or ()]
        names = [m.name for m in metrics]
        twice = [name for name in names if names.count(name) > 1]
        if twice:
            raise ValueError(f"metrics lists {twice[0]!r} twice; each metric is reported under its name, once.")
        self.optimizer, self.loss, self.metrics = optimizers.get(optimizer), losses.get(loss), metrics
        if self.layers:
            self._plan_training()

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
        steps = math.ceil(x.shape[0] / batch_size)
        self.history = History(params={"verbose": verbose, "epochs": epochs, "steps": steps})
        for epoch in range(epochs):
            saved = self._copy_state()  # what a non-finite loss rolls back to
            progress = EpochProgress(epoch, epochs, steps, self.metrics, verbose,
                                     on_failure=lambda: self._restore_state(saved))
            for step, (xb, yb) in enumerate(_batches(x, y, batch_size, shuffle)):
                loss, y_hat = self.train_step(xb, yb)  # the step
                progress.update(step, loss, yb, y_hat)  # the bookkeeping: running means, progress bar
            logs = progress.means()
            if validation_data is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate(x_val, y_val, batch_size).items()})
            self.history.append(epoch, logs, seconds=progress.end(logs))
        return self.history

    def train_on_batch(self, x, y):
        """One training step on one batch of NumPy data; returns the batch's loss (before the
        update), or [loss, metrics...] when metrics were compiled."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y, "x and y")
        self.optimizer.build(self._params())
        loss, y_hat = self.compute_gradients(x, y)
        if not math.isfinite(float(loss)):
            raise FloatingPointError(f"The loss of this batch is {float(loss)}: the weights were left unchanged. "
                                     "Usual causes: a learning rate too high, or inputs not scaled.")
        self.optimizer.apply(self._gradients(), self._params())
        return [float(loss), *(float(m(y, y_hat)) for m in self.metrics)] if self.metrics else float(loss)

    def evaluate(self, x, y, batch_size=32, verbose="auto"):
        """``[loss, accuracy, ...]`` on (x, y), or the loss alone without metrics."""
        self._require_compiled("evaluate")
        batch_size, verbose = self._check_batching(batch_size, verbose)
        x, y = self._prepare(x, y, "x and y")
        logs = self._evaluate(x, y, batch_size, verbose=verbose)
        return [logs["loss"], *(logs[m.name] for m in self.metrics)] if self.metrics else logs["loss"]

    def predict(self, x, batch_size=32, verbose="auto"):
        """The model's outputs for ``x``, as a NumPy array."""
        batch_size, verbose = self._check_batching(batch_size, verbose)
        x = self._prepare_x(x, "x")
        if x.shape[0] == 0:
            return numpy.zeros((0, *self.output_shape[1:]), dtype=backend.floatx)
        bar, outputs = Progbar(math.ceil(x.shape[0] / batch_size), verbose=verbose), []
        for step, batch in enumerate(_slices(x.shape[0], batch_size)):
            outputs.append(self.forward(x[batch]))
            bar.update(step + 1)
        return backend.to_numpy(backend.xp().concat(outputs, axis=0))

    def _evaluate(self, x, y, batch_size, verbose=0):
        """Loss and metrics over (x, y), batch by batch: a dict of Python floats."""
        progress = EpochProgress(None, 1, math.ceil(x.shape[0] / batch_size), self.metrics, verbose)
        for step, batch in enumerate(_slices(x.shape[0], batch_size)):
            loss, y_hat = self.compute_loss(x[batch], y[batch])
            progress.update(step, loss, y[batch], y_hat)
        logs = progress.means()
        progress.end(logs)
        return logs

    # --- weights and counts -------------------------------------------------
    def _params(self):
        return [p for layer in self.layers for p in layer.params.values()]

    def _gradients(self):
        return [g for layer in self.layers for g in layer.grads.values()]

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
        """Set all parameters from a list shaped like ``get_weights()``: all, or none when one doesn't fit."""
        self._require_built("set_weights")
        weights, expected = list(weights), len(self._params())
        if len(weights) != expected:
            raise ValueError(f"The model has {expected} weight arrays, but {len(weights)} were given; "
                             "pass a list shaped like model.get_weights().")
        checked = []
        for layer in self.layers:  # every array checked before any is set
            checked += layer.checked_weights(weights[len(checked):len(checked) + len(layer.params)])
        for param, value in zip(self._params(), checked):
            param[...] = value

    def summary(self, print_fn=None, line_length=None):
        """Print the layers, their output shapes and parameter counts, as Keras does."""
        self._require_built("summary")
        print_summary(self, print_fn, line_length)

    # --- checks that turn mistakes into clear messages ----------------------
    def _require_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"Call model.compile(loss=..., ...) before model.{what}(), "
                               "e.g. model.compile(loss='categorical_crossentropy', metrics=['accuracy']).")

    @staticmethod
    def _check_batching(batch_size, verbose):
        """``batch_size`` and ``verbose`` as fit, evaluate and predict take them ('auto' is 1)."""
        verbose = arguments.one_of(verbose, "verbose", ("auto", 0, 1, 2))
        return arguments.integer(batch_size, "batch_size"), 1 if verbose == "auto" else int(verbose)

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"model.{what}() needs the model to be built: give the first layer an "
                             "input_shape, e.g. Dense(512, input_shape=(784,)), or call fit() first.")

    def _prepare_x(self, x, role):
        """Check the inputs against the model and move them to the backend (float32), once."""
        x = arguments.array_of_numbers(x, role)
        if x.ndim == 0:
            raise ValueError(f"{role}: expected an array of samples, one per row, got the single number {x}.")
        if not self.layers:
            raise ValueError("The model has no layers: add some with model.add(...).")
        if not self.built:
            self.build(x.shape)
        check_input_shape(x, self.input_shape, f"{role}: the model")
        integers, dtype = arguments.is_dtype(x, "integral"), x.dtype
        x = backend.to_device(x)
        if integers and x.shape[0] and (top := float(backend.xp().max(x))) > 1:
            warnings.warn(f"{role}: the inputs are integers up to {top:.0f} (dtype {dtype}). A network learns "
                          "poorly from unscaled inputs: scale them to about 0..1 first, e.g. x = x / 255 "
                          "for pixels.", stacklevel=3)
        if x.shape[0] and (row := first_non_finite(x)) is not None:
            raise ValueError(f"{role}: x[{row}] holds NaN or infinity (as float32, whose largest value is "
                             "3.4e38); remove or fix that sample.")
        return x

    def _prepare(self, x, y, role):
        """Check (x, y) for training or evaluation, and move both to the backend, once."""
        x, y = self._prepare_x(x, role), arguments.array_of_numbers(y, role)
        if y.ndim == 0 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{role}: x and y must have the same number of samples, "
                             f"got {x.shape[0]} inputs and {y.shape[0] if y.ndim else 'a single number as'} "
                             "targets.")
        if x.shape[0] == 0:
            raise ValueError(f"{role}: there are no samples (x has shape {tuple(x.shape)}); pass at least one.")
        self.loss.check_shapes(y.shape, (y.shape[0], *self.output_shape[1:]))
        y = backend.to_device(y)
        if (row := first_non_finite(y)) is not None:
            raise ValueError(f"{role}: y[{row}] holds NaN or infinity; remove or fix that sample.")
        self.loss.check_targets(y)
        return x, y

    def save(self, filepath, overwrite=True):
        """Write the architecture, weights and compile settings to a ``.npz`` file, which
        ``tinynet.models.load_model(filepath)`` reads back (the format: ``tinynet.models.saving``)."""
        from tinynet.models import saving  # imported here: saving itself imports Sequential
        saving.save_model(self, filepath, overwrite=overwrite)


def _batches(x, y, batch_size, shuffle):
    """(x, y) cut into mini-batches on the device, in a new random order each epoch when ``shuffle``."""
    xp, n = backend.xp(), x.shape[0]
    order = random.generator().permutation(n) if shuffle else numpy.arange(n)  # on the host
    order = backend.to_device(order, dtype=xp.int64)  # one copy per epoch, then batches are cut on the device
    for batch in _slices(n, batch_size):
        yield xp.take(x, order[batch], axis=0), xp.take(y, order[batch], axis=0)  # this step's samples


def _slices(n, batch_size):
    """Each batch's index: its rows, then ``...`` for the other axes (the last batch may be smaller;
    the array API wants slices within bounds)."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n)), ...
