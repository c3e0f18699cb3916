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
import re
from pathlib import Path

import numpy
from PIL import Image, ImageOps

SIZE = 28  # the side of an MNIST image
BOX = 20  # the digit's longer side, in pixels
# Grey from red, green, blue, per mille, as Pillow's convert("L"): whole numbers that sum to 1000,
# so that white stays exactly 1.0 (not 0.9999999999999999, as with 0.299, 0.587, 0.114).
LUMA_PER_MILLE = numpy.array([299, 587, 114])


def prepare_digit(image):
    """An MNIST-like (28, 28) float32 array in [0, 1] from a picture of one digit.

    ``image`` is a 2-D grayscale array, or (height, width, 3 or 4) RGB(A), of any
    size; integers are read as 0..255 (uint16 as 0..65535, as 16-bit scans are),
    floats as 0..1 (or 0..255 if larger than 1).
    Dark ink on light paper and light ink on a dark background both work; the
    background is read from the border, so leave some paper around the digit.
    A transparent picture (RGBA) drawn with one pen on a transparent sheet is read
    from its alpha channel, whatever the pen's colour; others are laid on white.
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
    """Read a PNG or JPEG (any size) and prepare it with ``prepare_digit``.

    Transparent pictures keep their alpha channel (see ``prepare_digit``), and
    16-bit greyscale scans their full depth. A photo is turned upright as its EXIF
    Orientation tag says (phones store pictures sideways and set that tag). A picture too large to decode safely,
    or one that is damaged, raises ValueError naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an image file: name the pictures in it.")
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} is not a regular file (a device, a pipe or a socket): "
                         "give a picture file, PNG or JPEG.")
    if not path.is_file():
        raise FileNotFoundError(f"No such image file: {path}")
    try:
        with Image.open(path) as picture:
            picture.load()
            image = _pixels(ImageOps.exif_transpose(picture))  # upright, as a phone's Orientation tag says
    except Image.DecompressionBombError as e:  # Pillow refuses to decode it: it could fill the memory
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(pixels[1]):,} pixels" if pixels else "too many pixels"
        raise ValueError(f"{path} is too large to decode safely: {size}, more than the "
                         f"{2 * Image.MAX_IMAGE_PIXELS:,} Pillow allows. Shrink it (a digit needs no more than "
                         "about 1000 pixels across) and try again.") from e
    except MemoryError:
        raise
    except Exception as e:  # Pillow's decoders raise many kinds of error on a damaged file
        raise ValueError(f"Cannot read {path} as an image (PNG or JPEG expected; is it damaged?): "
                         f"{type(e).__name__}: {e}") from e
    return prepare_digit(image)


def _pixels(picture):
    """The picture's pixels as an array ``prepare_digit`` reads, losing nothing it needs."""
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        return numpy.asarray(picture.convert("RGBA"))  # the alpha channel may hold the drawing
    if picture.mode.startswith("I;16"):
        return numpy.asarray(picture)  # uint16: convert("L") would clip it to 0..255
    if picture.mode == "I":  # 32-bit integers: most often a 16-bit scan
        gray = numpy.asarray(picture, dtype=numpy.float64)
        return gray / max(65535.0, gray.max())
    if picture.mode == "F":
        return numpy.asarray(picture)  # floats: read as 0..1, or 0..255
    return numpy.asarray(picture.convert("L"))


def _grayscale(image):
    """Floats in [0, 1], one channel."""
    image = numpy.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(f"Expected a 2-D grayscale image or (height, width, 3 or 4) colour image, "
                         f"got an array of shape {image.shape}.")
    if image.dtype.kind not in "biuf":
        raise TypeError(f"Expected an image of numbers, got dtype {image.dtype}.")
    if image.dtype.kind == "b":  # True is ink... or paper: _ink decides which from the border
        scale = 1.0
    elif image.dtype.kind in "iu":
        scale = 65535.0 if image.dtype.kind == "u" and image.dtype.itemsize == 2 else 255.0
    else:
        scale = 255.0 if image.max() > 1 else 1.0
    image = image.astype(numpy.float64) / scale
    if image.ndim == 2:
        return image
    gray = image[..., :3] @ LUMA_PER_MILLE / 1000
    return gray if image.shape[-1] == 3 else _flatten(gray, image[..., 3])


def _flatten(gray, alpha):
    """One grey image from a transparent one (grey and alpha in [0, 1]).

    Strokes of one pen on a transparent sheet leave the visible pixels all about
    one shade: the drawing is then in the alpha channel alone, so ink = alpha,
    whatever the pen's colour (white ink laid on white paper would vanish).
    Anything else (a photo, paper with a transparent margin) is laid on white paper.
    """
    if numpy.ptp(alpha) > 0.5:
        mean = (alpha * gray).sum() / alpha.sum()  # the visible pixels' shade, and how much it varies
        spread = numpy.sqrt((alpha * (gray - mean) ** 2).sum() / alpha.sum())
        if spread < 0.1:
            return alpha
    return alpha * gray + (1 - alpha)  # on white: transparent parts count as paper


def _ink(gray):
    """How much ink each pixel holds: 0 for the background, more the stronger the stroke.

    The shades are first stretched to the picture's own range, 0 to 1: a scan whose
    paper and ink sit in a narrow band (a 12-bit sensor stored as 16-bit: values
    500 to 4000 of 65535) reads as any other. The background is the usual shade
    along the border (its median). If it is light, the ink is dark: invert, so
    the ink becomes the bright part, as in MNIST.
    """
    lightest, darkest = gray.max(), gray.min()
    gray = (gray - darkest) / (lightest - darkest) if lightest > darkest else gray * 0  # one shade: blank
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
