"""TF Serving's REST API on tornado, plus the prediction web page at `GET /`.

Routes (https://www.tensorflow.org/tfx/serving/api_rest):

* `GET  /v1/models/{name}[/versions/{v}|/labels/{l}]`            – model status (`{"model_version_status": […]}`)
* `GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata`   – signature_def metadata (+ `class_labels`)
* `POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict`    – row (`instances`) or columnar (`inputs`) format
* `POST /v1/models/{name}[/versions/{v}|/labels/{l}]:classify`   – `{"examples": […]}` → `{"results": […]}`
* `GET  /`                                           – the self-contained prediction page (`serving/server/web/`)
* `GET  {monitoring_path}`                           – Prometheus metrics, when configured (`serving.server.prometheus`)

The `/v1/` routes follow TF Serving's grammar exactly (`serving.server.rest_routes`: case-insensitive, anything
else under `/v1/` is 400 `Malformed request`); labels resolve through the manager (`version_labels`).
Every error is TF Serving's `{"error": "…"}` with its HTTP status (400 malformed, more than `max_batch_rows`
instances/examples, or an image over `max_image_pixels`; 404 unknown model/version; 413 body over
`max_request_bytes`; 431 request head over `MAX_HEADER_BYTES`). Request bodies are streamed (by every handler)
and dropped once over the limit. The event loop
runs in its own thread; model calls go to a thread pool (or a batcher), large request bodies are parsed off the
loop too.

Each request has a `Deadline` (`serving.server.deadlines`): `rest_api_timeout_ms` after its body was read (TF
Serving's `--rest_api_timeout_in_ms`, default 30 s; then 504 DEADLINE_EXCEEDED), cancelled when the client closes
the connection; queued work for it is then dropped unrun. Every request writes one access-log line
(`serving.server.access_log`) instead of tornado's own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import tornado.httpserver
import tornado.netutil
import tornado.routing
import tornado.web

from serving.errors import ServingError, clip
from serving.server.access_log import AccessLog
from serving.server.config import ServerConfig, parse_version, validate_model_name
from serving.server.deadlines import Deadline
from serving.server.image_guard import prepare_encoded, prepare_image_inputs
from serving.server.manager import ModelManager
from serving.server.prometheus import CONTENT_TYPE, ServingMetrics
from serving.server.rest_routes import JsonErrorsHTTPServer, TfServingPath
from serving.server.tensors import (
    check_inputs,
    decode_json,
    examples_from_json,
    predict_inputs_from_json,
    predict_outputs_to_json,
    signature_name_from_json,
)

log = logging.getLogger(__name__)

PAGE_PATH = Path(__file__).with_name("web") / "index.html"
OFFLOAD_BYTES = 256 * 1024  # bodies at least this large are parsed on the thread pool, not the event loop

DRAIN_FACTOR = 2  # a body over the limit is read (and dropped) up to this many times the limit, then refused early
MAX_HEADER_BYTES = 64 * 1024  # request line + headers; beyond it a JSON 431 (`_JsonErrorsHTTPServer`)


class RestContext:
    """What the handlers share: the model manager, the thread pool, limits and the page."""

    def __init__(self, manager: ModelManager, config: ServerConfig, executor: ThreadPoolExecutor,
                 metrics: ServingMetrics | None = None) -> None:
        self.manager = manager
        self.metrics = metrics
        self.config = config
        self.executor = executor
        self.access_log = AccessLog(config.access_log)
        self.default_model = config.models[0].name
        self.page_html, self.page_csp = _load_page(self.default_model)


def _load_page(default_model: str) -> tuple[bytes, str]:
    """The page with the default model name filled in, and a CSP allowing exactly its inline script/style."""
    text = PAGE_PATH.read_text(encoding="utf-8")
    text = text.replace("{{DEFAULT_MODEL}}", html.escape(default_model, quote=True))

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
                        for b in blocks)

    csp = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
           "img-src blob: data:; connect-src *; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return text.encode("utf-8"), csp


def _version_arg(ctx: RestContext, name: str, version: str | None, label: str | None) -> int | None:
    """The version a request path names (`/versions/N`, or `/labels/L` resolved by the manager), None = latest."""
    number = parse_version(version) if version is not None else None
    return ctx.manager.resolve_version(name, number, label)


@tornado.web.stream_request_body
class _JsonHandler(tornado.web.RequestHandler):
    """JSON responses and TF Serving-shaped errors. Every body is streamed and counted: one over
    `max_request_bytes` is dropped while it is read and answered with 413 — after the whole body when it stays
    under `DRAIN_FACTOR` × the limit (so a client still sending reads its answer), at once beyond that; bodies are
    kept only by handlers that set `collect_body`."""

    collect_body = False

    def initialize(self, ctx: RestContext) -> None:
        self.ctx = ctx
        self.set_default_headers()  # tornado calls it once before initialize(), when ctx is not set yet
        # cancelled if the client goes away; the REST timeout is set once the body is in (`InferenceHandler.post`)
        self.deadline = Deadline(None, f"the REST timeout ({ctx.config.rest_api_timeout_ms} ms)")
        self.served_version: int | None = None  # set by handlers that acquired a version (access log)
        self._error_code = ""
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False

    def on_connection_close(self) -> None:
        self.deadline.cancel("the client closed the connection")

    def log_access(self) -> None:
        """The access-log line (tornado's `log_function`, called once the response is finished)."""
        kwargs = self.path_kwargs
        status = self.get_status()
        code = self._error_code or ("OK" if status < 400 else "")
        served = self.served_version
        if served is None:
            served = kwargs.get("version") or kwargs.get("label")
        self.ctx.access_log.rest(self.request.method or "", self.request.path, kwargs.get("name"), served, status,
                                 code, self.request.request_time())

    def prepare(self) -> None:
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.ctx.config.max_request_bytes:
            self._too_large = True
            raise self._request_too_large(int(declared))

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._size += len(chunk)
        limit = self.ctx.config.max_request_bytes
        if self._size > limit:
            self._too_large, self._chunks = True, []
            if self._size > DRAIN_FACTOR * limit:  # stop reading: answer now, tornado then closes the connection
                self.send_error(413, exc_info=(ServingError, self._request_too_large(None), None))
            return
        if self.collect_body:
            self._chunks.append(chunk)

    def _request_too_large(self, size: int | None) -> ServingError:
        what = f"{size} bytes" if size is not None else "the request body"
        return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"Request too large: {what} exceeds the limit of {self.ctx.config.max_request_bytes} "
                            "bytes", http_status=413)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        origin = self.ctx.config.cors_origin if hasattr(self, "ctx") else None
        if origin:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Headers", "Content-Type")
            self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")

    def options(self, *args: Any, **kwargs: Any) -> None:
        self.set_status(204)
        self.finish()

    def send_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ServingError):
            self.set_status(exc.http_status)
            message = exc.message
            self._error_code = exc.code.name
        elif isinstance(exc, tornado.web.HTTPError):
            message = exc.log_message or self._reason
        else:
            message = f"Internal error: {type(exc).__name__}" if exc else self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ServingError):
            log.debug("%s %s -> %s %s", self.request.method, clip(self.request.path), value.code.name, value.message)
        else:
            super().log_exception(typ, value, tb)


