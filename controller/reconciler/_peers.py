"""The HTTP side of the actions: launcher API, instance sleep/wake, the requester's SPI.

Each function performs one action and returns its result for `record_success` (the GPU list,
the memory reading, the sleep state) or raises `CallError`. URLs and purposes follow contracts
§5.8, §6.2, §7 and §12.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Final

import httpx

from contract import requester as rq
from contract import vllm
from contract.launcher import INSTANCES_PATH, LAUNCHER_PORT, instance_path, log_path, swap_path
from controller.core import (
    ConfigureProxy,
    CreateInstance,
    DeleteInstance,
    QueryAccelerators,
    QueryLogTail,
    QueryMemoryUsage,
    QuerySleeping,
    RelayReadiness,
    Sleep,
    Wake,
)
from controller.core._actions import SwapInstance
from controller.reconciler._http import (
    CallError,
    HttpSettings,
    PeerCalls,
    RefusedError,
    answer_text,
    json_body,
)

TAIL_BYTES: Final = 4096
"""How much of a failed instance's log end is read for its last lines."""
TAIL_LINES: Final = 20
TAIL_CHARS: Final = 800
"""Bounds of the tail kept in the requester's status and Event (an Event message is cut at
1024 characters, and the last lines, where the error is, must survive that)."""
_CONTENT_RANGE: Final = re.compile(r"bytes (?:\*|\d+-\d+)/(\d+)")


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def base_url(ip: str, port: int) -> str:
    return f"http://{_host(ip)}:{port}"


def instance_url(ip: str, instance_id: str = "") -> str:
    path = instance_path(instance_id) if instance_id else INSTANCES_PATH
    return base_url(ip, LAUNCHER_PORT) + path


