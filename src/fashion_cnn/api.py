"""The HTTP API behind `fashion-cnn serve`: FastAPI on uvicorn, one model per worker process.

    POST /v1/predict   pictures as multipart `files` or `file` (up to MAX_FILES) or one as the raw
                       body (image/* content type); ?top_k=N. Answers {"model", "predictions"}
                       with the records of `fashion-cnn predict --format json`, in order.
    GET  /v1/health    the process is alive         GET /v1/ready   the model is loaded and warm
    GET  /v1/model     name, classes, accuracy, preprocessing, model card
    GET  /metrics      Prometheus text              GET /docs       OpenAPI

Pictures go through the same `Classifier` as `predict` and the app: `Classifier.prepare` in a
thread pool, then the model in one `batching.Batcher` thread shared by concurrent requests.
Every error is JSON `{"detail": "..."}` with its status; an unreadable picture is an `error`
record (200 while any picture of the request was classified, 422 when none was).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from python_multipart.multipart import parse_options_header
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from .batching import Batcher, BatchSettings
from .models import model_files, model_name
from .ports import bind
from .predict import Classifier, Prediction
from .records import output_record

MAX_FILES = 64  # pictures per request
MAX_BODY_BYTES = 20 * 1024 * 1024  # 20 MB per request, refused before it is read
BODY_STALL_SECONDS = 30.0  # a body that sends nothing for this long is given up (408): a
# stalled or deliberately slow client would otherwise hold its connection and memory forever
SETTINGS_ENV = "FASHION_CNN_API_SETTINGS"  # JSON Settings for worker processes (--workers)
API_KEY_ENV = "FASHION_CNN_API_KEY"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client: metrics shared by workers
PUBLIC_PATHS = {"/v1/health", "/v1/ready", "/docs", "/docs/oauth2-redirect", "/redoc",
                "/openapi.json"}
ENDPOINTS = {"/v1/predict", "/v1/health", "/v1/ready", "/v1/model", "/metrics"}  # metric labels


@dataclass(frozen=True)
class Settings:
    """Everything a server worker needs besides its host and port."""

    model: str | None = None  # shipped name or checkpoint path; None: the default model
    backend: str = "auto"
    api_key: str | None = field(default=None, repr=False)  # None: no key needed
    batching: bool = True
    max_batch: int = BatchSettings.max_batch
    max_wait_ms: float = BatchSettings.max_wait_ms
    decode_threads: int = 2  # threads decoding pictures (Pillow and OpenCV release the GIL)
    torch_threads: int = 1  # the forward pass's threads: the other core serves and decodes

    def batch_settings(self) -> BatchSettings:
        return BatchSettings(self.batching, self.max_batch, self.max_wait_ms)

    def to_env(self) -> dict[str, str]:
        """Environment variables that carry these settings to worker processes."""
        public = {k: v for k, v in asdict(self).items() if k != "api_key"}
        return {SETTINGS_ENV: json.dumps(public), **({API_KEY_ENV: self.api_key}
                                                     if self.api_key else {})}

    @classmethod
    def from_env(cls) -> Settings:
        known = {f.name for f in fields(cls)}
        given = json.loads(os.environ.get(SETTINGS_ENV) or "{}")
        return cls(**{k: v for k, v in given.items() if k in known},
                   api_key=os.environ.get(API_KEY_ENV) or None)


class ApiError(Exception):
    """A request the API refuses: its status and the one-line message the client gets."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------
# The model


def load_classifier(settings: Settings) -> Classifier:
    """The model, once per worker, on the settings' backend (`predict.choose_backend`); load
    it inside `torch_threads(settings.torch_threads)`: an onnxruntime session takes torch's
    thread count."""
    return Classifier(settings.model, backend=settings.backend)


def model_info(classifier: Classifier, model: str | None) -> dict[str, Any]:
    """What GET /v1/model answers."""
    meta = classifier.meta
    card = model_files(model).get("card")
    accuracy = (meta.get("metrics") or {}).get("test_accuracy")
    return {
        "name": model_name(model),
        "arch": meta["arch"],
        "backend": classifier.backend,  # what answers; the card gives each backend's accuracy
        "classes": classifier.class_names,
        "test_accuracy": None if accuracy is None else round(accuracy, 6),  # saved as float32
        "preprocessing": {"picture": classifier.config.to_dict(),
                          "model_input": meta.get("preprocessing")},
        "unsure_threshold": classifier.policy.threshold,
        "in_class_score": classifier.policy.score_spec(),  # see predict.in_class_scores
        "limits": {"max_files": MAX_FILES, "max_body_bytes": MAX_BODY_BYTES,
                   "max_pixels": classifier.config.max_pixels},
        "model_card": card.read_text() if card else None,
    }


