"""List + watch of one resource kind into a store: the plumbing under `webhook.cache`.

A `Reflector` lists every object of its kind (paged), hands them to its sink as a full
replacement, then watches from the list's resourceVersion and hands over each change. A watch
that ends (server timeout, dropped connection) resumes from the last resourceVersion it saw,
including bookmarks, so no event is lost and nothing is listed again; only a `410 Gone` (the
apiserver no longer has that version) forces a fresh list, which also removes objects deleted
while we were away. Errors back off exponentially and never end the loop.

The apiserver is reached through `Transport`, a two-method seam: production uses the official
client's typed list calls with `_preload_content=False` (raw JSON, no model objects), tests feed
events from memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from kubernetes.client.exceptions import ApiException

_log = logging.getLogger(__name__)

HTTP_GONE: Final = 410
_LIST_PAGE: Final = 500

JsonObject = dict[str, Any]


class GoneError(Exception):
    """The resourceVersion we asked for is too old: list again."""


class Transport(Protocol):
    """How a reflector reaches the apiserver; `list_page` and `watch` for one resource kind."""

    def list_page(self, params: Mapping[str, Any]) -> JsonObject:
        """One page of a LIST: `{"metadata": {"resourceVersion", "continue"}, "items": [...]}`.

        Raises `GoneError` for an expired continue token or resourceVersion."""
        ...

    def watch(self, params: Mapping[str, Any]) -> WatchStream:
        """Open a WATCH; raises `GoneError` when the resourceVersion is too old."""
        ...


class WatchStream(Protocol):
    """An open watch: its events, and a way to end it from another thread."""

    def __iter__(self) -> Iterator[JsonObject]: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Where a reflector puts what it learns (`webhook.cache.Store`)."""

    def replace(self, objects: Sequence[JsonObject]) -> None: ...

    def upsert(self, obj: JsonObject) -> None: ...

    def delete(self, obj: JsonObject) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Exponential retry delays; small in tests, seconds in production."""

    initial_s: float = 0.5
    maximum_s: float = 30.0

    def delays(self) -> Iterator[float]:
        delay = self.initial_s
        while True:
            yield delay
            delay = min(delay * 2, self.maximum_s)


class Reflector:
    """Keeps one `Sink` in step with one resource kind; run it in a thread of its own."""

    def __init__(
        self,
        name: str,
        transport: Transport,
        sink: Sink,
        *,
        watch_timeout_s: int = 300,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self._transport = transport
        self._sink = sink
        self._watch_timeout_s = watch_timeout_s
        self._backoff = backoff or Backoff()
        self._resource_version: str | None = None
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._lock = threading.Lock()
        self.lists = 0
        """How many full lists were made (1 + one per `410 Gone`); tests read it."""

    @property
    def synced(self) -> bool:
        """True once the first full list reached the sink."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def stop(self) -> None:
        """Ends `run` promptly, also when it is blocked reading a quiet watch."""
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def run(self) -> None:
        """List, then watch forever (until `stop`), resuming and relisting as needed."""
        delays = self._backoff.delays()
        while not self._stop.is_set():
            try:
                if self._resource_version is None:
                    self._list()
                if self._watch():
                    delays = self._backoff.delays()
            except GoneError:
                _log.info(
                    "%s: resourceVersion expired; listing again",
                    self.name,
                    extra={"fields": {"event": "watch_expired", "kind": self.name}},
                )
                self._resource_version = None
            except Exception as exc:
                if self._stop.is_set():
                    break
                delay = next(delays)
                _log.warning(
                    "%s: %s; retrying in %.1fs",
                    self.name,
                    _describe(exc),
                    delay,
                    extra={"fields": {"event": "watch_failed", "kind": self.name}},
                )
                self._stop.wait(delay)

    def _list(self) -> None:
        items: list[JsonObject] = []
        params: dict[str, Any] = {"limit": _LIST_PAGE}
        while True:
            page = self._transport.list_page(params)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            params = {"limit": _LIST_PAGE, "_continue": meta["continue"]}
        self._sink.replace(items)
        self._resource_version = str(meta.get("resourceVersion") or "") or None
        self.lists += 1
        self._synced.set()
        _log.info(
            "%s: listed %d objects",
            self.name,
            len(items),
            extra={"fields": {"event": "listed", "kind": self.name, "count": len(items)}},
        )

    def _watch(self) -> bool:
        """One watch request; returns True when it delivered at least one event."""
        stream = self._transport.watch(
            {
                "resource_version": self._resource_version,
                "allow_watch_bookmarks": True,
                "timeout_seconds": self._watch_timeout_s,
            }
        )
        with self._lock:
            self._stream = stream
        if self._stop.is_set():
            stream.close()
        delivered = False
        try:
            for event in stream:
                self._handle(event)
                delivered = True
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return delivered

    def _handle(self, event: JsonObject) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == HTTP_GONE:
                raise GoneError(obj.get("message", ""))
            raise RuntimeError(f"watch error: {obj.get('message', obj)}")
        if kind in ("ADDED", "MODIFIED"):
            self._sink.upsert(obj)
        elif kind == "DELETED":
            self._sink.delete(obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self._resource_version = str(version)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


# --- the official client as a Transport -------------------------------------------------------

ListCall = Callable[..., Any]
"""A typed list call of the official client, e.g. `CoreV1Api(api).list_namespace`."""


class _UrllibWatchStream:
    """Newline-delimited JSON events from a raw urllib3 response."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = False

    def __iter__(self) -> Iterator[JsonObject]:
        buffer = b""
        try:
            for chunk in self._response.stream(amt=None, decode_content=False):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except Exception:
            if not self._closed:
                raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # `shutdown` unblocks a thread parked in a read of this response; `release_conn`
        # then returns (or discards) the connection. urllib3 2.x refuses to shut down a
        # response whose connection went back to the pool already (a stream read to its end),
        # with a RuntimeError that would hide why the stream ended.
        with contextlib.suppress(RuntimeError):
            self._response.shutdown()
        self._response.release_conn()


class ClientTransport:
    """`Transport` over one typed list call of the official Kubernetes client."""

    def __init__(self, list_call: ListCall, *, request_timeout_s: float = 30.0) -> None:
        self._list_call = list_call
        self._request_timeout_s = request_timeout_s

    def list_page(self, params: Mapping[str, Any]) -> JsonObject:
        response = self._call(dict(params), timeout=self._request_timeout_s)
        try:
            page: JsonObject = json.loads(response.data)
        finally:
            response.release_conn()
        return page

    def watch(self, params: Mapping[str, Any]) -> WatchStream:
        kwargs = {k: v for k, v in params.items() if v is not None}
        # The read timeout is a safety net above the server-side timeout: a silent connection
        # (a half-dead load balancer) must not park the reflector forever.
        read_timeout = float(kwargs.get("timeout_seconds", 300)) + 30.0
        response = self._call(
            {**kwargs, "watch": True}, timeout=(self._request_timeout_s, read_timeout)
        )
        return _UrllibWatchStream(response)

    def _call(self, kwargs: dict[str, Any], *, timeout: float | tuple[float, float]) -> Any:
        try:
            return self._list_call(**kwargs, _preload_content=False, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == HTTP_GONE:
                raise GoneError(str(exc.reason)) from exc
            raise
