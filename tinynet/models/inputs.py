"""The checks a model makes of what it is given (layers, batch sizes, data) before any work: each mistake
becomes an error that names the argument and says what to do. Data passing them is moved to the backend."""
import warnings

from tinynet import arguments, backend
from tinynet.layers import Layer
from tinynet.layers.layer import check_input_shape
from tinynet.models import placement
from tinynet.utils.finite import first_non_finite

GPU_VALIDATION_BATCH = 1024  # validation's smallest batch on CuPy (validation_batch)


def check_model_arguments(layers, name):
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string such as 'mnist', got {name!r}.")
    if isinstance(layers, Layer):
        raise TypeError("Sequential takes a list of layers: Sequential([Dense(...), ...]).")


def check_layer_input(layer, shape):
    """A layer given an input_shape (or built already) must receive that shape from the layer before it."""
    if layer.input_shape is not None and tuple(layer.input_shape[1:]) != tuple(shape[1:]):
        raise ValueError(f"Layer {layer.name!r} takes inputs of shape {layer.input_shape} (it was built "
                         f"for them, or given that input_shape), but it receives {shape}. Only the first "
                         "layer needs an input_shape: remove it from the others.")


def check_new_layer(model, layer):
    """A layer may join one model, once, under a name no other layer of it has."""
    if not isinstance(layer, Layer):
        raise TypeError(f"Sequential.add expects a tinynet layer such as Dense(10), got {layer!r}.")
    if "params" not in vars(layer):
        raise TypeError(f"{type(layer).__name__} was not set up as a layer: its __init__ must call "
                        "super().__init__(**kwargs) before anything else, as Keras layers do.")
    if layer.model is not None:
        where = "this model" if layer.model is model else f"the model {layer.model.name!r}"
        raise ValueError(f"Layer {layer.name!r} is already in {where}; a layer can be used once. "
                         "Create a new layer for each place, e.g. Dense(10), and copy weights across "
                         "with new.set_weights(old.get_weights()) if you want them equal.")
    if layer.name is not None and layer.name in {other.name for other in model.layers}:
        raise ValueError(f"The model has a layer named {layer.name!r} already; names must be unique "
                         "(the saved weights are filed under them). Give another name, or none.")


def require_compiled(model, what):
    """Compiled, and each layer's ``trainable`` (which ``layer.trainable = False`` freezes, as in Keras) a flag."""
    if model.loss is None:
        raise RuntimeError(f"Call model.compile(loss=..., ...) before model.{what}(), "
                           "e.g. model.compile(loss='categorical_crossentropy', metrics=['accuracy']).")
    for i, layer in enumerate(model.layers):
        arguments.flag(layer.trainable, f"model.layers[{i}].trainable")
    optimizer = model.optimizer  # settings changed since compile (optimizer.momentum = 5.0): checked anew
    if type(optimizer).__module__.startswith("tinynet."):
        try:
            type(optimizer).from_config(optimizer.get_config())  # its constructor's checks
        except (TypeError, ValueError) as error:
            raise type(error)(f"model.optimizer ({type(optimizer).__name__}): {error}") from None


def require_built(model, what):
    if not model.built:
        raise ValueError(f"model.{what}() needs the model to be built: give the first layer an "
                         "input_shape, e.g. Dense(512, input_shape=(784,)), or call fit() first.")


def checked_weights(model, weights):
    """``set_weights``'s list, cut into each layer's share and checked by it: [(layer, arrays), ...]."""
    if isinstance(weights, dict):
        raise TypeError("set_weights takes a list of arrays in the order get_weights() gives them, not a dict: "
                        "model.set_weights(other.get_weights()).")
    weights, counts = list(weights), [len(layer.weights) for layer in model.layers]
    if len(weights) != sum(counts):
        raise ValueError(f"The model has {sum(counts)} weight arrays, but {len(weights)} were given; "
                         "pass a list shaped like model.get_weights().")
    starts = [sum(counts[:i]) for i in range(len(counts))]
    return [(layer, layer.checked_weights(weights[start:start + n]))
            for layer, start, n in zip(model.layers, starts, counts)]


