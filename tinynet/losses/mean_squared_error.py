"""Mean squared error: L = mean of (y_hat - y)**2 over every prediction."""
from tinynet import backend
from tinynet.losses.loss import Loss


class MeanSquaredError(Loss):
    """The average squared distance between targets ``y`` and predictions ``y_hat``. Keras's formula, a mean
    over each sample's D outputs and then over the N samples, is the mean of all N * D squares; a prediction
    twice as far off gets twice the push back (the gradient), whatever the batch size.
    Targets (N,) are one column against predictions (N, 1), as in Keras (``y`` a plain list). Where PyTorch
    differs: ``torch.nn.MSELoss`` broadcasts them into an (N, N) table, warns, and learns the wrong thing."""

    name = "mean_squared_error"

    def forward(self, y_true, y_pred):
        xp = backend.xp()
        self.check_shapes(y_true.shape, y_pred.shape)
        y_true = xp.reshape(y_true, y_pred.shape)  # targets (N,) -> (N, 1), one column
        self.diff = y_pred - xp.astype(y_true, y_pred.dtype, copy=False)  # y_hat - y, in y_hat's dtype (as Keras)
        return xp.mean(self.diff * self.diff)  # L = 1/N sum_n 1/D sum_d (y_hat_nd - y_nd)**2 = sum(...) / (N * D)

    def backward(self):
        return 2 * self.diff / self.diff.size  # dL/dy_hat = 2 * (y_hat - y) / (N * D)

    def check_shapes(self, y_true_shape, y_pred_shape):
        if tuple(y_pred_shape[-1:]) == (1,) and tuple(y_true_shape) == tuple(y_pred_shape[:-1]):
            return  # targets (N,) against predictions (N, 1): allowed, as in Keras
        super().check_shapes(y_true_shape, y_pred_shape)


def mean_squared_error(y_true, y_pred):
    """The loss as a function, a 0-d array: the batch's mean, the number ``fit`` reports
    (``keras.losses.mean_squared_error`` returns one value per sample)."""
    return MeanSquaredError().forward(y_true, y_pred)