# ---------------------------------------------------------------------------------------------
# Metrics


class Metrics:
    """The Prometheus series. With $PROMETHEUS_MULTIPROC_DIR set (several workers) the values
    live in files there and /metrics adds up every worker's."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("fashion_cnn_http_requests", "HTTP requests by endpoint and "
                                "status", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("fashion_cnn_http_request_seconds", "Time to answer, seconds",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1,
                                          2.5, 5, 10))
        self.pictures = Counter("fashion_cnn_pictures", "Pictures received, by outcome "
                                "(classified or error)", ["outcome"], registry=self.registry)
        self.batch_size = Histogram("fashion_cnn_batch_pictures", "Pictures per forward pass",
                                    registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128))

    def exposition(self) -> bytes:
        """The Prometheus text format."""
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        if not os.environ.get(MULTIPROC_ENV):
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


# ---------------------------------------------------------------------------------------------
# The gate: every request passes here first (key, declared size, metrics)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Gate:
    """ASGI middleware: refuses a missing or wrong API key (401) and a body declared larger
    than MAX_BODY_BYTES (413) before anything is read, counts the body while it streams in,
    and records every request's status and latency."""

    def __init__(self, app: Callable[..., Awaitable[None]], api_key: str | None,
                 metrics: Metrics):
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await error_response(refusal)(scope, receive, send_status)
            else:
                await self.app(scope, _counted(receive), send_status)
        finally:
            endpoint = path_of(scope) if path_of(scope) in ENDPOINTS else "other"
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

    def _refusal(self, scope: Scope) -> ApiError | None:
        headers = dict(scope["headers"])
        if self.key is not None and path_of(scope) not in PUBLIC_PATHS:
            given = headers.get(b"x-api-key") or b""
            bearer = headers.get(b"authorization", b"")
            if bearer[:7].lower() == b"bearer ":
                given = bearer[7:].strip()
            if not hmac.compare_digest(given, self.key):
                return ApiError(401, "Missing or wrong API key: send it as 'X-API-Key: KEY' "
                                "or 'Authorization: Bearer KEY'.")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return too_large()  # (a malformed length never gets here: uvicorn answers 400)
        return None


def path_of(scope: Scope) -> str:
    """The request's path without a trailing slash ("/v1/health/" is "/v1/health")."""
    return scope["path"].rstrip("/") or "/"


def _counted(receive: Receive) -> Receive:
    """`receive` that raises 413 once the body passes MAX_BODY_BYTES (chunked uploads have no
    Content-Length to check up front) and 408 when the body stalls for BODY_STALL_SECONDS."""
    seen, complete = 0, False

    async def wrapped() -> MutableMapping[str, Any]:
        nonlocal seen, complete
        if complete:  # after the body: waiting for a disconnect is no stall
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), BODY_STALL_SECONDS)
        except asyncio.TimeoutError:  # (TimeoutError itself from Python 3.11)
            raise ApiError(408, f"The request body stalled (nothing for {BODY_STALL_SECONDS:.0f}"
                           " s); send it again.") from None
        complete = not message.get("more_body", False)
        seen += len(message.get("body", b""))
        if seen > MAX_BODY_BYTES:
            raise too_large()
        return message

    return wrapped


def too_large() -> ApiError:
    return ApiError(413, f"The request is over {MAX_BODY_BYTES // 2**20} MB; send fewer or "
                    "smaller pictures (the model needs only a few hundred pixels across).")


def error_response(err: ApiError) -> JSONResponse:
    """{"detail": message}; a refused upload also closes the connection (its unread body)."""
    headers = {413: {"Connection": "close"}, 408: {"Connection": "close"},
               401: {"WWW-Authenticate": 'Bearer realm="fashion-cnn"'}}.get(err.status)
    return JSONResponse({"detail": str(err)}, err.status, headers=headers)


# ---------------------------------------------------------------------------------------------
# Reading pictures from a request


