"""Draw a digit in the browser and watch the network read it, layer by layer.

    python examples/draw.py                     # the model from ~/.cache/tinynet/models/mnist.npz
    python examples/draw.py --model out/model.npz --port 8001 --open

It serves a page on http://127.0.0.1:8000/ (only this computer can reach it,
unless --host says otherwise), and it answers only requests that name it as
127.0.0.1, localhost or the --host given: a web page elsewhere cannot read or
drive it, even through a domain name made to point here. While you draw, the page shows the ten
probabilities, the 28x28 image the model was given (prepared by
tinynet.utils.digits.prepare_digit, as examples/predict.py does) and the
activations of every hidden layer; click a unit of the first layer to see the
784 weights it multiplies the pixels by.

A convolutional network works too (python examples/mnist_cnn.py --save out/cnn.npz,
then --model out/cnn.npz): the page then draws each Conv2D and MaxPooling2D layer's
feature maps, one small image per channel, and a click on a map of the first
convolution shows its filter (3x3 for examples/mnist_cnn.py's).

Without --model it uses DEFAULT_MODEL, $XDG_CACHE_HOME/tinynet/models/mnist.npz
(~/.cache/... when XDG_CACHE_HOME is unset). When that file does not exist yet, it
trains the notebook's model for one epoch (about a minute on a laptop) and saves
it there; `python examples/mnist.py --save ~/.cache/tinynet/models/mnist.npz`
puts a better-trained one (5 epochs) in its place.

The JSON API, for scripts (see docs/draw.md):
    POST /predict      {"image": [[0..255, ...], ...]}  -> probabilities, prepared input, activations
                       (a convolution's or max-pool's as feature maps, one HxW map per channel)
    GET  /weights/<k>  the 784 incoming weights of unit k of the first layer, as 28x28;
                       for a CNN, filter k of the first convolution, as kh x kw
    GET  /model        the layers: names, units and the grid each is drawn in

Only the standard library's http.server serves it: a page for one person on one
computer needs no web framework, and every line of the server is here to read.
"""
import argparse
import errno
import functools
import importlib.util
import ipaddress
import json
import math
import os
import re
import socket
import sys
import threading
import time
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy

import tinynet
from tinynet import backend
from tinynet.models import load_model
from tinynet.utils.digits import prepare_digit

HERE = Path(__file__).resolve().parent
# The page: fixed files, served by name from this whitelist. Nothing a client sends becomes a path.
PAGE = HERE / "draw"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/draw.css": ("draw.css", "text/css; charset=utf-8"),
    "/draw.js": ("draw.js", "text/javascript; charset=utf-8"),
}
MAX_BODY = 2_000_000  # bytes: a 560x560 image as JSON fits; anything larger is refused with 413
MIN_SIDE, MAX_SIDE = 8, 560  # pixels, each side of a posted image
TIMEOUT = 10  # seconds a client may leave between two bytes of its request
REQUEST_SECONDS = 30  # seconds a client may take to send a whole request, however it trickles
MAX_CONNECTIONS = 32  # clients served at once, a thread each; more wait their turn in the listen queue


