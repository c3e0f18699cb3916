"""Saving a model to one file and loading it back: ``model.save`` and ``load_model``.

    model.save("mnist.npz")
    model = tinynet.models.load_model("mnist.npz")   # predicts exactly as before

The file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays; ``numpy.load``
opens it too). It holds:

- ``config``: a string of JSON describing the model, enough to rebuild it::

      {"format": "tinynet", "format_version": 1, "tinynet_version": "0.1.0",
       "class_name": "Sequential",
       "config": {"name": "sequential", "layers": [
           {"class_name": "Dense", "config": {"name": "dense", "input_shape": [784],
                                              "units": 512, "activation": "relu", "use_bias": true}},
           ...]},
       "compile_config": {"optimizer": {"class_name": "RMSprop",
                                        "config": {"learning_rate": 0.001, "rho": 0.9, "epsilon": 1e-07}},
                          "loss": {"class_name": "CategoricalCrossentropy", "config": {"from_logits": false}},
                          "metrics": ["accuracy"]}}

- one array per weight, named ``<layer name>/<weight name>``: ``dense/kernel``,
  ``dense/bias``, ``dense_1/kernel``, ...

Not saved: the optimizer's state (RMSprop's running averages and its step count),
so training a loaded model starts the optimizer afresh, and the ``History``.

Loading never runs code from the file: arrays are read with ``allow_pickle=False``
and the architecture is plain JSON, so a model file is as safe to open as an image.
Every setting in the JSON is checked by the constructor it is given to (its
type, its range, no unknown keys), and every size it claims is checked against
the arrays' headers, and those against the bytes the archive holds
(``tinynet.utils.npz``), before anything is built or read: a small file cannot
make ``load_model`` allocate gigabytes.

Saving writes a temporary file and renames it onto the target
(``tinynet.utils.atomic_write``), so a crash never leaves half a file where a good
one was, and a killed save leaves nothing behind for long.
"""
import json
import os
from pathlib import Path

import numpy

import tinynet
from tinynet import arguments, layers as layers_module, losses, metrics, optimizers
from tinynet.layers import Dense, ReLU, Softmax
from tinynet.models.sequential import Sequential
from tinynet.utils import npz
from tinynet.utils.atomic_write import write_atomically

FORMAT, FORMAT_VERSION = "tinynet", 1
MAX_CONFIG_BYTES = 1 << 24  # 16 MiB of JSON: thousands of times what any architecture needs


class ModelFileError(ValueError):
    """The file is not a tinynet model, or its weights do not fit its architecture."""


# --- saving -------------------------------------------------------------------------
def save_model(model, filepath, overwrite=True):
    """Write ``model`` to ``filepath`` (a ``.npz`` file): architecture, weights, compile settings."""
    path = _path(filepath, "filepath")
    overwrite = arguments.flag(overwrite, "overwrite")
    if path.is_dir():
        raise IsADirectoryError(f"Cannot save to {path}: it is a folder. Give the path of a file, "
                                f"such as {path / 'model.npz'}.")
    if path.suffix != ".npz":
        raise ValueError(f"A tinynet model is saved as a .npz file; give a path ending in .npz, got {str(path)!r}.")
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise FileNotFoundError(f"Cannot save to {path}: the folder {path.parent} {what}. "
                                "Create the folder first (os.makedirs), or save somewhere else.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    model._require_built("save")
    names = [layer.name for layer in model.layers]
    if len(set(names)) != len(names):
        raise ValueError(f"All layer names should be unique to save a model; got {names}.")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "tinynet_version": tinynet.__version__,
              "class_name": type(model).__name__, "config": model_config(model),
              "compile_config": compile_config(model)}
    arrays = {"config": numpy.array(json.dumps(header, indent=1))}  # a 0-d string array, no pickling
    for layer in model.layers:
        for key, weight in zip(layer.params, layer.get_weights()):
            arrays[f"{layer.name}/{key}"] = weight
    broken = [name for name, weight in arrays.items() if name != "config" and not numpy.isfinite(weight).all()]
    if broken:  # a diverged model would overwrite a good file with one that predicts nothing
        raise ValueError(f"Not saved to {path}: the weights {', '.join(broken)} hold NaN or infinite values "
                         "(training diverged: try a lower learning rate, or inputs scaled to 0..1).")
    write_atomically(path, lambda f: numpy.savez(f, **arrays))


