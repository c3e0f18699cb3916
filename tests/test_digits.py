"""Tests for tinynet.utils.digits: pictures of digits made MNIST-like (28x28, 20-pixel box, centre of mass)."""
import re

import numpy as np
import pytest
from PIL import Image

from conftest import ONE, SEVEN, draw_digit, png_claiming, transparent
from tinynet.utils.digits import load_digit, prepare_digit

host = pytest.mark.host_only("image preparation is NumPy and Pillow on the host")


def bounding_box(image):
    rows, cols = np.nonzero(image)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def centre_of_mass(image):
    rows, cols = np.indices(image.shape)
    return (rows * image).sum() / image.sum(), (cols * image).sum() / image.sum()


def close_up_to_a_pixel(a, b, tolerance):
    """a equals b within ``tolerance`` (mean absolute difference), allowing a shift of one pixel:
    the centre of mass is rounded to a whole pixel, and noise can tip the rounding."""
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return min(np.abs(np.roll(a, shift, axis=(0, 1)) - b).mean() for shift in shifts) < tolerance


SIZES = [(56, 56), (200, 300), (300, 200), (900, 700)]  # (width, height)


@host
@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("strokes", [ONE, SEVEN], ids=["one", "seven"])
def test_a_drawn_digit_becomes_mnist_like(strokes, width, height):
    x = prepare_digit(draw_digit(strokes, width, height))
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert (x == 0).mean() > 0.6  # mostly black background, as MNIST
    assert x[:4, :4].max() == x[:4, -4:].max() == x[-4:, :4].max() == x[-4:, -4:].max() == 0.0
    assert max(bounding_box(x)) == 20
    row, col = centre_of_mass(x)
    assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5


@host
def test_the_aspect_ratio_is_kept():
    picture = draw_digit(SEVEN, 300, 600)  # a tall, narrow seven
    ink_height, ink_width = bounding_box(picture.min(axis=-1) < 128)
    height, width = bounding_box(prepare_digit(picture))
    assert height == 20
    assert abs(width - 20 * ink_width / ink_height) <= 1.5
    height, width = bounding_box(prepare_digit(draw_digit(ONE, 200, 200)))
    assert height == 20 and width <= 4  # a one stays thin


@host
def test_white_on_black_gives_the_same_as_black_on_white():
    picture = draw_digit(SEVEN, 240, 260)
    np.testing.assert_allclose(prepare_digit(255 - picture), prepare_digit(picture), atol=1e-6)


@host
def test_grey_colour_float_and_integer_inputs_agree():
    picture = draw_digit(SEVEN)
    gray = np.asarray(Image.fromarray(picture).convert("L"))
    expected = prepare_digit(gray)
    np.testing.assert_allclose(prepare_digit(picture), expected, atol=0.02)  # RGB
    np.testing.assert_allclose(prepare_digit(gray / 255), expected, atol=1e-6)  # floats in 0..1
    np.testing.assert_allclose(prepare_digit(gray.astype(np.float32)), expected, atol=1e-6)  # floats in 0..255


@host
def test_grey_paper_and_grey_ink_are_stretched():
    picture = draw_digit(ONE).astype(float)
    faded = 90 + picture * 0.5  # ink at 90, paper at 217: a dim photo
    np.testing.assert_allclose(prepare_digit(faded), prepare_digit(picture), atol=1e-6)


@host
def test_paper_grain_is_not_ink():
    rng = np.random.default_rng(0)
    picture = draw_digit(SEVEN, 300, 300).astype(float)
    grainy = np.clip(picture - rng.uniform(0, 25, picture.shape), 0, 255)  # speckled paper everywhere
    x = prepare_digit(grainy)
    assert max(bounding_box(x)) == 20
    assert close_up_to_a_pixel(x, prepare_digit(picture), 0.02)


@host
def test_blank_and_malformed_inputs():
    with pytest.raises(ValueError, match="No digit found"):
        prepare_digit(np.full((40, 40), 255, np.uint8))
    with pytest.raises(ValueError, match="2-D grayscale"):
        prepare_digit(np.zeros((2, 28, 28)))
    with pytest.raises(TypeError, match="numbers"):
        prepare_digit(np.array([["a", "b"], ["c", "d"]]))