class Peers:
    """The HTTP actions, on one `PeerCalls` with the timeouts of `HttpSettings`."""

    def __init__(self, calls: PeerCalls, settings: HttpSettings) -> None:
        self.calls = calls
        self.settings = settings

    async def create_instance(self, action: CreateInstance, isc: str) -> Any:
        """PUT the instance; an instance that exists already (e.g. our earlier PUT) is done.

        The reference's launcher answers 409 both for an id it holds and for a GPU UUID it does
        not know; a GET of the id tells them apart: 200, it exists; 404, the PUT was refused.
        fma's launcher refuses with 422 (unknown GPU UUID, unusable options). A refusal raises
        `RefusedError`, quoting the launcher's answer, for the requester's status.
        """
        url = instance_url(action.ip, action.instance_id)
        response = await self._instance_call(
            "create_instance", "PUT", action, isc, body=dict(action.config), accept=(409, 422)
        )
        if response.status_code == 201:
            return response.json()
        answer = f"PUT {url}: HTTP {response.status_code}: {answer_text(response)}"
        if response.status_code == 422:
            raise RefusedError(answer)
        existing = await self._call(
            "get_instance", "GET", url, isc, self.settings.launcher_s, accept=(404,)
        )
        if existing.status_code == 404:
            raise RefusedError(f"{answer} (and GET answers 404: no such instance was created)")
        return None

    async def swap_instance(self, action: SwapInstance, isc: str) -> Any:
        """POST the swap (issue 16): the sleeping `source_id` becomes `instance_id`.

        Signed like a create (the audience is the launcher's Pod UID). Any answer but 201 is a
        `CallError` quoting it: 422 not swap-compatible, 409 not asleep (any more), 502 the
        swap failed and the launcher deleted the sleeper, 404 (a reference launcher) no such
        path. The limit is the wake's: the new weights are read from disk.
        """
        body = {**action.config, "new_instance_id": action.instance_id}
        response = await self._call(
            "swap_instance",
            "POST",
            base_url(action.ip, LAUNCHER_PORT) + swap_path(action.source_id),
            isc,
            self.settings.wake_s,
            body=body,
            audience=action.launcher.uid,
        )
        return response.json()

    async def delete_instance(self, action: DeleteInstance, isc: str) -> int | None:
        """DELETE the instance (404 counts as done); returns the DELETED event's revision."""
        url = instance_url(action.ip, action.instance_id)
        response = await self._instance_call(
            "delete_instance", "DELETE", action, isc, accept=(404,)
        )
        if response.status_code == 404:
            return None
        revision = json_body(response, url).get("revision")
        return revision if isinstance(revision, int) else None

    async def _instance_call(
        self,
        purpose: str,
        method: str,
        action: CreateInstance | DeleteInstance,
        isc: str,
        *,
        body: Any = None,
        accept: Collection[int],
    ) -> httpx.Response:
        """A call to the launcher about `action`'s instance, signed for the launcher's Pod."""
        return await self._call(
            purpose,
            method,
            instance_url(action.ip, action.instance_id),
            isc,
            self.settings.launcher_s,
            body=body,
            accept=accept,
            audience=action.launcher.uid,
        )

    async def wake(self, action: Wake, isc: str) -> None:
        await self._post(
            "wake", base_url(action.ip, action.port) + vllm.WAKE_UP_PATH, isc, wake=True
        )

    async def sleep(self, action: Sleep, isc: str) -> None:
        await self._post(
            "sleep", base_url(action.ip, action.port) + vllm.SLEEP_PATH, isc, wake=False
        )

    async def _post(self, purpose: str, url: str, isc: str, *, wake: bool) -> None:
        timeout = self.settings.wake_s if wake else self.settings.sleep_s
        await self._call(purpose, "POST", url, isc, timeout)

    async def query_sleeping(self, action: QuerySleeping, isc: str) -> bool:
        url = base_url(action.ip, action.port) + vllm.IS_SLEEPING_PATH
        body = json_body(await self._get("query_sleeping", url, isc, self.settings.query_s), url)
        value = body.get("is_sleeping") if isinstance(body, dict) else None
        if not isinstance(value, bool):
            raise CallError(f"GET {url}: no boolean is_sleeping in {str(body)[:100]}")
        return value

    async def accelerators(self, action: QueryAccelerators, isc: str) -> list[str]:
        url = base_url(action.ip, action.port) + rq.ACCELERATORS_PATH
        body = json_body(await self._get("get_gpu_uuids", url, isc, self.settings.requester_s), url)
        if not isinstance(body, list) or not all(isinstance(u, str) for u in body):
            raise CallError(f"GET {url}: expected a JSON list of GPU UUIDs, got {str(body)[:100]}")
        return body

    async def memory_usage(self, action: QueryMemoryUsage, isc: str) -> dict[str, Any]:
        url = base_url(action.ip, action.port) + rq.MEMORY_USAGE_PATH
        response = await self._get("get_accel_memory_usage", url, isc, self.settings.requester_s)
        body = json_body(response, url)
        if not isinstance(body, dict):
            raise CallError(f"GET {url}: expected a JSON object, got {str(body)[:100]}")
        return body

    async def configure_proxy(self, action: ConfigureProxy, isc: str) -> None:
        """PUT the proxy target; a 409 (it forwards elsewhere) is a failure naming both."""
        url = base_url(action.ip, action.port) + rq.PROXY_CONFIG_PATH
        body = {"address": action.address, "port": action.target_port}
        await self._call(
            "set_proxy_config",
            "PUT",
            url,
            isc,
            self.settings.requester_s,
            body=body,
            audience=action.uid,
        )

    async def log_tail(self, action: QueryLogTail, isc: str) -> str:
        """The last lines of an instance's log; "" when there is none (404, 416, empty).

        Two ranged reads: the first learns the size (`Content-Range: bytes 0-0/TOTAL`), the
        second reads the end; the reference's launcher has no suffix ranges (`bytes=-N`).
        """
        url = base_url(action.ip, LAUNCHER_PORT) + log_path(action.instance_id)
        size = await self._log_size(url, isc)
        if not size:
            return ""
        start = max(0, size - TAIL_BYTES)
        response = await self._ranged("get_log_tail", url, isc, f"bytes={start}-{size - 1}")
        if response.status_code not in (200, 206):
            return ""
        return last_lines(response.content, partial_first=start > 0)

    async def _log_size(self, url: str, isc: str) -> int:
        response = await self._ranged("get_log_size", url, isc, "bytes=0-0")
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
        return int(match.group(1)) if match else 0

    async def _ranged(self, purpose: str, url: str, isc: str, byte_range: str) -> Any:
        return await self._call(
            purpose,
            "GET",
            url,
            isc,
            self.settings.launcher_s,
            headers={"Range": byte_range},
            accept=(404, 416),
        )

    async def relay(self, action: RelayReadiness, isc: str) -> None:
        path = rq.BECOME_READY_PATH if action.ready else rq.BECOME_UNREADY_PATH
        await self._call(
            "relay_ready" if action.ready else "relay_unready",
            "POST",
            base_url(action.ip, action.port) + path,
            isc,
            self.settings.requester_s,
            audience=action.uid,
        )

    async def _get(self, purpose: str, url: str, isc: str, limit_s: float) -> Any:
        return await self._call(purpose, "GET", url, isc, limit_s)

    async def _call(
        self,
        purpose: str,
        method: str,
        url: str,
        isc: str,
        limit_s: float,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
        audience: str | None = None,
    ) -> httpx.Response:
        """One call on behalf of the ISC `isc`, within `limit_s` (`HttpSettings.connect_s` to
        connect); `audience` as in `PeerCalls.call`."""
        return await self.calls.call(
            purpose,
            method,
            url,
            timeout_s=limit_s,
            connect_s=self.settings.connect_s,
            isc_name=isc,
            body=body,
            headers=headers,
            accept=accept,
            audience=audience,
        )


def last_lines(data: bytes, *, partial_first: bool) -> str:
    """The last `TAIL_LINES` lines of `data` (a first line cut by the range is dropped)."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if partial_first and len(lines) > 1:
        lines = lines[1:]
    text = "\n".join(line.rstrip() for line in lines[-TAIL_LINES:])
    return text[-TAIL_CHARS:]