class StatusHandler(_JsonHandler):
    """GET /v1/models/{name}[/versions/{v}]."""

    def get(self, name: str, version: str | None = None, label: str | None = None) -> None:
        validate_model_name(name)
        # TF Serving's GetModelStatus ignores version_label: the status of a label lists every version.
        statuses = self.ctx.manager.status(name, parse_version(version) if version is not None else None)
        self.send_json({"model_version_status": [
            {"version": str(s.version), "state": s.state,
             "status": {"error_code": s.error_code.name, "error_message": s.error_message}}
            for s in statuses
        ]})


class MetadataHandler(_JsonHandler):
    """GET /v1/models/{name}[/versions/{v}]/metadata."""

    def get(self, name: str, version: str | None = None, label: str | None = None) -> None:
        validate_model_name(name)
        with self.ctx.manager.acquire(name, _version_arg(self.ctx, name, version, label)) as servable:
            self.send_json({
                "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                "metadata": servable.metadata_json(),
            })


class InferenceHandler(_JsonHandler):
    """POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict|classify|regress, with a streamed, size-limited
    body."""

    collect_body = True

    async def _off_loop(self, fn: Any, *args: Any) -> Any:
        if self._size < OFFLOAD_BYTES:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.ctx.executor, fn, *args)

    async def post(self, name: str, version: str | None = None, label: str | None = None,
                   verb: str | None = None) -> None:
        if self._finished:  # already answered 413 while the body was read
            return
        if self.ctx.metrics is None or verb not in ("predict", "classify", "regress"):
            await self._post_within_deadline(name, version, label, verb)
            return
        start, status = time.perf_counter(), "OK"
        try:
            await self._post_within_deadline(name, version, label, verb)
        except ServingError as err:
            status = err.code.name
            raise
        except Exception:
            status = "INTERNAL"
            raise
        finally:
            self.ctx.metrics.record_request(name, verb.capitalize(), "REST", status, time.perf_counter() - start)

    async def _post_within_deadline(self, name: str, version: str | None, label: str | None,
                                    verb: str | None) -> None:
        """`_post`, cut off at the REST timeout (504), counted like TF Serving's from when the body is in; its queued
        model call is then dropped unrun (one already running finishes, unseen)."""
        self.deadline.limit(self.ctx.config.rest_api_timeout_ms / 1000)
        try:
            await asyncio.wait_for(self._post(name, version, label, verb), self.deadline.remaining())
        except TimeoutError:
            raise self.deadline.error() or ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                                        "Deadline exceeded") from None

    async def _post(self, name: str, version: str | None, label: str | None, verb: str | None) -> None:
        if self._too_large:
            raise self._request_too_large(None)
        validate_model_name(name)
        version_number = _version_arg(self.ctx, name, version, label)
        body = b"".join(self._chunks)
        self._chunks = []
        with self.ctx.manager.acquire(name, version_number) as servable:
            self.served_version = servable.version
            if verb == "predict":
                payload = await self._predict(servable, body)
            elif verb == "classify":
                payload = await self._classify(servable, body)
            else:  # as TF Serving: 400 unless the signature regresses (then 501: not implemented here)
                servable.regress_signature(signature_name_from_json(await self._off_loop(decode_json, body)))
        self.send_json(payload)

    async def _predict(self, servable: Any, body: bytes) -> dict[str, Any]:
        def parse() -> tuple[Any, dict, bool]:
            doc = decode_json(body)
            signature = servable.signature(signature_name_from_json(doc))
            inputs, row_format = predict_inputs_from_json(doc, signature, self.ctx.config.max_batch_rows)
            check_inputs(inputs, signature)
            inputs = prepare_image_inputs(inputs, self.ctx.config.max_image_pixels)  # pixel guard, EXIF
            return signature, inputs, row_format

        signature, inputs, row_format = await self._off_loop(parse)
        batcher = servable.batcher(signature)
        future = (batcher.submit(inputs, self.deadline) if batcher
                  else self.ctx.executor.submit(self.deadline.run, servable.run, signature, inputs))
        outputs = await asyncio.wrap_future(future)
        return await self._off_loop(predict_outputs_to_json, outputs, row_format)

    async def _classify(self, servable: Any, body: bytes) -> dict[str, Any]:
        def parse() -> tuple[Any, list[bytes]]:
            doc = decode_json(body)
            signature = servable.classify_signature(signature_name_from_json(doc))
            examples = examples_from_json(doc, self.ctx.config.max_batch_rows)
            examples = prepare_encoded(examples, "examples", self.ctx.config.max_image_pixels)
            return signature, examples

        signature, examples = await self._off_loop(parse)
        results = await asyncio.wrap_future(self.ctx.executor.submit(self.deadline.run, servable.classify, signature,
                                                                     examples))
        return {"results": [[[label, score] for label, score in row] for row in results]}


