"""Saving a model to one file and loading it back: ``model.save`` and ``load_model``.

The file is a NumPy ``.npz`` archive: a ``config`` entry, a JSON string (the format and its version, the
model's name, each layer's class and ``get_config()``, the compile settings), and one array per weight,
named ``<layer name>/<weight name>`` (``dense/kernel``). The README's "Saving and loading a model" shows it.
Loading runs no code from the file, and checks everything in it before anything is built.
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
MISMATCH = "the weights do not match the architecture"
COMPILE_FIX = "; load with compile=False and compile the model yourself"


class ModelFileError(ValueError):
    """The file is not a tinynet model, or its weights do not fit its architecture."""


# --- saving -------------------------------------------------------------------------
def save_model(model, filepath, overwrite=True):
    """Write ``model`` to ``filepath`` (a ``.npz`` file): architecture, weights, compile settings.
    A temporary file is written and renamed onto the target (``write_atomically``): never half a file."""
    path = _path(filepath)
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
        arrays.update({f"{layer.name}/{key}": weight for key, weight in zip(layer.params, layer.get_weights())})
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
    """The optimizer and loss (class name and ``get_config()``) and the metrics' names, or None if not compiled.
    What load_model could not rebuild is a TypeError now, rather than a file that cannot be loaded."""
    if model.loss is None:
        return None
    for metric in model.metrics:
        try:
            metrics.get(metric.name)  # load_model finds metrics by name
        except ValueError:
            raise TypeError(f"Cannot save the metric named {metric.name!r}: load_model finds metrics by their "
                            "names, 'accuracy' or 'acc'. Compile with metrics=['accuracy'] to save the model.") from None
    return {"optimizer": _object_config(model.optimizer), "loss": _object_config(model.loss),
            "metrics": [metric.name for metric in model.metrics]}


def _object_config(obj):
    """{'class_name': 'RMSprop', 'config': {'learning_rate': 0.01, ...}}, or a TypeError if a setting would be lost."""
    cls = type(obj)
    init, config = (next(c for c in cls.__mro__ if method in vars(c)) for method in ("__init__", "get_config"))
    if init is not config and issubclass(init, config):  # settings of its own, but an ancestor's get_config
        raise TypeError(f"Cannot save the settings of {cls.__name__}: it takes settings of its own "
                        f"(its __init__), but its get_config is {config.__name__}'s. Give {cls.__name__} a "
                        "get_config() that returns its constructor's arguments.")
    settings = obj.get_config()
    for key, value in settings.items():
        if not isinstance(value, (bool, int, float, str, type(None))):
            raise TypeError(f"Cannot save the settings of {cls.__name__}: {key}={value!r} is not a plain "
                            "number or string.")
    return {"class_name": cls.__name__, "config": settings}


def _path(filepath):
    """``filepath`` as a Path, or a TypeError naming the argument."""
    if not isinstance(filepath, (str, os.PathLike)) or isinstance(filepath, bytes):
        raise TypeError(f"filepath must be a path, a str or os.PathLike such as 'model.npz', got {filepath!r}.")
    return Path(filepath)


# --- loading ------------------------------------------------------------------------
def load_model(filepath, custom_objects=None, compile=True):
    """Rebuild a model saved with ``model.save``: same layers, same weights, compiled as it was.

    ``custom_objects`` maps class names to your own classes (layers, losses, optimizers) that the file
    names; ``compile=False`` skips compiling (and ignores the compile settings in the file).
    """
    path = _path(filepath)
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
            # the arrays' headers only (name -> (zip member, shape, dtype)), their sizes checked against the bytes
            entries = npz.headers(archive, path.stat().st_size)
            header = _read_header(path, archive, entries)
            layers = [_from_config(entry, {**LAYERS, **custom}, f"config.layers[{i}]", path)
                      for i, entry in enumerate(header["config"]["layers"])]  # settings only, no weights yet
            _check_weights(layers, entries, path)  # before any layer allocates its weights
            compiled = header["compile_config"] if compile else None
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
    names = [f"{layer.name}/{key}" for layer in model.layers for key in layer.params]
    _same_names(names, arrays, path)  # news only for layers of your own: their build chose their weights
    try:
        model.set_weights([arrays[name] for name in names])  # the order of model.get_weights()
    except ValueError as e:
        raise ModelFileError(f"{path}: {MISMATCH}: {e}") from e
    if compiled:
        try:
            model.compile(optimizer=optimizer, loss=loss, metrics=compiled["metrics"])
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: compile_config.metrics: {str(e).rstrip('.')}{COMPILE_FIX}.") from e
    return model


def _read_header(path, archive, entries):
    """The JSON in the ``config`` entry, checked to be a tinynet model's and of the right structure
    (the settings in it are checked by the constructors they are given to)."""
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
    _expect(header, "", {"format": None, "format_version": None, "tinynet_version": None, "class_name": None,
                         "config": dict, "compile_config": None}, path)
    _expect(header["config"], "config.", {"name": str, "layers": list}, path)
    if not header["config"]["layers"]:
        raise ModelFileError(f"{path}: config.layers is empty; a model has at least one layer.")
    if header.setdefault("compile_config", None) is not None:
        _expect(header["compile_config"], "compile_config.", {"optimizer": dict, "loss": dict, "metrics": list},
                path, COMPILE_FIX)
    return header


def _expect(values, where, types, path, fix=""):
    """``values``, found at ``where`` in the header, is an object {...} with no keys but those of ``types``;
    those given a type there (not None) are present, of that type."""
    if not isinstance(values, dict):
        raise ModelFileError(f"{path}: {where.rstrip('.')} should be an object {{...}}, got {_show(values)}{fix}.")
    for key in values:
        if key not in types:
            raise ModelFileError(f"{path}: {where}{key} is not a setting tinynet knows "
                                 f"(known: {', '.join(sorted(types))}){fix}.")
    for key, kind in types.items():
        if kind is not None and key not in values:
            raise ModelFileError(f"{path}: {where}{key} is missing{fix}.")
        if kind is not None and not isinstance(values[key], kind):  # never bool: str, list and dict only
            what = {str: "a string", list: "a list", dict: "an object {...}"}[kind]
            raise ModelFileError(f"{path}: {where}{key} should be {what}, got {_show(values[key])}{fix}.")


def _show(value):
    """A value from the file, for a message: cut short if long."""
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _classes(module, base):
    """The classes a module exports that derive from ``base``, by name: {'Dense': Dense, ...}."""
    return {name: obj for name, obj in vars(module).items() if isinstance(obj, type) and issubclass(obj, base)}


LAYERS = _classes(layers_module, layers_module.Layer)
OPTIMIZERS = _classes(optimizers, optimizers.Optimizer)
LOSSES = _classes(losses, losses.Loss)


def _from_config(entry, known, where, path, fix=""):
    """A fresh object from {'class_name': ..., 'config': {...}}: its class looked up in ``known``,
    and every setting checked by its constructor (any error becomes a ModelFileError naming the file)."""
    _expect(entry, f"{where}.", {"class_name": str, "config": dict}, path, fix)
    name = entry["class_name"]
    if name not in known:
        raise ModelFileError(f"{path}: {where}: unknown class {name!r} (known: {', '.join(sorted(known))}); "
                             f"pass your own classes as load_model(path, custom_objects={{{name!r}: {name}}}){fix}.")
    try:
        return known[name].from_config(entry["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: {where} ({name}): {str(e).rstrip('.')}{fix}.") from e


# --- checking sizes before anything is allocated ------------------------------------------
def _check_weights(layers, entries, path):
    """Check the weights the layers will create against the arrays the file holds, in name, shape and
    dtype, from the layers' settings and the arrays' headers alone: so a file whose settings claim a
    huge layer is refused before that layer is built. A layer of your own is taken at its word until
    it is built (its build decides its weights); ``load_model`` checks it then."""
    names = [layer.name for layer in layers]
    if None in names:
        raise ModelFileError(f"{path}: config.layers[{names.index(None)}].config.name is missing.")
    if len(set(names)) != len(names):  # the arrays are filed under the layers' names
        raise ModelFileError(f"{path}: config.layers holds two layers of one name ({', '.join(names)}); "
                             "layer names must be unique.")
    shape, expected = layers[0].input_shape, {}  # '<layer>/<weight>' -> shape, None where not known yet
    for layer in layers:
        if shape is not None and layer.input_shape is not None and layer.input_shape[1:] != shape[1:]:
            raise ModelFileError(f"{path}: {MISMATCH}: layer {layer.name!r} says its inputs have shape "
                                 f"{layer.input_shape}, but it receives {shape}.")
        if type(layer) is Dense:  # its build refuses inputs that are not (batch, features)
            n_in = shape[-1] if shape is not None and len(shape) == 2 else None
            expected[f"{layer.name}/kernel"] = (n_in, layer.units)
            if layer.use_bias:
                expected[f"{layer.name}/bias"] = (layer.units,)
        elif type(layer) not in (ReLU, Softmax):  # a layer of your own: whatever the file holds for it
            expected.update({name: entries[name][1] for name in entries if name.rpartition("/")[0] == layer.name})
        try:
            shape = None if shape is None else tuple(layer.compute_output_shape(shape))
        except Exception:  # a layer of your own may need to be built first: the shapes after it are unknown
            shape = None
    _same_names(list(expected), [name for name in entries if name != "config"], path)
    for name, want in expected.items():
        _, have, dtype = entries[name]
        if dtype.kind not in "fiu":  # set_weights checks shapes, not that the arrays hold numbers
            raise ModelFileError(f"{path}: {MISMATCH}: {name} should be numbers, the file holds {dtype}.")
        if len(have) != len(want) or any(w not in (None, h) for w, h in zip(want, have)):
            layer, key = name.rsplit("/", 1)
            want = tuple("?" if w is None else w for w in want)
            raise ModelFileError(f"{path}: {MISMATCH}: Layer {layer!r}: {key} has shape {want}, but the array "
                                 f"given for it has shape {have}. The file is damaged, or was edited by hand.")


def _same_names(expected, stored, path):
    """The file holds an array for each weight expected, and no other."""
    missing = [name for name in expected if name not in stored]
    extra = [name for name in stored if name not in expected]
    if missing or extra:
        raise ModelFileError(f"{path}: {MISMATCH}: missing {missing or 'none'}, unexpected {extra or 'none'}.")
