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

import numpy

from tinynet import backend


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


def check_layer(layer, x, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0):
    """Check ``layer.backward`` (dL/dx and every ``grads`` entry) at input ``x``.

    A copy of the layer is built for ``x`` and moved to float64; L = sum(y * r)
    for a fixed random r, so every output counts. The layer itself is not changed.
    """
    layer = copy.deepcopy(layer)
    layer.needs_input_gradient = True  # even a model's first layer: dL/dx is checked too
    x = _float64(x)
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
    y_true, y_pred = _float64(y_true), _float64(y_pred)
    loss.forward(y_true, y_pred)
    analytic = backend.to_numpy(loss.backward())
    report = GradcheckReport(rtol, atol)
    report.add("y_pred", analytic, numerical_gradient(lambda: loss.forward(y_true, y_pred), y_pred, eps))
    return report


def check_model(model, x, y, eps=1e-6, rtol=1e-5, atol=1e-8):
    """Check a compiled model's gradients (``compute_gradients``, the path ``fit`` uses)
    for every parameter of every layer, on a float64 copy of the model."""
    model = copy.deepcopy(model)
    x, y = _float64(x), _float64(y)
    if not model.built:
        model.build(x.shape)
    _params_to_float64(model.layers)
    model.compute_gradients(x, y)
    report = GradcheckReport(rtol, atol)

    def loss():
        return model.compute_loss(x, y)[0]

    for layer in model.layers:
        for key, p in layer.params.items():
            report.add(f"{layer.name}.{key}", backend.to_numpy(layer.grads[key]), numerical_gradient(loss, p, eps))
    return report
