"""examples/draw.py's page in a real browser: headless Chromium draws a 1 and a 7 with a pen, stroke by stroke.

It needs Chromium and its driver (``apt-get install chromium chromium-driver`` on Debian or Ubuntu;
.ci/run installs them). Without them it skips and says how to install them, so the README's test
command passes on a fresh machine; with ``CI`` set (CI=true) it fails instead, never skips.
The model is the notebook's (examples/mnist.py's build_model) after one epoch on MNIST, trained
once for this file (about 10 s). Set DRAW_SCREENSHOT=docs/draw.png to write docs/draw.md's screenshot too.
A small convolutional network (trained on 5,000 images, about 20 s) shows its feature maps on the same page;
DRAW_SCREENSHOT_CNN=docs/draw_cnn.png writes that screenshot.
"""
import io
import os
import shutil
import time

import numpy as np
import pytest

from conftest import load_example, mnist_dir, serving
from tinynet import backend

pytestmark = pytest.mark.host_only("the server runs its model on NumPy; the browser is the subject")

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INSTALL = "install them with `apt-get install chromium chromium-driver` on Debian or Ubuntu (.ci/run does this in CI)"
LAPTOP, PHONE = (1280, 860), (390, 844)  # window sizes, CSS pixels

# Strokes in the pad's unit square (x, y), y down: a 1, and a 7 drawn in one stroke.
ONE = [[(0.52, 0.15), (0.48, 0.85)]]
SEVEN = [[(0.25, 0.2), (0.72, 0.2), (0.42, 0.86)]]


@pytest.fixture(scope="module")
def model():
    """The notebook's model, one epoch on all of MNIST (seed 0): reads drawn digits well."""
    import tinynet
    from tinynet.datasets import mnist

    (x_train, y_train), _ = mnist.load_data(mnist_dir())
    backend.set_backend("numpy")
    tinynet.utils.set_random_seed(0)
    model = load_example("mnist").build_model()
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train.reshape(60000, 784) / 255, tinynet.utils.to_categorical(y_train, 10), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def page(draw_example, model):
    """(url, log): a server for ``model`` on 127.0.0.1, and the lines it logs."""
    log = io.StringIO()
    with serving(draw_example.make_server(model, port=0, source="the notebook's model, one epoch", log=log)) as url:
        yield url + "/", log