class PageHandler(_JsonHandler):
    """GET / – the prediction page."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", self.ctx.page_csp)
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(self.ctx.page_html)


class MetricsHandler(_JsonHandler):
    """GET {monitoring_path} – the Prometheus text page."""

    def get(self) -> None:
        assert self.ctx.metrics is not None
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.ctx.metrics.page())


class NotFoundHandler(_JsonHandler):
    """Anything else: 404 in TF Serving's error shape."""

    def prepare(self) -> None:
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Malformed request: {self.request.method} {self.request.path[:200]}")


class _AnyMethod(tuple):
    """SUPPORTED_METHODS of the handlers that answer every method themselves (tornado would say 405)."""

    def __contains__(self, method: object) -> bool:
        return True


class RouteErrorHandler(_JsonHandler):
    """A `/v1/` request TF Serving's grammar refuses (`rest_routes.route`): its error, for any method."""

    SUPPORTED_METHODS = _AnyMethod()

    def prepare(self) -> None:
        error = self.request.tf_serving_route.kwargs  # type: ignore[attr-defined]  (set by TfServingPath)
        raise ServingError(error["code"], error["message"])


class PreflightHandler(_JsonHandler):
    """OPTIONS under `/v1/`: TF Serving's CORS preflight answer (200 with an `Origin: http(s)://…` header)."""

    def options(self, *args: Any, **kwargs: Any) -> None:
        if not re.search(r"https?://", self.request.headers.get("Origin", "")):
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, "Origin header is missing in CORS preflight")
        self.clear_header("Content-Type")
        self.set_status(200)
        self.finish()


