"""The FastAPI application: endpoints, request limits, structured errors and the counters of ``/health``.

Client mistakes are :class:`~modalfuse.RequestError` answers: a 4xx status and ``{"status", "kind",
"field", "message"}``. Any other error of the model on a request's rows (a :class:`~modalfuse.ModalfuseError`)
is a 422 of kind ``unprocessable``; only a bug gives a 500 (``kind: "internal"``), and ``GET /health`` counts
them.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from modalfuse._errors import InputDriftWarning, ModalfuseError, RequestError
from modalfuse.serve._config import ServeOptions
from modalfuse.serve._page import PAGE
from modalfuse.serve._records import parse_json, parse_query_flag, record_from_form
from modalfuse.serve._service import ModelService

__all__ = ["build_app"]

logger = logging.getLogger("modalfuse.serve")

#: The page's Content-Security-Policy: its own inline script and style, requests to this server only;
#: nothing is loaded from anywhere else.
PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class _Stats:
    """Answers given since the start, by kind (thread-safe)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests = 0
        self.client_errors = 0
        self.server_errors = 0
        self._lock = threading.Lock()

    def count(self, status: int) -> None:
        with self._lock:
            self.requests += 1
            self.client_errors += 400 <= status < 500
            self.server_errors += status >= 500


class _Counting:
    """ASGI middleware counting the answers' statuses into :class:`_Stats`."""

    def __init__(self, app: Any, stats: _Stats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                self.stats.count(int(message["status"]))
            await send(message)

        await self.app(scope, receive, counting_send)


# ------------------------------------------------------------------------------------------- the body
async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes: by its ``Content-Length`` before reading,
    and while it streams in (a chunked body has no length)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise RequestError(
                400, "bad_header", "content-length", f"Content-Length {length[:40]!r} is not a number"
            )
        if int(length) > limit:
            raise _too_large(int(length), limit)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(total, limit, streamed=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int, streamed: bool = False) -> RequestError:
    what = f"more than {limit:,} bytes arrived" if streamed else f"the request body is {size:,} bytes"
    return RequestError(
        413,
        "too_large",
        "body",
        f"{what}, over the upload limit of {limit:,} bytes ({limit / 2**20:g} MiB; --max-upload-mb)",
    )


async def _records(request: Request, service: ModelService) -> tuple[list[dict[str, Any]], bool]:
    """The request's records (JSON or multipart) and whether it was a single record."""
    options = service.options
    content_type = request.headers.get("content-type", "")
    main = content_type.split(";", 1)[0].strip().lower()
    if main and main != "application/json" and not main.endswith("+json") and main != "multipart/form-data":
        raise RequestError(
            415,
            "unsupported_media_type",
            "content-type",
            f"Content-Type {content_type[:80]!r} is not accepted: send application/json (one record or an "
            "array of records) or multipart/form-data (one record, files as uploads)",
        )
    body = await read_body(request, options.max_upload_bytes)
    if not body.strip():
        raise RequestError(400, "empty_body", "body", "the request body is empty: send a record")
    if main == "multipart/form-data":
        items = await _form_items(request, body, len(service.columns.modality))
        return [record_from_form(items, service.columns)], True
    return parse_json(body, service.columns, options.max_batch)


async def _form_items(request: Request, body: bytes, n_columns: int) -> list[tuple[str, Any]]:
    """The fields of a multipart body: ``(name, text)`` or ``(name, (content_type, filename, bytes))``."""

    async def stream() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(
        request.headers, stream(), max_files=n_columns + 1, max_fields=n_columns + 1, max_part_size=len(body)
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise RequestError(
            400, "bad_multipart", "body", f"the multipart body cannot be read: {exc.message}"
        ) from None
    items: list[tuple[str, Any]] = []
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                items.append((key, (value.content_type, value.filename, await value.read())))
            else:
                items.append((key, value))
    finally:
        await form.close()
    return items


# ------------------------------------------------------------------------------------------- the app
def _error_body(status: int, kind: str, field: str, message: str) -> dict[str, Any]:
    return {"status": status, "kind": kind, "field": field, "message": message}


def _load(model: Any) -> tuple[Any, Path]:
    from modalfuse.estimator import MultimodalClassifier

    if isinstance(model, MultimodalClassifier):
        model._check_fitted()
        return model, Path("in-memory")
    path = Path(model)
    return MultimodalClassifier.load(path), path


def build_app(model: Any, options: ServeOptions) -> FastAPI:
    """The application serving ``model`` (a saved model's folder, or a fitted classifier).

    Loads the model (JSON + safetensors, every field checked), sets torch's threads for the process to
    ``options.threads`` and stops :class:`~modalfuse.InputDriftWarning` from being printed (each answer
    carries what it would say).
    """
    import torch

    clf, path = _load(model)
    clf.set_params(n_threads=options.threads)
    torch.set_num_threads(options.threads)
    warnings.filterwarnings("ignore", category=InputDriftWarning)
    service = ModelService(clf, path, options)
    stats = _Stats()
    limiter = anyio.CapacityLimiter(options.n_workers)
    app = FastAPI(title="modalfuse", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.state.stats = stats
    _routes(app, service, stats, limiter)
    _handlers(app, stats)
    app.add_middleware(_Counting, stats=stats)
    return app


def _routes(app: FastAPI, service: ModelService, stats: _Stats, limiter: anyio.CapacityLimiter) -> None:
    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(
            PAGE, headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"}
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "fusion": service.clf.fusion,
            "uptime_seconds": round(time.time() - stats.started, 3),
            "requests": stats.requests,
            "client_errors": stats.client_errors,
            "server_errors": stats.server_errors,
        }

    @app.get("/model")
    async def model() -> dict[str, Any]:
        return service.model_info()

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        contributions = parse_query_flag(request.query_params.get("contributions"), "contributions")
        records, single = await _records(request, service)
        answers, timings = await anyio.to_thread.run_sync(
            service.predict, records, contributions, limiter=limiter
        )
        return _answer(answers, single, "predictions", timings)

    @app.post("/explain")
    async def explain(request: Request) -> JSONResponse:
        records, single = await _records(request, service)
        answers, timings = await anyio.to_thread.run_sync(service.explain, records, limiter=limiter)
        return _answer(answers, single, "explanations", timings)


def _answer(answers: list[dict], single: bool, key: str, timings: dict[str, float]) -> JSONResponse:
    content = answers[0] if single else {key: answers}
    header = ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in timings.items())
    return JSONResponse(content, headers={"Server-Timing": header})


def _handlers(app: FastAPI, stats: _Stats) -> None:
    async def request_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestError)
        return JSONResponse(_error_body(exc.status, exc.kind, exc.field, str(exc)), status_code=exc.status)

    async def model_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(_error_body(422, "unprocessable", "body", str(exc)), status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        if exc.status_code in (404, 405):
            message += " (endpoints: GET /, GET /health, GET /model, POST /predict, POST /explain)"
        return JSONResponse(
            _error_body(exc.status_code, kind, "path", message),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        stats.count(500)
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        message = f"internal error ({type(exc).__name__}); the server log has the traceback"
        return JSONResponse(_error_body(500, "internal", "server", message), status_code=500)

    app.add_exception_handler(RequestError, request_error)
    app.add_exception_handler(ModalfuseError, model_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
