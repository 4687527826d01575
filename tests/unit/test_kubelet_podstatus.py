"""Pod phase, conditions and the status patch, computed from container states."""

from __future__ import annotations

from typing import Any

import pytest

from localcluster.kubelet.podspec import PodView, parse_pod
from localcluster.kubelet.podstatus import (
    ContainerStatus,
    PodFacts,
    Running,
    Terminated,
    Waiting,
    compute_conditions,
    compute_phase,
    compute_status,
    status_changed,
    strip_nulls,
)

NOW = "2024-01-01T00:00:10Z"
FACTS = PodFacts(
    host_ip="127.1.1.1", pod_ip="127.1.1.2", start_time="2024-01-01T00:00:00Z", now=NOW
)


def _pod(policy: str = "Always", inits: int = 0, apps: int = 1, **extra: Any) -> PodView:
    spec = {
        "restartPolicy": policy,
        "initContainers": [{"name": f"i{n}", "image": "img"} for n in range(inits)],
        "containers": [{"name": f"c{n}", "image": "img"} for n in range(apps)],
        **extra.pop("spec", {}),
    }
    return parse_pod(
        {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec, **extra}
    )


def _status(
    name: str,
    state: Any,
    *,
    init: bool = False,
    last: Terminated | None = None,
    ready: bool = False,
) -> ContainerStatus:
    return ContainerStatus(name, "img", init=init, state=state, last_state=last, ready=ready)


RUN = Running("2024-01-01T00:00:01Z")
OK = Terminated(0, "Completed", NOW)
BAD = Terminated(3, "Error", NOW)
WAIT = Waiting("ContainerCreating")
LOOP = Waiting("CrashLoopBackOff")


@pytest.mark.parametrize(
    ("policy", "states", "lasts", "phase"),
    [
        ("Always", [WAIT], [None], "Pending"),
        ("Always", [RUN], [None], "Running"),
        ("Always", [RUN, WAIT], [None, None], "Pending"),
        ("Always", [LOOP], [BAD], "Running"),
        ("Always", [OK], [None], "Running"),
        ("OnFailure", [OK, OK], [None, None], "Succeeded"),
        ("OnFailure", [BAD], [None], "Running"),
        ("Never", [BAD, OK], [None, None], "Failed"),
        ("Never", [OK, RUN], [None, None], "Running"),
        ("Never", [OK], [None], "Succeeded"),
    ],
)
def test_phase(policy: str, states: list[Any], lasts: list[Any], phase: str) -> None:
    pod = _pod(policy, apps=len(states))
    apps = [
        _status(f"c{i}", s, last=last)
        for i, (s, last) in enumerate(zip(states, lasts, strict=True))
    ]
    assert compute_phase(pod, [], apps) == phase


def test_init_containers_hold_the_pod_pending_and_fail_it_under_never() -> None:
    pod = _pod("Never", inits=2)
    apps = [_status("c0", Waiting("PodInitializing"))]
    assert compute_phase(pod, [_status("i0", RUN, init=True)], apps) == "Pending"
    assert compute_phase(pod, [_status("i0", BAD, init=True)], apps) == "Failed"
    restarting = _pod("Always", inits=1)
    assert compute_phase(restarting, [_status("i0", LOOP, init=True, last=BAD)], apps) == "Pending"


def test_conditions_messages_match_the_kubelets() -> None:
    pod = _pod("Always", inits=2, apps=2)
    inits = [_status("i0", OK, init=True, ready=True), _status("i1", RUN, init=True)]
    apps = [_status("c0", WAIT), _status("c1", WAIT)]
    conditions = compute_conditions(pod, inits, apps, "Pending")
    assert conditions["Initialized"] == (
        False,
        "ContainersNotInitialized",
        "containers with incomplete status: [i1]",
    )
    assert conditions["ContainersReady"] == (
        False,
        "ContainersNotReady",
        "containers with unready status: [c0 c1]",
    )
    assert conditions["Ready"] == conditions["ContainersReady"]
    assert compute_conditions(pod, inits[:1], [], "Pending")["ContainersReady"][2] == (
        "containers with unknown status: [c0 c1]"
    )


def test_succeeded_pods_report_pod_completed() -> None:
    pod = _pod("Never")
    conditions = compute_conditions(pod, [], [_status("c0", OK)], "Succeeded")
    assert conditions["Initialized"] == (True, None, None)
    assert conditions["ContainersReady"] == (False, "PodCompleted", None)


def test_readiness_gates() -> None:
    gates = {
        "spec": {
            "readinessGates": [
                {"conditionType": "example.com/a"},
                {"conditionType": "example.com/b"},
            ]
        }
    }
    pod = _pod(
        status={"conditions": [{"type": "example.com/a", "status": "False"}]}, spec=gates["spec"]
    )
    ready = compute_conditions(pod, [], [_status("c0", RUN, ready=True)], "Running")["Ready"]
    assert ready == (
        False,
        "ReadinessGatesNotReady",
        'the status of pod readiness gate "example.com/a" is not "True", but False, '
        'corresponding condition of pod readiness gate "example.com/b" does not exist.',
    )


def test_status_patch_shape_and_change_detection() -> None:
    pod = _pod("Always")
    apps = [_status("c0", RUN, ready=True)]
    apps[0].started = True
    desired = compute_status(pod, [], apps, FACTS)
    assert desired["phase"] == "Running"
    assert desired["podIPs"] == [{"ip": "127.1.1.2"}]
    state = desired["containerStatuses"][0]["state"]
    assert state == {"waiting": None, "running": {"startedAt": RUN.started_at}, "terminated": None}
    ready = next(c for c in desired["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["lastTransitionTime"] == NOW
    # What the apiserver stores after the patch, plus a condition someone else owns:
    stored = strip_nulls(desired)
    stored["conditions"].append({"type": "PodScheduled", "status": "True"})
    stored["qosClass"] = "BestEffort"
    assert not status_changed(desired, stored)
    later = PodFacts(**{**FACTS.__dict__, "now": "2024-01-01T00:01:00Z"})
    again = compute_status(_pod("Always", status=stored), [], apps, later)
    assert not status_changed(again, stored)  # transition times are kept while nothing changes
    apps[0].ready = False
    assert status_changed(compute_status(_pod("Always", status=stored), [], apps, later), stored)


def test_terminal_phase_and_admission_failure() -> None:
    pod = _pod("Always", status={"phase": "Failed"})
    assert compute_status(pod, [], [_status("c0", RUN)], FACTS)["phase"] == "Failed"
    failed = PodFacts(
        **{**FACTS.__dict__, "admission_failure": ("UnexpectedAdmissionError", "no GPU")}
    )
    status = compute_status(_pod(), [], [_status("c0", WAIT)], failed)
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed",
        "UnexpectedAdmissionError",
        "no GPU",
    )