@host
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_load_digit_reads_png_and_jpeg(tmp_path, suffix):
    picture = draw_digit(SEVEN, 320, 240)
    path = tmp_path / f"seven{suffix}"
    Image.fromarray(picture).save(path)
    expected = prepare_digit(np.asarray(Image.fromarray(picture).convert("L")))
    x = load_digit(path)
    assert x.shape == (28, 28)
    if suffix == ".png":
        np.testing.assert_allclose(x, expected, atol=1e-6)
    else:  # JPEG is lossy: its faint ripples around the strokes widen the box a little
        assert close_up_to_a_pixel(x, expected, 0.05)


@host
def test_a_phone_photo_stored_sideways_is_read_upright(tmp_path):
    upright = Image.fromarray(draw_digit(SEVEN, 240, 320)).convert("L")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # the sensor's way round: turned a quarter to the left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn it a quarter to the right to view it
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    x = load_digit(tmp_path / "photo.jpg")
    assert close_up_to_a_pixel(x, prepare_digit(np.asarray(upright)), 0.05)
    assert not close_up_to_a_pixel(x, prepare_digit(np.asarray(stored)), 0.05)  # not the seven lying on its side


@host
def test_load_digit_lays_transparent_pictures_on_white(tmp_path):
    picture = draw_digit(ONE)
    rgba = np.zeros((*picture.shape[:2], 4), np.uint8)  # black, fully transparent...
    rgba[..., 3] = 255 - picture[..., 0]  # ...except the strokes
    Image.fromarray(rgba).save(tmp_path / "one.png")
    np.testing.assert_allclose(load_digit(tmp_path / "one.png"), prepare_digit(picture), atol=0.02)


@host
def test_load_digit_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such image file"):
        load_digit(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"/dev/zero is not a regular file \(a device, a pipe or a socket\)"):
        load_digit("/dev/zero")  # exists, but reading it would never end
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"Cannot read .*notes\.png as an image"):
        load_digit(tmp_path / "notes.png")


def test_validation_images_round_trip_through_png_files(tmp_path, mnist_model):
    model, x_valid, y_valid = mnist_model
    originals = x_valid[:30]
    prepared = []
    for i, image in enumerate(originals):
        white_on_black, black_on_white = tmp_path / f"{i}.png", tmp_path / f"{i}-inverted.png"
        Image.fromarray(image).save(white_on_black)
        Image.fromarray(255 - image).save(black_on_white)
        x = load_digit(white_on_black)
        np.testing.assert_allclose(x, image / 255, atol=1 / 255 + 1e-6)  # the same digit, back in place
        np.testing.assert_allclose(load_digit(black_on_white), x, atol=1e-6)
        prepared.append(x)
    expected = model.predict(originals.reshape(-1, 784) / 255, verbose=0).argmax(axis=1)
    predicted = model.predict(np.array(prepared).reshape(-1, 784), verbose=0).argmax(axis=1)
    np.testing.assert_array_equal(predicted, expected)
    assert (predicted == y_valid[:30]).mean() >= 0.9


@pytest.mark.parametrize("strokes, digit", [(ONE, 1), (SEVEN, 7)], ids=["one", "seven"])
def test_a_trained_model_reads_drawn_digits(mnist_model, strokes, digit):
    model = mnist_model[0]
    for width, height in SIZES:
        x = prepare_digit(draw_digit(strokes, width, height))
        assert model.predict(x.reshape(1, 784), verbose=0).argmax() == digit


@host
def test_a_boolean_drawing():
    drawing = np.zeros((100, 60), bool)
    drawing[10:90, 25:35] = True  # a one, True for ink
    x = prepare_digit(drawing)
    assert bounding_box(x) == (20, 2) and x.max() == 1.0  # 80 x 10 pixels -> 20 x 2.5, rounded
    np.testing.assert_allclose(prepare_digit(~drawing), x, atol=1e-6)


