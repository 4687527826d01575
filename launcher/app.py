"""The launcher's HTTP API (contracts §5): thin handlers over `InstanceManager`.

Handlers translate between HTTP and the manager: request validation in the signature, domain
errors to status codes (404 not found, 409 duplicate id, 422 a request that cannot work as
written, 503 not able to start instances yet), and nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contract.launcher import INSTANCES_PATH, SWAP_SUFFIX, SwapRequest, VllmConfig
from controlauth import AuthError, Verifier
from launcher import ranges, validation_errors, watch
from launcher.bodylimit import BodyLimit
from launcher.events import Gone
from launcher.gpus import GpuMap
from launcher.manager import (
    ConflictError,
    InstanceManager,
    InvalidRequestError,
    NotFoundError,
    SwapFailedError,
    UnavailableError,
)
from launcher.metrics import LauncherMetrics
from launcher.settings import Settings

_log = logging.getLogger(__name__)

API_NAME = "Multi-Instance vLLM Management API"
PREFIX = INSTANCES_PATH


def _manager(request: Request) -> InstanceManager:
    manager: InstanceManager = request.app.state.manager
    return manager


Manager = Annotated[InstanceManager, Depends(_manager)]


async def _authorize(request: Request) -> None:
    """Mutating endpoints need the controller's control token (`controlauth`) when it is on.

    The token is bound to the request's method, raw path and body, so the body is read here
    (Starlette keeps it for the handler)."""
    verifier: Verifier | None = request.app.state.settings.control_auth
    if verifier is None:
        return
    query = request.scope.get("query_string", b"")
    target = request.scope.get("raw_path", request.url.path.encode()) + (
        b"?" + query if query else b""
    )
    try:
        verifier.check(
            request.headers.get("authorization"),
            request.method,
            target.decode("latin-1"),
            await request.body(),
        )
    except AuthError as exc:
        _log.warning("refused an unauthenticated %s %s: %s", request.method, request.url.path, exc)
        raise HTTPException(
            status_code=401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None


Authorized = Depends(_authorize)


async def _create(manager: InstanceManager, instance_id: str | None, body: VllmConfig) -> Any:
    try:
        instance = await manager.create(instance_id, body)
    except ConflictError as err:
        raise HTTPException(409, str(err)) from None
    except InvalidRequestError as err:
        raise HTTPException(422, str(err)) from None
    except UnavailableError as err:
        raise HTTPException(503, str(err)) from None
    return JSONResponse(instance.to_json(), status_code=201)


service = APIRouter()
"""The launcher itself: description, liveness, readiness, metrics."""
instances = APIRouter(prefix=PREFIX)
"""The reference's instance API (contracts §5.2)."""


@service.get("/")
async def root() -> dict[str, Any]:
    """The API's description; `endpoints` names every route the app serves (a test checks)."""
    return {
        "name": API_NAME,
        "version": "2.0",
        "endpoints": {
            "root": "GET /",
            "create": f"POST {PREFIX}",
            "create_with_id": f"PUT {PREFIX}/{{instance_id}}",
            "list": f"GET {PREFIX}[?detail=false]",
            "get": f"GET {PREFIX}/{{instance_id}}",
            "delete": f"DELETE {PREFIX}/{{instance_id}}",
            "delete_all": f"DELETE {PREFIX}",
            "swap": f"POST {PREFIX}/{{instance_id}}{SWAP_SUFFIX}",
            "log": f"GET {PREFIX}/{{instance_id}}/log",
            "watch": f"GET {PREFIX}/watch[?since=N][&updates=true]",
            "health": "GET /health",
            "ready": "GET /readyz",
            "metrics": "GET /metrics",
        },
    }


@service.get("/health")
async def health() -> dict[str, str]:
    return {"status": "OK"}


@service.get("/readyz")
async def readyz(manager: Manager) -> Response:
    if manager.forkserver.ready:
        info = manager.forkserver.info
        details = dataclasses.asdict(info) if info else {}
        return JSONResponse(
            {"status": "ready", "forkserver": details, "preloaded": manager.forkserver.preloaded}
        )
    return JSONResponse({"status": "importing the instance entry"}, status_code=503)


@service.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@instances.post("", dependencies=[Authorized])
async def create(body: VllmConfig, manager: Manager) -> Any:
    return await _create(manager, None, body)


