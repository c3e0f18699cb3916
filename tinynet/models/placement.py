"""Which backend a model's arrays live on, and moving them when ``set_backend`` has changed it since.

Keras keeps a model usable after a backend switch; so does tinynet: the next ``fit``, ``predict``,
``evaluate`` or ``set_weights`` copies every weight, and the optimizer's state, to the new backend."""
from tinynet import backend


def follow_backend(model):
    """Move ``model``'s weights and its optimizer's state to the active backend, if they are elsewhere."""
    if model.backend == backend.get_backend():
        return
    moved = {}  # id(old array) -> new array, so the optimizer's list of parameters follows its layers

    def move(array):
        host = backend.to_numpy(array)
        new = backend.to_device(host, dtype=host.dtype.name)
        moved[id(array)] = new
        return new
    for layer in model.layers:
        layer.params = {key: move(p) for key, p in layer.params.items()}
        layer.non_trainable = {key: move(w) for key, w in layer.non_trainable.items()}
        layer.grads = {}  # the old backend's; the next backward pass fills them anew
    optimizer = model.optimizer
    if optimizer is not None and optimizer.params is not None:
        optimizer.params = [moved[id(p)] for p in optimizer.params]
        optimizer.slots = [None if s is None else move(s) for s in optimizer.slots]
    model.backend = backend.get_backend()