# --- pictures people really have -----------------------------------------------------
@host
@pytest.mark.parametrize("ink, hidden", [((255, 255, 255), (0, 0, 0)), ((255, 255, 255), (255, 255, 255)),
                                         ((0, 0, 0), (255, 255, 255)), ((200, 30, 30), (0, 0, 0))],
                         ids=["white-ink", "white-ink-white-sheet", "black-ink-white-sheet", "red-ink"])
def test_ink_on_a_transparent_sheet_is_read_from_the_alpha_channel(tmp_path, ink, hidden):
    picture = draw_digit(SEVEN, 240, 260)
    expected = prepare_digit(picture)
    rgba = transparent(picture, ink, hidden)
    Image.fromarray(rgba).save(tmp_path / "seven.png")
    np.testing.assert_allclose(load_digit(tmp_path / "seven.png"), expected, atol=0.02)
    np.testing.assert_allclose(prepare_digit(rgba), expected, atol=0.02)  # an RGBA array, the same


@host
def test_paper_with_a_transparent_margin_is_laid_on_white(tmp_path):
    picture = draw_digit(ONE, 200, 200)
    rgba = np.zeros((240, 240, 4), np.uint8)  # a transparent margin 20 pixels wide...
    rgba[20:220, 20:220, :3] = picture  # ...around opaque paper with black ink
    rgba[20:220, 20:220, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "one.png")
    padded = np.pad(picture, ((20, 20), (20, 20), (0, 0)), constant_values=255)
    np.testing.assert_allclose(load_digit(tmp_path / "one.png"), prepare_digit(padded), atol=0.02)


@host
@pytest.mark.parametrize("paper, ink", [(65535, 0), (40000, 20000), (4000, 500)],
                         ids=["full-range", "dim-scan", "12-bit-sensor"])
def test_a_16_bit_greyscale_scan_keeps_its_depth(tmp_path, paper, ink):
    gray = np.asarray(Image.fromarray(draw_digit(SEVEN, 300, 300)).convert("L")) / 255  # 1 paper, 0 ink
    scan = np.round(ink + gray * (paper - ink)).astype(np.uint16)  # every value above 255 in the dim scan
    Image.fromarray(scan).save(tmp_path / "scan.png")
    assert Image.open(tmp_path / "scan.png").mode == "I;16"
    expected = prepare_digit(gray)
    np.testing.assert_allclose(load_digit(tmp_path / "scan.png"), expected, atol=0.01)
    np.testing.assert_allclose(prepare_digit(scan), expected, atol=0.01)  # a uint16 array: 0..65535
    Image.fromarray(scan.astype(np.int32)).save(tmp_path / "scan.tif")  # Pillow's mode "I": 32-bit integers
    assert Image.open(tmp_path / "scan.tif").mode == "I"
    np.testing.assert_allclose(load_digit(tmp_path / "scan.tif"), expected, atol=0.01)


@host
def test_a_picture_too_large_to_decode_safely(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png_claiming(20000, 15000))
    with pytest.raises(ValueError) as info:
        load_digit(path)
    assert str(info.value) == (f"{path} is too large to decode safely: 300,000,000 pixels, more than the "
                               f"{2 * Image.MAX_IMAGE_PIXELS:,} Pillow allows. Shrink it (a digit needs no more "
                               "than about 1000 pixels across) and try again.")


@host
def test_damaged_pictures_and_folders(tmp_path):
    Image.fromarray(draw_digit(ONE)).save(tmp_path / "one.png")
    whole = (tmp_path / "one.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=rf"Cannot read {re.escape(str(tmp_path / 'cut.png'))} as an image "
                                         r"\(PNG or JPEG expected; is it damaged\?\): OSError: .*truncated"):
        load_digit(tmp_path / "cut.png")
    (tmp_path / "header.png").write_bytes(whole[:20])  # the signature and half a header
    with pytest.raises(ValueError, match=rf"Cannot read {re.escape(str(tmp_path / 'header.png'))} as an image"):
        load_digit(tmp_path / "header.png")
    with pytest.raises(IsADirectoryError, match=rf"{re.escape(str(tmp_path))} is a folder, not an image file"):
        load_digit(tmp_path)