def default_model_path():
    """Where draw.py keeps its model: $XDG_CACHE_HOME/tinynet/models/mnist.npz (~/.cache when unset)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "tinynet" / "models" / "mnist.npz"


# --- what the model does with one image -------------------------------------
def check_model(model, source):
    """An MNIST classifier (inputs (None, 784), (None, 28, 28, 1) or (None, 28, 28); 10 outputs), or a ValueError."""
    problem = _example("cli_checks").mnist_classifier_problem(model)  # shared with examples/predict.py
    if problem:
        raise ValueError(f"{source}: {problem}")
    return model


def grid_shape(units):
    """(rows, columns) to draw ``units`` cells in: the most square split, wider than tall (512 -> 16x32)."""
    rows = max(r for r in range(1, math.isqrt(units) + 1) if units % r == 0)
    return rows, units // rows


# How the page draws a layer's output. A Dense layer's (or any 1-D output): a grid of cells, one per unit.
# A Conv2D's or MaxPooling2D's, (H, W, C): its feature maps, a grid of C small HxW images ("kind": "maps").
# Flatten, Dropout, BatchNormalization and other image-shaped outputs are not drawn ("kind": "hidden"): at
# inference they repeat the layer before's values (reshaped, unchanged, or scaled per channel), and their
# values would only make each answer larger.
MAP_LAYERS = {"Conv2D", "MaxPooling2D"}
HIDDEN_LAYERS = {"Flatten", "Dropout"}


def layer_kind(layer):
    """"units", "maps" or "hidden": how the page shows ``layer`` (see MAP_LAYERS)."""
    name = type(layer).__name__
    if name in MAP_LAYERS and len(layer.output_shape) == 4:
        return "maps"
    if name in HIDDEN_LAYERS or len(layer.output_shape) != 2:
        return "hidden"
    return "units"


def describe_layer(layer):
    """One layer as /model lists it. A Dense layer: {"name", "units", "grid"} (as before convolutions came);
    feature maps add "kind": "maps" and "map": [H, W] (units are the channels, grid how their maps are laid
    out); a layer not drawn: "kind": "hidden" and its "shape"."""
    units = int(layer.output_shape[-1])
    entry = {"name": layer.name, "units": units, "grid": grid_shape(units)}
    kind = layer_kind(layer)
    if kind == "maps":
        entry.update(kind="maps", map=[int(n) for n in layer.output_shape[1:3]])
    elif kind == "hidden":
        entry.update(kind="hidden", shape=[int(n) for n in layer.output_shape[1:]])
    return entry


def describe(model):
    """The layers as the page lays them out: name, units, grid (and for a CNN, kind and map)."""
    return {"layers": [describe_layer(layer) for layer in model.layers], "input": [28, 28]}


def look_inside(model, image):
    """Prepare ``image`` as MNIST and run the layers one by one, keeping each one's output.

    Returns the answer of POST /predict (a dict), or one with "blank": true when
    the image holds no digit.
    """
    try:
        digit = prepare_digit(image)  # (28, 28) in [0, 1], white on black, centred: as MNIST
    except ValueError:
        return {"blank": True, "message": "The image is blank: draw a digit."}
    x = backend.to_device(digit.reshape(1, *model.input_shape[1:]))  # (1, 784) flat, or (1, 28, 28, 1): as trained
    outputs = []
    for layer in model.layers:  # model.predict, one layer at a time: y = layer(x), then x = y (inference)
        x = layer.forward(x)
        outputs.append(backend.to_numpy(x)[0])
    probabilities = outputs[-1]
    return {
        "blank": False,
        "prediction": int(numpy.argmax(probabilities)),
        "probabilities": _rounded(probabilities),
        "input": _rounded(digit),
        "layers": [layer_output(layer, y) for layer, y in zip(model.layers, outputs)],
    }


def layer_output(layer, y):
    """One layer's entry in POST /predict's answer: describe_layer's, with its output ``y`` (one image's).
    Units: "activations", a list. Feature maps (H, W, C): "maps", C lists of H rows of W (maps[c][i][j] is
    y[i, j, c]), whole (no subsampling: 28x28 is small), 3 decimals. Hidden: no values."""
    entry = describe_layer(layer)
    kind = entry.get("kind", "units")
    if kind == "units":
        entry["activations"] = _rounded(y)
    elif kind == "maps":
        entry["maps"] = _rounded(numpy.moveaxis(y, -1, 0), 3)  # (C, H, W): a picture per channel
    return entry


def first_weights_layer(model):
    """The layer whose weights GET /weights shows, with what they are: (layer, "units") for a first Dense
    layer on the 784 pixels, (layer, "filters") for a first Conv2D on one channel, or (None, why not)."""
    layer = next((layer for layer in model.layers if layer.params.get("kernel") is not None), None)
    if layer is None:
        return None, "This model has no layer with weights to show."
    kernel = layer.params["kernel"]
    if kernel.ndim == 2 and kernel.shape[0] == 784:  # Dense: W (784, units)
        return layer, "units"
    if kernel.ndim == 4 and kernel.shape[2] == 1:  # Conv2D: W (kh, kw, 1, filters)
        return layer, "filters"
    return None, (f"The first layer with weights, {layer.name}, has a kernel of shape {tuple(kernel.shape)}: "
                  "GET /weights shows a first Dense layer's 784 weights or a first Conv2D's filters only.")


def incoming_weights(model, unit):
    """Column ``unit`` of the first layer's kernel W (784, units), as a 28x28 picture, and its bias.

    For a CNN: filter ``unit`` of the first convolution, W[:, :, 0, unit] (kh, kw), the weights it
    multiplies each window of pixels by, with "kind": "filter"."""
    layer, kind = first_weights_layer(model)
    kernel = layer.params["kernel"]
    if kind == "units":
        weights = backend.to_numpy(kernel[:, unit]).reshape(28, 28)  # only this column leaves the device
    else:
        weights = backend.to_numpy(kernel[:, :, 0, unit])  # (kh, kw)
    bias = layer.params.get("bias")
    answer = {"layer": layer.name, "unit": unit, "weights": _rounded(weights),
              "bias": None if bias is None else round(float(backend.to_numpy(bias[unit])), 4),
              "largest": round(float(numpy.abs(weights).max()), 4)}
    if kind == "filters":
        answer["kind"] = "filter"
    return answer


def _rounded(a, decimals=4):
    """Nested lists of floats, 4 decimals: all the page can show, and a quarter of the bytes."""
    return numpy.round(numpy.asarray(a, dtype=numpy.float64), decimals).tolist()


class BadRequest(ValueError):
    """A request the server answers with 400 (or ``status``) and ``message``, saying what was expected."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