@instances.put("/{instance_id}", dependencies=[Authorized])
async def put(instance_id: str, body: VllmConfig, manager: Manager) -> Any:
    return await _create(manager, instance_id, body)


@instances.get("")
async def list_instances(manager: Manager, detail: bool = True) -> dict[str, Any]:
    if not detail:
        ids = list(manager.instances)
        return {"revision": manager.events.revision, "instance_ids": ids, "count": len(ids)}
    objects = manager.snapshot()
    return {
        "revision": manager.events.revision,
        "total_instances": len(objects),
        "running_instances": sum(1 for o in objects if o["status"] == "running"),
        "instances": objects,
    }


@instances.delete("", dependencies=[Authorized])
async def delete_all(manager: Manager) -> dict[str, Any]:
    """Stops every instance; `stopped_instances` holds their InstanceStates, as the reference."""
    stopped = await manager.delete_all()
    return {
        "status": "all_stopped",
        "stopped_instances": [instance.to_json() for instance in stopped],
        "total_stopped": len(stopped),
    }


@instances.get("/watch")
async def watch_instances(
    manager: Manager,
    since: Annotated[int | None, Query()] = None,
    updates: bool = False,
) -> Response:
    if since is not None and isinstance(gone := manager.events.since(since), Gone):
        raise HTTPException(410, gone.message)
    lines = watch.stream(
        manager.events, since=since, snapshot=manager.snapshot, with_updates=updates
    )
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"X-Content-Type-Options": "nosniff"},
    )


@instances.get("/{instance_id}")
async def get_instance(instance_id: str, manager: Manager) -> dict[str, Any]:
    try:
        return manager.get(instance_id).to_json()
    except NotFoundError as err:
        raise HTTPException(404, str(err)) from None


@instances.delete("/{instance_id}", dependencies=[Authorized])
async def delete_instance(instance_id: str, manager: Manager) -> dict[str, Any]:
    try:
        return (await manager.delete(instance_id)).to_json()
    except NotFoundError as err:
        raise HTTPException(404, str(err)) from None


@instances.post("/{instance_id}" + SWAP_SUFFIX, dependencies=[Authorized])
async def swap_instance(instance_id: str, body: SwapRequest, manager: Manager) -> Any:
    """fma (issue 16): the sleeping `instance_id` becomes `body.new_instance_id` with new
    weights; 201 and the new InstanceState, like a PUT of that ID (contracts §5.9)."""
    try:
        instance = await manager.swap(instance_id, body)
    except NotFoundError as err:
        raise HTTPException(404, str(err)) from None
    except ConflictError as err:
        raise HTTPException(409, str(err)) from None
    except InvalidRequestError as err:
        raise HTTPException(422, str(err)) from None
    except SwapFailedError as err:
        raise HTTPException(502, str(err)) from None
    return JSONResponse(instance.to_json(), status_code=201)


@instances.get("/{instance_id}/log")
async def log(
    instance_id: str,
    manager: Manager,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    try:
        path = manager.get(instance_id).log_path
    except NotFoundError as err:
        raise HTTPException(404, str(err)) from None
    try:
        with path.open("rb") as file:
            total = file.seek(0, 2)
            decision = ranges.plan(range_, total)
            if isinstance(decision, ranges.Refusal):
                if decision.status == 416:
                    return Response(status_code=416, headers=decision.headers())
                raise HTTPException(400, decision.detail)
            file.seek(decision.start)
            body = file.read(max(decision.length, 0))
    except FileNotFoundError:
        raise HTTPException(404, f"Instance {instance_id} has no log file") from None
    return Response(
        body,
        status_code=decision.status,
        media_type="application/octet-stream",
        headers=decision.headers(),
    )


def create_app(settings: Settings, gpus: GpuMap) -> FastAPI:
    metrics = LauncherMetrics()
    manager = InstanceManager(settings, gpus, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await manager.start()
        _log.info("launcher up; GPU map from %s: %s", gpus.source, dict(gpus.indices))
        try:
            yield
        finally:
            await manager.shutdown()

    app = FastAPI(title=API_NAME, version="2.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.manager = manager
    app.state.metrics = metrics
    app.include_router(service)
    app.include_router(instances)
    app.add_middleware(BodyLimit)
    validation_errors.install(app)
    return app