def batching(batch_size, verbose):
    """``batch_size`` and ``verbose`` as fit, evaluate and predict take them ('auto' is 1)."""
    verbose = arguments.one_of(verbose, "verbose", ("auto", 0, 1, 2))
    return arguments.integer(batch_size, "batch_size"), 1 if verbose == "auto" else int(verbose)


def validation_batch(validation_batch_size, batch_size):
    """fit's ``validation_batch_size``: as given, or (None) ``batch_size`` as in Keras; on CuPy at least
    ``GPU_VALIDATION_BATCH`` (each batch costs the host about a millisecond of calls there, whatever its size;
    the means differ from batch-32 ones by float32 rounding only)."""
    if validation_batch_size is not None:
        return arguments.integer(validation_batch_size, "validation_batch_size")
    return max(batch_size, GPU_VALIDATION_BATCH) if backend.get_backend() == "cupy" else batch_size


def prepare_x(model, x, role):
    """Check the inputs against the model and move them to the backend (float32), once."""
    x = arguments.array_of_numbers(x, role)
    if not model.layers:
        raise ValueError("The model has no layers: add some with model.add(...).")
    if x.ndim == 0:
        raise ValueError(f"{role}: expected an array of samples, one per row, got the single number {x}.")
    placement.follow_backend(model)
    if not model.built:
        model.build(x.shape)
    check_input_shape(x, model.input_shape, f"{role}: the model")
    integers, dtype = arguments.is_dtype(x, "integral"), x.dtype
    x = backend.to_device(x)
    if integers and x.shape[0] and (top := float(backend.xp().max(x))) > 1:
        warnings.warn(f"{role}: the inputs are integers up to {top:.0f} (dtype {dtype}). A network learns "
                      "poorly from unscaled inputs: scale them to about 0..1 first, e.g. x = x / 255 "
                      "for pixels.", stacklevel=4)
    if x.shape[0] and (row := first_non_finite(x)) is not None:
        raise ValueError(f"{role}: x[{row}] holds NaN or infinity (as float32, whose largest value is "
                         "3.4e38); remove or fix that sample.")
    return x


def prepare_xy(model, x, y, role, y_name="y"):
    """Check (x, y) for training or evaluation, and move both to the backend, once."""
    x, y = prepare_x(model, x, role), arguments.array_of_numbers(y, f"{role}: {y_name}")
    if y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{role}: x and {y_name} must have the same number of samples, got {x.shape[0]} inputs "
                         f"and {y.shape[0] if y.ndim else 'a single number as'} targets.")
    if x.shape[0] == 0:
        raise ValueError(f"{role}: there are no samples (x has shape {tuple(x.shape)}); pass at least one.")
    try:
        model.loss.check_shapes(y.shape, (y.shape[0], *model.output_shape[1:]))
        y = backend.to_device(y)
        if (row := first_non_finite(y)) is not None:
            raise ValueError(f"{y_name}[{row}] holds NaN or infinity; remove or fix that sample.")
        model.loss.check_targets(y)
    except ValueError as error:
        raise ValueError(f"{role}: {error}") from None
    return x, y


def training_data(model, x, y, validation_data, validation_split):
    """fit's (x, y) and validation data: ``validation_data=(x_val, y_val)``, or the last ``validation_split``
    of (x, y) held out before shuffling, as in Keras; returns x, y and (x_val, y_val) or None."""
    split = arguments.real(validation_split, "validation_split", "a fraction in [0, 1), such as 0.1",
                           lambda f: 0 <= f < 1)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a tuple (x_val, y_val).")
        return (*prepare_xy(model, x, y, "x and y"),
                prepare_xy(model, *validation_data, "validation_data", y_name="y_val"))
    x, y = prepare_xy(model, x, y, "x and y")
    if not split:
        return x, y, None
    n_train = int(x.shape[0] * (1 - split))  # Keras: the first (1 - split) of the samples train
    if n_train == 0 or n_train == x.shape[0]:
        raise ValueError(f"validation_split={split} of {x.shape[0]} samples leaves "
                         f"{'no training' if n_train == 0 else 'no validation'} samples; use more samples "
                         "or another fraction.")
    return x[:n_train, ...], y[:n_train, ...], (x[n_train:, ...], y[n_train:, ...])
