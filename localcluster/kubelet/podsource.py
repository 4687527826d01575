"""All Pods of the cluster, listed then watched, delivered to the event loop (a tiny informer).

The official client's watch is a blocking iterator, so it runs in a daemon thread of its own and
hands each event to the loop with `call_soon_threadsafe`. It resumes from the last
resourceVersion it saw (bookmarks included) when a watch ends, and lists again on 410 Gone, as
client-go's reflector does; `on_list` then lets the kubelet notice Pods deleted meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from localcluster.kubelet.kubeapi import KubeApi

_log = logging.getLogger(__name__)
_WATCH_SECONDS = 300
_RETRY_SECONDS = 1.0

OnEvent = Callable[[str, dict[str, Any]], None]
OnList = Callable[[list[dict[str, Any]]], None]


class _GoneError(Exception):
    """The resourceVersion is too old: list again."""


class PodSource:
    def __init__(
        self, api: KubeApi, loop: asyncio.AbstractEventLoop, on_list: OnList, on_event: OnEvent
    ) -> None:
        self._api = api
        self._loop = loop
        self._on_list = on_list
        self._on_event = on_event
        self._stopped = threading.Event()
        self.healthy = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The thread notices at its next event or watch timeout; it is a daemon thread."""
        self._stopped.set()

    def _deliver(self, callback: Callable[..., None], *args: Any) -> None:
        if not self._stopped.is_set() and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        resource_version: str | None = None
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    listed = self._api.list_pods()
                    resource_version = str(listed["metadata"]["resourceVersion"])
                    self._deliver(self._on_list, listed.get("items") or [])
                self.healthy.set()
                resource_version = self._watch(resource_version)
            except _GoneError:
                _log.info("pod watch expired; listing again")
                resource_version = None
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = None
                    continue
                self._fail(exc)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.healthy.clear()
        if not self._stopped.is_set():
            _log.warning("pod watch failed; retrying", extra={"error": str(exc)})
            time.sleep(_RETRY_SECONDS)

    def _watch(self, resource_version: str) -> str:
        for event in self._api.watch_pods(resource_version, _WATCH_SECONDS):
            if self._stopped.is_set():
                break
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise _GoneError
                raise ValueError(f"watch error: {obj.get('message')}")
            resource_version = str(obj.get("metadata", {}).get("resourceVersion", resource_version))
            if kind != "BOOKMARK":
                self._deliver(self._on_event, str(kind), obj)
        return resource_version
