"""Mean squared error: L = mean of (y_hat - y)**2 over every prediction."""
from tinynet import backend
from tinynet.losses.loss import Loss


class MeanSquaredError(Loss):
    """The average squared distance between targets ``y`` and predictions ``y_hat``.

    For a batch of N samples with D outputs each, Keras's formula is a mean
    over the last axis (the outputs of one sample), then a mean over the batch:

        L = 1/N sum_n ( 1/D sum_d (y_hat_nd - y_nd)**2 )  =  sum((y_hat - y)**2) / (N * D)

    Each prediction pulls on the loss in proportion to how far off it is:

        dL/dy_hat = 2 * (y_hat - y) / (N * D)

    A prediction that is twice as far off gets twice the push back, and the
    division by N * D makes the loss (and the step it causes) the same size
    whatever the batch size.

    Targets of shape (N,) are accepted for predictions of shape (N, 1), as Keras
    does (``fit(x, y)`` with ``y`` a plain list of numbers): they are read as one
    column. Where PyTorch differs: ``torch.nn.MSELoss`` (reduction='mean') gives
    the same number for same-shaped arrays, but it *broadcasts* a (N,) target
    against (N, 1) predictions into an (N, N) table of every pair, with only a
    warning, and so learns the wrong thing.
    """

    name = "mean_squared_error"

    def forward(self, y_true, y_pred):
        xp = backend.xp()
        self.check_shapes(y_true.shape, y_pred.shape)
        if y_true.shape != y_pred.shape:
            y_true = xp.reshape(y_true, y_pred.shape)  # targets (N,) -> (N, 1), one column
        y_true = xp.astype(y_true, y_pred.dtype, copy=False)  # as Keras: compute in the predictions' dtype
        self.diff = y_pred - y_true  # y_hat - y
        # Keras averages over the outputs, then over the batch; with every sample
        # having D outputs that is the plain mean of all N * D squares:
        return xp.mean(self.diff * self.diff)  # L = sum((y_hat - y)**2) / (N * D)

    def backward(self):
        return 2 * self.diff / self.diff.size  # dL/dy_hat = 2 * (y_hat - y) / (N * D)

    def check_shapes(self, y_true_shape, y_pred_shape):
        y_true_shape, y_pred_shape = tuple(y_true_shape), tuple(y_pred_shape)
        if len(y_pred_shape) >= 1 and y_pred_shape[-1] == 1 and y_true_shape == y_pred_shape[:-1]:
            return  # targets (N,) against predictions (N, 1): allowed, as in Keras
        super().check_shapes(y_true_shape, y_pred_shape)


def mean_squared_error(y_true, y_pred):
    """The loss as a function: ``mean_squared_error(y, y_hat)``, a 0-d array.

    Unlike Keras's ``keras.losses.mean_squared_error``, which returns one value
    per sample, this returns their mean over the batch, as
    ``categorical_crossentropy`` here does: the number ``fit`` reports.
    """
    return MeanSquaredError().forward(y_true, y_pred)
