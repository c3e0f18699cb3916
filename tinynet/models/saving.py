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
Every setting in the JSON is checked (its type, its range, no unknown keys), and
every size it claims is checked against the arrays' headers, and those against the
bytes the archive holds, before anything is built or read: a small file cannot make
``load_model`` allocate gigabytes.

Saving writes a temporary file ``.<name>.tmp-<host>-<pid>-<random>`` in the same
folder and renames it onto the target (``os.replace`` is atomic), so a crash never
leaves half a file where a good one was. A process killed while saving leaves its
temporary file behind; the next save to the same target removes it (on POSIX
systems, once no process of that number runs on this host).
"""
import contextlib
import json
import math
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy

import tinynet
from tinynet import layers as layers_module, losses, optimizers
from tinynet.layers import Dense, ReLU, Softmax
from tinynet.losses import CategoricalCrossentropy, MeanSquaredError
from tinynet.models.sequential import Sequential
from tinynet.utils.atomic_write import write_atomically
from tinynet.optimizers import SGD, RMSprop

FORMAT, FORMAT_VERSION = "tinynet", 1
ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of every zip archive, and so of every .npz
MAX_CONFIG_BYTES = 1 << 24  # 16 MiB of JSON: thousands of times what any architecture needs
MAX_DEFLATE_RATIO = 1032  # deflate packs at most ~1032 bytes into one: a larger claim is a lie


class ModelFileError(ValueError):
    """The file is not a tinynet model, or its weights do not fit its architecture."""


# --- saving -------------------------------------------------------------------------
def save_model(model, filepath, overwrite=True):
    """Write ``model`` to ``filepath`` (a ``.npz`` file): architecture, weights, compile settings."""
    path = Path(filepath)
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
            "metrics": [metric.name for metric in model.metrics]}


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

    Everything in the file is checked before anything is built: the settings' types
    and ranges, and the sizes the settings imply against the stored arrays.
    """
    path = Path(filepath)
    if not path.is_file():
        raise FileNotFoundError(f"No such model file: {path}")
    custom_objects = custom_objects or {}
    with _open_archive(path) as archive:
        entries = _read_entries(archive, path)  # name -> (zip member, shape, dtype): the headers alone
        header = _read_header(path, archive, entries)
        check_settings(header, path, custom_objects, compile)
        with _settings_in(path, ARCHITECTURE):  # the layer objects: settings only, no weights yet
            layers = [_from_config(entry, _layer_classes(custom_objects)) for entry in header["config"]["layers"]]
        _check_sizes(layers, entries, path)  # before any layer allocates its weights
        compiled = header.get("compile_config") if compile else None
        if compiled:
            with _settings_in(path, COMPILE_SETTINGS):
                optimizer = _from_config(compiled["optimizer"], _optimizer_classes(custom_objects))
                loss = _from_config(compiled["loss"], _loss_classes(custom_objects))
        arrays = {name: _read_array(archive, path, name, entries[name][0]) for name in entries if name != "config"}
    broken = [name for name, array in arrays.items() if not numpy.isfinite(array).all()]
    if broken:
        raise ModelFileError(f"{path}: the weights {', '.join(broken)} hold NaN or infinite values: the file is "
                             "damaged, or was written from a model whose training diverged.")
    with _settings_in(path, ARCHITECTURE):
        model = Sequential(layers, name=header["config"]["name"])  # builds: allocates the weights
    _set_weights(model, arrays, path)
    if compiled:
        with _settings_in(path, COMPILE_SETTINGS):
            model.compile(optimizer=optimizer, loss=loss, metrics=compiled["metrics"])
    return model


# --- reading the archive: headers first, data only once every size is checked -------
_UNREADABLE = (OSError, EOFError, ValueError, KeyError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
               zlib.error)


def _unreadable(path, why):
    return ModelFileError(f"{path} is not a tinynet model file: it cannot be read as an .npz archive "
                          f"of plain arrays ({why}).")


def _open_archive(path):
    """The file as a zip archive, as every .npz is."""
    with open(path, "rb") as f:
        start = f.read(len(ZIP_MAGIC))
    if start != ZIP_MAGIC:
        raise ModelFileError(f"{path} is not a tinynet model file: "
                             f"{'it is empty' if not start else 'it is not a zip archive, as every .npz file is'}.")
    try:
        return zipfile.ZipFile(path)
    except _UNREADABLE as e:
        raise _unreadable(path, e) from e


