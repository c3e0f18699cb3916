"""History: what ``fit`` returns, the metrics of every epoch."""


class History:
    """``history.history`` maps each metric to its per-epoch values, as in Keras:
    ``{'accuracy': [...], 'loss': [...], 'val_accuracy': [...], 'val_loss': [...]}``.
    Training figures are means over the epoch; validation ones are measured after it.
    ``epoch_seconds`` (not in Keras) holds each epoch's wall time, validation included.
    """

    def __init__(self, params=None):
        self.history, self.epoch, self.epoch_seconds = {}, [], []  # epoch: 0-based numbers
        self.params = params or {}

    def append(self, epoch, logs, seconds=None):
        self.epoch.append(epoch)
        self.epoch_seconds.append(seconds)
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)

    def __repr__(self):
        return f"<History epochs={len(self.epoch)} keys={list(self.history)}>"
