"""Check analytic gradients against central differences, in float64 (docs/backprop.md explains why):

    dL/da_i  ~  (L(a + eps e_i) - L(a - eps e_i)) / (2 eps),  accurate to O(eps**2).

Keep inputs away from kinks (ReLU at 0): there is no derivative there, and the check rightly disagrees.
``check_layer(layer, x, training=True)`` checks a layer as a training step runs it; every forward pass
then draws the same random numbers, so Dropout keeps one mask through the check."""
import copy
from reprlib import repr as abridged

import numpy

from tinynet import arguments, backend
from tinynet.layers import Layer
from tinynet.losses import Loss
from tinynet.models import Sequential, inputs
from tinynet.optimizers import Optimizer
from tinynet.utils import random
from tinynet.utils.finite import first_non_finite


class GradcheckReport:
    """Per array: the largest error, and the worst entries (index, analytic, numeric)."""

    def __init__(self, rtol, atol):
        self.rtol, self.atol = rtol, atol
        self.results = {}  # name -> dict(max_abs_error, worst=[(index, analytic, numeric)], ok)

    def add(self, name, analytic, numeric, n_worst=3):
        analytic, numeric = numpy.asarray(analytic, "float64"), numpy.asarray(numeric, "float64")
        if analytic.shape != numeric.shape:
            raise ValueError(f"{name}: the analytic gradient has shape {analytic.shape}, "
                             f"but the array has shape {numeric.shape}.")
        error = numpy.abs(analytic - numeric)
        excess = error - (self.atol + self.rtol * numpy.abs(numeric))  # > 0 where the check fails
        worst = [(numpy.unravel_index(i, error.shape), float(analytic.flat[i]), float(numeric.flat[i]))
                 for i in numpy.argsort(excess, axis=None)[::-1][:n_worst]]
        self.results[name] = {"max_abs_error": float(error.max(initial=0.0)), "ok": bool((excess <= 0).all()),
                              "worst": worst}

    @property
    def ok(self):
        return all(r["ok"] for r in self.results.values())

    def __str__(self):
        lines = [f"gradient check ({'passed' if self.ok else 'FAILED'}; rtol={self.rtol}, atol={self.atol})"]
        for name, r in self.results.items():
            lines.append(f"  {name:<14} {'ok  ' if r['ok'] else 'FAIL'}  "
                         f"max |analytic - numeric| = {r['max_abs_error']:.3e}")
            if not r["ok"]:
                lines += [f"      at {tuple(int(i) for i in idx)}: analytic {a:+.8e}  numeric {n:+.8e}"
                          for idx, a, n in r["worst"]]
        return "\n".join(lines)


def numerical_gradient(f, a, eps=1e-6):
    """dL/da by central differences: nudges each entry of ``a`` in place, then restores it."""
    grad = numpy.zeros(a.shape)
    for index in numpy.ndindex(*a.shape):
        old = float(a[index])
        a[index] = old + eps
        plus = float(f())
        a[index] = old - eps
        minus = float(f())
        a[index] = old
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def _float64(x):
    return backend.to_device(x, dtype="float64")  # NumPy or backend arrays alike


def _params_to_float64(layers):
    for layer in layers:
        layer.params.update({key: _float64(p) for key, p in layer.params.items()})
        layer.non_trainable.update({key: _float64(w) for key, w in layer.non_trainable.items()})


class _NoUpdate(Optimizer):
    """check_model's optimizer: the training step computes every gradient, and this leaves the weights be."""

    def __init__(self):
        super().__init__(learning_rate=1.0)

    def apply(self, grads, params):
        pass


def _start(what, value, kind, example, eps, rtol, atol):
    """``value`` must be a ``kind`` (not its class, nor a name); then the tolerances. Returns eps, a new report."""
    if isinstance(value, type) and issubclass(value, kind):
        raise TypeError(f"{what} expects {example}, got the class {value.__name__}: create one, "
                        f"{value.__name__}(...).")
    if not isinstance(value, kind):
        got = f"an array of shape {tuple(value.shape)}" if hasattr(value, "shape") else abridged(value)
        raise TypeError(f"{what} expects {example}, got {got}; the order is {what}({kind.__name__.lower()}, "
                        "...), data after it.")
    eps = arguments.real(eps, "eps", "a number above 0, such as 1e-6", lambda v: v > 0)  # real() refuses inf
    rtol = arguments.real(rtol, "rtol", "a number of at least 0, such as 1e-5", lambda v: v >= 0)
    atol = arguments.real(atol, "atol", "a number of at least 0, such as 1e-8", lambda v: v >= 0)
    return eps, GradcheckReport(rtol, atol)