def _read_entries(archive, path):
    """Each array's name -> (zip member, shape, dtype), from the .npy headers alone, with
    the sizes the headers claim checked against the bytes the archive holds for them."""
    entries, file_size = {}, path.stat().st_size
    try:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.filename == name:
                raise ValueError(f"{info.filename} is not a .npy array")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"{info.filename} is packed in a way numpy.savez never packs")
            with archive.open(info) as f:
                version = numpy.lib.format.read_magic(f)
                read_header = (numpy.lib.format.read_array_header_1_0 if version == (1, 0)
                               else numpy.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(f)
                header_size = f.tell()
            if dtype.hasobject:
                raise ValueError(f"{name} holds pickled Python objects; tinynet reads with allow_pickle=False, "
                                 "since unpickling can run code")
            data_size = math.prod(shape) * dtype.itemsize
            packed_limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO)
            if (header_size + data_size != info.file_size or info.compress_size > file_size
                    or info.file_size > packed_limit + 1024):
                raise ValueError(f"{name} claims {data_size} bytes of data, more than the archive holds for it")
            entries[name] = (info, tuple(shape), dtype)
    except _UNREADABLE as e:
        raise _unreadable(path, e) from e
    return entries


def _read_array(archive, path, name, info):
    """One array's data (its size already checked); a truncated or damaged file fails here, clearly."""
    try:
        with archive.open(info) as f:
            return numpy.lib.format.read_array(f, allow_pickle=False)
    except _UNREADABLE as e:
        raise _unreadable(path, f"{name}: {e}") from e


def _read_header(path, archive, entries):
    """The JSON in the ``config`` array, checked to be a tinynet model's."""
    if "config" not in entries:
        names = list(entries)
        raise ModelFileError(f"{path} is not a tinynet model file: it has no 'config' entry "
                             f"(it holds {', '.join(names[:5]) or 'no arrays'}{', ...' if len(names) > 5 else ''}).")
    info = entries["config"][0]
    if info.file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path} is not a tinynet model file: its 'config' is {info.file_size} bytes, "
                             f"more than the {MAX_CONFIG_BYTES} any architecture needs.")
    config = _read_array(archive, path, "config", info)
    try:
        header = json.loads(str(config[()]))
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
    return header


# --- checking every setting in the file before it is used ------------------------------
def _is_number(value):
    return type(value) in (int, float) and math.isfinite(value)


# What each setting may hold: (what to say it should be, the test).
TEXT = ("a string", lambda v: isinstance(v, str))
FLAG = ("true or false", lambda v: isinstance(v, bool))
COUNT = ("a whole number of 1 or more", lambda v: type(v) is int and v >= 1)
SHAPE = ("a list of whole numbers of 1 or more, or null",
         lambda v: v is None or (type(v) is list and len(v) > 0 and all(COUNT[1](d) for d in v)))
