"""Saving a model to one file and loading it back: ``model.save`` and ``load_model``.

The file, a NumPy ``.npz`` archive of a JSON ``config`` and one array per weight, is described in docs/saving.md.
Loading runs no code from the file and checks it all before building anything."""
import inspect
import json
import os
import stat
from pathlib import Path
from reprlib import repr as abridged  # a value from the file, cut short for a message

import numpy

import tinynet
from tinynet import arguments, layers as layers_module, losses, metrics, optimizers
from tinynet.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, Layer, MaxPooling2D, ReLU, Softmax
from tinynet.models import inputs
from tinynet.models.sequential import Sequential
from tinynet.utils import npz
from tinynet.utils.atomic_write import write_atomically

FORMAT, FORMAT_VERSION = "tinynet", 1
MAX_CONFIG_BYTES = 1 << 24  # 16 MiB of JSON: thousands of times what any architecture needs
MISMATCH = "the weights do not match the architecture"
COMPILE_FIX = "; load with compile=False and compile the model yourself"
LAYERS, OPTIMIZERS, LOSSES = (  # the classes a file may name, by name: {'Dense': Dense, ...}; not the base classes
    {name: obj for name, obj in vars(module).items()
     if isinstance(obj, type) and issubclass(obj, base) and obj is not base}
    for module, base in [(layers_module, Layer), (optimizers, optimizers.Optimizer), (losses, losses.Loss)])


class ModelFileError(ValueError):
    """The file is not a tinynet model, or its weights do not fit its architecture."""


def save_model(model, filepath, overwrite=True):
    """Write ``model`` to ``filepath`` (a ``.npz`` file), atomically: architecture, weights, compile settings."""
    path, overwrite = _path(filepath), arguments.flag(overwrite, "overwrite")
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
    inputs.require_built(model, "save")
    for i, layer in enumerate(model.layers):  # a name may have been changed by hand since the layer was made
        try:
            arguments.layer_name(layer.name, f"model.layers[{i}].name")
        except ValueError as e:
            raise ValueError(f"Cannot save to {path}: {e} Rename it: model.layers[{i}].name = 'layer_{i}'.") from None
    if len({layer.name for layer in model.layers}) != len(model.layers):  # the weights are filed under them
        raise ValueError(f"Layer names should be unique to save a model; got {[x.name for x in model.layers]}.")
    layer_configs = [_object_config(layer) for layer in model.layers]
    for metric in model.metrics:
        try:
            metrics.get(metric.name)  # as load_model will find it: by its name
        except ValueError:
            raise TypeError(f"Cannot save the metric named {metric.name!r}: load_model finds metrics by name "
                            "('accuracy', 'acc'). Compile with metrics=['accuracy'] to save the model.") from None
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "tinynet_version": tinynet.__version__,
              "class_name": type(model).__name__, "config": {"name": model.name, "layers": layer_configs},
              "compile_config": None if model.loss is None else {"optimizer": _object_config(model.optimizer),
                  "loss": _object_config(model.loss), "metrics": [metric.name for metric in model.metrics],
                  "jit_compile": model.jit_compile, "steps_per_execution": model.steps_per_execution}}
    weights = {f"{layer.name}/{key}": weight  # 'dense/kernel', 'dense/bias', 'dense_1/kernel', ...
               for layer in model.layers for key, weight in zip(layer.weights, layer.get_weights())}
    broken = [name for name, weight in weights.items() if not numpy.isfinite(weight).all()]
    if broken:  # a diverged model would overwrite a good file with one that predicts nothing
        raise ValueError(f"Not saved to {path}: the weights {', '.join(broken)} hold NaN or infinite values "
                         "(training diverged: try a lower learning rate, or inputs scaled to 0..1).")
    write_atomically(path, lambda f: numpy.savez(f, config=numpy.array(json.dumps(header, indent=1)), **weights))