EXPECTED = (f'expected JSON {{"image": [[...], ...]}}: a list of rows of numbers 0..255 '
            f'(or 0..1), {MIN_SIDE} to {MAX_SIDE} pixels a side, dark ink on light paper or the reverse')


def read_image(body):
    """The image in a POST /predict body, as a 2-D NumPy array; BadRequest saying why not."""
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)  # NaN, Infinity: not numbers here
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadRequest(f"The body is not valid JSON ({e}); {EXPECTED}.") from None
    if not isinstance(payload, dict) or "image" not in payload:
        raise BadRequest(f"No \"image\" key in the JSON object; {EXPECTED}.")
    rows = payload["image"]
    if not (isinstance(rows, list) and rows and all(isinstance(row, list) for row in rows)):
        raise BadRequest(f"\"image\" must be a list of rows; {EXPECTED}.")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise BadRequest(f"The rows of \"image\" have different lengths {sorted(widths)[:5]}; {EXPECTED}.")
    height, width = len(rows), widths.pop()
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        raise BadRequest(f"\"image\" is {height}x{width} pixels; {EXPECTED}.")
    if not all(type(v) in (int, float) for row in rows for v in row):  # bool is an int subclass: refused
        raise BadRequest(f"\"image\" holds something other than numbers; {EXPECTED}.")
    try:
        image = numpy.array(rows, dtype=numpy.float64)
    except OverflowError:
        raise BadRequest(f"\"image\" holds a number too large for a pixel; {EXPECTED}.") from None
    if image.min() < 0 or image.max() > 255:
        raise BadRequest(f"\"image\" has values from {image.min():g} to {image.max():g}; {EXPECTED}.")
    return image


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number a pixel can have")


