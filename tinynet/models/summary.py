"""``model.summary()``: the table Keras prints, layer by layer.

    Model: "sequential"
    ┏━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━┓
    ┃ Layer (type)              ┃ Output Shape         ┃     Param # ┃
    ┡━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━┩
    │ dense (Dense)             │ (None, 512)          │     401,920 │
    └───────────────────────────┴──────────────────────┴─────────────┘
     Total params: 669,706 (2.55 MB)
"""
import shutil

from tinynet import arguments, backend

KERAS_LINE_LENGTH = 88
# The narrowest table: each cell keeps one character (or "…") between its padding.
# Keras refuses a narrower one too ("Insufficient console width"), from 15 columns down.
MIN_LINE_LENGTH = 16
COLUMN_ENDS = (0.45, 0.80, 1.0)  # where each column ends, as a fraction of the line


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
    widths = [end - start for start, end in zip([0] + ends, ends)]
    # The four border characters come out of the columns, shared out evenly
    # (the same arithmetic as the rich library Keras draws its table with).
    excess, columns_left = 4, len(widths)
    for i, width in enumerate(widths):
        cut = round(excess / columns_left)
        widths[i], excess, columns_left = width - cut, excess - cut, columns_left - 1
    return widths


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
    line_length = arguments.integer(line_length, "line_length", minimum=MIN_LINE_LENGTH)  # characters
    widths = column_widths(line_length)

    def rule(left, fill, mid, right):
        return left + mid.join(fill * w for w in widths) + right

    def row(texts, bar):
        aligns = ("<", "<", ">")
        return bar + bar.join(cell(t, w, a) for t, w, a in zip(texts, widths, aligns)) + bar

    lines = [f'Model: "{model.name}"', rule("┏", "━", "┳", "┓"),
             row(("Layer (type)", "Output Shape", "Param #"), "┃"), rule("┡", "━", "╇", "┩")]
    for i, layer in enumerate(model.layers):
        if i:
            lines.append(rule("├", "─", "┼", "┤"))
        shape = "(" + ", ".join(str(d) for d in layer.output_shape) + ")"
        lines.append(row((f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}"), "│"))
    lines.append(rule("└", "─", "┴", "┘"))

    n_weights = model.count_params()
    weight_bytes = sum(p.size * backend.xp().finfo(p.dtype).bits // 8 for layer in model.layers for p in layer.params.values())
    n_optimizer = model.optimizer.count_params() if model.optimizer is not None else 0
    optimizer_bytes = 4 * n_optimizer
    lines += [
        f" Total params: {n_weights + n_optimizer:,} ({readable_size(weight_bytes + optimizer_bytes)})",
        f" Trainable params: {n_weights:,} ({readable_size(weight_bytes)})",
        f" Non-trainable params: 0 ({readable_size(0)})",
    ]
    if n_optimizer:
        lines.append(f" Optimizer params: {n_optimizer:,} ({readable_size(optimizer_bytes)})")
    return "\n".join(lines) + "\n"