def _object_config(obj, who=None):
    """{'class_name': 'RMSprop', 'config': {...}}, or a TypeError if a setting would be lost or not come back.

    As Keras 3 does, a class of your own whose ``__init__`` takes settings must return each of them from
    ``get_config()``, so that ``from_config(config)``, ``cls(**config)``, rebuilds it as it was saved."""
    cls = type(obj)
    who = who or (f"layer {obj.name!r} ({cls.__name__})" if isinstance(obj, Layer) else cls.__name__)
    settings = obj.get_config()
    if not _tinynets(cls, "__init__"):  # tinynet's own leave out only what the file holds (Dense: its initializers)
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
        named = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        lost = [name for name in named if name not in settings]
        if lost:  # it would load back with the defaults, and predict differently
            raise TypeError(f"Cannot save the settings of {who}: its __init__ takes {', '.join(lost)}, which "
                            f"get_config() does not return. Give {cls.__name__} a get_config() returning its "
                            f"__init__ arguments, such as {{**super().get_config(), {lost[0]!r}: self.{lost[0]}}} "
                            "(and a from_config if __init__ does not take them all back).")
        unknown = [key for key in settings if key not in named]
        takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
        if unknown and not takes_any and _tinynets(cls, "from_config"):  # cls(**config) would fail to load
            raise TypeError(f"Cannot save {who}: get_config() returns {', '.join(unknown)}, which its __init__ "
                            f"does not take. Add **kwargs to {cls.__name__}.__init__ and pass them on with "
                            "super().__init__(**kwargs), or give it a from_config.")
    for key, value in settings.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            raise TypeError(f"Cannot save {who}'s setting {key}={value!r}: a file holds numbers, strings, "
                            "True/False/None and lists of them (Python's float(x), not a NumPy float32).") from None
    if isinstance(getattr(obj, "activation", None), Layer):  # an activation of your own: checked as a layer
        _object_config(obj.activation, f"the activation {type(obj.activation).__name__} of layer {obj.name!r}")
    return {"class_name": cls.__name__, "config": settings}


def _tinynets(cls, method):
    """Whether ``cls`` has tinynet's own ``method`` (not one of a class of your own)."""
    return next(c for c in cls.__mro__ if method in vars(c)).__module__.startswith("tinynet.")


def _path(filepath):
    """``filepath`` as a Path, or a TypeError naming the argument."""
    if not isinstance(filepath, (str, os.PathLike)) or isinstance(filepath, bytes):
        raise TypeError(f"filepath must be a path, a str or os.PathLike such as 'model.npz', got {filepath!r}.")
    return Path(filepath)


def load_model(filepath, custom_objects=None, compile=True):
    """Rebuild a model saved with ``model.save``; ``custom_objects`` maps names to your own classes (Keras's)."""
    path, custom = _path(filepath), _custom_objects(custom_objects)
    compile = arguments.flag(compile, "compile")
    try:
        with _open_regular_file(path) as file, npz.open_archive(file) as archive:  # one file, even if it is
            # replaced meanwhile (a save elsewhere renames a new file onto the path): its size is this file's
            entries = npz.headers(archive, os.fstat(file.fileno()).st_size)  # name -> (zip member, shape, dtype)
            header = _read_header(path, archive, entries)  # takes 'config' out: the rest are weights
            layers = [_from_config(entry, {**LAYERS, **custom}, f"config.layers[{i}]", path)
                      for i, entry in enumerate(header["config"]["layers"])]  # settings only, no weights yet
            _check_weights(layers, entries, path)  # before any layer allocates its weights
            compiled = header.get("compile_config") if compile else None  # None: not compiled
            if compiled is not None:
                _expect(compiled, "compile_config.", {"optimizer": dict, "loss": dict, "metrics": list,
                                                      "jit_compile": None, "steps_per_execution": None},
                        path, COMPILE_FIX)  # None: optional
                jit_compile = compiled.get("jit_compile", "auto")  # absent in files written before it existed
                if not (jit_compile is True or jit_compile is False or jit_compile == "auto"):
                    raise ModelFileError(f"{path}: compile_config.jit_compile should be 'auto', true or false, got "
                                         f"{abridged(compiled['jit_compile'])}{COMPILE_FIX}.")
                steps = compiled.get("steps_per_execution", 1)  # absent in files written before it existed
                if type(steps) is not int or steps < 1:
                    raise ModelFileError(f"{path}: compile_config.steps_per_execution should be a whole number of "
                                         f"at least 1, got {abridged(steps)}{COMPILE_FIX}.")
                optimizer = _from_config(compiled["optimizer"], {**OPTIMIZERS, **custom},
                                         "compile_config.optimizer", path, COMPILE_FIX)
                loss = _from_config(compiled["loss"], {**LOSSES, **custom}, "compile_config.loss", path, COMPILE_FIX)
            arrays = {name: npz.read(archive, name, entries[name][0]) for name in entries}
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
    names = [f"{layer.name}/{key}" for layer in model.layers for key in layer.weights]
    _same_names(names, arrays, path)  # new only for layers of your own: their build chose their weights
    try:
        for layer in model.layers:  # a new model: if one layer's weights do not fit, the whole model is dropped
            layer.set_weights([arrays[f"{layer.name}/{key}"] for key in layer.weights])
    except ValueError as e:
        raise ModelFileError(f"{path}: {MISMATCH}: {e}") from e
    if compiled is not None:
        try:
            model.compile(optimizer=optimizer, loss=loss, metrics=compiled["metrics"], jit_compile=jit_compile,
                          steps_per_execution=steps)
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: compile_config.metrics: {str(e).rstrip('.')}{COMPILE_FIX}.") from e
    return model