def make_app(ctx: RestContext) -> tornado.web.Application:
    """The tornado application with every route above."""
    args = {"ctx": ctx}
    monitoring = []
    if ctx.config.monitoring_path and ctx.metrics is not None:
        monitoring = [(re.escape(ctx.config.monitoring_path), MetricsHandler, args)]
    return tornado.web.Application(
        [
            *monitoring,
            (r"/", PageHandler, args),
            # TF Serving's REST grammar (serving.server.rest_routes): case-insensitive, no trailing slash, 400 for
            # anything else under /v1/.
            tornado.routing.Rule(TfServingPath("inference"), InferenceHandler, args),
            tornado.routing.Rule(TfServingPath("metadata"), MetadataHandler, args),
            tornado.routing.Rule(TfServingPath("status"), StatusHandler, args),
            tornado.routing.Rule(TfServingPath("preflight"), PreflightHandler, args),
            tornado.routing.Rule(TfServingPath("error"), RouteErrorHandler, args),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        compress_response=False,
        log_function=lambda handler: handler.log_access() if isinstance(handler, _JsonHandler) else None,
    )


class RestServer:
    """Runs the tornado app on its own event-loop thread."""

    def __init__(self, ctx: RestContext, host: str, port: int) -> None:
        self._ctx = ctx
        self._host = host
        self._requested_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def start(self) -> int:
        """Bind (errors surface here), start the loop thread, return the bound port."""
        sockets = tornado.netutil.bind_sockets(self._requested_port, address=self._host, reuse_port=False)
        self.port = sockets[0].getsockname()[1]
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

            async def setup() -> None:
                # Bodies over the limit get their 413 from the handlers (`_JsonHandler.data_received`), which stop
                # reading at DRAIN_FACTOR × the limit; tornado's own bound (a bare 400 without a body) is set out of
                # their way (every handler streams its body, none buffers it).
                self._server = JsonErrorsHTTPServer(make_app(self._ctx), max_body_size=1 << 62,
                                                    max_header_size=MAX_HEADER_BYTES,
                                                    idle_connection_timeout=60, body_timeout=60)
                self._server.add_sockets(sockets)

            self._loop.run_until_complete(setup())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="rest-server", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        return self.port

    def stop(self) -> None:
        """Stop accepting, close connections, stop the loop."""
        if self._loop is None or self._thread is None:
            return
        loop, server = self._loop, self._server

        async def shutdown() -> None:
            if server is not None:
                server.stop()
                try:
                    await asyncio.wait_for(server.close_all_connections(), timeout=5)
                except TimeoutError:
                    pass
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(timeout=10)
        self._thread = None
