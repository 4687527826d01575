"""The requester's ports: it serves where the vLLM container served; its own listeners go aside.

The requester stub proxies inference traffic to the bound vLLM server, so the requester must
answer where the replaced Pod answered:

- it keeps the vLLM container's `ports` exactly as written (numbers, names, protocols, host
  ports), so a Service's `targetPort: http` still resolves to the same port;
- vLLM's `--port` (default 8000) is declared too when no TCP entry declares it, *unnamed*: the
  original gave it no name, so nothing can refer to it by one, and a name made up here could
  take one that a sidecar or a later edit of the Pod wants;
- the *serving ports*, which the stub listens on and proxies (`FMA_SERVING_PORTS`), are the
  `--port` and every TCP entry (no `protocol` means TCP); UDP and SCTP entries stay declared
  but are not proxied: the stub relays TCP connections only.

The stub's own listeners (probes 8080, SPI 8081, the reference's proxy 8082) must not take a
port that anything in the Pod declares: all containers share the Pod's network namespace. A
taken one moves to the first port of `FALLBACK_PORTS` that no container (init containers
included) declares, placed in the order probes, SPI, proxy, so the same Pod always gets the same
requester; the Pod is left alone only when the whole range is taken. Every number travels to
the stub in its environment, and a moved SPI also in the `admin-port` annotation, which is where
the controller looks for it. A Pod's own `admin-port` annotation is honoured as the SPI's port.

Port names must be unique in the Pod, and the user's win: each listener is named `probes`,
`spi`, `proxy`, else `fma-probes`, `fma-spi`, `fma-proxy`, else left unnamed (the readiness
probe uses the number, so nothing depends on the names).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from contract import keys
from contract.requester import (
    PROBES_PORT,
    PROBES_PORT_ENV,
    PROXY_PORT,
    PROXY_PORT_ENV,
    SERVING_PORTS_ENV,
    SPI_PORT,
    SPI_PORT_ENV,
)
from webhook.mutation._model import Skip, quote
from webhook.mutation._pod_access import as_map, get_list, get_str

FALLBACK_PORTS: Final = range(18080, 18180)
"""Where a stub listener goes when its default port is taken, first free port first. Far from
the 8000s that servers and sidecars favour, so a moved listener rarely moves twice."""

TCP: Final = "TCP"
_MAX_PORT: Final = 65535


@dataclass(frozen=True, slots=True)
class _Role:
    """One of the stub's own listeners: what it does, its default port, its names by rank."""

    what: str
    default: int
    env: str
    names: tuple[str, ...]


_PROBES: Final = _Role("probes", PROBES_PORT, PROBES_PORT_ENV, ("probes", "fma-probes"))
_SPI: Final = _Role("SPI", SPI_PORT, SPI_PORT_ENV, ("spi", "fma-spi"))
_PROXY: Final = _Role("proxy", PROXY_PORT, PROXY_PORT_ENV, ("proxy", "fma-proxy"))


@dataclass(frozen=True, slots=True)
class Listener:
    """A stub listener as placed: its environment variable, its port and its name (or None)."""

    env: str
    port: int
    name: str | None

    def container_port(self) -> dict[str, Any]:
        entry: dict[str, Any] = {} if self.name is None else {"name": self.name}
        return entry | {"containerPort": self.port, "protocol": TCP}


@dataclass(frozen=True, slots=True, kw_only=True)
class RequesterPorts:
    """Where the requester listens.

    `kept` are the vLLM container's port entries as written, then the undeclared `--port`;
    `serving` the sorted TCP ports among them, which the stub proxies.
    """

    kept: tuple[Mapping[str, Any], ...]
    serving: tuple[int, ...]
    probes: Listener
    spi: Listener
    proxy: Listener

    def container_ports(self) -> list[dict[str, Any]]:
        """The stub's `ports`: the serving side first, then the stub's own listeners."""
        own = (self.probes, self.spi, self.proxy)
        return [*(copy.deepcopy(dict(p)) for p in self.kept), *(o.container_port() for o in own)]

    def env(self) -> list[dict[str, str]]:
        """The stub's environment: each listener's port and the serving ports."""
        own = [{"name": o.env, "value": str(o.port)} for o in (self.probes, self.spi, self.proxy)]
        serving = ",".join(str(port) for port in self.serving)
        return [*own, {"name": SERVING_PORTS_ENV, "value": serving}]


def is_tcp(entry: Mapping[str, Any]) -> bool:
    """A container port entry for TCP (the Kubernetes default when `protocol` is absent)."""
    return entry.get("protocol") in (None, TCP)


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_PORT


