"""Tests for examples/draw.py's server: the page, the JSON API, and bad requests that never stop it.

A server on 127.0.0.1 (a free port) serves the small MNIST classifier of conftest;
tests/test_draw_browser.py draws on the page in a real browser.
"""
import io
import json
import select
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from conftest import ONE, SEVEN, draw_digit, serving, small_mnist_model
from tinynet.utils.digits import prepare_digit

pytestmark = pytest.mark.host_only("the server runs its model on NumPy; the tests speak HTTP")


@pytest.fixture(scope="module")
def model(mnist_weights):
    model = small_mnist_model()
    model.set_weights(mnist_weights[0])
    return model


@pytest.fixture(scope="module")
def server(draw_example, model):
    """(url, log): the server, and the lines it logged."""
    log = io.StringIO()
    with serving(draw_example.make_server(model, port=0, source="test model", log=log)) as url:
        yield url, log


def call(url, path, body=None, method=None, headers=None):
    """(status, answer): the JSON answer (a dict) or, for other content, the bytes."""
    request = urllib.request.Request(url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, content_type, data = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        status, content_type, data = error.code, error.headers["Content-Type"], error.read()
    return status, json.loads(data) if content_type == "application/json" else data


def post(url, image):
    return call(url, "/predict", json.dumps({"image": image}).encode())


def grey(strokes):
    """A drawn digit (black on white, 200x200) as rows of grey values 0..255: what the page sends."""
    return draw_digit(strokes)[..., 0].tolist()


def test_the_page_is_served_whole_with_nothing_from_elsewhere(server):
    url, _ = server
    for path, kind, marker in [("/", b"<!doctype html>", b'<canvas id="pad"'), ("/draw.js", b"", b"/predict"),
                               ("/draw.css", b"", b"#pad")]:
        status, data = call(url, path)
        assert status == 200 and data.startswith(kind) and marker in data, path
        assert b"http://" not in data and b"https://" not in data and b"//cdn" not in data, path  # works offline


def test_model_describes_the_layers_and_their_grids(server):
    status, answer = call(server[0], "/model")
    assert status == 200
    assert answer == {"layers": [{"name": "dense", "units": 64, "grid": [8, 8]},
                                 {"name": "dense_1", "units": 10, "grid": [2, 5]}],
                      "input": [28, 28], "source": "test model"}


@pytest.mark.parametrize("strokes, digit", [(ONE, 1), (SEVEN, 7)])
def test_predict_reads_a_drawn_digit_and_shows_every_layer(server, model, strokes, digit):
    status, answer = post(server[0], grey(strokes))
    assert status == 200 and answer["blank"] is False and answer["prediction"] == digit
    x = prepare_digit(np.array(grey(strokes)))
    np.testing.assert_allclose(answer["input"], x, atol=1e-4)  # the prepared 28x28 input
    kernel, bias, kernel_1, bias_1 = model.get_weights()
    hidden = np.maximum(x.reshape(784) @ kernel + bias, 0)  # relu(x W + b)
    assert [layer["name"] for layer in answer["layers"]] == ["dense", "dense_1"]
    assert answer["layers"][0]["grid"] == [8, 8]
    np.testing.assert_allclose(answer["layers"][0]["activations"], hidden, atol=1e-3)
    p = model.predict(x.reshape(1, 784), verbose=0)[0]
    np.testing.assert_allclose(answer["probabilities"], p, atol=1e-4)
    assert answer["layers"][1]["activations"] == answer["probabilities"]
    assert sum(answer["probabilities"]) == pytest.approx(1, abs=1e-3)


def test_an_mnist_image_as_floats_reads_the_same_as_the_drawing_takes_any_size(server, mnist_weights):
    x_valid, y_valid = mnist_weights[1:]
    status, answer = post(server[0], (x_valid[0] / 255).tolist())  # 28x28, white on black, 0..1
    assert status == 200 and answer["prediction"] == y_valid[0]


def test_blank_canvas_gets_an_answer_that_says_so(server):
    status, answer = post(server[0], [[255] * 100] * 100)
    assert status == 200
    assert answer == {"blank": True, "message": "The image is blank: draw a digit."}


def test_weights_of_a_first_layer_unit_as_28x28(server, model):
    status, answer = call(server[0], "/weights/5")
    kernel, bias = model.get_weights()[:2]
    assert status == 200 and answer["layer"] == "dense" and answer["unit"] == 5
    np.testing.assert_allclose(answer["weights"], kernel[:, 5].reshape(28, 28), atol=1e-4)
    assert answer["bias"] == pytest.approx(bias[5], abs=1e-4)
    assert answer["largest"] == pytest.approx(np.abs(kernel[:, 5]).max(), abs=1e-4)


NUMBERS = "a list of rows of numbers 0..255"


@pytest.mark.parametrize("body, says", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (b'{"image": [[NaN]]}', "NaN"),
    (b"[1, 2]", 'No "image" key'),
    (b'{"picture": []}', 'No "image" key'),
    (b'{"image": 5}', "must be a list of rows"),
    (b'{"image": []}', "must be a list of rows"),
    (json.dumps({"image": [[0] * 20] * 19 + [[0] * 21]}).encode(), "different lengths"),
    (json.dumps({"image": [[0, 0], [0, 0]]}).encode(), "is 2x2 pixels"),
    (json.dumps({"image": [[0] * 600] * 20}).encode(), "is 20x600 pixels"),
    (json.dumps({"image": [["0"] * 20] * 20}).encode(), "other than numbers"),
    (json.dumps({"image": [[True] * 20] * 20}).encode(), "other than numbers"),
    (json.dumps({"image": [[[0]] * 20] * 20}).encode(), "other than numbers"),
    (json.dumps({"image": [[300] * 20] * 20}).encode(), "values from 300 to 300"),
    (json.dumps({"image": [[-1] * 20] * 20}).encode(), "values from -1 to -1"),
    (b'{"image": [' + b",".join([b"[" + b",".join([b"1e999"] * 20) + b"]"] * 20) + b"]}", "to inf"),
    (b'{"image": [' + b",".join([b"[" + b",".join([b"1" + b"0" * 400] * 20) + b"]"] * 20) + b"]}", "too large"),
])
def test_a_malformed_image_is_400_saying_what_was_expected(server, body, says):
    status, answer = call(server[0], "/predict", body)
    assert status == 400
    assert says in answer["error"] and NUMBERS in answer["error"]
    assert call(server[0], "/model")[0] == 200  # and the server goes on


