"""Which backend a model's arrays live on, and moving them when ``set_backend`` has changed it since.

Keras keeps a model usable after a backend switch; so does tinynet: the next ``fit``, ``predict``,
``evaluate`` or ``set_weights`` copies every weight, and the optimizer's state, to the new backend."""
import numpy

from tinynet import backend


def to_host(array):
    """A NumPy copy of an array of any backend (not only the active one): CuPy's, array_api_strict's or NumPy's."""
    if hasattr(array, "get") and not isinstance(array, numpy.ndarray):  # CuPy: device -> host
        return array.get()
    if hasattr(array, "to_device") and not isinstance(array, numpy.ndarray):  # array_api_strict
        import array_api_strict
        array = array.to_device(array_api_strict.Device("CPU_DEVICE"))
    return numpy.array(array)


def follow_backend(model):
    """Move ``model``'s weights and its optimizer's state to the active backend, if they are elsewhere."""
    if model.backend == backend.get_backend():
        return
    moved = {}  # id(old array) -> new array, so the optimizer's list of parameters follows its layers

    def move(array):
        new = backend.to_device(to_host(array), dtype=to_host(array).dtype.name)
        moved[id(array)] = new
        return new
    for layer in model.layers:
        layer.params = {key: move(p) for key, p in layer.params.items()}
        layer.state = {key: move(s) for key, s in layer.state.items()}
        layer.grads = {}  # the old backend's; the next backward pass fills them anew
    optimizer = model.optimizer
    if optimizer is not None and optimizer.params is not None:
        optimizer.params = [moved[id(p)] for p in optimizer.params]
        optimizer.slots = [None if s is None else tuple(map(move, s)) if isinstance(s, tuple) else move(s)
                           for s in optimizer.slots]
    model.backend = backend.get_backend()