def _vllm_entries(container: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    """The vLLM container's port entries, checked: they are copied into the requester."""
    entries: list[dict[str, Any]] = []
    for index, raw in enumerate(get_list(container, "ports", f"{path}.ports") or ()):
        where = f"{path}.ports[{index}]"
        entry = as_map(raw, where)
        if not _is_port(entry.get("containerPort")):
            raise Skip(
                f"{where}.containerPort is {quote(entry.get('containerPort'))}; use a port "
                "number (1-65535)"
            )
        get_str(entry, "name", f"{where}.name")
        get_str(entry, "protocol", f"{where}.protocol")
        entries.append(copy.deepcopy(entry))
    return entries


def _neighbour_entries(spec: Mapping[str, Any], vllm_index: int) -> Iterator[Mapping[str, Any]]:
    """Port entries of every other container and init container (a sidecar init container
    shares the network namespace while the stub runs)."""
    for key in ("containers", "initContainers"):
        for index, raw in enumerate(get_list(spec, key, f"spec.{key}") or ()):
            if key == "containers" and index == vllm_index:
                continue
            path = f"spec.{key}[{index}]"
            container = as_map(raw, path)
            for port_index, port in enumerate(get_list(container, "ports", f"{path}.ports") or ()):
                yield as_map(port, f"{path}.ports[{port_index}]")


def _place(role: _Role, taken: set[int]) -> int:
    """The role's default port if free, else the first free fallback; marks it taken."""
    candidates: list[int] = [role.default, *FALLBACK_PORTS]
    for port in candidates:
        if port not in taken:
            taken.add(port)
            return port
    raise Skip(
        f"the Pod declares port {role.default} and every port from {FALLBACK_PORTS.start} to "
        f"{FALLBACK_PORTS.stop - 1}, leaving the requester stub no port for its {role.what} "
        "listener; free one",
        code="conflict",
    )


def _name(role: _Role, taken: set[str]) -> str | None:
    """The role's first name that no port of the Pod uses; marks it taken."""
    for name in role.names:
        if name not in taken:
            taken.add(name)
            return name
    return None


def _annotated_spi(value: str | None, taken: set[int]) -> int | None:
    """The SPI port a Pod's own `admin-port` annotation asks for (None when absent); it must
    be a port number no container declares, since the controller will call it there."""
    if value is None:
        return None
    port = int(value) if value.isascii() and value.isdigit() else None
    if port is None or not _is_port(port) or port in taken:
        why = "is declared by a container" if port in taken else "is not a port number"
        raise Skip(
            f"annotation {keys.ADMIN_PORT} is {quote(value)}, which {why}; remove the "
            "annotation (fma then chooses the SPI port) or name a free port",
            code="conflict",
        )
    taken.add(port)
    return port


def plan_ports(
    *,
    spec: Mapping[str, Any],
    vllm_index: int,
    vllm_container: Mapping[str, Any],
    vllm_port: int,
    admin_port: str | None,
) -> RequesterPorts:
    """Place the requester's ports for `vllm_container`, the Pod's `spec.containers[vllm_index]`,
    which serves on `vllm_port` (its `--port`); `admin_port` is the Pod's annotation, if any.

    Raises `Skip` on a malformed port entry, an unusable `admin-port`, or no port left.
    """
    kept = _vllm_entries(vllm_container, f"spec.containers[{vllm_index}]")
    if not any(is_tcp(entry) and entry["containerPort"] == vllm_port for entry in kept):
        kept.append({"containerPort": vllm_port, "protocol": TCP})
    every = [*kept, *_neighbour_entries(spec, vllm_index)]
    numbers = {entry["containerPort"] for entry in every if _is_port(entry.get("containerPort"))}
    names = {entry["name"] for entry in every if isinstance(entry.get("name"), str)}
    fixed_spi = _annotated_spi(admin_port, numbers)
    probes = _place(_PROBES, numbers)
    spi = fixed_spi if fixed_spi is not None else _place(_SPI, numbers)
    proxy = _place(_PROXY, numbers)
    return RequesterPorts(
        kept=tuple(kept),
        serving=tuple(sorted({e["containerPort"] for e in kept if is_tcp(e)})),
        probes=Listener(_PROBES.env, probes, _name(_PROBES, names)),
        spi=Listener(_SPI.env, spi, _name(_SPI, names)),
        proxy=Listener(_PROXY.env, proxy, _name(_PROXY, names)),
    )
