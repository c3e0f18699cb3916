"""The base class of losses: a number that says how wrong the predictions are."""


class Loss:
    """``forward(y_true, y_pred)`` returns the mean loss over the batch (a 0-d array) and caches
    what ``backward()`` needs; ``backward()`` returns dL/dy_pred."""

    name = None

    def __call__(self, y_true, y_pred):
        return self.forward(y_true, y_pred)

    def get_config(self):
        """The constructor's arguments: ``type(loss).from_config(config)`` makes it afresh (``model.save``)."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def check_targets(self, y_true):
        """Raise a clear error when the targets' values cannot be this loss's (any numbers, here)."""

    def check_shapes(self, y_true_shape, y_pred_shape):
        """Raise a clear error when targets cannot be compared with predictions."""
        if tuple(y_true_shape) != tuple(y_pred_shape):
            raise ValueError(f"{self.name} compares targets and predictions of the same shape; got targets "
                             f"of shape {tuple(y_true_shape)} and predictions of shape {tuple(y_pred_shape)}."
                             f"{one_hot_twice_hint(y_true_shape, y_pred_shape)}")


def one_hot_twice_hint(y_shape, y_pred_shape):
    """The fix for targets one-hot encoded twice, which to_categorical turns from (N, C) into (N, C, 2); else ''."""
    if tuple(y_shape) == (*y_pred_shape, 2):
        return (f" The targets look one-hot encoded twice: to_categorical on rows that were one-hot already gives "
                f"(N, {y_pred_shape[-1]}, 2). Apply it once, to the integer labels.")
    return ""