NAME_OR_NULL = ("a name such as 'relu', or null", lambda v: v is None or isinstance(v, str))
NON_NEGATIVE = ("a number of 0 or more", lambda v: _is_number(v) and v >= 0)
FRACTION = ("a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1)
NAMES = ("a list of strings", lambda v: type(v) is list and all(isinstance(m, str) for m in v))
LAYERS = ("a list of layers, at least one", lambda v: type(v) is list and len(v) > 0)
OBJECT = ("an object {...}", lambda v: isinstance(v, dict))
OBJECT_OR_NULL = ("an object {...}, or null", lambda v: v is None or isinstance(v, dict))

# The settings of tinynet's own classes, as their get_config methods write them.
# A class of your own (custom_objects) gets only OBJECT: its from_config checks the rest.
SETTINGS = {
    Dense: {"name": TEXT, "input_shape": SHAPE, "units": COUNT, "activation": NAME_OR_NULL, "use_bias": FLAG},
    ReLU: {"name": TEXT, "input_shape": SHAPE},
    Softmax: {"name": TEXT, "input_shape": SHAPE},
    RMSprop: {"learning_rate": NON_NEGATIVE, "rho": FRACTION, "epsilon": NON_NEGATIVE},
    SGD: {"learning_rate": NON_NEGATIVE, "momentum": FRACTION, "nesterov": FLAG},
    CategoricalCrossentropy: {"from_logits": FLAG},
    MeanSquaredError: {},
}
HEADER = {"format": TEXT, "format_version": COUNT, "tinynet_version": TEXT, "class_name": TEXT,
          "config": OBJECT, "compile_config": OBJECT_OR_NULL}
MODEL = {"name": TEXT, "layers": LAYERS}
ENTRY = {"class_name": TEXT, "config": OBJECT}
COMPILE = {"optimizer": OBJECT, "loss": OBJECT, "metrics": NAMES}


def check_settings(header, path, custom_objects, compile=True):
    """Refuse any setting in the file of the wrong type or range, or unknown, naming its key and the file:
    ``config.layers[0].config.units should be a whole number of 1 or more, got 'ten'``."""
    _check_keys(header, HEADER, "", path, required=("config",))
    _check_keys(header["config"], MODEL, "config.", path, required=tuple(MODEL))
    for i, entry in enumerate(header["config"]["layers"]):  # every layer has a name: its arrays are named after it
        _check_entry(entry, _layer_classes(custom_objects), f"config.layers[{i}]", path, required=("name",))
        _check_keys({"name": entry["config"]["name"]}, {"name": TEXT}, f"config.layers[{i}].config.", path)
    names = [entry["config"]["name"] for entry in header["config"]["layers"]]
    if len(set(names)) != len(names):
        raise ModelFileError(f"{path}: config.layers holds two layers of one name ({', '.join(names)}); "
                             "layer names must be unique.")
    if compile and header.get("compile_config") is not None:
        _check_keys(header["compile_config"], COMPILE, "compile_config.", path, required=tuple(COMPILE),
                    fix=COMPILE_FIX)
        _check_entry(header["compile_config"]["optimizer"], _optimizer_classes(custom_objects),
                     "compile_config.optimizer", path, fix=COMPILE_FIX)
        _check_entry(header["compile_config"]["loss"], _loss_classes(custom_objects),
                     "compile_config.loss", path, fix=COMPILE_FIX)


def _check_entry(entry, known, where, path, required=(), fix=""):
    """{'class_name': ..., 'config': {...}}: the entry's keys, the ``required`` keys of its config,
    and all of its config's if the class is tinynet's own."""
    if not isinstance(entry, dict):
        raise ModelFileError(f"{path}: {where} should be {OBJECT[0]}, got {_show(entry)}{fix}.")
    _check_keys(entry, ENTRY, f"{where}.", path, required=tuple(ENTRY), fix=fix)
    _check_keys(entry["config"], SETTINGS.get(known.get(entry["class_name"])), f"{where}.config.", path,
                required=required, fix=fix)


def _check_keys(values, rules, where, path, required=(), fix=""):
    """The ``required`` keys are in ``values``; every key is in ``rules`` and passes its test
    (``rules`` None: any key, any value, for a class of your own)."""
    for key in required:
        if key not in values:
            raise ModelFileError(f"{path}: {where}{key} is missing{fix}.")
    for key, value in values.items() if rules is not None else ():
        if key not in rules:
            raise ModelFileError(f"{path}: {where}{key} is not a setting tinynet knows "
                                 f"(known: {', '.join(rules) or 'none'}){fix}.")
        what, test = rules[key]
        if not test(value):
            raise ModelFileError(f"{path}: {where}{key} should be {what}, got {_show(value)}{fix}.")


def _show(value):
    """A value from the file, for a message: cut short if long."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _classes(module, base):
    """The classes a module exports that derive from ``base``, by name: {'Dense': Dense, ...}."""
    return {name: obj for name, obj in vars(module).items() if isinstance(obj, type) and issubclass(obj, base)}


def _layer_classes(custom_objects):
    return {**_classes(layers_module, layers_module.Layer), **custom_objects}


def _optimizer_classes(custom_objects):
    return {**_classes(optimizers, optimizers.Optimizer), **custom_objects}


def _loss_classes(custom_objects):
    return {**_classes(losses, losses.Loss), **custom_objects}


def _from_config(entry, known):
    """A fresh object from {'class_name': ..., 'config': {...}}, its class looked up in ``known``."""
    name = entry["class_name"]
    if name not in known:
        raise ValueError(f"unknown class {name!r} (known: {', '.join(sorted(known))}); "
                         f"pass your own classes as load_model(path, custom_objects={{{name!r}: {name}}})")
    cls = known[name]
    return cls.from_config(entry["config"]) if hasattr(cls, "from_config") else cls(**entry["config"])


ARCHITECTURE = "the architecture in the file cannot be rebuilt"
COMPILE_SETTINGS = "the compile settings in the file cannot be used"
COMPILE_FIX = "; load with compile=False and compile the model yourself"


@contextlib.contextmanager
def _settings_in(path, what):
    """Turn an error that a constructor raises on the file's settings into a ModelFileError naming the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as e:
        fix = COMPILE_FIX if what == COMPILE_SETTINGS else ""
        raise ModelFileError(f"{path}: {what}: {str(e).rstrip('.')}{fix}.") from e


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
