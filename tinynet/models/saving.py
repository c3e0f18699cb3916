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
Saving writes a temporary file in the same folder and renames it onto the target
(``os.replace`` is atomic), so a crash never leaves half a file where a good one was.
"""
import inspect
import json
import os
import secrets
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy

import tinynet
from tinynet import layers as layers_module, losses, optimizers
from tinynet.models.sequential import Sequential

FORMAT, FORMAT_VERSION = "tinynet", 1
ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of every zip archive, and so of every .npz


class ModelFileError(ValueError):
    """The file is not a tinynet model, or its weights do not fit its architecture."""


# --- saving -------------------------------------------------------------------------
def save_model(model, filepath, overwrite=True):
    """Write ``model`` to ``filepath`` (a ``.npz`` file): architecture, weights, compile settings."""
    path = Path(filepath)
    if path.suffix != ".npz":
        raise ValueError(f"A tinynet model is saved as a .npz file; give a path ending in .npz, got {str(path)!r}.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Cannot save to {path}: the folder {path.parent} does not exist.")
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
    write_atomically(path, lambda f: numpy.savez(f, **arrays))


def model_config(model):
    """The architecture as JSON-ready values: the model's name and each layer's class and config."""
    return {"name": model.name,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in model.layers]}


def compile_config(model):
    """The optimizer, loss and metrics given to ``compile``, or None if not compiled (or not savable)."""
    if model.loss is None:
        return None
    try:
        return {"optimizer": _object_config(model.optimizer), "loss": _object_config(model.loss),
                "metrics": [metric.name for metric in model.metrics]}
    except (AttributeError, TypeError) as e:
        warnings.warn(f"The compile settings are not saved ({e}); the loaded model must be compiled again.",
                      stacklevel=3)
        return None


def _object_config(obj):
    """An optimizer or loss as its class name and constructor arguments, read back from its attributes:
    RMSprop(learning_rate=0.01) -> {'class_name': 'RMSprop', 'config': {'learning_rate': 0.01, ...}}."""
    config = {}
    for name in inspect.signature(type(obj)).parameters:
        value = getattr(obj, name)  # AttributeError if the object does not keep its argument
        value = value.item() if isinstance(value, numpy.generic) else value
        if not isinstance(value, (bool, int, float, str, type(None))):
            raise TypeError(f"{type(obj).__name__}.{name} = {value!r} is not a plain number or string")
        config[name] = value
    return {"class_name": type(obj).__name__, "config": config}


def write_atomically(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it onto ``path``.

    If anything fails, the temporary file is removed and ``path`` is left as it was.
    (The temporary file is created with ``open(..., 'xb')``, not ``tempfile.mkstemp``,
    so the saved file gets the usual permissions rather than owner-only ones.)
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- loading ------------------------------------------------------------------------
def load_model(filepath, custom_objects=None, compile=True):
    """Rebuild a model saved with ``model.save``: same layers, same weights, compiled as it was.

    ``custom_objects`` maps class names to your own classes (layers, losses,
    optimizers) that the file names; ``compile=False`` skips compiling.
    """
    path = Path(filepath)
    if not path.is_file():
        raise FileNotFoundError(f"No such model file: {path}")
    arrays = _read_arrays(path)
    header = _read_header(path, arrays.pop("config", None), list(arrays))
    known = {**_classes(layers_module, layers_module.Layer), **(custom_objects or {})}
    try:
        layers = [_from_config(entry, known) for entry in header["config"]["layers"]]
        model = Sequential(layers, name=header["config"]["name"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: the architecture in the file cannot be rebuilt: {e}") from e
    _set_weights(model, arrays, path)
    if compile and header.get("compile_config"):
        _compile(model, header["compile_config"], custom_objects or {}, path)
    return model


def _read_arrays(path):
    """Every array in the archive, read into memory (so a truncated file fails here, clearly)."""
    with open(path, "rb") as f:
        start = f.read(len(ZIP_MAGIC))
    if start != ZIP_MAGIC:
        raise ModelFileError(f"{path} is not a tinynet model file: "
                             f"{'it is empty' if not start else 'it is not a zip archive, as every .npz file is'}.")
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:
        raise ModelFileError(f"{path} is not a tinynet model file: it cannot be read as an .npz archive "
                             f"of plain arrays ({e}).") from e


def _read_header(path, config, names):
    """The JSON in the ``config`` array, checked to be a tinynet model's."""
    if config is None:
        raise ModelFileError(f"{path} is not a tinynet model file: it has no 'config' entry "
                             f"(it holds {', '.join(names[:5]) or 'no arrays'}{', ...' if len(names) > 5 else ''}).")
    try:
        header = json.loads(str(config[()]))
    except (ValueError, IndexError) as e:
        raise ModelFileError(f"{path} is not a tinynet model file: its 'config' is not JSON ({e}).") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a tinynet model file: its 'config' does not say format 'tinynet'.")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} uses tinynet model format version {header.get('format_version')}; "
                             f"this tinynet (version {tinynet.__version__}) reads version {FORMAT_VERSION}.")
    if header.get("class_name") != "Sequential":
        raise ModelFileError(f"{path} holds a {header.get('class_name')!r} model; tinynet loads Sequential models.")
    return header


def _classes(module, base):
    """The classes a module exports that derive from ``base``, by name: {'Dense': Dense, ...}."""
    return {name: obj for name, obj in vars(module).items() if isinstance(obj, type) and issubclass(obj, base)}


def _from_config(entry, known):
    """A fresh object from {'class_name': ..., 'config': {...}}, its class looked up in ``known``."""
    name = entry["class_name"]
    if name not in known:
        raise ValueError(f"unknown class {name!r} (known: {', '.join(sorted(known))}); "
                         f"pass your own classes as load_model(path, custom_objects={{{name!r}: {name}}})")
    cls = known[name]
    return cls.from_config(entry["config"]) if hasattr(cls, "from_config") else cls(**entry["config"])


def _set_weights(model, arrays, path):
    """Put each array named '<layer>/<weight>' into that weight, checking names, dtypes and shapes."""
    expected = [f"{layer.name}/{key}" for layer in model.layers for key in layer.params]
    missing = [name for name in expected if name not in arrays]
    extra = [name for name in arrays if name not in expected]
    if missing or extra:
        raise ModelFileError(f"{path}: the weights do not match the architecture: "
                             f"missing {missing or 'none'}, unexpected {extra or 'none'}.")
    for name in expected:  # set_weights checks shapes, not that the arrays hold numbers
        if arrays[name].dtype.kind not in "fiu":
            raise ModelFileError(f"{path}: the weights do not match the architecture: {name} should be numbers, "
                                 f"the file holds {arrays[name].dtype}.")
    try:
        model.set_weights([arrays[name] for name in expected])  # the same order as model.get_weights()
    except ValueError as e:
        raise ModelFileError(f"{path}: the weights do not match the architecture: {e}") from e


def _compile(model, config, custom_objects, path):
    """Compile as the saved model was: the same optimizer settings (not its state), loss and metrics."""
    try:
        optimizer = _from_config(config["optimizer"], {**_classes(optimizers, optimizers.Optimizer), **custom_objects})
        loss = _from_config(config["loss"], {**_classes(losses, losses.Loss), **custom_objects})
        model.compile(optimizer=optimizer, loss=loss, metrics=config["metrics"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: the compile settings in the file cannot be used ({e}); "
                             "load with compile=False and compile the model yourself.") from e