def _custom_objects(custom_objects):
    """``custom_objects`` checked: a dict of names to classes of layers, optimizers or losses."""
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict such as {{'MyLayer': MyLayer}}, got {custom_objects!r}.")
    for key, value in custom_objects.items():
        if not (isinstance(value, type) and issubclass(value, (Layer, optimizers.Optimizer, losses.Loss))):
            raise TypeError(f"custom_objects[{key!r}] must be a class of your own (a Layer, Optimizer or Loss), "
                            f"not an object made from it: {{{key!r}: {getattr(value, '__name__', 'MyLayer')}}}, "
                            f"got {abridged(value)}.")
    return custom_objects


def _open_regular_file(path):
    """``path`` opened for reading, once: or an error that says what it is instead of a model file."""
    kind = _kind_of(path)
    if kind == "a folder":
        raise IsADirectoryError(f"{path} is a folder, not a model file: give the path of the .npz file.")
    if kind == "nothing":
        raise FileNotFoundError(f"No such model file: {path}")
    if kind == "a file":
        file = open(path, "rb")
        kind = _kind_of(file)  # the file opened, which another process may have renamed onto the path meanwhile
        if kind == "a file":
            return file
        file.close()
    raise ModelFileError(f"{path} is not a model file but {kind}: give the path of the .npz file saved by model.save.")


def _kind_of(file):
    """What ``file`` (a path, or an open file) is: 'a file', 'a folder', 'nothing', 'a device', ..."""
    try:
        mode = os.fstat(file.fileno()).st_mode if hasattr(file, "fileno") else os.stat(file).st_mode
    except FileNotFoundError:
        return "nothing"
    for test, kind in [(stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket")]:
        if test(mode):
            return kind
    return "not a regular file"


def _read_header(path, archive, entries):
    """The JSON in the ``config`` entry, checked to be a tinynet model's and of the right structure."""
    if "config" not in entries:
        names = list(entries)
        raise ModelFileError(f"{path} is not a tinynet model file: it has no 'config' entry "
                             f"(it holds {', '.join(names[:5]) or 'no arrays'}{', ...' if len(names) > 5 else ''}).")
    info = entries.pop("config")[0]
    if info.file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path} is not a tinynet model file: its 'config' is over {MAX_CONFIG_BYTES} bytes.")
    try:
        header = json.loads(str(npz.read(archive, "config", info)[()]))
    except (ValueError, IndexError, RecursionError) as e:
        why = "JSON nested too deeply to be an architecture" if type(e) is RecursionError else f"not JSON ({e})"
        raise ModelFileError(f"{path} is not a tinynet model file: its 'config' is {why}.") from e
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
    return header


def _expect(obj, where, types, path, fix=""):
    """``obj``, at ``where`` in the header, is an object {...} of keys in ``types``; the typed ones present."""
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path}: {where.rstrip('.')} should be an object {{...}}, got {abridged(obj)}{fix}.")
    for key in obj:
        if key not in types:
            raise ModelFileError(f"{path}: {where}{key} is not a setting tinynet knows "
                                 f"(known: {', '.join(sorted(types))}){fix}.")
    for key, kind in types.items():
        if kind is not None and key not in obj:
            raise ModelFileError(f"{path}: {where}{key} is missing{fix}.")
        if kind is not None and not isinstance(obj[key], kind):
            what = {str: "a string", list: "a list", dict: "an object {...}"}[kind]
            raise ModelFileError(f"{path}: {where}{key} should be {what}, got {abridged(obj[key])}{fix}.")


