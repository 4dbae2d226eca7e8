"""The HTTP API (`fashion-cnn serve`), against a real uvicorn server on a loopback port: every
endpoint, every refusal (401, 413, 415, 422) as JSON, records equal to `fashion-cnn predict
--format json` for the same bytes, concurrent requests sharing forward passes, the metrics."""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from PIL import Image

from conftest import ROOT, SAMPLES
from fashion_cnn import api
from fashion_cnn.api import MAX_BODY_BYTES, MAX_FILES, Settings, create_app
from fashion_cnn.cli import main
from fashion_cnn.errors import FashionCNNError
from fashion_cnn.ports import bind
from fashion_cnn.predict import Classifier

KEY = "s3cret-key"


@contextmanager
def running(settings: Settings, classifier: Classifier | None = None,
            until: str = "/v1/ready") -> Iterator[str]:
    """A real uvicorn server in a thread on a free loopback port; yields its URL once `until`
    answers 200 (ready: the model is warm)."""
    app = create_app(classifier or api.load_classifier(settings), settings)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        wait_ready(url, until)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_ready(url: str, path: str = "/v1/ready", timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not become ready within {timeout} s")


@pytest.fixture(scope="module")
def seed() -> Classifier:
    return Classifier("seed")


@pytest.fixture(scope="module")
def url(seed: Classifier) -> Iterator[str]:
    with running(Settings(model="seed"), seed) as address:
        yield address


@pytest.fixture(scope="module")
def keyed_url(seed: Classifier) -> Iterator[str]:
    with running(Settings(model="seed", api_key=KEY), seed) as address:
        yield address


def samples(n: int) -> list[Path]:
    return sorted(SAMPLES.glob("*.jpg"))[:n]


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels (no pixel data): the cap fires on the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def multipart(files: list[tuple[str, bytes]]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in files]


def cli_records(paths: list[Path], capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict]:
    capsys.readouterr()
    main(["predict", *map(str, paths), "--format", "json", *extra])
    return json.loads(capsys.readouterr().out)


def without_path(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "path"} for r in records]


def same(a: object, b: object) -> bool:
    """Equal, floats up to rounding: a forward pass over a different batch (the server's
    batches mix requests) may round the last bits differently."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-6 + 1e-5 * abs(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$" if labels else \
        rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found[1]) if found else 0.0


def assert_clean_error(response: httpx.Response, status: int) -> None:
    """The status, a JSON body with a message, no traceback, no server path."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert "Traceback" not in response.text and str(ROOT) not in response.text


# ---------------------------------------------------------------------------------------------
# Endpoints


def test_health_ready_model_docs(url: str, seed: Classifier) -> None:
    assert httpx.get(f"{url}/v1/health").json() == {"status": "ok"}
    assert [httpx.head(f"{url}/{path}").status_code
            for path in ("v1/health", "v1/ready", "v1/model", "metrics")] == [200] * 4
    # uptime checkers send HEAD
    ready = httpx.get(f"{url}/v1/ready").json()
    assert ready["status"] == "ready" and ready["model"]["name"] == "seed"
    info = httpx.get(f"{url}/v1/model").json()
    assert info["name"] == "seed" and info["arch"] == seed.meta["arch"]
    assert info["classes"] == seed.class_names
    assert info["test_accuracy"] == pytest.approx(seed.meta["metrics"]["test_accuracy"], abs=1e-6)
    assert len(str(info["test_accuracy"])) <= 8  # 0.907, not float32's 0.9070000052452087
    assert info["backend"] == seed.backend
    assert info["preprocessing"]["picture"] == seed.config.to_dict()
    assert info["in_class_score"] == {"score": "max_softmax"}  # the seed model has no rule
    assert "seed" in info["model_card"].lower()
    assert info["limits"]["max_files"] == MAX_FILES
    assert str(ROOT) not in json.dumps(info)  # no server path
    assert "/v1/predict" in httpx.get(f"{url}/openapi.json").json()["paths"]
    assert httpx.get(f"{url}/docs").status_code == 200


