"""The proxy configuration before the ready relay (core, pure).

A Service routes to a requester as soon as it is Ready, so the requester's serving ports must
already lead to the bound vLLM: every ready relay the requester's current container has not
seen is preceded by `ConfigureProxy` with the bound server's address and port.
"""

from __future__ import annotations

import dataclasses

from controller.core import (
    Action,
    ConfigureProxy,
    ObserveActuation,
    RelayReady,
    ServerMemory,
    decide_server,
    record_failure,
    record_success,
)
from tests.unit.core_fixtures import (
    GPUS,
    NOW,
    SERVING_LABELS,
    bound_launcher_pod,
    instance,
    lv,
    requester,
    serving,
    with_launchers,
)
from tests.unit.test_core_server import direct_bound

KNOWN = ServerMemory(gpu_uuids=GPUS, instance_known=True)


def performed(memory: ServerMemory, actions: list[Action]) -> ServerMemory:
    for action in actions:
        memory = record_success(memory, action, now=NOW)
    return memory


def test_the_proxy_is_configured_before_readiness_is_relayed() -> None:
    actions = serving(KNOWN)
    names = [type(a).__name__ for a in actions]
    assert names.index("ConfigureProxy") < names.index("RelayReady")
    (configure,) = [a for a in actions if isinstance(a, ConfigureProxy)]
    assert configure == ConfigureProxy(
        ip="10.0.0.1", port=8081, uid="req-uid", address="10.0.1.1", target_port=8005, restarts=0
    )


def test_once_configured_and_relayed_nothing_is_sent_again() -> None:
    after = performed(KNOWN, serving(KNOWN))
    assert after.proxied == ("10.0.1.1", 8005, 0) and after.relayed_ready is True
    again = serving(after, server_ready=True)
    assert not any(isinstance(a, ConfigureProxy | RelayReady) for a in again)


def test_a_restarted_stub_is_configured_and_made_ready_again() -> None:
    after = performed(KNOWN, serving(KNOWN))
    actions = serving(after, restarts=1, server_ready=False)
    names = [type(a).__name__ for a in actions]
    assert names[-2:] == ["ConfigureProxy", "RelayReady"]
    assert next(a for a in actions if isinstance(a, ConfigureProxy)).restarts == 1
    assert not any(isinstance(a, ObserveActuation) for a in actions), "observed once only"


def test_the_admin_port_annotation_moves_the_spi() -> None:
    annotations = {
        "dual-pods.llm-d.ai/inference-server-config": "isc1",
        "dual-pods.llm-d.ai/admin-port": "9091",
    }
    actions = serving(KNOWN, annotations=annotations)
    configure = next(a for a in actions if isinstance(a, ConfigureProxy))
    relay = next(a for a in actions if isinstance(a, RelayReady))
    assert configure.port == relay.port == 9091


def test_a_refused_configuration_is_retried_and_readiness_waits() -> None:
    configured = performed(KNOWN, serving(KNOWN))
    configure = ConfigureProxy(
        ip="10.0.0.1", port=8081, uid="req-uid", address="10.0.1.1", target_port=8005
    )
    failed = record_failure(configured, configure, now=NOW, error="HTTP 409")
    assert failed.proxied is None
    unready = dataclasses.replace(failed, relayed_ready=None, actuation_observed=False)
    names = [type(a).__name__ for a in serving(unready)]
    assert names[-3:] == ["ConfigureProxy", "RelayReady", "ObserveActuation"]


def test_no_proxy_configuration_while_the_server_is_not_serving() -> None:
    provider = bound_launcher_pod(labels=SERVING_LABELS)
    snap = with_launchers(
        lv(provider, instance(phase="starting")),
        providers=(provider,),
        requester=requester(finalizers=("dual-pods.llm-d.ai/requester",)),
        memory=KNOWN,
    )
    assert not any(isinstance(a, ConfigureProxy) for a in decide_server(snap))


def test_direct_mode_targets_the_provider_and_its_vllm_port() -> None:
    actions = direct_bound(ServerMemory(gpu_uuids=GPUS, sleeping=False), ready=True)
    configure = next(a for a in actions if isinstance(a, ConfigureProxy))
    assert (configure.address, configure.target_port) == ("10.0.1.1", 80)
    names = [type(a).__name__ for a in actions]
    assert names.index("ConfigureProxy") < names.index("RelayReady")
