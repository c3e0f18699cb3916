"""Sliding windows over images, shared by Conv2D and MaxPooling2D: Keras's arguments, the output size and
padding, and the gather (im2col) and scatter (col2im) that need no loop over samples or pixels.

The index arithmetic, once. Images are channels-last, x of shape (N, H, W, C), as in Keras. A window of
kh x kw pixels moves in steps of sh rows and sw columns; output pixel (oh, ow) sees the input pixels

    x[n, oh*sh + i, ow*sw + j, c]     for the offsets 0 <= i < kh, 0 <= j < kw.

Turned around: for ONE offset (i, j), what all the Ho x Wo windows see is a strided slice of the image,

    x[:, i : i + sh*(Ho-1) + 1 : sh,  j : j + sw*(Wo-1) + 1 : sw, :]       shape (N, Ho, Wo, C),

so kh*kw slices (9 for a 3x3 kernel) gather every window of every image: ``gather`` stacks them into
(N, Ho, Wo, kh*kw, C), and ``scatter`` adds gradients back through the same slices (windows may overlap).

Sizes, as TensorFlow computes them:
    'valid': only windows that fit:  Ho = (H - kh) // sh + 1  (an error when kh > H);
    'same':  Ho = ceil(H / sh), after padding max((Ho-1)*sh + kh - H, 0) rows in all: half on top, the odd
             one at the bottom (TensorFlow's rule; PyTorch's padding='same' puts it on top). Columns alike.
"""
import math

from tinynet import arguments, backend

PADDINGS = ("valid", "same")


def pair(value, name):
    """``3`` -> ``(3, 3)``; ``(3, 2)`` or ``[3, 2]`` stay: Keras's kernel_size, strides and pool_size."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an integer or a tuple of 2 integers (rows, columns), got {value!r}.")
        return tuple(arguments.integer(v, f"each entry of {name}") for v in value)
    n = arguments.integer(value, name)
    return n, n


def padding_name(value):
    """'valid' or 'same' (any case, as Keras accepts), else a ValueError saying what each does."""
    if isinstance(value, str) and value.lower() in PADDINGS:
        return value.lower()
    raise ValueError(f"padding must be 'valid' or 'same', got {value!r}: 'valid' uses only the windows that fit "
                     "inside the image, 'same' pads its border so that the output keeps the input's size "
                     "(with strides 1). Keras has no 'full' padding.")


def image_shape(input_shape, who):
    """A ValueError unless ``input_shape`` is (batch, height, width, channels), with the reshape that fixes it."""
    if len(input_shape) == 4 and input_shape[1] in (1, 3) and input_shape[2] == input_shape[3] > 4:  # NCHW
        raise ValueError(f"{who} expects images channels last, (batch, height, width, channels), as Keras does; "
                         f"inputs of shape {tuple(input_shape)} look channels first. Move the channels last: "
                         "x = x.transpose(0, 2, 3, 1), and input_shape=(height, width, channels).")
    if len(input_shape) == 4:
        return
    shape, side = tuple(input_shape), math.isqrt(input_shape[-1]) if len(input_shape) == 2 else 0
    if len(input_shape) == 2 and side * side == input_shape[-1]:  # flattened square images, such as MNIST's 784
        hint = f" For flattened square images, reshape them: x = x.reshape(len(x), {side}, {side}, 1)."
    elif len(input_shape) == 3:  # (N, 28, 28): gray images without their channel axis
        hint = f" Add the channel axis: x = x.reshape(len(x), {input_shape[1]}, {input_shape[2]}, 1)."
    else:
        hint = ""
    raise ValueError(f"{who} expects images of shape (batch, height, width, channels), channels last as in "
                     f"Keras, got inputs of shape {shape}.{hint}")


def output_hw(hw, window, strides, padding, who, what):
    """(Ho, Wo) for images of hw = (H, W) pixels (see the module's docstring); ``what`` names the window's
    argument ('kernel_size', 'pool_size') in the error for a window larger than a 'valid' input."""
    if padding == "valid" and (window[0] > hw[0] or window[1] > hw[1]):
        raise ValueError(f"{who}: {what}={window} is larger than its input of {hw[0]} x {hw[1]} pixels, so no "
                         f"window fits with padding='valid'. Use a smaller {what}, or padding='same'.")
    if padding == "same":
        return tuple(-(-n // s) for n, s in zip(hw, strides))  # ceil(H / sh)
    return tuple((n - k) // s + 1 for n, k, s in zip(hw, window, strides))  # (H - kh) // sh + 1


def pads(size, window, stride, out):
    """(before, after): the padding along one axis for ``out`` windows; the odd pixel goes after, as in TensorFlow.
    Zero for 'valid' ((out - 1) * stride + window <= size), the border 'same' needs otherwise."""
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def pad(x, pad_rows, pad_cols, value=0.0):
    """``x`` (N, H, W, C) inside a border of ``value``: pad_rows = (top, bottom), pad_cols = (left, right)."""
    if pad_rows == pad_cols == (0, 0):
        return x
    n, h, w, c = x.shape
    padded = backend.zeros((n, h + sum(pad_rows), w + sum(pad_cols), c), dtype=x.dtype)
    if value != 0:
        padded[...] = value
    padded[:, pad_rows[0]:pad_rows[0] + h, pad_cols[0]:pad_cols[0] + w, :] = x
    return padded


def unpad(x, pad_rows, pad_cols):
    """The inside of a padded (N, H, W, C) array: ``pad``'s border cut off."""
    return x[:, pad_rows[0]:x.shape[1] - pad_rows[1], pad_cols[0]:x.shape[2] - pad_cols[1], :]


def offsets(window):
    """The offsets (i, j) inside a window, in row-major order: (0, 0), (0, 1), ..., (kh-1, kw-1)."""
    return [(i, j) for i in range(window[0]) for j in range(window[1])]


def seen_from(i, j, strides, out):
    """The slice of the (padded) image that the Ho x Wo windows see at offset (i, j)."""
    (sh, sw), (ho, wo) = strides, out
    return slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw), slice(None)


def gather(x, window, strides, out):
    """im2col: every window of the padded images ``x`` (N, Hp, Wp, C) -> (N, Ho, Wo, kh*kw, C)."""
    return backend.xp().stack([x[seen_from(i, j, strides, out)] for i, j in offsets(window)], axis=3)


def scatter(d_windows, padded_shape, window, strides):
    """col2im, gather's adjoint: add each window's gradient (N, Ho, Wo, kh*kw, C) back onto the pixels it saw;
    a pixel in several windows gets the sum. Returns (N, Hp, Wp, C)."""
    out = d_windows.shape[1:3]
    dx = backend.zeros(padded_shape, dtype=d_windows.dtype)
    for k, (i, j) in enumerate(offsets(window)):
        dx[seen_from(i, j, strides, out)] += d_windows[:, :, :, k, :]
    return dx

