"""An async JSON client for the Kubernetes REST API, on one `httpx.AsyncClient`.

Why not the official client: it is synchronous, so a controller built on it needs a thread per
watch and a thread pool for writes (`asyncio.to_thread` shares a pool of `min(32, cores + 4)`
threads, six on our two-core machines, with everything else), and a watch blocked in a socket
read can only be ended by shutting the socket down under it. The controller already lives on
an event loop for its launcher streams and HTTP calls, so the apiserver is reached the same way:
every call is a coroutine, a watch is an async iterator that cancellation closes, and objects
stay plain JSON dicts (no model round trip that costs time and drops unknown fields).

The surface is the handful of verbs a controller needs: get, list (one page), watch, create,
replace (PUT), patch (merge, JSON, strategic), delete (with preconditions). Every write names
the field manager, so `managedFields` shows who wrote what (the sleeper budget reads it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Literal

import httpx
import orjson

from kube._resources import JsonObject, ResourceKind, metadata

PatchType = Literal["merge", "json", "strategic"]
_PATCH_CONTENT_TYPES: Final[Mapping[PatchType, str]] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
DEFAULT_FIELD_MANAGER: Final = "dual-pods-controller"


class _StatusIs:
    """A flag of `ApiError`: whether its HTTP status is `code` (one rule for every such flag)."""

    __slots__ = ("code",)

    def __init__(self, code: HTTPStatus) -> None:
        self.code = code

    def __get__(self, error: ApiError, owner: type[ApiError]) -> bool:
        return error.status == self.code


class ApiError(Exception):
    """A non-2xx answer of the apiserver, with its `Status` object when it sent one."""

    conflict = _StatusIs(HTTPStatus.CONFLICT)
    """409: a stale resourceVersion, a failed uid precondition, or AlreadyExists."""
    not_found = _StatusIs(HTTPStatus.NOT_FOUND)
    """404: no such object (or namespace)."""
    gone = _StatusIs(HTTPStatus.GONE)
    """410: the resourceVersion (or continue token) asked for is no longer available."""
    invalid = _StatusIs(HTTPStatus.UNPROCESSABLE_ENTITY)
    """422: the object failed validation; retrying the same write will not help."""

    def __init__(self, status: int, reason: str, message: str, body: JsonObject | None) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body

    @property
    def already_exists(self) -> bool:
        return self.conflict and self.reason == "AlreadyExists"


@dataclass(frozen=True, kw_only=True)
class Preconditions:
    """What the apiserver must find before it deletes: the same uid and/or resourceVersion."""

    uid: str | None = None
    resource_version: str | None = None

    def as_json(self) -> JsonObject:
        out: JsonObject = {}
        if self.uid:
            out["uid"] = self.uid
        if self.resource_version:
            out["resourceVersion"] = self.resource_version
        return out


def _error_from(response: httpx.Response, body: bytes) -> ApiError:
    try:
        status_obj = json.loads(body) if body else None
    except ValueError:
        status_obj = None
    if isinstance(status_obj, dict):
        return ApiError(
            response.status_code,
            str(status_obj.get("reason") or response.reason_phrase),
            str(status_obj.get("message") or ""),
            status_obj,
        )
    return ApiError(
        response.status_code, response.reason_phrase, body.decode(errors="replace"), None
    )


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


class KubeClient:
    """The apiserver verbs, as coroutines over one shared `httpx.AsyncClient`."""

    def __init__(
        self, http: httpx.AsyncClient, *, field_manager: str = DEFAULT_FIELD_MANAGER
    ) -> None:
        self.http = http
        self.field_manager = field_manager

    async def aclose(self) -> None:
        await self.http.aclose()

    # ----- reads -----------------------------------------------------------------------------

    async def get(
        self, kind: ResourceKind, name: str, *, namespace: str | None = None
    ) -> JsonObject:
        return await self._call("GET", kind.path(namespace=namespace, name=name))

    async def list(
        self,
        kind: ResourceKind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> JsonObject:
        """One page of a LIST (`items`, `metadata.resourceVersion`, `metadata.continue`)."""
        params = _selectors(label_selector, field_selector)
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        return await self._call("GET", kind.path(namespace=namespace), params=params)

    @asynccontextmanager
    async def watch(
        self,
        kind: ResourceKind,
        *,
        resource_version: str,
        timeout_s: int,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        bookmarks: bool = True,
    ) -> AsyncIterator[AsyncIterator[JsonObject]]:
        """A WATCH from `resource_version`: yields its events until the server ends it.

        The server ends the watch after `timeout_s`; the client gives up reading 30 s later, so
        a silently dead connection cannot park the watcher forever. An expired version comes
        back either as an HTTP 410 (raised as `ApiError`) or as an `ERROR` event with code 410
        (yielded; the caller decides).
        """
        params = _selectors(label_selector, field_selector)
        params |= {
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_s),
        }
        if bookmarks:
            params["allowWatchBookmarks"] = "true"
        timeout = httpx.Timeout(self.http.timeout.connect, read=timeout_s + 30.0)
        request = self.http.build_request(
            "GET", kind.path(namespace=namespace), params=params, timeout=timeout
        )
        response = await self.http.send(request, stream=True)
        try:
            if response.status_code >= 300:
                raise _error_from(response, await response.aread())
            yield _ndjson(response)
        finally:
            await response.aclose()

    @asynccontextmanager
    async def follow_log(
        self, kind: ResourceKind, name: str, *, namespace: str, container: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """`GET .../pods/<name>/log?follow=true`: the container's log from its start, as bytes
        arrive, until the container ends or the connection breaks (no read timeout: a quiet
        server writes nothing for hours)."""
        params = {"container": container, "follow": "true"}
        timeout = httpx.Timeout(self.http.timeout.connect, read=None)
        request = self.http.build_request(
            "GET",
            kind.path(namespace=namespace, name=name, subresource="log"),
            params=params,
            timeout=timeout,
        )
        response = await self.http.send(request, stream=True)
        try:
            if response.status_code >= 300:
                raise _error_from(response, await response.aread())
            yield response.aiter_raw()
        finally:
            await response.aclose()

    # ----- writes ----------------------------------------------------------------------------

    async def create(
        self, kind: ResourceKind, obj: JsonObject, *, namespace: str | None = None
    ) -> JsonObject:
        """POST; `namespace` defaults to the object's own."""
        ns = namespace if namespace is not None else metadata(obj).get("namespace")
        return await self._call(
            "POST", kind.path(namespace=ns), body=obj, params=self._manager_params()
        )

    async def replace(
        self, kind: ResourceKind, obj: JsonObject, *, subresource: str | None = None
    ) -> JsonObject:
        """PUT the whole object; its `metadata.resourceVersion` (and uid) act as preconditions."""
        meta = metadata(obj)
        path = kind.path(
            namespace=meta.get("namespace"),
            name=str(meta.get("name") or ""),
            subresource=subresource,
        )
        return await self._call("PUT", path, body=obj, params=self._manager_params())

    async def patch(
        self,
        kind: ResourceKind,
        name: str,
        patch: JsonObject | Sequence[JsonObject],
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
    ) -> JsonObject:
        path = kind.path(namespace=namespace, name=name, subresource=subresource)
        headers = {"Content-Type": _PATCH_CONTENT_TYPES[patch_type]}
        return await self._call(
            "PATCH", path, body=patch, params=self._manager_params(), headers=headers
        )

    async def delete(
        self,
        kind: ResourceKind,
        name: str,
        *,
        namespace: str | None = None,
        preconditions: Preconditions | None = None,
        propagation_policy: str | None = None,
        grace_period_s: int | None = None,
    ) -> JsonObject:
        """DELETE; the answer is the object (still there, with finalizers) or a `Status`."""
        options: JsonObject = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if preconditions is not None and preconditions.as_json():
            options["preconditions"] = preconditions.as_json()
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if grace_period_s is not None:
            options["gracePeriodSeconds"] = grace_period_s
        path = kind.path(namespace=namespace, name=name)
        return await self._call("DELETE", path, body=options)

    # ----- plumbing --------------------------------------------------------------------------

    def _manager_params(self) -> dict[str, str]:
        return {"fieldManager": self.field_manager} if self.field_manager else {}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> JsonObject:
        content = None if body is None else orjson.dumps(body)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        response = await self.http.request(
            method, path, params=params, content=content, headers=all_headers
        )
        if response.status_code >= 300:
            raise _error_from(response, response.content)
        result = orjson.loads(response.content) if response.content else {}
        if not isinstance(result, dict):
            raise ApiError(response.status_code, "BadResponse", "not a JSON object", None)
        return result


async def _ndjson(response: httpx.Response) -> AsyncIterator[JsonObject]:
    """The events of a watch response, one JSON object per line.

    Split and parsed as bytes (orjson): a controller parses every Pod change of its namespace,
    and decoding to text first, then parsing with the standard library, was a tenth of its
    CPU in `bench/hot_path.py`."""
    async for line in _byte_lines(response):
        if line.strip():
            event = orjson.loads(line)
            if isinstance(event, dict):
                yield event


async def _byte_lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """The response's lines as bytes, whatever its chunks; the last one even without `\n`."""
    pending = bytearray()
    async for chunk in response.aiter_bytes():
        pending += chunk
        end = pending.rfind(b"\n")
        if end >= 0:
            lines = bytes(pending[:end]).split(b"\n")
            del pending[: end + 1]
            for line in lines:
                yield line
    yield bytes(pending)
