"""Check analytic gradients against finite differences, in float64.

For any function L of an array a, the central difference

    dL/da_i  ~  (L(a + eps e_i) - L(a - eps e_i)) / (2 eps)

is accurate to O(eps**2). In float64 with eps = 1e-6 it agrees with a correct
backward pass to about 7 significant digits, so a wrong formula stands out.
(In float32 rounding error alone would be ~1e-2: always check in float64.)

    >>> from tinynet.gradcheck import check_layer
    >>> report = check_layer(MyLayer(), x)    # x: a NumPy array, one batch
    >>> print(report); assert report.ok

Points where the function has a kink (ReLU at 0) have no derivative: keep
inputs away from them, or the check will rightly disagree there.
"""
import copy
import math

import numpy

from tinynet import arguments, backend
from tinynet.callbacks.progress import first_non_finite
from tinynet.layers import Layer
from tinynet.losses import Loss
from tinynet.models import Sequential


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
        worst = numpy.argsort(excess, axis=None)[::-1][:n_worst]
        self.results[name] = {
            "max_abs_error": float(error.max(initial=0.0)),
            "ok": bool((excess <= 0).all()),
            "worst": [(numpy.unravel_index(i, error.shape), float(analytic.flat[i]), float(numeric.flat[i]))
                      for i in worst],
        }

    @property
    def ok(self):
        return all(r["ok"] for r in self.results.values())

    def __str__(self):
        lines = [f"gradient check ({'passed' if self.ok else 'FAILED'}; rtol={self.rtol}, atol={self.atol})"]
        for name, r in self.results.items():
            lines.append(f"  {name:<14} {'ok  ' if r['ok'] else 'FAIL'}  max |analytic - numeric| = {r['max_abs_error']:.3e}")
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
        for key, p in layer.params.items():
            layer.params[key] = _float64(p)


# --- checks of the arguments, before any work ---------------------------------
def _require(value, kind, example, what):
    """``value`` must be an instance of ``kind`` (a layer, a loss, a model), not its class or a name."""
    if isinstance(value, kind):
        return
    if isinstance(value, type) and issubclass(value, kind):
        raise TypeError(f"{what} expects {example}, got the class {value.__name__}: create one, "
                        f"{value.__name__}(...).")
    raise TypeError(f"{what} expects {example}, got {value!r}.")


def _tolerances(eps, rtol, atol):
    return (arguments.real(eps, "eps", "a number above 0, such as 1e-6", lambda v: v > 0),  # real() refuses inf
            arguments.real(rtol, "rtol", "a number of at least 0, such as 1e-5", lambda v: v >= 0),
            arguments.real(atol, "atol", "a number of at least 0, such as 1e-8", lambda v: v >= 0))


def _data(value, name, what):
    """``value`` as a float64 backend array of at least one sample, all finite, or an error naming ``name``."""
    array = arguments.array_of_numbers(value, f"{what}: {name}")
    if array.ndim == 0:
        raise ValueError(f"{what}: {name} must be an array of samples, one per row, got the single number "
                         f"{array}.")
    if math.prod(array.shape) == 0:
        raise ValueError(f"{what}: {name} has no entries (shape {tuple(array.shape)}); pass at least one sample.")
    array = _float64(array)
    row = first_non_finite(array)
    if row is not None:
        raise ValueError(f"{what}: {name}[{row}] holds NaN or infinity, where no gradient can be checked; "
                         "fix or remove that sample.")
    return array


def check_layer(layer, x, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0):
    """Check ``layer.backward`` (dL/dx and every ``grads`` entry) at input ``x``.

    A copy of the layer is built for ``x`` and moved to float64; L = sum(y * r)
    for a fixed random r, so every output counts. The layer itself is not changed.
    """
    _require(layer, Layer, "a layer, such as Dense(3)", "check_layer")
    eps, rtol, atol = _tolerances(eps, rtol, atol)
    if seed is not None:
        seed = arguments.integer(seed, "seed", minimum=0)
    x = _data(x, "x", "check_layer")
    if layer.input_shape is not None and tuple(layer.input_shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"check_layer: the layer takes inputs of shape {layer.input_shape}, but x has shape "
                         f"{tuple(x.shape)}: pass an x of shape {(x.shape[0], *layer.input_shape[1:])}.")
    layer = copy.deepcopy(layer)
    layer.needs_input_gradient = True  # even a model's first layer: dL/dx is checked too
    if not layer.built:
        layer.build((None, *x.shape[1:]))
    _params_to_float64([layer])
    y = layer.forward(x)  # also caches what backward needs
    r = _float64(numpy.random.default_rng(seed).standard_normal(tuple(y.shape)))

    def loss():
        return backend.xp().sum(layer.forward(x) * r)  # L = sum(y * r), so dL/dy = r

    dx = layer.backward(r)
    report = GradcheckReport(rtol, atol)
    report.add("x", backend.to_numpy(dx), numerical_gradient(loss, x, eps))
    for key, p in layer.params.items():
        report.add(key, backend.to_numpy(layer.grads[key]), numerical_gradient(loss, p, eps))
    return report


def check_loss(loss, y_true, y_pred, eps=1e-6, rtol=1e-5, atol=1e-8):
    """Check ``loss.backward()`` (dL/dy_pred) at ``y_pred``, in float64."""
    _require(loss, Loss, "a loss, such as CategoricalCrossentropy()", "check_loss")
    eps, rtol, atol = _tolerances(eps, rtol, atol)
    y_true, y_pred = _data(y_true, "y_true", "check_loss"), _data(y_pred, "y_pred", "check_loss")
    loss.forward(y_true, y_pred)
    analytic = backend.to_numpy(loss.backward())
    report = GradcheckReport(rtol, atol)
    report.add("y_pred", analytic, numerical_gradient(lambda: loss.forward(y_true, y_pred), y_pred, eps))
    return report


def check_model(model, x, y, eps=1e-6, rtol=1e-5, atol=1e-8):
    """Check a compiled model's gradients (``compute_gradients``, the path ``fit`` uses)
    for every parameter of every layer, on a float64 copy of the model."""
    _require(model, Sequential, "a compiled model, such as Sequential([Dense(3, input_shape=(4,))])",
             "check_model")
    if model.loss is None:  # the wording of Sequential's own check
        raise RuntimeError("Call model.compile(loss=..., ...) before check_model(model, x, y), "
                           "e.g. model.compile(loss='categorical_crossentropy', metrics=['accuracy']).")
    eps, rtol, atol = _tolerances(eps, rtol, atol)
    model = copy.deepcopy(model)
    model._prepare(x, y, "check_model")  # fit's checks of x and y (samples, shapes, NaN), on the copy
    x, y = _float64(x), _float64(y)
    _params_to_float64(model.layers)
    model.compute_gradients(x, y)
    report = GradcheckReport(rtol, atol)

    def loss():
        return model.compute_loss(x, y)[0]

    for layer in model.layers:
        for key, p in layer.params.items():
            report.add(f"{layer.name}.{key}", backend.to_numpy(layer.grads[key]), numerical_gradient(loss, p, eps))
    return report
