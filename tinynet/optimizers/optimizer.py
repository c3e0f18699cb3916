"""The base class of optimizers: the only code that changes parameters."""


class Optimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate
        self.iterations = 0  # how many updates have been applied
        self.slots = None  # per-parameter state (e.g. RMSprop's running mean of g**2)

    def apply(self, grads, params):
        """Update each array in ``params`` in place, from the matching array in ``grads``."""
        if self.slots is None:
            self.slots = [self.build_slot(p) for p in params]
        step = self.step_function()
        for g, w, slot in zip(grads, params, self.slots):
            step(g, w, slot)
        self.iterations += 1

    def step_function(self):
        """The function that updates one parameter: ``update_step``, or a compiled
        equivalent of it (RMSprop's, on NumPy and CuPy)."""
        return self.update_step

    def build_slot(self, param):
        """The state this optimizer keeps for one parameter (None if it keeps none)."""
        return None

    def update_step(self, grad, param, slot):
        raise NotImplementedError

    def count_params(self):
        """Numbers of state, counted as Keras counts them: the slots, plus the
        iteration counter and the learning rate (one each)."""
        if self.slots is None:
            return 0
        return 2 + sum(int(s.size) for s in self.slots if s is not None)