def _from_config(entry, known, where, path, fix=""):
    """A fresh object from {'class_name': ..., 'config': {...}}, every setting checked by its constructor."""
    _expect(entry, f"{where}.", {"class_name": str, "config": dict}, path, fix)
    name = entry["class_name"]
    if name not in known:
        raise ModelFileError(f"{path}: {where}: unknown class {name!r} (known: {', '.join(sorted(known))}); "
                             f"pass your own classes as load_model(path, custom_objects={{{name!r}: {name}}}){fix}.")
    config = entry["config"]
    if isinstance(config.get("activation"), dict):  # an activation layer of your own: found as layers are
        config = {**config, "activation": _from_config(config["activation"], known, f"{where}.config.activation",
                                                       path, fix)}
    try:
        return known[name].from_config(config)
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: {where} ({name}): {str(e).rstrip('.')}{fix}.") from e


def _check_weights(layers, entries, path):
    """Check the weights the layers will create against the arrays' names, shapes and dtypes, before any is
    built: a file claiming a huge layer is refused. A layer of your own is checked once built (load_model)."""
    names = [layer.name for layer in layers]
    if None in names:
        raise ModelFileError(f"{path}: config.layers[{names.index(None)}].config.name is missing.")
    if len(set(names)) != len(names):  # the arrays are filed under the layers' names
        twice = next(name for name in names if names.count(name) > 1)
        raise ModelFileError(f"{path}: config.layers holds two layers named {twice!r}.")
    shape, expected = layers[0].input_shape, {}  # '<layer>/<weight>' -> shape, None where not known yet
    for layer in layers:
        if shape is not None and layer.input_shape is not None and layer.input_shape[1:] != shape[1:]:
            raise ModelFileError(f"{path}: {MISMATCH}: layer {layer.name!r} says its inputs have shape "
                                 f"{layer.input_shape}, but it receives {shape}.")
        if type(layer) is Dense:  # its build refuses inputs that are not (batch, features)
            n_in = shape[-1] if shape is not None and len(shape) == 2 else None
            expected[f"{layer.name}/kernel"] = (n_in, layer.units)
            expected.update({f"{layer.name}/bias": (layer.units,)} if layer.use_bias else {})
        elif type(layer) is Conv2D:  # kernel (kh, kw, channels in, filters)
            channels = shape[-1] if shape is not None and len(shape) == 4 else None
            expected[f"{layer.name}/kernel"] = (*layer.kernel_size, channels, layer.filters)
            expected.update({f"{layer.name}/bias": (layer.filters,)} if layer.use_bias else {})
        elif type(layer) is BatchNormalization:  # one of each per channel
            channels = None if shape is None else shape[-1]
            expected.update({f"{layer.name}/{key}": (channels,)
                             for key in ("gamma", "beta", "moving_mean", "moving_variance")})
        elif type(layer) not in (ReLU, Softmax, Flatten, MaxPooling2D, Dropout):  # yours: what the file holds
            expected.update({name: entries[name][1] for name in entries if name.rpartition("/")[0] == layer.name})
        try:
            shape = None if shape is None else tuple(layer.compute_output_shape(shape))
        except Exception:  # a layer of your own may need to be built first: the shapes after it are unknown
            shape = None
    _same_names(list(expected), list(entries), path)
    for name, want in expected.items():
        _, have, dtype = entries[name]
        if dtype.kind not in "fiu":  # set_weights checks shapes, not that the arrays hold numbers
            raise ModelFileError(f"{path}: {MISMATCH}: {name} should be numbers, the file holds {dtype}.")
        if len(have) != len(want) or any(w not in (None, h) for w, h in zip(want, have)):
            layer, key = name.rsplit("/", 1)
            raise ModelFileError(f"{path}: {MISMATCH}: Layer {layer!r}: {key} has shape {want}, but the array "
                                 f"given for it has shape {have}. The file is damaged, or was edited by hand.")


def _same_names(expected, stored, path):
    """The file holds an array for each weight expected, and no other."""
    missing, extra = [n for n in expected if n not in stored], [n for n in stored if n not in expected]
    if missing or extra:
        raise ModelFileError(f"{path}: {MISMATCH}: missing {_few(missing)}, unexpected {_few(extra)}.")


def _few(names, shown=5):
    """Names for a message, the first few of many: "['a', 'b', ... 19998 more]"."""
    if not names:
        return "none"
    more = f", ... {len(names) - shown} more" if len(names) > shown else ""
    return f"[{', '.join(map(abridged, names[:shown]))}{more}]"