def require_chromium():
    """Skip, saying how to install them, when Chromium or its driver is missing; with CI set, fail instead."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if not missing:
        return
    message = f"{' and '.join(missing)} not found: {INSTALL}."
    if os.environ.get("CI"):  # CI must run this test: a failure, never a skip
        pytest.fail(f"{message} CI is set, so the browser test fails instead of skipping.")
    pytest.skip(message)


def test_without_chromium_the_browser_test_skips_saying_how_to_install(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(shutil, "which", lambda path: None if path == CHROMEDRIVER else path)
    with pytest.raises(pytest.skip.Exception, match="/usr/bin/chromedriver not found") as skipped:
        require_chromium()
    assert "apt-get install chromium chromium-driver" in str(skipped.value)
    monkeypatch.setenv("CI", "")  # set but empty: not CI
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        require_chromium()


def test_in_ci_a_missing_chromium_fails_never_skips(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(shutil, "which", lambda path: None)
    with pytest.raises(pytest.fail.Exception, match="/usr/bin/chromium and /usr/bin/chromedriver not found") as failed:
        require_chromium()
    assert "apt-get install chromium chromium-driver" in str(failed.value) and "CI is set" in str(failed.value)


def test_with_chromium_and_its_driver_nothing_skips(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(shutil, "which", lambda path: path)
    assert require_chromium() is None
    monkeypatch.delenv("CI")
    assert require_chromium() is None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through chromedriver, with a fresh profile; no network beyond 127.0.0.1 is used."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                     f"--window-size={LAPTOP[0]},{LAPTOP[1]}"] + (["--no-sandbox"] if os.geteuid() == 0 else []):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def set_viewport(browser, width, height):
    """Make the page's viewport (not the window) ``width`` x ``height`` CSS pixels."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def draw(browser, strokes):
    """Draw ``strokes`` on the pad with a pen: down, many small moves, up; then wait for the last answer."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    left, top, width, height = browser.execute_script(
        "const r = document.getElementById('pad').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];")
    for stroke in strokes:
        actions = ActionBuilder(browser, mouse=PointerInput(interaction.POINTER_PEN, "pen"), duration=15)
        points = [(left + x * width, top + y * height) for x, y in stroke]
        actions.pointer_action.move_to_location(*points[0]).pointer_down()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            steps = max(1, int(np.hypot(x1 - x0, y1 - y0) / 8))  # a move every 8 pixels
            for t in np.linspace(0, 1, steps + 1)[1:]:
                actions.pointer_action.move_to_location(x0 + t * (x1 - x0), y0 + t * (y1 - y0))
        actions.pointer_action.pointer_up()
        actions.perform()
    wait_idle(browser)


def wait_idle(browser):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda b: b.execute_script("return document.body.dataset.state") == "idle")


READ_PAGE = """
const lit = (canvas, test) => {  // how many of the canvas's pixels pass test(r, g, b)
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (test(d[i], d[i + 1], d[i + 2])) n++;
  return n;
};
const bars = [...document.querySelectorAll('#bars li')];
return {
  prediction: document.body.dataset.prediction,
  status: document.getElementById('status').textContent,
  top: bars.filter((li) => li.classList.contains('top')).map((li) => li.querySelector('.digit').textContent),
  p: bars.map((li) => Number(li.dataset.p)),
  widths: bars.map((li) => li.querySelector('.bar').getBoundingClientRect().width),
  track: bars[0].querySelector('.track').getBoundingClientRect().width,
  inputLit: lit(document.getElementById('input'), (r) => r > 128),
  grids: [...document.querySelectorAll('#layers canvas')].map((c) => ({
    layer: c.dataset.layer, width: c.width, height: c.height, firing: Number(c.dataset.firing),
    bright: lit(c, (r, g) => r > 200 && g > 150)})),  // cells near the top of the heat scale
  weights: {unit: document.getElementById('weights').dataset.unit,
            red: lit(document.getElementById('weights'), (r, g, b) => r > g + 60 && r > b + 60),
            blue: lit(document.getElementById('weights'), (r, g, b) => b > r + 60 && b > g + 30)},
  overflow: document.documentElement.scrollWidth - window.innerWidth,
};
"""


def read_page(browser):
    return browser.execute_script(READ_PAGE)


def check_reads(state, digit):
    """The page shows ``digit`` as its answer, with bars, the prepared input and both grids drawn."""
    assert state["prediction"] == str(digit) and state["top"] == [str(digit)], state["status"]
    assert sum(state["p"]) == pytest.approx(1, abs=2e-3) and max(state["p"]) == state["p"][digit]
    assert state["widths"][digit] == pytest.approx(state["p"][digit] * state["track"], abs=2)  # the bar's length
    assert state["inputLit"] > 20  # white ink on the 28x28 input
    assert [(g["layer"], g["width"], g["height"]) for g in state["grids"]] == [("dense", 32 * 12, 16 * 12),
                                                                               ("dense_1", 32 * 12, 16 * 12)]
    for grid in state["grids"]:
        assert 0 < grid["firing"] < 512 and grid["bright"] > 0  # some units fire, not all


@pytest.mark.slow
def test_draw_a_one_then_a_seven_and_look_inside(browser, page, tmp_path):  # browser first: it may skip
    from selenium.webdriver.common.by import By

    url, log = page
    set_viewport(browser, *LAPTOP)
    browser.get(url)
    wait_idle(browser)
    assert browser.execute_script("return document.querySelectorAll('#layers canvas').length") == 2
    assert read_page(browser)["prediction"] in (None, "")

    draw(browser, ONE)
    check_reads(read_page(browser), 1)

    browser.find_element(By.ID, "clear").click()
    state = read_page(browser)
    assert state["prediction"] == "" and state["top"] == [] and state["inputLit"] == 0
    assert all(grid["firing"] == 0 for grid in state["grids"])

    logged, start = len(log.getvalue().splitlines()), time.perf_counter()
    draw(browser, SEVEN)
    seconds = time.perf_counter() - start
    check_reads(read_page(browser), 7)
    asked = sum("POST /predict" in line for line in log.getvalue().splitlines()[logged:])
    assert 2 <= asked <= 10 * seconds + 1, (asked, seconds)  # answers while drawing, at most ten a second

    # Click the first layer's most active unit: its 784 weights appear, red and blue.
    unit, x, y = browser.execute_script("""
        const values = grids[0].values, unit = values.indexOf(Math.max(...values));
        const r = grids[0].canvas.getBoundingClientRect();
        return [unit, r.left + (unit % 32 + 0.5) * r.width / 32, r.top + (Math.floor(unit / 32) + 0.5) * r.height / 16];
    """)
    click_at(browser, x, y)
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 10).until(lambda b: read_page(b)["weights"]["unit"] == str(unit))
    state = read_page(browser)
    assert state["weights"]["red"] > 20 and state["weights"]["blue"] > 20
    assert f"Unit {unit} of dense" in browser.find_element(By.ID, "unit-text").text
    assert state["overflow"] <= 0  # nothing sticks out sideways

    screenshot(browser, tmp_path / "draw.png", os.environ.get("DRAW_SCREENSHOT"))

    set_viewport(browser, *PHONE)  # the same page on a phone: one column, nothing cut off sideways
    state = read_page(browser)
    assert state["overflow"] <= 0 and state["prediction"] == "7"
    pad_width = browser.execute_script("return document.getElementById('pad').getBoundingClientRect().width")
    assert 250 <= pad_width <= PHONE[0]
    screenshot(browser, tmp_path / "draw-phone.png", os.environ.get("DRAW_SCREENSHOT_PHONE"))


def click_at(browser, x, y):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(x, y).click()
    actions.perform()


def screenshot(browser, path, copy_to=None):
    """The whole page as a PNG at ``path`` (and at ``copy_to`` when given)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    width = browser.execute_script("return window.innerWidth")
    set_viewport(browser, width, height)
    assert browser.save_screenshot(str(path))
    with open(path, "rb") as png:
        assert png.read(4) == b"\x89PNG"
    if copy_to:
        shutil.copyfile(path, copy_to)