def model_config(model):
    """The architecture as JSON-ready values: the model's name and each layer's class and config."""
    return {"name": model.name,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in model.layers]}


def compile_config(model):
    """The optimizer, loss and metrics given to ``compile`` (None if not compiled), each optimizer
    and loss as its class name and ``get_config()``."""
    if model.loss is None:
        return None
    return {"optimizer": _object_config(model.optimizer), "loss": _object_config(model.loss),
            "metrics": [_metric_name(metric) for metric in model.metrics]}


def _metric_name(metric):
    """The name ``compile`` knows the metric by, which is what is saved, or a TypeError now rather than at load."""
    try:
        metrics.get(metric.name)
    except ValueError:
        raise TypeError(f"Cannot save the metric named {metric.name!r}: load_model finds metrics by their "
                        "names, 'accuracy' or 'acc'. Compile with metrics=['accuracy'] to save the model.") from None
    return metric.name


def _path(filepath, name):
    """``filepath`` as a Path, or a TypeError naming the argument."""
    if not isinstance(filepath, (str, os.PathLike)) or isinstance(filepath, bytes):
        raise TypeError(f"{name} must be a path, a str or os.PathLike such as 'model.npz', got {filepath!r}.")
    return Path(filepath)


def _object_config(obj):
    """{'class_name': 'RMSprop', 'config': {'learning_rate': 0.01, ...}}, or a TypeError saying why
    the object's settings cannot be saved (so that nothing is lost without a word)."""
    cls = type(obj)
    owner = next(c for c in cls.__mro__ if "get_config" in vars(c))  # the class whose get_config runs
    if any("__init__" in vars(c) for c in cls.__mro__[:cls.__mro__.index(owner)]):
        raise TypeError(f"Cannot save the settings of {cls.__name__}: it takes settings of its own "
                        f"(its __init__), but its get_config is {owner.__name__}'s. Give {cls.__name__} a "
                        "get_config() that returns its constructor's arguments.")
    config = obj.get_config()
    for key, value in config.items():
        if not isinstance(value, (bool, int, float, str, type(None))):
            raise TypeError(f"Cannot save the settings of {cls.__name__}: {key}={value!r} is not a plain "
                            "number or string.")
    return {"class_name": cls.__name__, "config": config}


# --- loading ------------------------------------------------------------------------
def load_model(filepath, custom_objects=None, compile=True):
    """Rebuild a model saved with ``model.save``: same layers, same weights, compiled as it was.

    ``custom_objects`` maps class names to your own classes (layers, losses,
    optimizers) that the file names; ``compile=False`` skips compiling (and
    ignores the compile settings in the file).

    Everything in the file is checked before anything is built: each setting, by
    the constructor it is given to (``from_config``), and the sizes the settings
    imply against the stored arrays' headers.
    """
    path = _path(filepath, "filepath")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a model file: give the path of the .npz file.")
    if not path.is_file():
        raise FileNotFoundError(f"No such model file: {path}")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict of your classes by name, e.g. {{'MyLayer': MyLayer}}, "
                        f"got {custom_objects!r}.")
    compile = arguments.flag(compile, "compile")
    custom = custom_objects or {}
    try:
        with npz.open_archive(path) as archive:
            entries = npz.headers(archive, path.stat().st_size)  # name -> (zip member, shape, dtype)
            header = _read_header(path, archive, entries)
            layers = [_from_config(entry, {**LAYERS, **custom}, f"config.layers[{i}]", path)
                      for i, entry in enumerate(header["config"]["layers"])]  # settings only, no weights yet
            _check_names(layers, path)
            _check_sizes(layers, entries, path)  # before any layer allocates its weights
            compiled = header.get("compile_config") if compile else None
            if compiled:
                optimizer = _from_config(compiled["optimizer"], {**OPTIMIZERS, **custom},
                                         "compile_config.optimizer", path, COMPILE_FIX)
                loss = _from_config(compiled["loss"], {**LOSSES, **custom}, "compile_config.loss", path, COMPILE_FIX)
            arrays = {name: npz.read(archive, name, entries[name][0]) for name in entries if name != "config"}
    except npz.UnreadableArchive as e:
        raise ModelFileError(f"{path} is not a tinynet model file: {e}.") from e
    broken = [name for name, array in arrays.items() if not numpy.isfinite(array).all()]
    if broken:
        raise ModelFileError(f"{path}: the weights {', '.join(broken)} hold NaN or infinite values: the file is "
                             "damaged, or was written from a model whose training diverged.")
    try:
        model = Sequential(layers, name=header["config"]["name"])  # builds: allocates the weights
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: the architecture in the file cannot be rebuilt: {e}") from e
    _set_weights(model, arrays, path)
    if compiled:
        try:
            model.compile(optimizer=optimizer, loss=loss, metrics=compiled["metrics"])
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: compile_config.metrics: {str(e).rstrip('.')}{COMPILE_FIX}.") from e
    return model


