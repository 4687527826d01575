"""The FastAPI app: admission routes, health, readiness and metrics.

Routes:
- `POST /mutate-pods`, `POST /validate-pods`, `POST /validate-fma`: AdmissionReview v1 in and
  out (`webhook.handlers`);
- `GET /healthz`: the event loop answers (liveness);
- `GET /readyz`: 200 only once every watch cache has listed, so a fresh replica gets no traffic
  while it would still answer from an empty cache (readiness); the caches' informers run on
  the server's event loop, for as long as the app's lifespan (`create_app(..., lifespan=)`);
- `GET /metrics`: Prometheus text format (`webhook.metrics`).

The admission routes read the raw body and return raw bytes: pydantic parses the review once
(in Rust, `model_validate_json`) and serializes the answer once, with no FastAPI body model or
`jsonable_encoder` pass in between. A pure ASGI middleware times every admission call from first
byte to response start, feeds the latency histogram and returns the time in a `Server-Timing`
header, which the benchmark reads for exact server-side percentiles.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webhook.handlers import BadReviewError, Handlers, WebhookName
from webhook.metrics import WebhookMetrics

JSON: Final = "application/json"
MAX_BODY_BYTES: Final = 8 << 20
"""The largest AdmissionReview read (8 MiB); larger: 413. The apiserver takes request bodies up
to 3 MiB, and a review of an update carries the object and the old object, plus the envelope."""
ADMISSION_PATHS: Final[dict[str, WebhookName]] = {
    "/mutate-pods": "mutate-pods",
    "/validate-pods": "validate-pods",
    "/validate-fma": "validate-fma",
}


def handlers_of(request: Request) -> Handlers:
    """The one accessor for the app's shared state."""
    handlers: Handlers = request.app.state.handlers
    return handlers


def _admission_route(
    handle: Callable[[Handlers, bytes], Awaitable[bytes]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await _read_body(request)
        if body is None:
            detail = f"request body too large: the limit is {MAX_BODY_BYTES} bytes"
            return Response(json.dumps({"error": detail}), 413, media_type=JSON)
        try:
            answer = await handle(handlers_of(request), body)
        except BadReviewError as exc:
            return Response(json.dumps({"error": str(exc)}), 400, media_type=JSON)
        return Response(answer, media_type=JSON)

    return endpoint


async def _read_body(request: Request) -> bytes | None:
    """The body, or None once it is known to exceed `MAX_BODY_BYTES` (from `Content-Length`, or
    while counting a chunked one), so no more than the limit is ever held. Only the admission
    routes read bodies; the others ignore theirs, which the server then discards."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and (len(declared) > 18 or int(declared) > MAX_BODY_BYTES):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


admission = APIRouter(tags=["admission"])
admission.add_api_route("/mutate-pods", _admission_route(Handlers.mutate_pods), methods=["POST"])
admission.add_api_route(
    "/validate-pods", _admission_route(Handlers.validate_pods), methods=["POST"]
)
admission.add_api_route("/validate-fma", _admission_route(Handlers.validate_fma), methods=["POST"])

operations = APIRouter(tags=["operations"])


@operations.get("/healthz")
async def healthz() -> Response:
    return Response('{"status":"ok"}', media_type=JSON)


@operations.get("/readyz")
async def readyz(request: Request) -> Response:
    if handlers_of(request).cache.synced:
        return Response('{"status":"ready"}', media_type=JSON)
    return Response('{"status":"waiting for the watch caches"}', 503, media_type=JSON)


@operations.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = handlers_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class TimingMiddleware:
    """Times admission calls: histogram by webhook, and a `Server-Timing: app;dur=<ms>` header."""

    def __init__(self, app: ASGIApp, metrics: WebhookMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        webhook = ADMISSION_PATHS.get(scope["path"]) if scope["type"] == "http" else None
        if webhook is None:
            await self.app(scope, receive, send)
            return
        histogram = self.metrics.latency.labels(webhook=webhook)
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = time.perf_counter() - started
                histogram.observe(elapsed)
                header = f"app;dur={elapsed * 1000:.3f}".encode()
                message["headers"] = [*message.get("headers", ()), (b"server-timing", header)]
            await send(message)

        await self.app(scope, receive, timed_send)


def create_app(
    handlers: Handlers,
    *,
    lifespan: Callable[[], AbstractAsyncContextManager[object]] | None = None,
) -> FastAPI:
    """The app over `handlers`; no docs routes (nothing but the apiserver should call it).

    `lifespan` runs while the app serves, on the server's event loop: the watch caches'
    informers (`WebhookCache.running`)."""

    @asynccontextmanager
    async def app_lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            yield
            return
        async with lifespan():
            yield

    app = FastAPI(
        title="fma-webhook",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=app_lifespan,
    )
    app.state.handlers = handlers
    app.include_router(admission)
    app.include_router(operations)
    app.add_middleware(TimingMiddleware, metrics=handlers.metrics)
    return app
