"""The README, docs/backprop.md (the guide) and the other pages of docs/ stay true to the code.

- every relative link (in the README, every page of docs/ and the notebook) leads
  to a file, and to a heading when it names one; every page of docs/ is linked from
  the README, and every picture in docs/ from a page; the README stays a front door
  (at most 250 lines);
- every ``python`` block of the other pages of docs/ runs, unless marked
  ``<!-- not run ... -->``, each page in its own folder with the names the README's
  MNIST workflow leaves behind (a smaller model, on 1,000 images); the README's
  workflow itself runs in a slow test, for 1 epoch instead of 5;
- every link to a ``.py`` file that names a function, class or method
  (``[`Dense.backward`](../tinynet/layers/dense.py)``) points at a file that
  defines it, checked with ``ast``;
- every ``python`` block runs, in order, in one namespace, unless an HTML comment
  ``<!-- not run ... -->`` stands right before it (on every backend under test:
  the guide's own layer must run wherever tinynet runs);
- every output the guide quotes is what the code prints: a ``text`` block after
  ``<!-- output of examples/backprop_by_hand.py -->`` must appear, line for line,
  in that script's output, and one after ``<!-- output of the python blocks above -->``
  must be what the blocks since the previous quoted output printed (with
  floating-point numbers in scientific notation masked);
- every ``text`` block is a quoted output with one of those two comments, so none
  goes unchecked.
"""
import ast
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import mnist_dir

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "backprop.md"
NOTEBOOK = ROOT / "examples" / "mnist.ipynb"
PAGES = sorted((ROOT / "docs").glob("*.md"))  # the guide and the pages the README links to
LINKED_DOCS = [README, *PAGES, NOTEBOOK]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
NOT_RUN = re.compile(r"<!-- not run[^>]*-->\s*$")
OUTPUT_OF_SCRIPT = "<!-- output of examples/backprop_by_hand.py -->"
OUTPUT_OF_BLOCKS = "<!-- output of the python blocks above -->"


def blocks(path):
    """(language, code, the text before the block) for each fenced block."""
    text = path.read_text()
    return [(m.group(1), m.group(2), text[:m.start()]) for m in FENCE.finditer(text)]