def _read_header(path, archive, entries):
    """The JSON in the ``config`` array, checked to be a tinynet model's, and its structure checked:
    the values themselves are checked by the constructors they are given to."""
    if "config" not in entries:
        names = list(entries)
        raise ModelFileError(f"{path} is not a tinynet model file: it has no 'config' entry "
                             f"(it holds {', '.join(names[:5]) or 'no arrays'}{', ...' if len(names) > 5 else ''}).")
    if entries["config"][0].file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path} is not a tinynet model file: its 'config' is {entries['config'][0].file_size} "
                             f"bytes, more than the {MAX_CONFIG_BYTES} any architecture needs.")
    try:
        header = json.loads(str(npz.read(archive, "config", entries["config"][0])[()]))
    except (ValueError, IndexError) as e:
        raise ModelFileError(f"{path} is not a tinynet model file: its 'config' is not JSON ({e}).") from e
    except RecursionError as e:
        raise ModelFileError(f"{path} is not a tinynet model file: its 'config' is JSON nested too deeply "
                             "to be an architecture.") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a tinynet model file: its 'config' does not say format 'tinynet'.")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} uses tinynet model format version {header.get('format_version')}; "
                             f"this tinynet (version {tinynet.__version__}) reads version {FORMAT_VERSION}.")
    if header.get("class_name") != "Sequential":
        raise ModelFileError(f"{path} holds a {header.get('class_name')!r} model; tinynet loads Sequential models.")
    _expect(header, "", {"format", "format_version", "tinynet_version", "class_name", "config", "compile_config"},
            {"config": dict}, path)
    _expect(header["config"], "config.", {"name", "layers"}, {"name": str, "layers": list}, path)
    if not header["config"]["layers"]:
        raise ModelFileError(f"{path}: config.layers is empty; a model has at least one layer.")
    if header.get("compile_config") is not None:
        _expect(header["compile_config"], "compile_config.", {"optimizer", "loss", "metrics"},
                {"optimizer": dict, "loss": dict, "metrics": list}, path, COMPILE_FIX)
    return header


def _expect(values, where, keys, types, path, fix=""):
    """``values`` is an object with only ``keys``, of which those in ``types`` are there, of that type."""
    if not isinstance(values, dict):
        raise ModelFileError(f"{path}: {where.rstrip('.')} should be an object {{...}}, got {_show(values)}{fix}.")
    for key in values:
        if key not in keys:
            raise ModelFileError(f"{path}: {where}{key} is not a setting tinynet knows "
                                 f"(known: {', '.join(sorted(keys))}){fix}.")
    for key, kind in types.items():
        if key not in values:
            raise ModelFileError(f"{path}: {where}{key} is missing{fix}.")
        if not isinstance(values[key], kind) or isinstance(values[key], bool) and kind is not bool:
            what = {str: "a string", list: "a list", dict: "an object {...}"}[kind]
            raise ModelFileError(f"{path}: {where}{key} should be {what}, got {_show(values[key])}{fix}.")


