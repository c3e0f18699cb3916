"""Turn a picture of a handwritten digit into an MNIST-like 28x28 input.

MNIST digits were made this way (LeCun et al.): each scanned digit was scaled
to fit a 20x20 pixel box, keeping its aspect ratio (the smoothing adds grey
edges), then placed in a 28x28 image so that its centre of mass sits at the
centre. They are white ink (255) on black (0). A model trained on MNIST only
knows digits that look like that, so a new picture must be prepared the same
way before ``model.predict`` can read it::

    from tinynet.utils.digits import load_digit
    x = load_digit("my_seven.png")             # (28, 28) floats in [0, 1]
    p = model.predict(x.reshape(1, 784))       # flatten, as for the training data

``prepare_digit`` does the work on an array, ``load_digit`` reads a file first.
"""
from pathlib import Path

import numpy
from PIL import Image, UnidentifiedImageError

SIZE = 28  # the side of an MNIST image
BOX = 20  # the digit's longer side, in pixels


def prepare_digit(image):
    """An MNIST-like (28, 28) float32 array in [0, 1] from a picture of one digit.

    ``image`` is a 2-D grayscale array, or (height, width, 3 or 4) RGB(A), of any
    size; integers are read as 0..255, floats as 0..1 (or 0..255 if larger than 1).
    Dark ink on light paper and light ink on a dark background both work; the
    background is read from the border, so leave some paper around the digit.
    """
    gray = _grayscale(image)
    ink = _ink(gray)
    rows, cols = numpy.nonzero(ink)
    if rows.size == 0:
        raise ValueError("No digit found: the image is blank (one shade throughout).")
    digit = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]  # crop to the bounding box
    digit = _scale_to_box(digit)
    return _centre_by_mass(digit)


def load_digit(path):
    """Read a PNG or JPEG (any size) and prepare it with ``prepare_digit``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such image file: {path}")
    try:
        with Image.open(path) as picture:
            picture.load()
            if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
                # Transparent parts count as white paper: lay the picture on a white sheet.
                sheet = Image.new("RGBA", picture.size, "white")
                picture = Image.alpha_composite(sheet, picture.convert("RGBA"))
            gray = numpy.asarray(picture.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"Cannot read {path} as an image (PNG or JPEG expected): {e}") from e
    return prepare_digit(gray)


def _grayscale(image):
    """Floats in [0, 1], one channel."""
    image = numpy.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        if image.shape[-1] == 4:  # drop alpha (load_digit has laid the picture on white already)
            image = image[..., :3]
        image = image @ numpy.array([0.299, 0.587, 0.114])  # luminance, as Pillow's convert("L")
    if image.ndim != 2:
        raise ValueError(f"Expected a 2-D grayscale image or (height, width, 3 or 4) colour image, "
                         f"got an array of shape {image.shape}.")
    if image.dtype.kind not in "biuf":
        raise TypeError(f"Expected an image of numbers, got dtype {image.dtype}.")
    if image.dtype.kind == "b":  # True is ink... or paper: _ink decides which from the border
        return image.astype(numpy.float64)
    scale = 255.0 if image.dtype.kind in "iu" or image.max() > 1 else 1.0
    return image.astype(numpy.float64) / scale


def _ink(gray):
    """How much ink each pixel holds: 0 for the background, more the stronger the stroke.

    The background is the usual shade along the border (its median). If it is
    light, the ink is dark: invert, so the ink becomes the bright part, as in MNIST.
    """
    border = _border(gray)
    if numpy.median(border) > 0.5:
        gray, border = 1.0 - gray, 1.0 - border  # black on white -> white on black
    background = numpy.median(border)
    ink = gray - background
    # How much the paper itself varies (0 on a clean image), measured along the border
    # by the median distance from the background, and generously widened: a single
    # speck of dust left in would stretch the digit's bounding box. Never more than half the ink.
    grain = min(10 * numpy.median(numpy.abs(border - background)), ink.max() / 2)
    ink[ink <= grain] = 0.0  # paper grain and shadows are not ink
    return ink


def _border(gray):
    """The pixels along the four edges."""
    return numpy.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _scale_to_box(digit):
    """Resize so the longer side is 20 pixels, keeping the aspect ratio."""
    height, width = digit.shape
    factor = BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))  # Pillow wants (width, height)
    resized = Image.fromarray(digit.astype(numpy.float32)).resize(size, Image.Resampling.LANCZOS)
    resized = numpy.clip(numpy.asarray(resized), 0.0, None)  # Lanczos can undershoot a little
    return resized / resized.max()  # thin strokes blur when shrunk: make the strongest 1 again, as in MNIST


def _centre_by_mass(digit):
    """Paste into a 28x28 black image so the centre of mass lands on pixel (14, 14),
    to the nearest whole pixel, as in MNIST (or as near as the digit fits)."""
    rows, cols = numpy.indices(digit.shape)
    total = digit.sum()
    centre = (rows * digit).sum() / total, (cols * digit).sum() / total  # (row, column)
    out = numpy.zeros((SIZE, SIZE), dtype=numpy.float32)
    top, left = (int(numpy.clip(round(SIZE / 2 - c), 0, SIZE - n)) for c, n in zip(centre, digit.shape))
    out[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return out