# --- the server --------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    """One request: a page file, POST /predict, GET /weights/<unit> or GET /model. Never a crash."""

    server_version = "tinynet-draw"
    timeout = TIMEOUT  # a client that stops sending mid-request frees its thread after this

    def handle_one_request(self):
        """http.server's reading and answering of one request, stopped after REQUEST_SECONDS: a client sending
        a byte now and then, each within TIMEOUT, would otherwise hold its thread for ever."""
        self.too_slow = False
        alarm = threading.Timer(REQUEST_SECONDS, self._stop_reading)
        alarm.daemon = True
        alarm.start()
        try:
            super().handle_one_request()
        finally:
            alarm.cancel()

    def _stop_reading(self):
        """Time is up: the read waiting for the client's next byte returns at once, as at the end of the request."""
        self.too_slow = True
        try:
            self.connection.shutdown(socket.SHUT_RD)  # the answer can still be written
        except OSError:  # the client has gone already
            pass

    def do_GET(self):
        self._answer(self._get)

    def do_HEAD(self):  # GET's status and headers, without the body (as HTTP requires)
        self._answer(self._get, send_body=False)

    def do_POST(self):
        self._answer(self._post)

    def send_error(self, code, message=None, explain=None):
        """http.server's HTML error page, except for a method with no do_<METHOD>: a JSON 405 or 501."""
        if code == HTTPStatus.NOT_IMPLEMENTED and getattr(self, "command", None):
            self._answer(self._other_method)
        else:  # a request too broken to have a method or path: http.server's own page
            super().send_error(code, message, explain)

    def _allowed(self, path):
        """The methods ``path`` answers to ("GET, HEAD" or "POST"), or None for a path the API does not have."""
        if path in STATIC or path == "/model" or re.fullmatch(r"/weights/\d{1,6}", path):
            return "GET, HEAD"
        return "POST" if path == "/predict" else None

    def _other_method(self):
        path = self.path.split("?", 1)[0]
        allowed = self._allowed(path)
        if allowed is None:
            return self._error(HTTPStatus.NOT_IMPLEMENTED, f"{self.command[:20]} is not a method this server "
                               "knows: the page is GET /, the API is POST /predict, GET /weights/<unit> and GET /model.")
        return self._method_not_allowed(path, allowed)

    def _method_not_allowed(self, path, allowed):
        """405, with the Allow header HTTP asks for."""
        self.headers_to_send["Allow"] = allowed
        use = "POST /predict with a JSON body; " + EXPECTED if allowed == "POST" else f"GET {path}"
        return self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command[:20]} {path[:100]}: use {use}.")

    def _get(self):
        path = self.path.split("?", 1)[0]
        if path in STATIC:
            name, content_type = STATIC[path]
            return HTTPStatus.OK, (PAGE / name).read_bytes(), content_type
        if path == "/model":
            return self._json(HTTPStatus.OK, {**describe(self.server.model), "source": self.server.source})
        match = re.fullmatch(r"/weights/(\d{1,6})", path)
        if match:
            layer, kind = first_weights_layer(self.server.model)
            if layer is None:  # kind says why
                return self._error(HTTPStatus.NOT_FOUND, kind)
            units = layer.params["kernel"].shape[-1]
            unit = int(match[1])
            if unit >= units:
                where = ("the first layer has units" if kind == "units"
                         else f"the first convolution, {layer.name}, has filters")
                return self._error(HTTPStatus.NOT_FOUND, f"No unit {unit}: {where} 0 to {units - 1}.")
            return self._json(HTTPStatus.OK, incoming_weights(self.server.model, unit))
        if path == "/predict":
            return self._method_not_allowed(path, "POST")
        return self._not_found(path)

    def _post(self):
        path = self.path.split("?", 1)[0]
        if path != "/predict":
            allowed = self._allowed(path)
            return self._method_not_allowed(path, allowed) if allowed else self._not_found(path)
        body = self._read_body()
        image = read_image(body)
        with self.server.lock:  # layers keep their last input for backward: one forward pass at a time
            answer = look_inside(self.server.model, image)
        self.note = "blank" if answer["blank"] else f"-> {answer['prediction']}"
        return self._json(HTTPStatus.OK, answer)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise BadRequest("Send the body with a Content-Length, not chunked.", HTTPStatus.LENGTH_REQUIRED)
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest("A POST needs a Content-Length header.", HTTPStatus.LENGTH_REQUIRED)
        if not re.fullmatch(r"[0-9]{1,15}", length):  # ASCII digits: str.isdigit and int() also take '²' or '٣'
            self.close_connection = True
            raise BadRequest(f"Content-Length must be a number of bytes, digits 0-9, got {length[:20]!r}.")
        if int(length) > MAX_BODY:
            self._discard(int(length))  # so that the client, still sending, gets to read the answer
            raise BadRequest(f"The body is {int(length)} bytes; at most {MAX_BODY} are accepted: "
                             f"send a smaller image ({MIN_SIDE} to {MAX_SIDE} pixels a side).",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = self.rfile.read(int(length))
        except TimeoutError:
            self.close_connection = True
            raise BadRequest(f"The body did not arrive within {TIMEOUT} s.", HTTPStatus.REQUEST_TIMEOUT) from None
        if len(body) < int(length) and self.too_slow:
            self.close_connection = True
            raise BadRequest(f"The body did not arrive within {REQUEST_SECONDS} s.", HTTPStatus.REQUEST_TIMEOUT)
        if len(body) < int(length):
            raise BadRequest(f"The body ended after {len(body)} of the {length} bytes Content-Length announced.")
        return body

    def _discard(self, length):
        """Read and drop a body too large to accept, a chunk at a time (up to 10x the limit: then just close)."""
        self.close_connection = True
        if length > 10 * MAX_BODY:
            return
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    break
                length -= len(chunk)
        except OSError:  # timed out or reset: the answer may not reach the client, and that is all
            pass

    def _other_host(self):
        """421: the request names another server in its Host header: a web page elsewhere whose name was made
        to point at this computer (DNS rebinding) would send its own, and may not read or drive this API."""
        self.close_connection = True
        return self._error(HTTPStatus.MISDIRECTED_REQUEST, f"This server answers for {self.server.url} only, not for "
                           f"Host {self.headers['Host'][:100]!r}. Open {self.server.url}, or start draw.py with "
                           "--host set to the name you want to use.")

    def _not_found(self, path):
        return self._error(HTTPStatus.NOT_FOUND, f"Nothing at {path[:100]!r}: the page is at /, the API is "
                                                 "POST /predict, GET /weights/<unit> and GET /model.")

    def _error(self, status, message):
        self.note = message
        return self._json(status, {"error": message})

    @staticmethod
    def _json(status, answer):
        return status, json.dumps(answer).encode(), "application/json"

    def _answer(self, respond, send_body=True):
        """Run ``respond`` and send what it returns, or a JSON error: nothing a client sends ends the server.

        ``send_body=False`` (HEAD): the status and headers only.
        """
        self.note, self.headers_to_send, start = "", {}, time.perf_counter()
        if not self.server.serves_host(self.headers.get("Host")):
            respond = self._other_host
        try:
            status, body, content_type = respond()
        except BadRequest as e:
            status, body, content_type = self._error(e.status, str(e))
        except Exception as e:  # a bug of ours: say so to the client and in the log, and keep serving
            status, body, content_type = self._error(HTTPStatus.INTERNAL_SERVER_ERROR,
                                                     f"Internal error: {type(e).__name__}: {e}")
        self.note = f"{(time.perf_counter() - start) * 1000:.0f} ms {self.note}".rstrip()
        self.send_response(status)  # logs the request's one line (log_request, below)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in self.headers_to_send.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not send_body:
            return
        try:
            self.wfile.write(body)
        except ConnectionError:  # the client left before reading its answer
            self.close_connection = True

    def log_request(self, code="-", size="-"):
        """One line a request: who, what, the status, how long it took and what came of it."""
        self.log_message('"%s" %s %s', self.requestline, int(code) if isinstance(code, int) else code,
                         getattr(self, "note", ""))

    def log_error(self, format, *args):
        """Quiet: send_error (a request http.server cannot parse) logs its request line itself."""

    def log_message(self, format, *args):
        print(f"{self.address_string()} [{self.log_date_time_string()}] {format % args}",
              file=self.server.log, flush=True)


class Server(ThreadingHTTPServer):
    """http.server's server, a thread for each client, with bounds: a listen queue that holds a burst of
    clients, at most MAX_CONNECTIONS served at once (the others wait in the queue), IPv6 for an IPv6 address,
    and answers only for its own names (``serves_host``)."""

    request_queue_size = 256  # the listen queue: socketserver's 5 dropped clients arriving together

    def __init__(self, address):
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET  # '::1', '::': IPv6
        self.free_threads = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, Handler)
        port = self.server_address[1]
        self.url = f"http://{f'[{host}]' if ':' in host else host or '0.0.0.0'}:{port}/"
        self.every_interface = host in ("", "0.0.0.0", "::")
        names = {"localhost", "127.0.0.1", "[::1]", f"[{host}]" if ":" in host else host}
        if self.every_interface:  # reached from the network: by this computer's names too
            names |= {socket.gethostname(), socket.getfqdn()}
        self.hosts = {n.lower() for n in names} | {f"{n.lower()}:{port}" for n in names}

    def serves_host(self, host):
        """Whether a request whose Host header is ``host`` is meant for this server: one of its names (with or
        without the port), or when serving every interface any IP address (a DNS rebinding sends a name).
        No Host header (HTTP/1.0): yes, as no browser sends such a request."""
        if host is None or host.strip().lower() in self.hosts:
            return True
        address = re.sub(r":[0-9]+$", "", host.strip()).strip("[]")  # without the port and an IPv6's brackets
        try:
            return self.every_interface and bool(ipaddress.ip_address(address))
        except ValueError:
            return False

    def process_request(self, request, client_address):
        """Serve the client in a thread of its own, once one of the MAX_CONNECTIONS is free."""
        self.free_threads.acquire()  # meanwhile the clients after it wait in the listen queue
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.free_threads.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.free_threads.release()


