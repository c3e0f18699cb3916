"""Training curves: loss and accuracy per epoch, on the training and the validation data."""
from tinynet.plot.figure import finish, new_figure


def training_curves(history, path=None):
    """One panel per metric (loss first, then accuracy, ...), training and validation lines.

    ``history`` is what ``model.fit`` returns, or its ``.history`` dict. The training
    figure of an epoch is the mean over that epoch, the validation one is measured at
    its end: so early on validation can look better than training.
    Returns the figure; writes it to ``path`` too when given.
    """
    from matplotlib.ticker import MaxNLocator

    logs = getattr(history, "history", history)
    names = sorted((k for k in logs if not k.startswith("val_")), key=lambda k: (k != "loss", k))
    if not names:
        raise ValueError("The history holds no metrics: train with model.fit first.")
    fig = new_figure(5 * len(names), 3.8)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        epochs = range(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], "o-", label=f"training {name}")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], "s--", label=f"validation {name}")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs only
        ax.set_xlim(0.5, len(epochs) + 0.5)  # room either side, even for a single epoch
        ax.margins(y=0.1)
        ax.grid(alpha=0.3)
        ax.legend()
    n = len(logs[names[0]])
    fig.suptitle(f"Training curves ({n} epoch{'s' if n != 1 else ''})")
    return finish(fig, path)