def test_records_equal_the_cli(url: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    dataset = tmp_path / "dataset.png"
    dataset.write_bytes(png(np.pad(np.full((20, 12), 200, np.uint8), ((4, 4), (8, 8)))))
    paths = [*samples(4), broken, dataset]
    expected = cli_records(paths, capsys, "--model", "seed", "--top-k", "4")
    response = httpx.post(f"{url}/v1/predict", params={"top_k": 4}, files=multipart(
        [(p.name, p.read_bytes()) for p in paths]))
    assert response.status_code == 200
    body = response.json()
    assert body["model"]["name"] == "seed"
    assert same(without_path(body["predictions"]), without_path(expected))
    assert [r["path"] for r in body["predictions"]] == [p.name for p in paths]
    assert list(body["predictions"][0]) == list(expected[0])  # same keys, same order
    assert body["predictions"][4]["error"] and body["predictions"][5]["label"]
    raw = httpx.post(f"{url}/v1/predict", params={"top_k": 4}, content=paths[0].read_bytes(),
                     headers={"Content-Type": "image/jpeg"})
    assert same(without_path(raw.json()["predictions"]), without_path(expected[:1]))


def test_top_k(url: str) -> None:
    data = samples(1)[0].read_bytes()
    headers = {"Content-Type": "image/jpeg"}
    five = httpx.post(f"{url}/v1/predict?top_k=5", content=data, headers=headers).json()
    assert len(five["predictions"][0]["top_k"]) == 5
    assert_clean_error(httpx.post(f"{url}/v1/predict?top_k=0", content=data, headers=headers),
                       422)
    assert_clean_error(httpx.post(f"{url}/v1/predict?top_k=x", content=data, headers=headers),
                       422)
    misspelt = httpx.post(f"{url}/v1/predict?topk=5", content=data, headers=headers)
    assert_clean_error(misspelt, 422)
    assert "'topk'" in misspelt.json()["detail"]


# ---------------------------------------------------------------------------------------------
# Bad input


def test_unreadable_picture_is_an_error_record(url: str) -> None:
    good = samples(1)[0].read_bytes()
    mixed = httpx.post(f"{url}/v1/predict", files=multipart(
        [("a.jpg", good), ("b.jpg", good[:200]), ("c.png", b"garbage")]))
    assert mixed.status_code == 200
    records = mixed.json()["predictions"]
    assert records[0]["label"] and records[0]["error"] is None
    assert [r["label"] for r in records[1:]] == [None, None]
    assert "truncated" in records[1]["error"] and "not an image" in records[2]["error"]
    none = httpx.post(f"{url}/v1/predict", content=b"garbage",
                      headers={"Content-Type": "image/png"})
    assert none.status_code == 422 and none.json()["predictions"][0]["error"]


def test_picture_over_the_pixel_cap_is_an_error_record(url: str) -> None:
    response = httpx.post(f"{url}/v1/predict", content=huge_png_header(8000, 8000),
                          headers={"Content-Type": "image/png"})
    assert response.status_code == 422
    assert "megapixel limit" in response.json()["predictions"][0]["error"]


def test_a_picture_in_the_field_file_is_read_too(url: str) -> None:
    """`curl -F file=@shirt.jpg` (the field most upload examples name) is answered, in the
    order sent among the pictures in `files`."""
    first, second = (p.read_bytes() for p in samples(2))
    response = httpx.post(f"{url}/v1/predict", files=[("file", ("one.jpg", first))])
    assert response.status_code == 200, response.text
    assert [r["path"] for r in response.json()["predictions"]] == ["one.jpg"]
    both = httpx.post(f"{url}/v1/predict", files=[("file", ("one.jpg", first)),
                                                  ("files", ("two.jpg", second))])
    assert [r["path"] for r in both.json()["predictions"]] == ["one.jpg", "two.jpg"]


def test_a_truncated_multipart_body_is_400_not_fewer_answers(url: str) -> None:
    """A body cut off before its closing boundary: its last picture would be lost without a
    word; it is refused whole, as is a picture field sent as text (no filename)."""
    first, second = (p.read_bytes() for p in samples(2))
    request = httpx.Request("POST", f"{url}/v1/predict", files=[("files", ("a.jpg", first)),
                                                                 ("files", ("b.jpg", second))])
    body = request.read()
    end = body.rindex(b"\r\n--")  # the closing boundary's start
    headers = {"Content-Type": request.headers["content-type"]}
    assert httpx.post(f"{url}/v1/predict", content=body, headers=headers).status_code == 200
    for cut in (end, end - len(second) // 2):  # no closing boundary; half of b.jpg
        response = httpx.post(f"{url}/v1/predict", content=body[:cut], headers=headers)
        assert_clean_error(response, 400)
        assert "closing boundary" in response.json()["detail"]
    as_text = httpx.post(f"{url}/v1/predict", files=[("files", ("a.jpg", first))],
                         data={"files": "not a file"})
    assert_clean_error(as_text, 400)
    assert "no filename" in as_text.json()["detail"]


def test_a_stalled_body_is_408(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that declares a body and stops sending is given up after BODY_STALL_SECONDS
    (408, connection closed), not held forever."""
    monkeypatch.setattr(api, "BODY_STALL_SECONDS", 0.5)
    head = (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 100000\r\n\r\n")
    answer = _raw_exchange(url, head, [b"\xff\xd8 a few bytes"])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"detail"' in answer and b"connection: close" in answer.lower()


def test_a_trailing_slash_is_the_same_path(url: str, keyed_url: str) -> None:
    data = samples(1)[0].read_bytes()
    response = httpx.post(f"{url}/v1/predict/", files=[("files", ("a.jpg", data))])
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1
    for public in ("/v1/health/", "/v1/ready/", "/redoc"):  # open with a key, as without
        assert httpx.get(f"{keyed_url}{public}", follow_redirects=True).status_code == 200


def test_no_pictures_is_422(url: str) -> None:
    assert_clean_error(httpx.post(f"{url}/v1/predict", content=b"",
                                  headers={"Content-Type": "image/png"}), 422)
    assert_clean_error(httpx.post(f"{url}/v1/predict", data={"other": "field"},
                                  files={"not_files": ("a.png", b"x")}), 422)


def test_content_type_that_is_no_image_is_415(url: str) -> None:
    assert_clean_error(httpx.post(f"{url}/v1/predict", content=b"hello",
                                  headers={"Content-Type": "text/plain"}), 415)
    assert_clean_error(httpx.post(f"{url}/v1/predict", content=b"hello"), 415)


def test_too_many_pictures_is_413(url: str) -> None:
    tiny = png(np.zeros((28, 28), np.uint8))
    response = httpx.post(f"{url}/v1/predict",
                          files=multipart([(f"{i}.png", tiny) for i in range(MAX_FILES + 1)]))
    assert_clean_error(response, 413)
    ok = httpx.post(f"{url}/v1/predict",
                    files=multipart([(f"{i}.png", tiny) for i in range(MAX_FILES)]))
    assert len(ok.json()["predictions"]) == MAX_FILES


def _raw_exchange(url: str, head: bytes, body_chunks: Iterable[bytes] = ()) -> bytes:
    """Send `head` then body chunks on a plain socket (stopping if the server hangs up) and
    return everything the server answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        answer = bytearray()

        def read() -> None:
            try:
                while chunk := sock.recv(65536):
                    answer.extend(chunk)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        try:
            sock.sendall(head)
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:  # the server refused and closed: expected
            pass
        reader.join(30)
        return bytes(answer)


def test_body_declared_over_the_limit_is_413_before_it_is_sent(url: str) -> None:
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n").encode()
    answer = _raw_exchange(url, head)  # no body sent at all: the answer comes anyway
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"detail"' in answer and b"connection: close" in answer.lower()


def test_streamed_body_over_the_limit_is_413(url: str) -> None:
    head = (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 2**20
    chunks = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_BYTES // 2**20 + 5))
    answer = _raw_exchange(url, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# ---------------------------------------------------------------------------------------------
# The API key


def test_api_key(keyed_url: str) -> None:
    data = samples(1)[0].read_bytes()
    post = f"{keyed_url}/v1/predict"
    image = {"Content-Type": "image/jpeg"}
    refused = httpx.post(post, content=data, headers=image)
    assert_clean_error(refused, 401)
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert_clean_error(httpx.post(post, content=data, headers={**image, "X-API-Key": "wrong"}),
                       401)
    assert_clean_error(httpx.get(f"{keyed_url}/v1/model", headers={"X-API-Key": KEY[:-1]}), 401)
    assert_clean_error(httpx.get(f"{keyed_url}/metrics"), 401)
    assert httpx.post(post, content=data, headers={**image, "X-API-Key": KEY}).status_code == 200
    bearer = {**image, "Authorization": f"Bearer {KEY}"}
    assert httpx.post(post, content=data, headers=bearer).status_code == 200
    assert httpx.get(f"{keyed_url}/v1/health").status_code == 200  # open for load balancers
    assert httpx.get(f"{keyed_url}/v1/ready").status_code == 200
    # the schema says so, which gives /docs its "Authorize" button
    schema = httpx.get(f"{keyed_url}/openapi.json").json()
    assert {"apiKey", "bearer"} <= schema["components"]["securitySchemes"].keys()
    assert schema["security"] and schema["paths"]["/v1/health"]["get"]["security"] == []
    assert "security" not in schema["paths"]["/v1/predict"]["post"]  # the global rule holds


def test_a_server_without_a_key_declares_none(url: str) -> None:
    assert "security" not in httpx.get(f"{url}/openapi.json").json()


def test_settings_travel_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(model="seed", api_key=KEY, batching=False, max_batch=8)
    env = settings.to_env()
    assert KEY not in env[api.SETTINGS_ENV]  # the key travels in its own variable
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env() == settings


# ---------------------------------------------------------------------------------------------
# Concurrency, batching, metrics


def test_200_concurrent_requests_share_forward_passes(url: str, seed: Classifier) -> None:
    pictures = [p.read_bytes() for p in samples(10)]
    expected = [r.label for r in seed.classify(pictures)]
    requests_before = metric(url, "fashion_cnn_http_requests_total", endpoint="/v1/predict",
                             status="200")
    pictures_before = metric(url, "fashion_cnn_pictures_total", outcome="classified")
    passes_before = metric(url, "fashion_cnn_batch_pictures_count")

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
            return await asyncio.gather(*(client.post(
                "/v1/predict", content=pictures[i % 10], headers={"Content-Type": "image/jpeg"})
                for i in range(200)))

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 200
    assert [r.json()["predictions"][0]["label"] for r in responses] == [
        expected[i % 10] for i in range(200)]
    assert metric(url, "fashion_cnn_http_requests_total", endpoint="/v1/predict",
                  status="200") == requests_before + 200
    assert metric(url, "fashion_cnn_pictures_total",
                  outcome="classified") == pictures_before + 200
    passes = metric(url, "fashion_cnn_batch_pictures_count") - passes_before
    assert 0 < passes < 200  # concurrent requests shared forward passes


def test_a_client_that_leaves_mid_upload_is_no_server_error(url: str) -> None:
    """Half a body, then the connection closed: counted as 499 (the client's doing), not as a
    500 that alerts would page someone for."""
    def count(status: str) -> float:
        return metric(url, "fashion_cnn_http_requests_total", endpoint="/v1/predict",
                      status=status)

    before_500, before_499 = count("500"), count("499")
    data = samples(1)[0].read_bytes()
    host, port = url.removeprefix("http://").split(":")
    for _ in range(3):
        with socket.create_connection((host, int(port))) as client:
            client.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: image/jpeg\r\n"
                           + f"Content-Length: {len(data)}\r\n\r\n".encode()
                           + data[:len(data) // 2])
    deadline = time.monotonic() + 10
    while count("499") < before_499 + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (count("499"), count("500")) == (before_499 + 3, before_500)


def test_metrics_count_statuses_and_latency(url: str) -> None:
    before = metric(url, "fashion_cnn_http_requests_total", endpoint="/v1/predict", status="415")
    count = metric(url, "fashion_cnn_http_request_seconds_count", endpoint="/v1/predict")
    errors = metric(url, "fashion_cnn_pictures_total", outcome="error")
    httpx.post(f"{url}/v1/predict", content=b"x", headers={"Content-Type": "text/plain"})
    httpx.post(f"{url}/v1/predict", content=b"x", headers={"Content-Type": "image/png"})
    assert metric(url, "fashion_cnn_http_requests_total", endpoint="/v1/predict",
                  status="415") == before + 1
    assert metric(url, "fashion_cnn_http_request_seconds_count",
                  endpoint="/v1/predict") == count + 2
    assert metric(url, "fashion_cnn_pictures_total", outcome="error") == errors + 1


def test_without_batching_every_request_has_its_own_pass(seed: Classifier) -> None:
    with running(Settings(model="seed", batching=False), seed) as address:
        data = samples(1)[0].read_bytes()

        async def run() -> list[int]:
            async with httpx.AsyncClient(base_url=address, timeout=60) as client:
                return [r.status_code for r in await asyncio.gather(*(client.post(
                    "/v1/predict", content=data, headers={"Content-Type": "image/jpeg"})
                    for _ in range(40)))]

        assert asyncio.run(run()) == [200] * 40
        assert metric(address, "fashion_cnn_batch_pictures_count") == 40


def test_a_model_that_fails_is_not_ready_and_answers_500(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose forward pass fails (at warm-up and after): every request gets a 500, none
    waits forever (the worker thread once died on it and left them hanging)."""
    broken = Classifier("seed")

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the forward pass failed")

    monkeypatch.setattr(broken, "probabilities", fail)
    monkeypatch.setattr(broken, "input_logits", fail)
    with running(Settings(model="seed"), broken, until="/v1/health") as address:
        assert httpx.get(f"{address}/v1/ready").status_code == 503
        data = samples(1)[0].read_bytes()
        for _ in range(2):
            answer = httpx.post(f"{address}/v1/predict", content=data, timeout=30,
                                headers={"Content-Type": "image/jpeg"})
            assert answer.status_code == 500 and "Internal error" in answer.json()["detail"]


# ---------------------------------------------------------------------------------------------
# The command and the backend adapter


def test_serve_refuses_a_bad_model_and_a_taken_port(
        capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    assert main(["serve", "--model", "no-such-model.pt"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("serve", "app"):  # each says so before it announces an address
            assert main([command, "--model", "seed", "--port", str(port)]) == 2
            err = capsys.readouterr().err
            assert "Cannot listen" in err and "--port" in err and "http://" not in err
    assert torch.get_num_threads() == threads  # the server's thread count does not leak
    assert main(["app", "--port", "99999"]) == 2  # out of range: typer's one line
    assert "65535" in capsys.readouterr().err
    for command in ("serve", "app"):  # a mistyped --host is no port taken
        assert main([command, "--model", "seed", "--host", "nosuchhost.invalid"]) == 2
        err = capsys.readouterr().err
        assert "--host must be" in err and "--port" not in err and "http://" not in err
    assert main(["serve", "--model", "seed", "--backend", "tpu"]) == 2  # before the address
    err = capsys.readouterr().err
    assert "Unknown backend" in err and "http://" not in err


def test_the_backend_setting_reaches_the_classifier() -> None:
    assert api.load_classifier(Settings(model="seed", backend="torch")).backend == "torch"
    assert api.load_classifier(Settings(model="seed", backend="onnxruntime")).session is not None
    with pytest.raises(FashionCNNError, match="Unknown backend"):
        api.load_classifier(Settings(backend="tpu"))


# ---------------------------------------------------------------------------------------------
# The real command, several workers, the default model (slow: processes load torch)


@pytest.mark.slow
def test_serve_command_with_two_workers_and_the_default_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    command = [sys.executable, "-m", "fashion_cnn.cli", "serve", "--port", str(port),
               "--workers", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        paths = samples(6)
        expected = cli_records(paths, capsys)  # the default model, as predict runs it
        for _ in range(4):  # several requests: both workers answer some
            response = httpx.post(f"{url}/v1/predict", files=multipart(
                [(p.name, p.read_bytes()) for p in paths]))
            assert response.json()["model"]["name"] == "best"
            assert same(without_path(response.json()["predictions"]), without_path(expected))
        # the workers' metrics add up in /metrics
        assert metric(url, "fashion_cnn_pictures_total", outcome="classified") == 24
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode()
    assert "Traceback" not in output, output


def test_forward_passes_run_on_a_few_batch_sizes() -> None:
    from fashion_cnn.batching import padded_size

    sizes = [padded_size(n) for n in range(1, 65)]
    assert all(size >= n for n, size in enumerate(sizes, 1))
    assert sorted(set(sizes)) == [1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64]
    assert padded_size(65) == 72  # a full request joined by another: still a multiple of 8
