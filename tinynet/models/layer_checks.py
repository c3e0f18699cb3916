"""Checks of your own layers, made once before training, so that a layer breaking the contract is named.

The contract (``tinynet/layers/layer.py``): ``forward(x)`` returns an array; ``backward(dy)`` fills one
gradient per parameter, shaped like it, and returns dL/dx shaped like x. tinynet's own layers keep it
(their tests say so), so only models holding layers of your own are checked: one batch, in inference mode."""
from tinynet import backend


def check_layers(model, x, y, batch_size):
    """Run one forward and backward pass layer by layer on the first batch of (x, y), and name the first layer
    that breaks the contract; returns without a pass when every layer is tinynet's own."""
    if all(type(layer).__module__.startswith("tinynet.") for layer in model.layers):
        return
    first = slice(0, min(batch_size, x.shape[0])), ...
    x, y = x[first], y[first]
    shapes = []
    for layer in model.layers:
        shapes.append(tuple(x.shape))
        x = _checked(layer, "forward", layer.forward(x), (x.shape[0], *layer.output_shape[1:]))
    model.loss.forward(y, x)  # the loss on the full output (the step's path may stop at the logits)
    dy = model.loss.backward()
    for i, layer in reversed(list(enumerate(model.layers))):
        dy = layer.backward(dy)
        for key, param in layer.params.items():
            grad = layer.grads.get(key)
            if grad is None or not backend.is_backend_array(grad) or tuple(grad.shape) != tuple(param.shape):
                got = "nothing" if grad is None else f"{type(grad).__name__} of shape {getattr(grad, 'shape', '?')}"
                raise ValueError(f"Layer {layer.name!r}: backward must set self.grads[{key!r}] to dL/d{key}, an "
                                 f"array of shape {tuple(param.shape)} like the parameter; it set {got}.")
        if i > 0:  # the first layer may return None: nothing needs dL/dx of the data
            dy = _checked(layer, "backward", dy, shapes[i], "dL/dx, shaped like its input x")


def _checked(layer, method, out, shape, what="its output y"):
    """``out``, if it is an array of the backend of ``shape``; else a TypeError or ValueError naming the layer."""
    if not backend.is_backend_array(out):
        raise TypeError(f"Layer {layer.name!r} ({type(layer).__name__}): {method} must return {what}, an array; "
                        f"it returned {type(out).__name__}. End {method} with a return statement.")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}): {method} returned an array of shape "
                         f"{tuple(out.shape)}, but {what} must have shape {tuple(shape)}; check {method}, or "
                         "compute_output_shape if the layer changes the shape.")
    return out