def _data(value, name, what):
    """``value`` as a float64 backend array of at least one sample, all finite, or an error naming ``name``."""
    array = arguments.array_of_numbers(value, f"{what}: {name}")
    if array.ndim == 0:
        raise ValueError(f"{what}: {name} must be an array of samples, one per row, got the number {array}.")
    if 0 in array.shape:
        raise ValueError(f"{what}: {name} has no entries (shape {tuple(array.shape)}); pass at least one sample.")
    array = _float64(array)
    if (row := first_non_finite(array)) is not None:
        raise ValueError(f"{what}: {name}[{row}] holds NaN or infinity, where no gradient can be checked; "
                         "fix or remove that sample.")
    return array


def _compare(report, loss, eps, checked):
    """Adds each (name, analytic gradient, the array it is of) to ``report``, beside ``loss()``'s numeric one."""
    for name, analytic, array in checked:
        report.add(name, backend.to_numpy(analytic), numerical_gradient(loss, array, eps))
    return report


def check_layer(layer, x, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0, training=False):
    """Check ``layer.backward`` (dL/dx and every ``grads`` entry) at ``x``, on a float64 copy of ``layer``,
    run as ``layer.forward(x, training=training)``."""
    eps, report = _start("check_layer", layer, Layer, "a layer, such as Dense(3)", eps, rtol, atol)
    seed = None if seed is None else arguments.integer(seed, "seed", minimum=0)
    training = arguments.flag(training, "training")
    x = _data(x, "x", "check_layer")
    if layer.input_shape is not None and tuple(layer.input_shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"check_layer: the layer takes inputs of shape {layer.input_shape}, but x has shape "
                         f"{tuple(x.shape)}: pass an x of shape {(x.shape[0], *layer.input_shape[1:])}.")
    layer = copy.deepcopy(layer)
    layer.needs_input_gradient = True  # even a model's first layer: dL/dx is checked too
    if not layer.built:
        layer.build((None, *x.shape[1:]))
    _params_to_float64([layer])
    draws = random.generator().bit_generator.state  # each forward below starts from it: the same dropout mask

    def forward():
        random.generator().bit_generator.state = draws
        return layer.forward(x, training=True) if training else layer.forward(x)  # as fit, or as predict

    y = forward()  # also caches what backward needs
    r = _float64(numpy.random.default_rng(seed).standard_normal(tuple(y.shape)))
    dx = layer.backward(r)  # L = sum(y * r) for a fixed random r, so dL/dy = r
    checked = [("x", dx, x)] + [(key, layer.grads[key], p) for key, p in layer.params.items()]
    return _compare(report, lambda: backend.xp().sum(forward() * r), eps, checked)


def check_loss(loss, y_true, y_pred, eps=1e-6, rtol=1e-5, atol=1e-8):
    """Check ``loss.backward()`` (dL/dy_pred) at ``y_pred``, in float64."""
    eps, report = _start("check_loss", loss, Loss, "a loss, such as CategoricalCrossentropy()", eps, rtol, atol)
    y_true, y_pred = _data(y_true, "y_true", "check_loss"), _data(y_pred, "y_pred", "check_loss")
    loss.forward(y_true, y_pred)
    return _compare(report, lambda: loss.forward(y_true, y_pred), eps, [("y_pred", loss.backward(), y_pred)])


def check_model(model, x, y, eps=1e-6, rtol=1e-5, atol=1e-8):
    """Check every parameter's gradient along ``train_step`` (as in ``fit``), on a float64 copy."""
    eps, report = _start("check_model", model, Sequential,
                         "a compiled model, such as Sequential([Dense(3, input_shape=(4,))])", eps, rtol, atol)
    if model.loss is None:  # the wording of Sequential's own check
        raise RuntimeError("Call model.compile(loss=..., ...) before check_model(model, x, y), "
                           "e.g. model.compile(loss='categorical_crossentropy', metrics=['accuracy']).")
    model = copy.deepcopy(model)
    inputs.prepare_xy(model, x, y, "check_model")  # fit's checks of x and y (samples, shapes, NaN), on the copy
    x, y = _float64(x), _float64(y)
    _params_to_float64(model.layers)
    model.optimizer = _NoUpdate()
    draws = random.generator().bit_generator.state  # each step below starts from it: the same dropout masks

    def step():
        random.generator().bit_generator.state = draws
        return model.train_step(x, y)[0]  # forward, loss and backward, as fit runs them; no update

    step()
    checked = [(f"{layer.name}.{key}", layer.grads[key], p)
               for layer in model.layers for key, p in layer.params.items()]
    return _compare(report, step, eps, checked)