def prose(path):
    """The Markdown outside fenced blocks (for a notebook: its Markdown cells)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown") + "\n"
    else:
        text = path.read_text()
    return FENCE.sub("", text)


def links(path):
    return [(label, target) for label, target in LINK.findall(prose(path))
            if not re.match(r"[a-z]+:", target)]  # skip https:, mailto:


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    return {slug(line.lstrip("#")) for line in prose(path).splitlines() if re.match(r"#+ ", line)}


def defined_names(path):
    """{'Dense', 'Dense.backward', 'glorot_uniform', ...}: what a module defines at top level
    and what its classes define."""
    names = set()

    def targets(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return [node.name]
        if isinstance(node, ast.Assign):
            return [t.id for t in node.targets if isinstance(t, ast.Name)]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            return [node.target.id]
        return []

    members = {}  # class -> what it defines
    for node in ast.parse(path.read_text()).body:
        names.update(targets(node))
        if isinstance(node, ast.ClassDef):
            members[node.name] = [member for child in node.body for member in targets(child)]
            names.update(f"{node.name}.{member}" for member in members[node.name])
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in members:
            names.update(f"{alias}.{member}" for alias in targets(node) for member in members[node.value.id])
    return names  # with an alias's members too: MaxPool2D = MaxPooling2D defines MaxPool2D.backward


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda p: p.name)
@pytest.mark.host_only("reads Markdown files")
def test_every_relative_link_resolves(doc):
    assert links(doc), f"no links found in {doc}"
    broken = []
    for label, target in links(doc):
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"[{label}]({target}): no file {path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"[{label}]({target}): no heading '#{anchor}' in {path.name}")
    assert not broken, "\n".join(broken)


@pytest.mark.host_only("reads Markdown files")
def test_the_readme_links_every_page_of_docs_and_the_pages_show_every_picture():
    linked = {(README.parent / target.partition("#")[0]).resolve() for label, target in links(README)}
    assert [page.name for page in PAGES if page not in linked] == [], "link each page of docs/ from the README"
    shown = {(page.parent / target.partition("#")[0]).resolve() for page in PAGES for label, target in links(page)}
    pictures = [path for path in (ROOT / "docs").iterdir() if path.suffix in (".png", ".jpg", ".svg")]
    assert pictures and [path.name for path in pictures if path not in shown] == []
    assert "](draw.png)" in (ROOT / "docs" / "draw.md").read_text()  # the page's own screenshot


@pytest.mark.host_only("reads the README")
def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"the README has {len(lines)} lines: move a topic to a page of docs/ and link it"
    text = README.read_text()  # the two set-up commands, exactly
    assert "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/python examples/mnist.py\n" in text
    assert 'python3 -m venv .venv && .venv/bin/pip install ".[test]" && .venv/bin/python -m pytest\n' in text


@pytest.mark.host_only("reads source files")
def test_every_function_the_guide_links_to_exists():
    checked, missing = 0, []
    for label, target in links(GUIDE):
        if not target.endswith(".py"):
            continue
        code = re.fullmatch(r"`([^`]+)`", label)
        assert code, f"[{label}]({target}): name the code in backticks, e.g. [`Dense.backward`]({target})"
        name = code.group(1).removesuffix("()")
        path = (GUIDE.parent / target).resolve()
        if "/" in name or name.endswith(".py"):  # a file named by its path
            assert path == (ROOT / name).resolve(), f"[{label}]({target}) names another file"
            continue
        checked += 1
        if name not in defined_names(path):
            missing.append(f"[{label}]({target}): {path.relative_to(ROOT)} defines no {name}")
    assert not missing, "\n".join(missing)
    assert checked >= 20  # the guide links every piece it derives


@pytest.mark.host_only("reads the guide")
def test_the_guide_names_every_layer_loss_and_optimizer():
    import tinynet
    text = GUIDE.read_text()
    shipped = ({*tinynet.layers.__all__, *tinynet.losses.__all__, *tinynet.optimizers.__all__}
               - {"get", "Layer", "Loss", "Optimizer", "categorical_crossentropy", "mean_squared_error"})
    modules = (tinynet.layers, tinynet.losses, tinynet.optimizers)
    aliases = {name for name in shipped for module in modules  # MaxPool2D is MaxPooling2D: linked once
               if getattr(getattr(module, name, None), "__name__", name) != name}
    assert {name for name in shipped - aliases if f"[`{name}." not in text} == set(), \
        "every shipped layer, loss and optimizer gets a derivation with a link"


@pytest.mark.host_only("runs the script in a child process, on NumPy; tests/test_backprop_by_hand.py runs it on every backend")
def test_quoted_output_of_the_by_hand_example_is_what_it_prints():
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "backprop_by_hand.py")],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    quoted = [code for language, code, before in blocks(GUIDE) if before.rstrip().endswith(OUTPUT_OF_SCRIPT)]
    assert len(quoted) >= 5
    for code in quoted:
        assert code in run.stdout, f"the guide quotes lines the script does not print:\n{code}"


@pytest.mark.host_only("reads the guide")
def test_every_quoted_output_is_checked():
    unchecked = [code for language, code, before in blocks(GUIDE)
                 if language == "text" and not before.rstrip().endswith((OUTPUT_OF_SCRIPT, OUTPUT_OF_BLOCKS))]
    assert not unchecked, (f"put {OUTPUT_OF_SCRIPT} or {OUTPUT_OF_BLOCKS} right before each quoted output; "
                           "these are checked by nothing:\n" + "\n".join(unchecked))


def mask_numbers(text):
    return re.sub(r"[+-]?\d\.\d+e[+-]\d+", "<number>", text)


def test_the_python_blocks_run_and_print_what_the_guide_quotes(monkeypatch):
    monkeypatch.setenv("TINYNET_DATA_DIR", str(mnist_dir()))
    namespace = {"__name__": "backprop_guide"}
    printed, ran, compared = "", 0, []
    saved = np.get_printoptions()
    try:
        for language, code, before in blocks(GUIDE):
            if language == "python" and not NOT_RUN.search(before):
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(compile(code, f"{GUIDE.name}, python block {ran + 1}", "exec"), namespace)
                printed += out.getvalue()
                ran += 1
            elif before.rstrip().endswith(OUTPUT_OF_BLOCKS):
                assert mask_numbers(printed) == mask_numbers(code), \
                    f"the guide quotes:\n{code}\nbut the blocks printed:\n{printed}"
                printed = ""
                compared.append(code)
    finally:
        np.set_printoptions(**saved)
    assert ran >= 7 and len(compared) >= 5
    # the worked example of the clip: the clipped path stops learning, the fused path (fit's) does not
    assert any(code.startswith("clipped path:") for code in compared)
    assert any(code.startswith("label [1.0, 0.0]: dL/dp") for code in compared)


@pytest.mark.host_only("reads text files")
def test_no_install_command_names_tinynet_on_pypi():
    """``tinynet`` on PyPI is a stranger's package: install from the checkout (``pip install ".[gpu]"``),
    never by that name, with or without an extra."""
    wrong = re.compile("pip install" + r"\s+\\?[\"']?tinynet\b")  # split, so this file does not match itself
    files = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("examples/*"), *ROOT.glob("benchmarks/*"),
             *ROOT.glob("tinynet/**/*.py"), *ROOT.glob("tests/*.py"), ROOT / "pyproject.toml"]
    found = [f"{path.relative_to(ROOT)}: {match.group()}" for path in files if path.is_file()
             for match in wrong.finditer(path.read_text(errors="replace"))]
    assert found == [], found


RUN_PAGES = [page for page in PAGES if page != GUIDE
             and any(language == "python" and not NOT_RUN.search(before) for language, code, before in blocks(page))]


@pytest.fixture(scope="module")
def mnist_sample():
    """The first 1,000 training and 200 validation images and labels, as mnist.load_data returns them."""
    from tinynet.datasets import mnist

    (x_train, y_train), (x_valid, y_valid) = mnist.load_data(mnist_dir())
    return x_train[:1000], y_train[:1000], x_valid[:200], y_valid[:200]


def after_the_readme(mnist_sample):
    """The names the README's MNIST workflow leaves behind, made as it makes them, on the active backend:
    a smaller model (784-64-10) trained for one epoch on the sample."""
    import tinynet
    from tinynet.layers import Dense
    from tinynet.models import Sequential

    x_train, y_train, x_valid, y_valid = mnist_sample
    x_train = x_train.reshape(len(x_train), 784) / 255; x_valid = x_valid.reshape(len(x_valid), 784) / 255
    y_train = tinynet.utils.to_categorical(y_train, 10); y_valid = tinynet.utils.to_categorical(y_valid, 10)
    tinynet.utils.set_random_seed(0)
    model = Sequential()
    model.add(Dense(units=64, activation='relu', input_shape=(784,)))
    model.add(Dense(units=10, activation='softmax'))
    model.compile(loss='categorical_crossentropy', metrics=['accuracy'])
    history = model.fit(x_train, y_train, epochs=1, verbose=0, validation_data=(x_valid, y_valid))
    return {"tinynet": tinynet, "model": model, "history": history, "x_train": x_train, "y_train": y_train,
            "x_valid": x_valid, "y_valid": y_valid}


@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: p.name)
def test_the_python_blocks_of_each_page_run(page, mnist_sample, tmp_path, monkeypatch):
    from PIL import Image

    from conftest import SEVEN, draw_digit

    monkeypatch.chdir(tmp_path)  # files the blocks write land here; my_seven.png is the digit they read
    Image.fromarray(draw_digit(SEVEN)).save("my_seven.png")
    namespace = {"__name__": page.stem, **after_the_readme(mnist_sample)}
    ran = 0
    with contextlib.redirect_stdout(io.StringIO()):
        for language, code, before in blocks(page):
            if language == "python" and not NOT_RUN.search(before):
                exec(compile(code, f"{page.name}, python block {ran + 1}", "exec"), namespace)
                ran += 1
    assert ran >= 1
    if page.name == "pictures.md":
        assert sorted(path.name for path in tmp_path.glob("*.png")) == [
            "confusion_matrix.png", "digits.png", "mistakes.png", "my_seven.png", "training_curves.png"]
    if page.name == "saving.md":
        assert (tmp_path / "mnist.npz").is_file() and len(namespace["model"].get_weights()) == 4


@pytest.mark.host_only("reads Markdown files")
def test_the_pages_with_examples_run_them():
    assert {page.name for page in RUN_PAGES} >= {"digits.md", "gradcheck.md", "pictures.md", "saving.md"}


@pytest.mark.slow
@pytest.mark.host_only("trains on all of MNIST once, on NumPy; the pages' blocks run on every backend")
def test_the_readme_workflow_runs(monkeypatch):
    """The README's MNIST workflow, as written, but for 1 epoch instead of 5 (about 97% then)."""
    monkeypatch.setenv("TINYNET_DATA_DIR", str(mnist_dir()))
    [code] = [code for language, code, before in blocks(README) if language == "python" and "mnist.load_data()" in code]
    assert code.count("epochs=5") == 1
    namespace = {"__name__": "readme"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace("epochs=5", "epochs=1"), "README.md, the MNIST workflow", "exec"), namespace)
    assert "Total params: 669,706" in out.getvalue() and "1875/1875" in out.getvalue()
    assert namespace["history"].history["val_accuracy"][0] > 0.95