def test_a_body_over_the_limit_is_413(server, draw_example):
    status, answer = call(server[0], "/predict", b" " * (draw_example.MAX_BODY + 1))
    assert status == 413 and str(draw_example.MAX_BODY) in answer["error"]
    assert call(server[0], "/model")[0] == 200


def raw(url, request):
    """Send bytes as they are, return the whole response (b'' if the server hung up)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        return connection.makefile("rb").read()


@pytest.mark.parametrize("request_bytes, answer", [
    (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.0 411 "),  # no Content-Length
    (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"HTTP/1.0 411 "),
    (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n", b"HTTP/1.0 400 "),
    (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{}", b"HTTP/1.0 400 "),  # cut short
    (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n\r\n", b"HTTP/1.0 413 "),
    (b"BREW /coffee HTTP/1.1\r\n\r\n", b"HTTP/1.0 501 "),
    (b"BREW /predict HTTP/1.1\r\n\r\n", b"HTTP/1.0 405 "),
    (b"\x16\x03\x01\x02\x00garbage, as from an https:// client\r\n\r\n", b"Error code: 400"),
    (b"", b""),
])
def test_broken_http_never_stops_the_server(server, request_bytes, answer):
    response = raw(server[0], request_bytes)
    assert (answer in response) if answer else response == b""
    assert call(server[0], "/model")[0] == 200


@pytest.mark.parametrize("method, path, status, says", [
    ("GET", "/nothing", 404, "POST /predict"), ("POST", "/nothing", 404, "POST /predict"),
    ("GET", "/weights/-1", 404, "POST /predict"),
    ("GET", "/weights/1x", 404, "POST /predict"), ("GET", "/index.html", 404, "POST /predict"),
    ("GET", "/draw.py", 404, "POST /predict"), ("GET", "/../draw.py", 404, "POST /predict"),
    ("GET", "/%2e%2e/mnist.py", 404, "POST /predict"), ("GET", "/weights/64", 404, "units 0 to 63"),
])
def test_unknown_paths_are_404_and_never_a_file(server, method, path, status, says):
    answer = call(server[0], path, b"{}" if method == "POST" else None, method=method)
    assert answer[0] == status and says in answer[1]["error"]


@pytest.mark.parametrize("method, path, allow", [
    ("GET", "/predict", "POST"), ("PUT", "/predict", "POST"), ("DELETE", "/predict", "POST"),
    ("POST", "/", "GET, HEAD"), ("POST", "/model", "GET, HEAD"), ("PUT", "/weights/3", "GET, HEAD"),
    ("PATCH", "/draw.js", "GET, HEAD"),
])
def test_a_known_path_with_the_wrong_method_is_a_json_405_with_allow(server, method, path, allow):
    request = urllib.request.Request(server[0] + path, data=b"{}" if method != "GET" else None, method=method)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    error = info.value
    assert error.code == 405 and error.headers["Allow"] == allow
    assert error.headers["Content-Type"] == "application/json"
    message = json.loads(error.read())["error"]
    assert message.startswith(f"{method} {path}: use ")
    assert ("POST /predict with a JSON body" if allow == "POST" else f"GET {path}") in message


@pytest.mark.parametrize("method", ["PUT", "BREW", "OPTIONS"])
def test_an_unknown_method_on_an_unknown_path_is_a_json_501(server, method):
    status, answer = call(server[0], "/coffee", b"{}", method=method)
    assert status == 501 and answer["error"].startswith(f"{method} is not a method this server knows")
    assert "POST /predict" in answer["error"]


@pytest.mark.parametrize("path, status, content_type", [
    ("/", 200, "text/html; charset=utf-8"), ("/model", 200, "application/json"),
    ("/predict", 405, "application/json"), ("/nothing", 404, "application/json"),
])
def test_head_answers_gets_status_and_headers_without_a_body(server, path, status, content_type):
    host, port = server[0].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        connection.shutdown(socket.SHUT_WR)
        response = connection.makefile("rb").read()
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0].startswith(f"HTTP/1.0 {status} ") and headers["Content-Type"] == content_type
    assert body == b"" and int(headers["Content-Length"]) > 0  # the length GET's body would have
    assert headers.get("Allow") == ("POST" if path == "/predict" else None)


def test_one_log_line_per_request(server):
    url, log = server
    before = log.getvalue().count("\n")
    post(url, grey(ONE))
    post(url, [[255] * 20] * 20)
    call(url, "/predict", b"{")
    call(url, "/nothing")
    raw(url, b"BREW /coffee HTTP/1.1\r\n\r\n")
    lines = log.getvalue().splitlines()[before:]
    assert len(lines) == 5, lines
    assert '"POST /predict HTTP/1.1" 200' in lines[0] and lines[0].endswith("-> 1")
    assert lines[1].endswith("blank") and '" 400 ' in lines[2] and '" 404 ' in lines[3] and '" 501 ' in lines[4]


def test_requests_at_the_same_time_get_the_same_answers(server):
    url, _ = server
    image = grey(SEVEN)
    answers = [None] * 8

    def ask(i):
        answers[i] = post(url, image)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answer == answers[0] for answer in answers) and answers[0][1]["prediction"] == 7


@pytest.mark.parametrize("units, grid", [(512, (16, 32)), (64, (8, 8)), (10, (2, 5)), (7, (1, 7))])
def test_grid_shape_draws_512_units_as_16x32(draw_example, units, grid):
    assert draw_example.grid_shape(units) == grid


def test_default_model_is_in_the_cache_folder(draw_example, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert draw_example.default_model_path() == tmp_path / "tinynet" / "models" / "mnist.npz"


def test_a_missing_model_file_is_named(draw_example, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        draw_example.main(["--model", str(tmp_path / "none.npz")])
    assert info.value.code == 2 and "none.npz" in capsys.readouterr().err


def test_a_model_that_is_no_mnist_classifier_is_refused(draw_example, tmp_path, capsys):
    from tinynet.layers import Dense
    from tinynet.models import Sequential

    Sequential([Dense(3, input_shape=(784,))]).save(tmp_path / "three.npz")
    with pytest.raises(SystemExit) as info:
        draw_example.main(["--model", str(tmp_path / "three.npz")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "three.npz" in err and "784 inputs -> 10 probabilities" in err


def test_a_port_in_use_says_to_pick_another(draw_example, model, tmp_path, capsys):
    model.save(tmp_path / "model.npz")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as info:
            draw_example.main(["--model", str(tmp_path / "model.npz"), "--port", str(taken.getsockname()[1])])
    assert info.value.code == 2 and "--port" in capsys.readouterr().err


def test_a_port_in_use_is_named_before_the_model_is_loaded(draw_example, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as info:  # no model there: it would be trained first, for a minute
            draw_example.main(["--model", str(tmp_path / "none.npz"), "--port", str(taken.getsockname()[1])])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "pick another port with --port" in err and "none.npz" not in err


def test_a_model_that_fails_to_load_frees_the_port(draw_example, tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SystemExit) as info:
        draw_example.main(["--model", str(tmp_path / "none.npz"), "--port", str(port)])
    assert info.value.code == 2 and "none.npz" in capsys.readouterr().err
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # the server bound it, then let it go


def test_a_host_that_does_not_exist_is_named_before_the_model_is_loaded(draw_example, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        draw_example.main(["--model", str(tmp_path / "none.npz"), "--host", "no.such.host.invalid"])
    err = capsys.readouterr().err.splitlines()[-1]  # after the usage line
    assert info.value.code == 2 and "error: --host 'no.such.host.invalid': no such host" in err
    assert "none.npz" not in err and "--port" not in err


def test_an_address_of_another_computer_says_to_pick_another_host(draw_example, model, tmp_path, capsys):
    model.save(tmp_path / "model.npz")
    with pytest.raises(SystemExit) as info:  # 192.0.2.1: TEST-NET-1, never this computer's address
        draw_example.main(["--model", str(tmp_path / "model.npz"), "--host", "192.0.2.1", "--port", "0"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "cannot serve on 192.0.2.1:0" in err
    assert "with --host" in err and "--port" not in err


# --- hostile clients: other hosts' pages, bursts, trickles ------------------------------------------------
def test_a_request_for_another_host_is_refused(server):
    """DNS rebinding: a page at attacker.example whose name now points at 127.0.0.1 sends its own Host."""
    url, _ = server
    port = url.rsplit(":", 1)[1]
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example", "localhost:1"):
        for path, body in [("/model", None), ("/predict", json.dumps({"image": grey(ONE)}).encode())]:
            status, answer = call(url, path, body, headers={"Host": host})
            assert status == 421 and f"not for Host {host!r}" in answer["error"], (host, path)
            assert f"This server answers for {url}/ only" in answer["error"] and "--host" in answer["error"]
            assert "source" not in answer and "probabilities" not in answer
    for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert call(url, "/model", headers={"Host": host})[0] == 200, host


def test_a_server_for_every_interface_answers_its_addresses_and_names_only(draw_example, model):
    server = draw_example.make_server(model, host="0.0.0.0", port=0)
    try:
        for host in ("192.168.1.5:8000", "10.0.0.2", "[fe80::1]:8000", socket.gethostname(), "localhost"):
            assert server.serves_host(host), host
        for host in ("attacker.example", "192.168.1.5.nip.io:8000", ""):
            assert not server.serves_host(host), host
    finally:
        server.server_close()


def test_a_server_on_ipv6_loopback(draw_example, model, capsys):
    server = draw_example.make_server(model, host="::1", port=0)
    assert server.url == f"http://[::1]:{server.server_address[1]}/"
    with serving(server):
        status, answer = call(server.url.rstrip("/"), "/model")
    assert status == 200 and answer["layers"][0]["units"] == 64


def test_two_hundred_clients_at_once_are_all_answered(server):
    import http.client

    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"image": grey(SEVEN)}).encode()
    start, answers = threading.Barrier(200), []

    def ask():
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        start.wait()  # all 200 connect together
        try:
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read())["prediction"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [(200, 7)] * 200


def test_a_content_length_of_other_digits_is_400(server):
    # '²' (latin-1 b'\xb2', as headers are read) passes str.isdigit and int() refuses it
    for length in (b"\xb2", b"\xd9\xa3", b"9" * 5000):  # and a number longer than int() reads
        request = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + length + b"\r\n\r\n"
        response = raw(server[0], request)
        assert response.startswith(b"HTTP/1.0 400 ") and b"digits 0-9" in response, length


@pytest.mark.parametrize("part", ["body", "headers"])
def test_a_client_trickling_its_request_is_cut_off(server, draw_example, monkeypatch, part):
    """A byte every 0.2 s keeps each read within TIMEOUT; the whole request may still take REQUEST_SECONDS."""
    monkeypatch.setattr(draw_example, "REQUEST_SECONDS", 1)
    host, port = server[0].removeprefix("http://").split(":")
    start = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    sent, trickle = (start, b"x" * 100) if part == "body" else (b"", start + b"x" * 100)
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(sent)
        for i in range(len(trickle)):  # 20 s, if the server let it
            try:
                connection.sendall(trickle[i:i + 1])
            except ConnectionError:  # the server has hung up
                break
            if select.select([connection], [], [], 0.2)[0]:  # the server has answered, or hung up
                break
        else:
            pytest.fail("the server waited for the whole trickle")
        response = connection.makefile("rb").read()
    if part == "body":
        assert response.startswith(b"HTTP/1.0 408 ") and b"did not arrive within 1 s" in response
    assert call(server[0], "/model")[0] == 200


def test_an_unusable_cache_folder_is_said_before_training(draw_example, monkeypatch, tmp_path, capsys):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(draw_example, "train_seed_model", lambda path: pytest.fail("it trained first"))
    with pytest.raises(SystemExit) as info:
        draw_example.main(["--port", "0"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"No model at {tmp_path / 'cache'}" in err
    assert "is a file, not a folder" in err and "Set XDG_CACHE_HOME" in err and "--model" in err


# --- a convolutional network: feature maps, filters ----------------------------------------------------------
def small_cnn():
    """28x28x1 -> Conv2D(4, 3, relu) -> MaxPooling2D(2) -> Flatten -> Dropout -> Dense(10, softmax), untrained
    (seed 0): the shapes and values are what the tests check, not how well it reads."""
    import tinynet
    from tinynet.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from tinynet.models import Sequential

    tinynet.utils.set_random_seed(0)
    return Sequential([Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(2), Flatten(),
                       Dropout(0.5), Dense(10, activation="softmax")])


@pytest.fixture(scope="module")
def cnn_server(draw_example, tmp_path_factory):
    """(url, model): a server for small_cnn(), saved and loaded back as draw.py --model does."""
    from tinynet.models import load_model

    path = tmp_path_factory.mktemp("cnn") / "cnn.npz"
    small_cnn().save(path)
    model = load_model(path, compile=False)
    with serving(draw_example.make_server(model, port=0, source="cnn", log=io.StringIO())) as url:
        yield url, model


def test_model_describes_a_cnn_s_maps_and_the_layers_it_does_not_draw(cnn_server):
    status, answer = call(cnn_server[0], "/model")
    assert status == 200
    assert answer["layers"] == [
        {"name": "conv2d", "units": 4, "grid": [2, 2], "kind": "maps", "map": [26, 26]},
        {"name": "max_pooling2d", "units": 4, "grid": [2, 2], "kind": "maps", "map": [13, 13]},
        {"name": "flatten", "units": 676, "grid": [26, 26], "kind": "hidden", "shape": [676]},
        {"name": "dropout", "units": 676, "grid": [26, 26], "kind": "hidden", "shape": [676]},
        {"name": "dense", "units": 10, "grid": [2, 5]}]


def test_predict_on_a_cnn_gives_each_convolution_s_and_pool_s_feature_maps(cnn_server):
    from numpy.lib.stride_tricks import sliding_window_view

    url, model = cnn_server
    status, answer = post(url, grey(SEVEN))
    assert status == 200 and answer["blank"] is False
    x = prepare_digit(np.array(grey(SEVEN)))  # (28, 28)
    kernel, bias = model.get_weights()[:2]  # (3, 3, 1, 4), (4,)
    windows = sliding_window_view(x, (3, 3))  # (26, 26, 3, 3): the 3x3 window at each output pixel
    conv = np.maximum(np.einsum("ijkl,klc->cij", windows, kernel[:, :, 0, :]) + bias[:, None, None], 0)
    pooled = conv.reshape(4, 13, 2, 13, 2).max(axis=(2, 4))  # the largest of each 2x2 block
    conv_layer, pool_layer, flatten, dropout, dense = answer["layers"]
    assert np.shape(conv_layer["maps"]) == (4, 26, 26) and np.shape(pool_layer["maps"]) == (4, 13, 13)
    np.testing.assert_allclose(conv_layer["maps"], conv, atol=1e-3)  # maps[c][i][j] = y[i, j, c], 3 decimals
    np.testing.assert_allclose(pool_layer["maps"], pooled, atol=1e-3)
    assert "activations" not in conv_layer and "maps" not in flatten and "activations" not in dropout
    p = model.predict(x.reshape(1, 28, 28, 1), verbose=0)[0]
    np.testing.assert_allclose(answer["probabilities"], p, atol=1e-4)
    assert dense["activations"] == answer["probabilities"] and answer["prediction"] == int(np.argmax(p))


def test_weights_of_a_cnn_are_the_first_convolution_s_filters(cnn_server):
    url, model = cnn_server
    status, answer = call(url, "/weights/2")
    kernel, bias = model.get_weights()[:2]
    assert status == 200 and answer["kind"] == "filter" and answer["layer"] == "conv2d" and answer["unit"] == 2
    np.testing.assert_allclose(answer["weights"], kernel[:, :, 0, 2], atol=1e-4)  # a 3x3 filter
    assert answer["bias"] == pytest.approx(bias[2], abs=1e-4)
    assert answer["largest"] == pytest.approx(np.abs(kernel[:, :, 0, 2]).max(), abs=1e-4)
    status, answer = call(url, "/weights/4")
    assert status == 404 and "No unit 4: the first convolution, conv2d, has filters 0 to 3." in answer["error"]


def test_a_model_of_28x28_inputs_flattened_inside_is_read_too(draw_example, model):
    """Inputs (None, 28, 28): Flatten first, then the Dense layers; /weights shows the first Dense's columns."""
    from tinynet.layers import Dense, Flatten
    from tinynet.models import Sequential

    flat = Sequential([Flatten(input_shape=(28, 28)), Dense(64, activation="relu"), Dense(10, activation="softmax")])
    flat.set_weights(model.get_weights())
    with serving(draw_example.make_server(flat, port=0, log=io.StringIO())) as url:
        status, answer = post(url, grey(SEVEN))
        assert status == 200 and answer["prediction"] == 7
        assert answer["layers"][0]["kind"] == "hidden" and len(answer["layers"][1]["activations"]) == 64
        status, weights = call(url, "/weights/5")
        assert status == 200 and weights["layer"] == flat.layers[1].name and "kind" not in weights
        np.testing.assert_allclose(weights["weights"], model.get_weights()[0][:, 5].reshape(28, 28), atol=1e-4)


def test_a_model_of_other_inputs_is_refused_naming_the_shapes_accepted(draw_example, tmp_path, capsys):
    from tinynet.layers import Conv2D, Dense, Flatten
    from tinynet.models import Sequential

    Sequential([Conv2D(2, 3, input_shape=(28, 28, 3)), Flatten(), Dense(10)]).save(tmp_path / "rgb.npz")
    with pytest.raises(SystemExit) as info:
        draw_example.main(["--model", str(tmp_path / "rgb.npz")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "rgb.npz" in err and "got inputs (None, 28, 28, 3)" in err
    assert "(None, 784), (None, 28, 28, 1), (None, 28, 28)" in err and "examples/mnist_cnn.py --save" in err
