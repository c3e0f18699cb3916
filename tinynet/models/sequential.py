"""Sequential: a stack of layers, each feeding the next, and its training step (``train_step``)."""
import math

from tinynet import arguments, backend, losses, metrics as metrics_module, optimizers
from tinynet.callbacks import EpochProgress, History
from tinynet.layers.layer import check_input_shape, snake_case, unique_name
from tinynet.models import graph, inputs, placement, rollback
from tinynet.metrics.running_means import RunningMeans
from tinynet.models.batches import Batches, slices
from tinynet.models.layer_checks import check_layers
from tinynet.models.summary import print_summary
from tinynet.utils import Progbar


class Sequential:
    """``Sequential([Dense(512, activation='relu', input_shape=(784,)), ...])``."""

    def __init__(self, layers=None, name="sequential"):
        inputs.check_model_arguments(layers, name)
        self.name, self.layers, self.metrics = name, [], []
        self.optimizer = self.loss = self.train_loss = self.history = None
        self.backend = backend.get_backend()  # where the weights live; placement.follow_backend moves them
        for layer in layers or ():
            self.add(layer)

    # --- building -----------------------------------------------------------
    def add(self, layer):
        """Append a layer, named as Keras names it (dense, dense_1, ...) if it has no name.
        A layer belongs to one model, once: it caches its input for the backward pass."""
        inputs.check_new_layer(self, layer)
        given = layer.name
        layer.name = given or unique_name(snake_case(type(layer).__name__), {other.name for other in self.layers})
        self.layers.append(layer)
        try:
            if self.layers[0].input_shape is not None:
                self.build(self.layers[0].input_shape)
            if self.loss is not None:
                self.compile(self.optimizer, self.loss, self.metrics, self.jit_compile,
                             self.steps_per_execution)  # the last layer changed
        except Exception:  # the model stays as it was
            self.layers.pop()
            layer.name = given
            raise
        layer.model = self

    def build(self, input_shape):
        """Create every layer's parameters for inputs of ``input_shape`` (batch axis first)."""
        placement.follow_backend(self)
        shape = (None, *tuple(input_shape)[1:])
        for i, layer in enumerate(self.layers):
            layer.needs_input_gradient = i > 0  # nothing uses dL/dx of the data
            inputs.check_layer_input(layer, shape)
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

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, jit_compile="auto", steps_per_execution=1):
        """Choose the optimizer, loss and metrics, by object or Keras name, and ``jit_compile`` and
        ``steps_per_execution`` (CUDA graphs on CuPy, and the steps each holds: models/graph.py). A model ending
        in a softmax, with crossentropy, trains on the logits z."""
        self.optimizer, self.loss = optimizers.get(optimizer), losses.get(loss)
        self.metrics, self.jit_compile = metrics_module.get_list(metrics), graph.check_jit_compile(jit_compile)
        self.steps_per_execution = arguments.integer(steps_per_execution, "steps_per_execution")
        self.train_loss = losses.loss_on_logits(self.loss, self.layers[-1]) if self.layers else self.loss
        self.loss_applies_softmax = self.train_loss is not self.loss  # the last layer stops before its softmax

    # --- one training step: forward, loss, backward, update ---------------
    def train_step(self, x, y):
        """One step of gradient descent on one batch (backend arrays); returns (loss, y_hat)."""
        *hidden, last = self.layers
        for layer in hidden:
            x = layer.forward(x, training=True)  # forward: each layer's output is the next one's input
        if self.loss_applies_softmax:  # train on the logits z, the loss applies the softmax (compile chose)
            y_hat = last.forward_linear(x)  # y_hat is z here
        else:
            y_hat = last.forward(x, training=True)
        loss = self.train_loss.forward(y, y_hat)  # L
        dy = self.train_loss.backward()  # dL/dy_hat (dL/dz on the logits path)
        dy = last.backward_linear(dy) if self.loss_applies_softmax else last.backward(dy)
        for layer in reversed(hidden):
            dy = layer.backward(dy)  # backward: dL/d(output) -> dL/d(input), the layer before's dL/d(output)
        self.optimizer.apply(self.trainable_gradients(), self.trainable_params())  # update, e.g. RMSprop's
        return loss, y_hat

    def test_step(self, x, y):
        """The loss and y_hat on one batch, in inference mode, along the step's path (evaluate, validation)."""
        *hidden, last = self.layers
        for layer in hidden:
            x = layer.forward(x)
        y_hat = last.forward_linear(x) if self.loss_applies_softmax else last.forward(x)
        return self.train_loss.forward(y, y_hat), y_hat

    def forward(self, x):
        """The model's output, in inference mode: each layer's forward pass in turn, ``y = f_L(...f_1(x))``."""
        check_input_shape(x, self.input_shape, "model.forward: the model")
        for layer in self.layers:
            x = layer.forward(x)
        return x

    @property
    def trainable(self):
        """``model.trainable = False`` freezes every layer, as in Keras."""
        return any(layer.trainable for layer in self.layers)

    @trainable.setter
    def trainable(self, value):
        for layer in self.layers:
            layer.trainable = arguments.flag(value, "trainable")

    def trainable_params(self):
        """The arrays the optimizer updates: every parameter of every layer whose ``trainable`` is True."""
        return [p for layer in self.layers if layer.trainable for p in layer.params.values()]

    def trainable_gradients(self):
        return [g for layer in self.layers if layer.trainable for g in layer.grads.values()]

    # --- training and inference ---------------------------------------------
    def fit(self, x, y, batch_size=32, epochs=1, verbose="auto", validation_data=None, shuffle=True,
            validation_split=0.0, validation_batch_size=None):
        """Train for ``epochs`` passes over (x, y) in mini-batches; returns a ``History``."""
        inputs.require_compiled(self, "fit")
        batch_size, verbose = inputs.batching(batch_size, verbose)
        epochs, shuffle = arguments.integer(epochs, "epochs", minimum=0), arguments.flag(shuffle, "shuffle")
        validation_batch_size = inputs.validation_batch(validation_batch_size, batch_size)
        x, y, validation_data = inputs.training_data(self, x, y, validation_data, validation_split)
        self.optimizer.build(self.trainable_params())  # refuses another model's optimizer before any work
        check_layers(self, x, y, batch_size)  # layers of your own: their shapes and grads, on one batch, by name
        data, means = Batches(x, y, batch_size, shuffle), RunningMeans(self.metrics)
        fit_step = graph.training_step(self)  # self.fit_step, or on CuPy its CUDA graph's replay
        self.history = History(params={"verbose": verbose, "epochs": epochs, "steps": data.steps})
        for epoch in range(epochs):
            saved = rollback.snapshot(self)  # what a non-finite loss rolls back to
            data.new_epoch()  # a new order of the samples
            means.reset()
            with EpochProgress(epoch, epochs, data.steps, means, verbose,
                               on_failure=lambda what: rollback.undo(self, saved, what, epoch)) as progress:
                for step in range(data.steps):
                    fit_step(data, step, means)  # the step, on batch `step`; its loss and metrics summed
                    progress.update(step)  # the progress bar and the non-finite check, when due
                progress.check_finite()  # every step's loss, then the weights after the last update
                rollback.undo_if_not_finite(self, saved, epoch=epoch)
                logs = means.read()
                if validation_data is not None:
                    validation = self._evaluate(*validation_data, validation_batch_size)
                    logs.update({f"val_{k}": v for k, v in validation.items()})
                self.history.append(epoch, logs, seconds=progress.end(logs))
        return self.history

    def fit_step(self, data, step, means):
        """What ``fit`` does for each batch: ``train_step`` on batch ``step`` of ``data`` (a ``Batches``), and
        its loss and metrics added to ``means``, all on the device: what models/graph.py captures on a GPU."""
        x, y = data.batch(step)
        loss, y_hat = self.train_step(x, y)
        means.add(loss, y, y_hat)

    def train_on_batch(self, x, y):
        """One training step on one batch, undone if it goes non-finite; returns its loss, or [loss, metrics]."""
        inputs.require_compiled(self, "train_on_batch")
        x, y = inputs.prepare_xy(self, x, y, "x and y")
        self.optimizer.build(self.trainable_params())
        check_layers(self, x, y, x.shape[0])
        saved = rollback.snapshot(self)
        loss, y_hat = self.train_step(x, y)
        rollback.undo_if_not_finite(self, saved, loss)
        return [float(loss), *(float(m(y, y_hat)) for m in self.metrics)] if self.metrics else float(loss)

    def evaluate(self, x, y, batch_size=32, verbose="auto"):
        """``[loss, accuracy, ...]`` on (x, y), or the loss alone without metrics."""
        inputs.require_compiled(self, "evaluate")
        batch_size, verbose = inputs.batching(batch_size, verbose)
        x, y = inputs.prepare_xy(self, x, y, "x and y")
        logs = self._evaluate(x, y, batch_size, verbose=verbose)
        return [logs["loss"], *(logs[m.name] for m in self.metrics)] if self.metrics else logs["loss"]

    def predict(self, x, batch_size=32, verbose="auto"):
        """The model's outputs for ``x``, as a NumPy array."""
        batch_size, verbose = inputs.batching(batch_size, verbose)
        x = inputs.prepare_x(self, x, "x")
        if x.shape[0] == 0:
            return backend.to_numpy(backend.zeros((0, *self.output_shape[1:])))
        bar, outputs = Progbar(math.ceil(x.shape[0] / batch_size), verbose=verbose), []
        for step, batch in enumerate(slices(x.shape[0], batch_size)):
            outputs.append(self.forward(x[batch]))
            bar.update(step + 1)
        return backend.to_numpy(backend.xp().concat(outputs, axis=0))

    def _evaluate(self, x, y, batch_size, verbose=0):
        """Loss and metrics over (x, y), batch by batch: a dict of Python floats."""
        means = RunningMeans(self.metrics)
        with EpochProgress(None, 1, math.ceil(x.shape[0] / batch_size), means, verbose) as progress:
            for step, batch in enumerate(slices(x.shape[0], batch_size)):
                loss, y_hat = self.test_step(x[batch], y[batch])
                means.add(loss, y[batch], y_hat)
                progress.update(step)
            logs = means.read()
            progress.end(logs)
        return logs

    # --- weights, summary, saving -------------------------------------------
    def count_params(self):
        inputs.require_built(self, "count_params")
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self):
        """All weights as NumPy arrays, layer by layer: kernel (in, units), then bias (units,)."""
        inputs.require_built(self, "get_weights")
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Set all weights from a list shaped like ``get_weights()``: all, or none when one doesn't fit."""
        inputs.require_built(self, "set_weights")
        placement.follow_backend(self)
        for layer, values in inputs.checked_weights(self, weights):  # every array checked before any is set
            layer.assign_weights(values)

    def summary(self, print_fn=None, line_length=None):
        """Print the layers, their output shapes and parameter counts, as Keras does."""
        inputs.require_built(self, "summary")
        print_summary(self, print_fn, line_length)

    def save(self, filepath, overwrite=True):
        """Write the architecture, weights and compile settings to a ``.npz`` file, which
        ``tinynet.models.load_model(filepath)`` reads back (the format: ``tinynet.models.saving``)."""
        from tinynet.models import saving  # imported here: saving itself imports Sequential
        saving.save_model(self, filepath, overwrite=overwrite)