async def read_pictures(request: Request) -> list[tuple[str, bytes]]:
    """(name, bytes) of every picture in the request, in the order sent. Raises ApiError: 415
    for a content type that is neither multipart nor an image, 413 for more than MAX_FILES,
    400 for a malformed or truncated multipart body or a picture field sent as text."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media.startswith("image/"):
        body = await request.body()
        return [("image 1", body)] if body else []
    if media != "multipart/form-data":
        raise ApiError(415, f"Unsupported content type {media[:60] or '(none)'!r}: send "
                       "pictures as multipart/form-data field 'files' (or 'file'), or one "
                       "picture as the body with its image/* content type.")
    body = await request.body()  # at most MAX_BODY_BYTES (Gate); request.stream() replays it
    parser = MultiPartParser(request.headers, request.stream(), max_files=MAX_FILES)
    try:
        form = await parser.parse()
    except MultiPartException as err:
        if err.message.startswith("Too many files"):
            raise ApiError(413, f"Too many pictures: at most {MAX_FILES} per request.") from None
        hint = (" (a part without a filename is text, not a file: send pictures as file "
                "uploads, e.g. curl -F files=@photo.jpg)") if "maximum size" in err.message else ""
        raise ApiError(400, f"Malformed multipart body: {err.message}{hint}") from None
    try:
        if not closes(body, request.headers.get("content-type", "")):
            raise ApiError(400, "Malformed multipart body: it ends before its closing boundary "
                           "(a truncated upload?); send it again.")
        # "file" too: the name most upload examples use for one picture (curl -F file=@...)
        parts = [(i, part) for i, (field, part) in enumerate(form.multi_items())
                 if field in ("files", "file")]
        for i, part in parts:
            if not isinstance(part, UploadFile):
                raise ApiError(400, f"Part {i + 1} of the body is text, not a file (it has no "
                               "filename): send pictures as file uploads, e.g. curl -F "
                               "files=@photo.jpg.")
        return [(part.filename or f"image {n + 1}", await part.read())
                for n, (_, part) in enumerate(parts)]
    finally:
        await form.close()


def closes(body: bytes, content_type: str) -> bool:
    """Whether a multipart body holds its closing boundary ("--BOUNDARY--"): a body cut short
    would otherwise lose its last pictures without a word."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    return b"--" + boundary + b"--" in body


# ---------------------------------------------------------------------------------------------
# The application

PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "files": {"type": "array", "maxItems": MAX_FILES,
                  "items": {"type": "string", "format": "binary"}},
        "file": {"type": "string", "format": "binary", "description": "one picture"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


def declare_the_key(app: FastAPI) -> None:
    """Say in the OpenAPI schema what Gate enforces: every path but the public ones needs the
    key, as `X-API-Key` or `Authorization: Bearer` (so /docs offers "Authorize")."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"apiKey": []}, {"bearer": []}]
            for path in PUBLIC_PATHS & schema["paths"].keys():
                for operation in schema["paths"][path].values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def add_error_handlers(app: FastAPI) -> None:
    """Every refusal and failure answers JSON {"detail": ...}: no traceback, no server path."""

    @app.exception_handler(ApiError)
    async def refused(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                             for e in err.errors())
        return JSONResponse({"detail": problems}, 422)

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, err: ClientDisconnect) -> JSONResponse:
        # nobody reads this answer; 499 (nginx's "client closed request") keeps it out of the
        # 5xx count and the server log, as the client's doing, not the server's failure
        return JSONResponse({"detail": "The client left before its request was read."}, 499)

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception) -> JSONResponse:  # logged by uvicorn
        return JSONResponse({"detail": "Internal error; the server log has the details."}, 500)


def get_and_head(app: FastAPI, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Route GET `path` and HEAD (what uptime checkers send) to the decorated function; HEAD
    stays out of the OpenAPI schema (one operation per path there)."""
    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        app.head(path, include_in_schema=False)(endpoint)
        return app.get(path)(endpoint)

    return register


def add_info_routes(app: FastAPI, batcher: Batcher, info: dict[str, Any],
                    metrics: Metrics) -> None:
    """GET /v1/health, /v1/ready, /v1/model and /metrics."""
    summary = {"name": info["name"], "arch": info["arch"]}

    @get_and_head(app, "/v1/health")
    async def health() -> dict[str, str]:
        """The server is up."""
        return {"status": "ok"}

    @get_and_head(app, "/v1/ready")
    async def ready() -> JSONResponse:
        """200 once the model is loaded and has run once; 503 before."""
        if batcher.ready.is_set():
            return JSONResponse({"status": "ready", "model": summary})
        return JSONResponse({"status": "warming up"}, 503)

    @get_and_head(app, "/v1/model")
    async def model() -> dict[str, Any]:
        """The model: name, classes, test accuracy, preprocessing, limits, model card."""
        return info

    @get_and_head(app, "/metrics")
    async def prometheus() -> Response:
        """Prometheus metrics: requests by status, latency, pictures, batch sizes."""
        return Response(metrics.exposition(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")


def create_app(classifier: Classifier, settings: Settings = Settings()) -> FastAPI:
    """The API serving `classifier`; its batching thread and decoding threads live as long as
    the server (they start and stop with it)."""
    metrics = Metrics()
    batcher = Batcher(classifier, settings.batch_settings(), on_batch=metrics.batch_size.observe)
    pool = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="fashion-cnn-decode")
    info = model_info(classifier, settings.model)
    summary = {"name": info["name"], "arch": info["arch"]}

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202 - FastAPI's lifespan protocol
        batcher.start()
        yield
        batcher.stop()
        pool.shutdown()

    app = FastAPI(title="fashion-cnn", version="1", lifespan=lifespan,
                  description="Classify pictures of clothing into the 10 Fashion-MNIST classes.")
    app.add_middleware(Gate, api_key=settings.api_key, metrics=metrics)
    if settings.api_key:
        declare_the_key(app)
    add_error_handlers(app)

    @app.post("/v1/predict", openapi_extra=PREDICT_BODY)
    async def predict(request: Request, top_k: int = Query(3, ge=1, le=10)) -> Response:
        """Classify pictures: multipart `files` or `file` (up to 64) or one picture as the raw
        body."""
        unknown = sorted(set(request.query_params) - {"top_k"})
        if unknown:  # a misspelt top_k would otherwise be ignored without a word
            raise ApiError(422, f"Unknown parameter {', '.join(map(repr, unknown))}: this "
                           "endpoint takes only top_k.")
        pictures = await read_pictures(request)
        if not pictures:
            raise ApiError(422, "No pictures: send them as multipart/form-data field 'files' "
                           "(or 'file'), or one picture as the body with its image/* content "
                           "type.")
        predictions = await prepare(pictures)
        await batcher.classify(predictions, top_k)
        failed = sum(p.error is not None for p in predictions)
        metrics.pictures.labels("error").inc(failed)
        metrics.pictures.labels("classified").inc(len(predictions) - failed)
        body = {"model": summary, "predictions": [output_record(p) for p in predictions]}
        return JSONResponse(body, 422 if failed == len(predictions) else 200)

    async def prepare(pictures: list[tuple[str, bytes]]) -> list[Prediction]:
        loop = asyncio.get_running_loop()
        batcher.decoding += 1  # the batcher waits a little for requests still decoding
        try:
            return await asyncio.gather(*(loop.run_in_executor(
                pool, classifier.prepare, data, name) for name, data in pictures))
        finally:
            batcher.decoding -= 1

    app.add_api_route("/v1/predict/", predict, methods=["POST"], include_in_schema=False)
    add_info_routes(app, batcher, info, metrics)
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process started by uvicorn (`--workers N`); settings from env."""
    settings = Settings.from_env()
    _set_torch_threads(settings)
    return create_app(load_classifier(settings), settings)


def _set_torch_threads(settings: Settings) -> None:
    import torch

    torch.set_num_threads(settings.torch_threads)


# ---------------------------------------------------------------------------------------------
# Running the server


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1) -> None:
    """Run the API until Ctrl-C: the model loaded once in each of `workers` processes."""
    import uvicorn

    from .training.run import torch_threads

    options = {"log_level": "info", "access_log": False, "timeout_graceful_shutdown": 10}
    with torch_threads(settings.torch_threads):  # restored after: in-process callers keep theirs
        classifier = load_classifier(settings)  # a wrong model or backend fails here
        sock = bind(host, port)  # so does a taken port
        if workers == 1:
            config = uvicorn.Config(create_app(classifier, settings), **options)
            uvicorn.Server(config).run(sockets=[sock])
            return
    sock.close()  # uvicorn binds again for its worker processes
    del classifier
    with tempfile.TemporaryDirectory(prefix="fashion-cnn-metrics-") as metrics_dir:
        os.environ.update({**settings.to_env(), MULTIPROC_ENV: metrics_dir})
        uvicorn.run("fashion_cnn.api:app_from_env", factory=True, host=host, port=port,
                    workers=workers, **options)
