"""The base class of optimizers, which change the parameters as training goes (set_weights and load_model
write them too, outside training): the state they keep."""
import difflib
import inspect

from tinynet import arguments


class Optimizer:
    """``apply(grads, params)`` updates every parameter in place; each optimizer defines ``update``, the
    update of one parameter from its gradient and its state (``build_slot`` makes that state)."""

    def __init__(self, learning_rate, **unknown):
        _refuse_unknown(type(self), unknown)
        self.learning_rate = learning_rate  # checked by the property below, as any later assignment is
        self.iterations = 0  # how many updates have been applied
        self.params = self.slots = None  # the arrays it updates, and its state for each (build sets them)

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        """``optimizer.learning_rate = 0.0005`` between calls to fit, as in Keras: checked as the constructor checks it."""
        self._learning_rate = arguments.positive_float32(value, "learning_rate", "0.001")

    def build(self, params, grads=None):
        """Create the state for ``params`` on first use; afterwards, refuse any other arrays (another model's,
        or a model that has gained layers since: the wrong arrays would be updated). ``apply`` gives its
        ``grads`` too: one per parameter, of its shape, checked before anything is updated."""
        params, name = list(params), type(self).__name__
        shapes = [tuple(p.shape) for p in params]
        if grads is not None and [tuple(g.shape) for g in grads] != shapes:
            raise ValueError(f"{name}.apply needs one gradient per parameter, shaped like it; got gradients "
                             f"{[tuple(g.shape) for g in grads]} for parameters {shapes}.")
        if self.params is None:
            self.params, self.slots = params, [self.build_slot(p) for p in params]
        elif len(params) != len(self.params) or any(p is not q for p, q in zip(params, self.params)):
            raise ValueError(f"This {name} was built for other parameters ({len(self.params)} arrays) than the "
                             f"{len(params)} it is given now: since training began, a layer's trainable was "
                             "changed or layers were added, or it is used by a second model. Call compile again "
                             "after such a change (Keras needs that too), with a new optimizer, e.g. "
                             f"model.compile(optimizer={name}(), loss=...); each model needs its own.")

    def apply(self, grads, params):
        """One update of every parameter w, in place, from its gradient g and its state."""
        self.build(params, grads)  # first call: the state of each; later: the same arrays, or an error
        left = self.update_at_once(self.params, grads, self.slots)  # on a GPU, all in one kernel (RMSprop)
        for w, g, slot in left:
            self.update(w, g, slot)
        self.iterations += 1

    def update_at_once(self, params, grads, slots):
        """A compiled update of many parameters at once, where an optimizer has one: returns the (w, g, slot)
        it left to ``update``, one by one (here: all of them)."""
        return zip(params, grads, slots)

    def update(self, w, g, slot):
        raise NotImplementedError(f"{type(self).__name__} must define update(w, g, slot): one parameter's update.")

    def build_slot(self, param):
        """The state kept for one parameter (None if none)."""
        return None

    def state_arrays(self):
        """Every array of state: the slots, None ones left out (Adam's slot stacks m and v in one array)."""
        return [s for s in self.slots or () if s is not None]

    def get_config(self):
        """The constructor's arguments: ``type(opt).from_config(config)`` makes it afresh (``model.save``)."""
        return {"learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def count_params(self):
        """Numbers of state, as Keras counts them: the slots, plus the iteration counter and the learning rate."""
        return 0 if self.slots is None else 2 + sum(int(a.size) for a in self.state_arrays())


KERAS_2_NAMES = {"lr": "learning_rate={!r}", "decay": "a smaller learning_rate (Keras 3 has no decay either)"}


def _refuse_unknown(cls, unknown):
    """A TypeError for arguments the optimizer does not take, with Keras 2's old names translated and
    near misses named (beta1 -> beta_1)."""
    if unknown:
        key = next(iter(unknown))
        known = [name for name in inspect.signature(cls).parameters if name != "unknown"]
        near = difflib.get_close_matches(key, known, n=1)
        fix = ("use " + KERAS_2_NAMES[key].format(unknown[key]) if key in KERAS_2_NAMES
               else f"did you mean {near[0]}?" if near else f"it takes {', '.join(known)}")
        raise TypeError(f"{cls.__name__} takes no argument {key}={unknown[key]!r}: {fix}")
