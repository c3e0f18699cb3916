"""The base class of optimizers: the only code that changes parameters."""
from tinynet import arguments


class Optimizer:
    def __init__(self, learning_rate):
        self.learning_rate = arguments.real(learning_rate, "learning_rate", "a number above 0, such as 0.001",
                                            lambda lr: lr > 0)
        self.iterations = 0  # how many updates have been applied
        self.params = None  # the arrays this optimizer updates, fixed by build
        self.slots = None  # per-parameter state (e.g. RMSprop's running mean of g**2), one per array in params

    def build(self, params):
        """Create the state for ``params`` on first use; afterwards, refuse any other arrays.

        An optimizer belongs to one model, and its state to the parameters it was
        built for: given another model's parameters (or a model that has gained
        layers since), it would update the wrong arrays or skip some.
        """
        params = list(params)
        if self.params is None:
            self.params, self.slots = params, [self.build_slot(p) for p in params]
        elif len(params) != len(self.params) or any(p is not q for p, q in zip(params, self.params)):
            raise ValueError(
                f"This {type(self).__name__} was built for other parameters ({len(self.params)} arrays) than "
                f"the {len(params)} it is given now: it is used by a second model, or layers were added "
                "after training began. Give each model a new optimizer and compile again, e.g. "
                f"model.compile(optimizer={type(self).__name__}(), loss=...)."
            )

    def apply(self, grads, params):
        """Update each array in ``params`` in place, from the matching array in ``grads``."""
        self.build(params)
        for g, w, slot in zip(grads, self.params, self.slots):
            self.update_step(g, w, slot)
        self.iterations += 1

    def build_slot(self, param):
        """The state this optimizer keeps for one parameter (None if it keeps none)."""
        return None

    def update_step(self, grad, param, slot):
        """Update one parameter in place: each optimizer's own formula."""
        raise NotImplementedError

    def get_config(self):
        """The constructor's arguments, as JSON-ready values: ``type(opt).from_config(config)``
        makes the same optimizer, fresh (``model.save`` stores it)."""
        return {"learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def count_params(self):
        """Numbers of state, counted as Keras counts them: the slots, plus the
        iteration counter and the learning rate (one each)."""
        if self.slots is None:
            return 0
        return 2 + sum(int(s.size) for s in self.slots if s is not None)
