"""``model.summary()``: the table Keras prints, layer by layer, character for character
(tests/test_summary.py holds Keras's own output to compare with)."""
import shutil

from tinynet import arguments, backend

KERAS_LINE_LENGTH = 88
MIN_LINE_LENGTH = 16  # one character (or "…") a cell; Keras too refuses 15 ("Insufficient console width")
COLUMN_ENDS = (0.45, 0.80, 1.0)  # where each column ends, as a fraction of the line
# The four border characters come out of the columns, shared out as the rich library Keras draws
# its table with shares them: round(4/3), round(3/2), round(1/1).
BORDER_CUTS = (1, 2, 1)


def readable_size(n_bytes):
    """2678824 -> '2.55 MB' (powers of 1024, as Keras prints them)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes < 1024:
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.2f} PB"


def column_widths(line_length):
    """Cell widths (padding included) of the three columns for a table ``line_length`` wide."""
    ends = [int(f * line_length) for f in COLUMN_ENDS]
    return [end - start - cut for start, end, cut in zip([0] + ends, ends, BORDER_CUTS)]


def cell(text, width, align="<"):
    text = text if len(text) <= width - 2 else text[: width - 3] + "…"
    return f" {text:{align}{width - 2}} "


def print_summary(model, print_fn=None, line_length=None):
    """``model.summary()``: builds the text, then hands it to ``print_fn`` once (default: print it)."""
    if print_fn is not None and not callable(print_fn):
        raise TypeError(f"print_fn must be a function that takes the summary text, such as print or "
                        f"lines.append, or None to print it; got {print_fn!r}.")
    text = summary_text(model, line_length)
    (print_fn or (lambda s: print(s, end="")))(text)


def summary_text(model, line_length=None):
    """The summary as one string, ending in a newline."""
    if line_length is None:  # Keras: 88 columns, narrower on a narrow terminal (never below the minimum)
        line_length = max(MIN_LINE_LENGTH, min(KERAS_LINE_LENGTH, shutil.get_terminal_size().columns - 4))
    widths = column_widths(arguments.integer(line_length, "line_length", minimum=MIN_LINE_LENGTH))

    def rule(corners, fill):  # corners: left, between columns, right, such as "┏┳┓"
        return corners[0] + corners[1].join(fill * w for w in widths) + corners[2]

    def row(texts, bar):
        return bar + bar.join(cell(t, w, align) for t, w, align in zip(texts, widths, "<<>")) + bar

    lines = [f'Model: "{model.name}"', rule("┏┳┓", "━"), row(("Layer (type)", "Output Shape", "Param #"), "┃"),
             rule("┡╇┩", "━")]
    for i, layer in enumerate(model.layers):
        if i:
            lines.append(rule("├┼┤", "─"))
        shape = "(" + ", ".join(str(d) for d in layer.output_shape) + ")"
        lines.append(row((f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}"), "│"))
    lines.append(rule("└┴┘", "─"))

    def weights(trainable):  # (how many numbers, their bytes) that are (not) trainable, as Keras counts them:
        # a frozen layer's params, and every layer's non_trainable weights (BatchNormalization's moving statistics)
        trained = [p for layer in model.layers if layer.trainable for p in layer.params.values()]
        frozen = [w for layer in model.layers if not layer.trainable for w in layer.params.values()]
        frozen += [w for layer in model.layers for w in layer.non_trainable.values()]
        params = trained if trainable else frozen
        sizes = [(int(p.size), backend.xp().finfo(p.dtype).bits // 8) for p in params]
        return sum(n for n, _ in sizes), sum(n * n_bytes for n, n_bytes in sizes)

    (n_trainable, trainable_bytes), (n_frozen, frozen_bytes) = weights(True), weights(False)
    n_optimizer = model.optimizer.count_params() if model.optimizer is not None else 0
    counts = [("Total", n_trainable + n_frozen + n_optimizer,
               trainable_bytes + frozen_bytes + 4 * n_optimizer),  # optimizer state: float32
              ("Trainable", n_trainable, trainable_bytes), ("Non-trainable", n_frozen, frozen_bytes)]
    if n_optimizer:
        counts.append(("Optimizer", n_optimizer, 4 * n_optimizer))
    lines += [f" {what} params: {n:,} ({readable_size(n_bytes)})" for what, n, n_bytes in counts]
    return "\n".join(lines) + "\n"