def make_server(model, host="127.0.0.1", port=8000, source="", log=None):
    """A server for ``model`` on host:port (port 0: any free one), not yet serving: call serve_forever()."""
    return attach_model(Server((host, port)), model, source, log)


def attach_model(server, model, source="", log=None):
    """Give a bound server the model it serves (checked first) and where its log goes."""
    server.model = check_model(model, source or "model")
    server.source = str(source)
    server.lock = threading.Lock()
    server.log = log or sys.stderr
    return server


# --- the model: loaded, or trained once ----------------------------------------
def open_model(path):
    """The model saved at ``path``; at the default place, trained and saved first if it is not there."""
    if path is None:
        path = default_model_path()
        if not path.is_file():
            problem = _example("cli_checks").file_problem(path, {".npz"}, "mnist.npz")
            if problem:  # said now, not after an epoch of training
                raise ValueError(f"No model at {path}, and one trained now could not be kept there ({problem}). "
                                 "Set XDG_CACHE_HOME to a folder you may write in, or give a saved model with --model.")
            train_seed_model(path)
    return load_model(path, compile=False), path  # predicting needs no loss or optimizer; attach_model checks it


def train_seed_model(path):
    """The notebook's model (examples/mnist.py's build_model), one epoch on MNIST, saved at ``path``."""
    from tinynet.datasets import mnist

    print(f"No model at {path} yet: training one for one epoch (examples/mnist.py trains it for 5).")
    (x_train, y_train), (x_valid, y_valid) = mnist.load_data()  # $TINYNET_DATA_DIR, else downloaded once
    model = _example("mnist").build_model()
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train.reshape(60000, 784) / 255, tinynet.utils.to_categorical(y_train, 10), epochs=1,
              validation_data=(x_valid.reshape(10000, 784) / 255, tinynet.utils.to_categorical(y_valid, 10)))
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    print(f"Saved it to {path}.")


