"""Undoing training that went wrong: a copy of the weights and the optimizer's state, and putting it back."""
import math

from tinynet import backend


def snapshot(model):
    """Copies, on the device, of every weight and of the optimizer's state (and its step count)."""
    optimizer = model.optimizer
    arrays = [w for layer in model.layers for w in layer.weights.values()] + optimizer.state_arrays()
    return optimizer.iterations, [(a, backend.xp().asarray(a, copy=True)) for a in arrays]


def restore(model, saved):
    """Put back what ``snapshot`` copied, in place: the same arrays, so the optimizer still knows them."""
    model.optimizer.iterations, arrays = saved
    for array, copy in arrays:
        array[...] = copy


def undo_if_not_finite(model, saved, loss=None, epoch=None):
    """After a step (``train_on_batch``'s) or an epoch (``fit``'s, whose losses ``EpochProgress`` checked): if
    ``loss`` (when given) or any weight is NaN or infinite, restore ``saved``, the state before that step (or
    that epoch), and say why."""
    if loss is not None and not math.isfinite(float(loss)):
        undo(model, saved, f"the loss of this batch is {float(loss)}", epoch)
    xp = backend.xp()
    broken = [f"{layer.name}.{key}" for layer in model.layers for key, w in layer.params.items()
              if not bool(xp.all(xp.isfinite(w)))]
    if broken:
        before = f"the loss was {float(loss)}, but the update" if loss is not None else "the epoch's last update"
        undo(model, saved, f"{before} made {', '.join(broken)} NaN or infinite", epoch)


def undo(model, saved, what, epoch=None):
    """Restore ``saved`` and raise a FloatingPointError that says ``what`` went wrong and what was undone."""
    restore(model, saved)
    undone = ("the weights were left unchanged" if epoch is None else
              f"training stopped, and the weights were rolled back to where epoch {epoch + 1} began")
    raise FloatingPointError(f"{what[0].upper()}{what[1:]}: {undone}. Usual causes: a learning rate too high, "
                             "or inputs not scaled (divide pixels by 255).")