def _show(value):
    """A value from the file, for a message: cut short if long."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _classes(module, base):
    """The classes a module exports that derive from ``base``, by name: {'Dense': Dense, ...}."""
    return {name: obj for name, obj in vars(module).items() if isinstance(obj, type) and issubclass(obj, base)}


LAYERS = _classes(layers_module, layers_module.Layer)
OPTIMIZERS = _classes(optimizers, optimizers.Optimizer)
LOSSES = _classes(losses, losses.Loss)
COMPILE_FIX = "; load with compile=False and compile the model yourself"


def _from_config(entry, known, where, path, fix=""):
    """A fresh object from {'class_name': ..., 'config': {...}}: its class looked up in ``known``,
    and every setting checked by its constructor (any error becomes a ModelFileError naming the file)."""
    _expect(entry, f"{where}.", {"class_name", "config"}, {"class_name": str, "config": dict}, path, fix)
    name = entry["class_name"]
    if name not in known:
        raise ModelFileError(f"{path}: {where}: unknown class {name!r} (known: {', '.join(sorted(known))}); "
                             f"pass your own classes as load_model(path, custom_objects={{{name!r}: {name}}}){fix}.")
    try:
        return known[name].from_config(entry["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: {where} ({name}): {str(e).rstrip('.')}{fix}.") from e


def _check_names(layers, path):
    """Every layer has a name, and no two the same: the arrays are stored under them."""
    names = [layer.name for layer in layers]
    if None in names:
        raise ModelFileError(f"{path}: config.layers[{names.index(None)}].config.name is missing.")
    if len(set(names)) != len(names):
        raise ModelFileError(f"{path}: config.layers holds two layers of one name ({', '.join(names)}); "
                             "layer names must be unique.")


# --- checking sizes before anything is allocated ------------------------------------------
def _weight_shapes(layer, input_shape):
    """The shapes ``build`` will give the layer's weights, known from its settings alone, so without
    allocating them: for tinynet's own layers; None for a layer of your own (its build decides)."""
    if type(layer) is Dense:
        n_in = input_shape[-1] if input_shape is not None and len(input_shape) == 2 else None
        return {"kernel": (n_in, layer.units), **({"bias": (layer.units,)} if layer.use_bias else {})}
    return {} if type(layer) in (ReLU, Softmax) else None


def _output_shape(layer, input_shape):
    """The layer's output shape before it is built, or None if that cannot be known yet."""
    if input_shape is None:
        return None
    try:
        return tuple(layer.compute_output_shape(input_shape))
    except Exception:  # a layer of your own may need to be built first: then the shapes after it are unknown
        return None


def _check_sizes(layers, entries, path):
    """Check that the weights each of tinynet's own layers will create are the arrays the file holds,
    in name, dtype and shape, using only the arrays' headers: so a file whose settings claim a
    huge layer is refused before that layer is built."""
    problem = "the weights do not match the architecture"
    shape = layers[0].input_shape
    expected, covered = {}, set()
    for layer in layers:
        if shape is not None and layer.input_shape is not None and layer.input_shape[1:] != shape[1:]:
            raise ModelFileError(f"{path}: {problem}: layer {layer.name!r} says its inputs have shape "
                                 f"{layer.input_shape}, but it receives {shape}.")
        weights = _weight_shapes(layer, shape)
        if weights is not None:
            covered.add(layer.name)
            expected.update({(layer.name, key): weight_shape for key, weight_shape in weights.items()})
        shape = _output_shape(layer, shape)
    stored = [name for name in entries if name != "config"]
    missing = [f"{layer}/{key}" for layer, key in expected if f"{layer}/{key}" not in entries]
    extra = [name for name in stored if name.split("/")[0] in covered and tuple(name.split("/", 1)) not in expected]
    if missing or extra:
        raise ModelFileError(f"{path}: {problem}: missing {missing or 'none'}, unexpected {extra or 'none'}.")
    for name in stored:  # set_weights checks shapes, not that the arrays hold numbers
        if entries[name][2].kind not in "fiu":
            raise ModelFileError(f"{path}: {problem}: {name} should be numbers, the file holds {entries[name][2]}.")
    for (layer, key), want in expected.items():
        have = entries[f"{layer}/{key}"][1]
        if len(have) != len(want) or any(w is not None and w != h for w, h in zip(want, have)):
            want = tuple("?" if w is None else w for w in want)
            raise ModelFileError(f"{path}: {problem}: Layer {layer!r}: {key} has shape {want}, but the array "
                                 f"given for it has shape {have}. The file is damaged, or was edited by hand.")


def _set_weights(model, arrays, path):
    """Put each array named '<layer>/<weight>' into that weight, checking names and shapes
    (again: for layers of your own, this is the first check)."""
    expected = [f"{layer.name}/{key}" for layer in model.layers for key in layer.params]
    missing = [name for name in expected if name not in arrays]
    extra = [name for name in arrays if name not in expected]
    if missing or extra:
        raise ModelFileError(f"{path}: the weights do not match the architecture: "
                             f"missing {missing or 'none'}, unexpected {extra or 'none'}.")
    try:
        model.set_weights([arrays[name] for name in expected])  # the same order as model.get_weights()
    except ValueError as e:
        raise ModelFileError(f"{path}: the weights do not match the architecture: {e}") from e