@functools.cache
def _example(name):
    """examples/<name>.py as a module, loaded once (examples/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_example", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="a model saved by examples/mnist.py or examples/mnist_cnn.py --save (default: "
                             f"{default_model_path()}, trained for one epoch if missing)")
    parser.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1",
                        help="default 127.0.0.1: this computer only; 0.0.0.0 lets your network in")
    parser.add_argument("--open", action="store_true", help="open the page in the web browser")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    try:  # before the model is loaded (or trained): a host name that names no computer
        if args.host:  # "" is every interface, as 0.0.0.0
            socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        parser.error(f"--host {args.host!r}: no such host ({getattr(e, 'strerror', None) or e}); "
                     "give a name or address of this computer, such as 127.0.0.1 or 0.0.0.0")
    try:  # the port first: a port in use is said at once, not after a minute of training
        server = Server((args.host, args.port))
    except OSError as e:
        if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:  # the host is not this computer
            fix = "give a name or address of this computer with --host, such as 127.0.0.1 or 0.0.0.0"
        else:  # in use, or reserved (below 1024)
            fix = "pick another port with --port"
        parser.exit(2, f"error: cannot serve on {args.host}:{args.port} ({e.strerror or e}); {fix}.\n")
    try:
        model, path = open_model(args.model)
        attach_model(server, model, source=path)
    except (OSError, ValueError) as e:
        server.server_close()
        parser.exit(2, f"error: {e}\n")  # the message names the file
    url = server.url
    sizes = ["x".join(map(str, layer.output_shape[1:])) for layer in model.layers]
    print(f"Model {path}: {'x'.join(map(str, model.input_shape[1:]))} -> {' -> '.join(sizes)}")
    print(f"Draw a digit at {url}  (Ctrl+C stops the server)", flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nStopped.")
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
