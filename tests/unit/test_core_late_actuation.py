"""`fma_actuation_seconds` when the ready relay beats the requester's status update (core, pure).

A fast hot path relays readiness before the informer shows the requester's container as
Running; the reference then never observes the actuation. fma observes it on a later pass,
from the container's start to the answer of the relay.
"""

from __future__ import annotations

from controller.core import (
    Action,
    ConfigureProxy,
    ObserveActuation,
    RelayReady,
    RelayUnready,
    ServerMemory,
    record_success,
)
from tests.unit.core_fixtures import (
    GPUS,
    NOW,
    serving,
)


def _performed(memory: ServerMemory, actions: list[Action], *, now: float) -> ServerMemory:
    """The memory after every action succeeded, as the executor records it."""
    for action in actions:
        if not isinstance(action, ObserveActuation):
            memory = record_success(memory, action, now=now)
    return memory


def test_relay_before_the_container_shows_running_defers_the_observation() -> None:
    memory = ServerMemory(gpu_uuids=GPUS, instance_known=True)
    actions = serving(memory, server_running=False, server_started_at=None)
    assert RelayReady(ip="10.0.0.1", port=8081, uid="req-uid") in actions
    assert not any(isinstance(a, ObserveActuation) for a in actions)
    after = _performed(memory, actions, now=NOW + 0.5)
    assert after.relayed_at == NOW + 0.5
    later = serving(after, server_running=True, server_started_at=NOW - 2)
    (observe,) = [a for a in later if isinstance(a, ObserveActuation)]
    assert observe.seconds == 2.5 and observe.started_at == NOW - 2 and observe.path == "hot"
    done = record_success(after, observe, now=NOW + 1)
    assert not any(isinstance(a, ObserveActuation) for a in serving(done, server_running=True))


def test_recovered_readiness_is_never_observed() -> None:
    """After a controller restart readiness is only recorded (no POST), so nothing is timed;
    the proxy configuration is sent again (idempotent), since memory cannot tell it was."""
    memory = ServerMemory(gpu_uuids=GPUS, instance_known=True)
    actions = serving(memory, server_running=True, server_started_at=NOW - 50, server_ready=True)
    assert not any(isinstance(a, ObserveActuation | RelayReady) for a in actions)
    assert [type(a).__name__ for a in actions[-2:]] == ["ConfigureProxy", "Remember"]
    after = _performed(memory, actions, now=NOW)
    again = serving(after, server_running=True, server_started_at=NOW - 50, server_ready=True)
    assert not any(isinstance(a, ObserveActuation | RelayReady | ConfigureProxy) for a in again)


def test_an_unready_relay_clears_the_relay_time() -> None:
    memory = ServerMemory(relayed_ready=True, relayed_at=NOW)
    after = record_success(
        memory, RelayUnready(ip="10.0.0.1", port=8081, uid="req-uid"), now=NOW + 1
    )
    assert after.relayed_ready is False and after.relayed_at is None
