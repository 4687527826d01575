"""The requester serves like the Pod it replaced: its ports, its stub's environment, collisions.

The stub proxies the vLLM container's serving ports to the bound server, so the requester keeps
that container's `ports` and `--port`; the stub's own listeners (probes, SPI, proxy) move out of
the way of every port the Pod declares, and the numbers reach the stub in its environment and the
controller in the `admin-port` annotation. The direct provider, built by the controller's own
builder from the mutated requester, must still come out as the user's vLLM container.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from contract import auth
from controller.core import build_direct_provider
from crds.models import InferenceServerConfig
from tests.unit.mutation_support import apply, context, mutate, pod, vllm_container
from webhook.mutation import MutationResult

ADMIN_PORT = "dual-pods.llm-d.ai/admin-port"
OWN_ENV = ("PROBES_PORT", "SPI_PORT", "PROXY_PORT")


def requester(original: dict[str, Any], **ctx: Any) -> tuple[dict[str, Any], MutationResult]:
    """The Pod the apiserver stores, and the result that made it (which must mutate)."""
    result = mutate(original, context(**ctx))
    assert result.patch, result.skipped
    return apply(original, result), result


def stub_of(mutated: Mapping[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = mutated["spec"]["containers"]
    (stub,) = [c for c in containers if c["name"] == "inference-server"]
    return stub


def env_of(stub: Mapping[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in stub["env"] if "value" in item}


def serving(stub: Mapping[str, Any]) -> list[int]:
    return [int(port) for port in env_of(stub)["FMA_SERVING_PORTS"].split(",")]


def target_port(pod_: Mapping[str, Any], name: str) -> tuple[str, int] | None:
    """What the endpoints controller does with a Service's named `targetPort`: the first
    container port of that name in the Pod, as (container, number)."""
    for container in pod_["spec"]["containers"]:
        for port in container.get("ports") or ():
            if port.get("name") == name:
                return container["name"], port["containerPort"]
    return None


def assert_consistent(mutated: Mapping[str, Any]) -> None:
    """The stub's env, its declared ports, its probe and the annotation tell one story, and its
    own listeners take no port or name anything else in the Pod declares."""
    stub = stub_of(mutated)
    env = env_of(stub)
    own = [int(env[name]) for name in OWN_ENV]
    own_entries = [p for p in stub["ports"] if p["containerPort"] in own]
    assert [p["containerPort"] for p in own_entries] == own
    assert all(p["protocol"] == "TCP" for p in own_entries)
    others = [
        port
        for key in ("containers", "initContainers")
        for container in mutated["spec"].get(key) or ()
        for port in container.get("ports") or ()
        if port not in own_entries
    ]
    assert not {p["containerPort"] for p in others} & set(own)
    assert not {p.get("name") for p in others} & {p.get("name") for p in own_entries} - {None}
    assert set(serving(stub)) <= {p["containerPort"] for p in stub["ports"]} - set(own)
    assert stub["readinessProbe"]["httpGet"]["port"] == int(env["PROBES_PORT"])
    annotations = mutated["metadata"]["annotations"]
    assert annotations.get(ADMIN_PORT, "8081") == env["SPI_PORT"]


# --- Serving ports ------------------------------------------------------------------------------


def test_the_vllm_container_ports_are_kept_as_written() -> None:
    ports = [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090},
    ]
    mutated, _ = requester(pod(vllm_container(ports=ports)))
    stub = stub_of(mutated)
    assert stub["ports"] == [
        *ports,
        {"name": "probes", "containerPort": 8080, "protocol": "TCP"},
        {"name": "spi", "containerPort": 8081, "protocol": "TCP"},
        {"name": "proxy", "containerPort": 8082, "protocol": "TCP"},
    ]
    assert stub["env"] == [
        {"name": "PROBES_PORT", "value": "8080"},
        {"name": "SPI_PORT", "value": "8081"},
        {"name": "PROXY_PORT", "value": "8082"},
        {"name": "FMA_SERVING_PORTS", "value": "8000,9090"},
        *auth.verifier_env(None),  # the test's settings: authentication off
    ]
    assert_consistent(mutated)


@pytest.mark.parametrize(
    ("args", "port"),
    [(["--port", "9000"], 9000), (["--port=9001"], 9001), ([], 8000)],
)
def test_the_vllm_port_is_declared_unnamed_when_no_entry_declares_it(
    args: list[str], port: int
) -> None:
    mutated, _ = requester(pod(vllm_container(args=args)))
    stub = stub_of(mutated)
    assert stub["ports"][0] == {"containerPort": port, "protocol": "TCP"}
    assert serving(stub) == [port]
    assert_consistent(mutated)


def test_a_declared_vllm_port_is_not_declared_twice() -> None:
    container = vllm_container(
        args=["--port", "9000"], ports=[{"name": "api", "containerPort": 9000}]
    )
    stub = stub_of(requester(pod(container))[0])
    assert [p["containerPort"] for p in stub["ports"]].count(9000) == 1
    assert serving(stub) == [9000]


def test_a_service_target_port_named_http_still_resolves() -> None:
    container = vllm_container(
        args=["--port", "8000"], ports=[{"name": "http", "containerPort": 8000}]
    )
    original = pod(container)
    mutated, _ = requester(original)
    assert target_port(original, "http") == ("vllm", 8000)
    assert target_port(mutated, "http") == ("inference-server", 8000)
    assert 8000 in serving(stub_of(mutated))


def test_udp_ports_are_declared_but_not_proxied() -> None:
    ports = [
        {"name": "syslog", "containerPort": 514, "protocol": "UDP"},
        {"name": "quic", "containerPort": 8000, "protocol": "UDP"},
        {"name": "sctp", "containerPort": 3868, "protocol": "SCTP"},
    ]
    mutated, _ = requester(pod(vllm_container(ports=ports)))
    stub = stub_of(mutated)
    assert stub["ports"][:4] == [*ports, {"containerPort": 8000, "protocol": "TCP"}]
    assert serving(stub) == [8000]
    assert_consistent(mutated)


def test_launcher_mode_keeps_the_ports_too() -> None:
    isc = InferenceServerConfig.model_validate(
        {
            "metadata": {"name": "qwen"},
            "spec": {
                "modelServerConfig": {"port": 8000, "options": "--model Qwen/Qwen3-0.6B"},
                "launcherConfigName": "lc",
            },
        }
    )
    container = vllm_container(args=[], ports=[{"name": "http", "containerPort": 8000}])
    mutated, result = requester(pod(container), iscs=[isc])
    assert result.mode == "launcher"
    assert target_port(mutated, "http") == ("inference-server", 8000)
    assert serving(stub_of(mutated)) == [8000]


# --- Collisions ---------------------------------------------------------------------------------


def sidecar(*ports: int, name: str = "sidecar") -> dict[str, Any]:
    return {"name": name, "image": "x", "ports": [{"containerPort": p} for p in ports]}


@pytest.mark.parametrize(
    ("containers", "probes", "spi", "proxy"),
    [
        pytest.param([vllm_container(args=["--port", "8080"])], 18080, 8081, 8082, id="vllm-8080"),
        pytest.param([vllm_container(args=["--port", "8081"])], 8080, 18080, 8082, id="vllm-8081"),
        pytest.param([vllm_container(args=["--port", "8082"])], 8080, 8081, 18080, id="vllm-8082"),
        pytest.param(
            [vllm_container(), sidecar(8080, 8081, 8082)], 18080, 18081, 18082, id="sidecar-all"
        ),
        pytest.param(
            [
                vllm_container(
                    args=["--port", "8080"], ports=[{"containerPort": 18080, "protocol": "UDP"}]
                ),
                sidecar(18081),
            ],
            18082,
            8081,
            8082,
            id="fallbacks-taken",
        ),
        pytest.param(
            [vllm_container(ports=[{"containerPort": 8081, "protocol": "UDP"}])],
            8080,
            18080,
            8082,
            id="udp-blocks-too",
        ),
    ],
)
def test_stub_listeners_move_out_of_the_way(
    containers: list[dict[str, Any]], probes: int, spi: int, proxy: int
) -> None:
    mutated, _ = requester(pod(*containers))
    env = env_of(stub_of(mutated))
    assert (env["PROBES_PORT"], env["SPI_PORT"], env["PROXY_PORT"]) == tuple(
        map(str, (probes, spi, proxy))
    )
    annotations = mutated["metadata"]["annotations"]
    assert (ADMIN_PORT in annotations) == (spi != 8081)
    assert_consistent(mutated)


def test_a_sidecar_init_container_counts() -> None:
    original = pod()
    init = {"name": "mesh", "image": "envoy", "restartPolicy": "Always"}
    original["spec"]["initContainers"] = [init | {"ports": [{"containerPort": 8081}]}]
    mutated, _ = requester(original)
    assert env_of(stub_of(mutated))["SPI_PORT"] == "18080"
    assert mutated["metadata"]["annotations"][ADMIN_PORT] == "18080"
    assert_consistent(mutated)


def test_the_same_pod_gets_the_same_ports() -> None:
    original = pod(vllm_container(args=["--port", "8081"]), sidecar(8080))
    assert mutate(original).patch == mutate(original).patch


def test_no_free_port_left_is_a_conflict_skip() -> None:
    crowded = sidecar(8080, *range(18080, 18180))
    result = mutate(pod(vllm_container(), crowded))
    assert result.skip_code == "conflict"
    assert "no port for its probes listener" in (result.skipped or "")


def test_host_network_stays_a_skip() -> None:
    original = pod()
    original["spec"]["hostNetwork"] = True
    assert mutate(original).skip_code == "conflict"


@pytest.mark.parametrize(
    ("user_names", "ours"),
    [
        (["probes", "spi", "proxy"], ["fma-probes", "fma-spi", "fma-proxy"]),
        (["probes", "fma-probes", "x"], [None, "spi", "proxy"]),
    ],
)
def test_user_port_names_win(user_names: list[str], ours: list[str | None]) -> None:
    vllm_ports = [{"name": user_names[0], "containerPort": 8000}]
    others = [{"name": n, "containerPort": 9000 + i} for i, n in enumerate(user_names[1:])]
    side = {"name": "side", "image": "x", "ports": others}
    mutated, _ = requester(pod(vllm_container(ports=vllm_ports), side))
    stub = stub_of(mutated)
    assert [p.get("name") for p in stub["ports"][1:]] == ours
    assert stub["readinessProbe"]["httpGet"]["port"] == 8080
    assert_consistent(mutated)


# --- The admin-port annotation ------------------------------------------------------------------


def test_a_pods_own_admin_port_is_honoured() -> None:
    original = pod(annotations={ADMIN_PORT: "9100"})
    mutated, result = requester(original)
    assert env_of(stub_of(mutated))["SPI_PORT"] == "9100"
    assert not any(op["path"].endswith("admin-port") for op in result.patch)
    assert_consistent(mutated)


@pytest.mark.parametrize("value", ["8000", "eighty", "0", "70000", ""])
def test_an_unusable_admin_port_is_a_conflict_skip(value: str) -> None:
    result = mutate(pod(annotations={ADMIN_PORT: value}))
    assert result.skip_code == "conflict"
    assert ADMIN_PORT in (result.skipped or "")


@pytest.mark.parametrize(
    "ports",
    [
        [{"containerPort": "http"}],
        [{"containerPort": 0}],
        ["8000"],
        [{"containerPort": 80, "name": 1}],
    ],
)
def test_a_malformed_vllm_port_is_a_malformed_skip(ports: list[Any]) -> None:
    assert mutate(pod(vllm_container(ports=ports))).skip_code == "malformed"


# --- The direct provider, built by the controller ----------------------------------------------


def provider(mutated: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The controller's direct provider for `mutated`: its inference-server container and the
    vLLM port it will call."""
    mutated["metadata"]["uid"] = "uid-1"
    built = build_direct_provider(mutated, node="gpu-node-1", gpu_uuids=["GPU-1"], gpu_indices=[0])
    (server,) = [c for c in built.pod["spec"]["containers"] if c["name"] == "inference-server"]
    return server, built.port