@pytest.fixture(scope="module")
def cnn_page(draw_example):
    """(url, model): a server for a small CNN, Conv2D(8)-MaxPool-Conv2D(16)-MaxPool-Dense(10), two epochs on
    5,000 MNIST images with Adam (seed 0; about 90% accurate)."""
    import tinynet
    from tinynet.datasets import mnist
    from tinynet.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from tinynet.models import Sequential

    (x_train, y_train), _ = mnist.load_data(mnist_dir())
    backend.set_backend("numpy")
    tinynet.utils.set_random_seed(0)
    model = Sequential([Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(2),
                        Conv2D(16, 3, activation="relu"), MaxPooling2D(2), Flatten(), Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x_train[:5000].reshape(-1, 28, 28, 1) / 255, tinynet.utils.to_categorical(y_train[:5000], 10),
              batch_size=32, epochs=2, verbose=0)
    with serving(draw_example.make_server(model, port=0, source="a small CNN", log=io.StringIO())) as url:
        yield url + "/", model


@pytest.mark.slow
def test_a_cnn_s_feature_maps_are_drawn_and_a_click_shows_a_filter(browser, cnn_page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, model = cnn_page
    set_viewport(browser, *LAPTOP)
    browser.get(url)
    wait_idle(browser)
    assert "What one filter looks for" in browser.find_element(By.ID, "unit-title").text
    draw(browser, SEVEN)
    state = read_page(browser)
    assert state["prediction"] in list("0123456789") and state["inputLit"] > 20
    # Four panels of maps, each map scaled up by a whole number to about 48 pixels, with 4 between them:
    # 8 maps 26x26 (x2) in 2x4, 8 maps 13x13 (x4) in 2x4, 16 maps 11x11 (x4) in 4x4, 16 maps 5x5 (x10) in 4x4.
    assert [(g["layer"], g["width"], g["height"]) for g in state["grids"]] == [
        ("conv2d", 4 * 56, 2 * 56), ("max_pooling2d", 4 * 56, 2 * 56),
        ("conv2d_1", 4 * 48, 4 * 48), ("max_pooling2d_1", 4 * 54, 4 * 54)]
    for grid in state["grids"]:
        assert grid["firing"] > 0 and grid["bright"] > 0, grid  # some maps fire, brightly somewhere

    # Click the first convolution's third map: its 3x3 filter appears, red and blue.
    x, y = browser.execute_script("""
        const r = grids[0].canvas.getBoundingClientRect();
        return [r.left + 2.5 * r.width / 4, r.top + 0.5 * r.height / 2];""")
    click_at(browser, x, y)
    WebDriverWait(browser, 10).until(lambda b: read_page(b)["weights"]["unit"] == "2")
    size = browser.execute_script("const w = document.getElementById('weights'); return [w.width, w.height];")
    assert size == [3, 3]
    text = browser.find_element(By.ID, "unit-text").text
    assert text.startswith("Filter 2 of conv2d: 3×3 weights") and "strongest value for your digit" in text
    state = read_page(browser)
    assert state["weights"]["red"] + state["weights"]["blue"] > 0 and state["overflow"] <= 0

    screenshot(browser, tmp_path / "draw_cnn.png", os.environ.get("DRAW_SCREENSHOT_CNN"))
