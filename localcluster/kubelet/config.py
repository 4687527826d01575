"""The hollow kubelet's configuration: its virtual nodes, their network, and the image map.

A YAML file written by whoever starts the hollow kubelet (the local cluster's demo, a test). Keys
are camelCase like Kubernetes manifests. The image map is the one thing a real cluster gets from a
registry: here each image name maps to a local command with Docker's image semantics (entrypoint,
cmd, env, working directory), plus `path`, directories prepended to PATH so that an image's
`python3` can resolve to the virtualenv's interpreter.

Relative paths in `images.*.path` and `images.*.workingDir` are resolved against the directory of
the config file, so a config checked into the repository can name `.venv/bin`.

Example::

    podNetwork: 127.42.0.0/16        # LocalCluster.pod_network; node i gets 127.42.<i+1>.0/24
    kubeletPort: 10250               # kubelet API on each node's InternalIP (kubectl logs)
    restartBackoff: {initialSeconds: 1, maxSeconds: 10}   # CrashLoopBackOff, shortened for tests
    probePeriodScale: 1.0            # < 1 probes more often than periodSeconds (benchmarks)
    nodes:
      - name: gpu-node-1
        gpus: 2                      # nvidia.com/gpu capacity, GPU-<uuid5> UUIDs
        cpu: "16"
        memory: 64Gi
        labels: {pool: a}
        taints: [{key: dedicated, value: ml, effect: NoSchedule}]
    images:
      ghcr.io/llm-d/fma-launcher:dev:
        entrypoint: [python3, -m, launcher]
        cmd: [--port, "8001"]
        env: {PYTHONUNBUFFERED: "1"}
        path: [../../.venv/bin]
      ghcr.io/llm-d/fma:*:
        path: [../../.venv/bin]
        inProcess: {fma-requester: requester}   # runs inside the kubelet (benchmarks)
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from localcluster.kubelet.appref import check_app_reference

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Taint(_Model):
    """A taint the node registers with (like the kubelet's `--register-with-taints`)."""

    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodeConfig(_Model):
    """One virtual node. `subnet` picks its /24 of the pod network (default: position + 1)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)
    gpus: int = Field(default=0, ge=0, le=64)
    cpu: str = "8"
    memory: str = "32Gi"
    pods: int = Field(default=110, ge=1, le=253)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    subnet: int | None = Field(default=None, ge=0)
    arch: str = "amd64"


class ImageConfig(_Model):
    """What a container image stands for: Docker's ENTRYPOINT, CMD, ENV and WORKDIR.

    `inProcess` maps program names (the base name of a container's argv[0]) to apps that the
    kubelet hosts inside its own process instead of starting a process (see `inprocess`): a
    built-in name (`requester`, `vllm-standin`) or a `module:function` reference.
    """

    entrypoint: list[str] = Field(default_factory=list)
    cmd: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    path: list[str] = Field(default_factory=list)
    working_dir: str | None = None
    in_process: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_in_process(self) -> Self:
        for program, app in self.in_process.items():
            if not program or "/" in program:
                raise ValueError(
                    f"inProcess key {program!r} must be a program's base name (no '/')"
                )
            problem = check_app_reference(app)
            if problem is not None:
                raise ValueError(f"inProcess[{program!r}]: {problem}")
        return self

    def resolved(self, base: Path) -> ImageConfig:
        """Relative `path` entries and `workingDir` made absolute against `base`."""
        return self.model_copy(
            update={
                "path": [str((base / p).resolve()) for p in self.path],
                "working_dir": (
                    str((base / self.working_dir).resolve()) if self.working_dir else None
                ),
            }
        )


class BackoffConfig(_Model):
    """The kubelet's restart back-off: `initialSeconds` doubling up to `maxSeconds`."""

    initial_seconds: float = Field(default=10.0, gt=0)
    max_seconds: float = Field(default=300.0, gt=0)


class KubeletConfig(_Model):
    """Everything one hollow-kubelet process plays: nodes, network, images, timings."""

    pod_network: ipaddress.IPv4Network
    nodes: list[NodeConfig] = Field(min_length=1)
    images: dict[str, ImageConfig] = Field(default_factory=dict)
    kubelet_port: int = Field(default=10250, ge=1, le=65535)
    healthz_port: int | None = Field(default=None, ge=0, le=65535)
    restart_backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    image_pull_backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    lease_duration_seconds: int = Field(default=40, ge=1)
    lease_renew_seconds: float = Field(default=10.0, gt=0)
    node_status_update_seconds: float = Field(default=10.0, gt=0)
    minimum_grace_seconds: float = Field(default=2.0, ge=0)
    probe_period_scale: float = Field(default=1.0, gt=0, le=1)
    """Test knob: every probe's `periodSeconds` is multiplied by this (Kubernetes' minimum
    period is 1 s; a latency benchmark wants readiness noticed sooner). 1 is the real kubelet.
    A Pod can set its own with the annotation `podspec.PROBE_PERIOD_SCALE`."""
    host_env: list[str] = Field(
        default_factory=lambda: ["HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"]
    )
    kubelet_version: str = "v1.20.2"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.pod_network.subnet_of(_LOOPBACK):
            raise ValueError(f"podNetwork {self.pod_network} must lie inside 127.0.0.0/8")
        if self.pod_network.prefixlen > 24:
            raise ValueError(f"podNetwork {self.pod_network} must be a /24 or larger")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique, got {names}")
        subnets = [self.subnet_index(i) for i in range(len(self.nodes))]
        if len(set(subnets)) != len(subnets):
            raise ValueError(f"nodes share a subnet: {dict(zip(names, subnets, strict=True))}")
        available = 2 ** (24 - self.pod_network.prefixlen)
        if max(subnets) >= available:
            raise ValueError(
                f"subnet {max(subnets)} does not fit in podNetwork {self.pod_network} "
                f"({available} /24s); set nodes[].subnet below {available}"
            )
        return self

    def subnet_index(self, position: int) -> int:
        """The /24 of node `position`: its explicit `subnet`, else position + 1."""
        node = self.nodes[position]
        return node.subnet if node.subnet is not None else position + 1


def load_config(path: Path) -> KubeletConfig:
    """Reads a YAML config; image paths are made absolute against the file's directory."""
    raw = yaml.safe_load(path.read_text()) or {}
    config = KubeletConfig.model_validate(raw)
    base = path.resolve().parent
    images = {name: image.resolved(base) for name, image in config.images.items()}
    return config.model_copy(update={"images": images})


def dump_config(config: KubeletConfig) -> str:
    """YAML for `config`, in the same camelCase form `load_config` reads."""
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)