@pytest.mark.parametrize(
    ("args", "ports", "port"),
    [
        pytest.param([], None, 8000, id="no-ports"),
        pytest.param(["--port", "9000"], [{"name": "api", "containerPort": 9000}], 9000, id="9000"),
        pytest.param(["--port", "8081"], [{"name": "api", "containerPort": 8081}], 8081, id="8081"),
        pytest.param(
            ["--port", "8000"],
            [
                {"name": "metrics", "containerPort": 9090},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            ],
            8000,
            id="undeclared-vllm-port-and-tcp-udp-pair",
        ),
    ],
)
def test_the_direct_provider_gets_the_original_ports(
    args: list[str], ports: list[dict[str, Any]] | None, port: int
) -> None:
    container = vllm_container(args=args) | ({"ports": ports} if ports is not None else {})
    mutated, result = requester(pod(container))
    assert result.mode == "direct"
    server, vllm_port = provider(mutated)
    assert vllm_port == port
    assert server.get("ports") == ports
    assert server["readinessProbe"]["httpGet"]["port"] == port


def test_the_requester_keeps_the_host_port_and_the_provider_drops_it() -> None:
    ports = [{"name": "http", "containerPort": 8000, "hostPort": 30080, "hostIP": "0.0.0.0"}]
    mutated, result = requester(pod(vllm_container(ports=ports)))
    assert stub_of(mutated)["ports"][0] == ports[0]
    assert any("hostPort" in warning for warning in result.warnings)
    server, _ = provider(mutated)
    assert server["ports"] == [{"name": "http", "containerPort": 8000}]
