"""`maxInstances` reclaim happens once the launcher is bound to us (core, pure).

The reference deletes a reclaim plan's victims and binds afterwards; two requesters of one
node deciding at the same time could then delete an instance the other just bound and woke.
fma binds first (a conditional Update claims the launcher) and makes room in the bound path,
right before creating the instance.
"""

from __future__ import annotations

from controller.core import (
    BindProvider,
    CreateInstance,
    DeleteInstance,
    ServerMemory,
    decide_server,
    record_success,
)
from tests.unit.core_fixtures import (
    GPUS,
    NOW,
    bound_launcher_pod,
    instance,
    launcher_pod,
    lv,
    requester,
    with_launchers,
)

FIN = "dual-pods.llm-d.ai/requester"


def bound_pass(*instances: object, memory: ServerMemory) -> list[object]:
    provider = bound_launcher_pod()
    snap = with_launchers(
        lv(provider, *instances),  # type: ignore[arg-type]
        providers=(provider,),
        requester=requester(finalizers=(FIN,), labels={"dual-pods.llm-d.ai/dual": "launcher-a"}),
        memory=memory,
    )
    return list(decide_server(snap))


def test_the_bind_of_a_full_launcher_deletes_nothing() -> None:
    full = lv(
        launcher_pod("a"),
        instance("I-1", port=9000, last_used=NOW - 10),
        instance("I-2", port=9001, last_used=NOW - 5),
    )
    actions = decide_server(with_launchers(full))
    assert isinstance(actions[0], BindProvider)
    assert not any(isinstance(a, DeleteInstance) for a in actions)


def test_the_bound_path_reclaims_the_least_recently_used_then_creates() -> None:
    memory = ServerMemory(gpu_uuids=GPUS)
    old = instance("I-1", port=9000, last_used=NOW - 10)
    new = instance("I-2", port=9001, last_used=NOW - 5)
    actions = bound_pass(old, new, memory=memory)
    assert actions == [
        DeleteInstance(
            launcher=actions[0].launcher,  # type: ignore[attr-defined]
            ip="10.0.1.1",
            instance_id="I-1",
            reason="reclaim",
        )
    ]
    memory = record_success(memory, actions[0], now=NOW)  # type: ignore[arg-type]
    assert memory.instances_deleted == 1
    after = bound_pass(new, memory=memory)
    assert any(isinstance(a, CreateInstance) for a in after)


def test_the_bound_path_frees_the_port_first() -> None:
    conflict = instance("I-port", port=8005, last_used=NOW - 1)
    actions = bound_pass(conflict, memory=ServerMemory(gpu_uuids=GPUS))
    deleted = [a.instance_id for a in actions if isinstance(a, DeleteInstance)]
    assert deleted == ["I-port"]
    assert not any(isinstance(a, CreateInstance) for a in actions)
