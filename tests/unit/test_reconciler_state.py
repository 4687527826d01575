"""The reconciler's read side with plain objects: Pod classification and indexes, the snapshot,
launcher instances (overrides, LRU times), `gpu-map`, and the own-write expectations."""

from __future__ import annotations

import json

from controller.core import ServerMemory, Settings
from controller.reconciler import (
    Expectation,
    Expectations,
    InstanceBook,
    KeyLabels,
    ServerKey,
    parse_gpu_map,
)
from controller.reconciler import _pods as p
from controller.reconciler._expectations import met
from controller.reconciler._instances import HOLD_MAX_S
from controller.reconciler._snapshot import server_snapshot
from tests.unit.reconciler_support import NOW, FakeStreams, node, pod, state

ISC = "dual-pods.llm-d.ai/inference-server-config"
LC_LABEL = "dual-pods.llm-d.ai/launcher-config-name"
BOUND = {"dual-pods.llm-d.ai/requester": "req-uid req"}


def test_pods_are_classified_as_the_contract_says() -> None:
    assert p.is_requester(pod("a", annotations={ISC: ""}))  # the key present at all
    assert p.is_requester(pod("a", annotations={"dual-pods.llm-d.ai/server-patch": "x"}))
    assert not p.is_requester(pod("a", annotations={"dual-pods.llm-d.ai/server-patch": ""}))
    assert p.bound_to(pod("l", annotations=BOUND)) == ("req-uid", "req")
    for bad in ("req-uid", "a b c", " req", "req-uid "):
        assert p.bound_to(pod("l", annotations={"dual-pods.llm-d.ai/requester": bad})) is None
    assert p.provider_node(pod("l", node="n2", pinned="n1")) == "n1"
    assert p.provider_node(pod("l", node="n2")) == "n2"


def test_indexes_answer_the_snapshot_questions() -> None:
    launcher = pod("l", labels={LC_LABEL: "lc"}, annotations=BOUND, node=None, pinned="n1",
                   ip="10.0.1.1")  # fmt: skip
    direct = pod("d", annotations={"dual-pods.llm-d.ai/nominal": "h"}, pinned="n1")
    requester = pod("req", uid="req-uid", annotations={ISC: "isc1"})
    cluster = state(pods=[launcher, direct, requester])
    assert [x["metadata"]["name"] for x in cluster.pods_by(p.BOUND_TO, "req-uid")] == ["l"]
    assert [x["metadata"]["name"] for x in cluster.pods_by(p.LAUNCHERS_ON, "n1")] == ["l"]
    assert [x["metadata"]["name"] for x in cluster.pods_by(p.NOMINAL_ON, "n1")] == ["d"]
    assert [x["metadata"]["name"] for x in cluster.requesters(isc="isc1")] == ["req"]
    assert [x["metadata"]["name"] for x in cluster.requesters(node="n1")] == ["req"]
    assert cluster.pod_by_uid("req-uid") is requester


def test_snapshot_of_a_requester_and_its_node() -> None:
    requester = pod("req", uid="req-uid", annotations={ISC: "isc1"})
    isc = {"metadata": {"name": "isc1", "namespace": "ns", "resourceVersion": "1"},
           "spec": {"launcherConfigName": "lc", "modelServerConfig": {"port": 8005}}}  # fmt: skip
    cluster = state(pods=[requester], nodes=[node("n1")], iscs=[isc])
    snap = server_snapshot(
        cluster, ServerKey("req-uid", "req"), memory=ServerMemory(), settings=Settings(), now=NOW
    )
    assert snap.requester is not None and snap.requester.name == "req"
    assert snap.node is not None and snap.node.name == "n1"
    assert snap.isc is not None and snap.isc.spec.launcher_config_name == "lc"
    assert snap.lc is None and snap.lc_error == "not found"
    assert snap.gpu_map is None
    other = server_snapshot(
        cluster, ServerKey("old-uid", "req"), memory=ServerMemory(), settings=Settings(), now=NOW
    )
    assert other.requester is None  # same name, another Pod: the old requester is gone


def test_invalid_isc_is_an_error_not_a_crash() -> None:
    requester = pod("req", uid="req-uid", annotations={ISC: "isc1"})
    isc = {"metadata": {"name": "isc1", "namespace": "ns", "resourceVersion": "1"},
           "spec": {"modelServerConfig": {"port": "x"}}}  # fmt: skip
    cluster = state(pods=[requester], nodes=[node()], iscs=[isc])
    snap = server_snapshot(
        cluster, ServerKey("req-uid", "req"), memory=ServerMemory(), settings=Settings(), now=NOW
    )
    assert snap.isc is None and (snap.isc_error or "").startswith("invalid")


def raw(phase: str, revision: int, status: str = "running") -> dict[str, object]:
    return {
        "instance_id": "i1",
        "status": status,
        "phase": phase,
        "revision": revision,
        "gpu_uuids": ["GPU-1"],
        "annotations": {"isc-name": "isc1", "inference-port": "8005"},
        "exit_code": 3,
    }


def test_instance_views_and_overrides() -> None:
    book = InstanceBook()
    (view,) = book.views("l", {"i1": raw("sleeping", 3)}, NOW)
    assert (view.phase, view.port, view.isc_name, view.gpu_uuids) == (
        "sleeping", 8005, "isc1", ("GPU-1",)
    )  # fmt: skip
    assert view.created_at == NOW and view.exit_code == 3
    book.seen("l", {"i1": raw("sleeping", 3)}, NOW - 10)
    book.hold("l", "i1", "awake", 3, now=NOW)
    assert book.views("l", {"i1": raw("sleeping", 3)}, NOW)[0].phase == "ready"
    assert book.views("l", {"i1": raw("failed", 3, "stopped")}, NOW)[0].phase == "failed"
    # A newer revision still saying `sleeping` is the log's growth (our wake's access line)
    # before the launcher's probe saw the engine awake: the override stays.
    assert book.views("l", {"i1": raw("sleeping", 4)}, NOW)[0].phase == "ready"
    assert book.views("l", {"i1": raw("ready", 5)}, NOW)[0].phase == "ready"  # caught up
    assert book.views("l", {"i1": raw("sleeping", 6)}, NOW)[0].phase == "sleeping"  # news
    book.hold("l", "i1", "awake", 6, now=NOW)
    later = NOW + HOLD_MAX_S + 1
    assert book.views("l", {"i1": raw("sleeping", 7)}, later)[0].phase == "sleeping", "too long"
    book.hold("l", "i1", "gone", 7, now=NOW)
    assert book.views("l", {"i1": raw("sleeping", 8)}, NOW) == (), "running: still going"
    assert book.views("l", {"i1": raw("sleeping", 9, "stopped")}, NOW)[0].stopped
    book.used("l", "i1", NOW - 1)
    book.hold("l", "i1", "asleep", 9, now=NOW)
    (view,) = book.views("l", {"i1": raw("ready", 9)}, NOW)
    assert view.phase == "sleeping" and view.last_used == NOW - 1 and view.created_at == NOW - 10
    assert book.views("l", {"i1": raw("ready", 10)}, NOW)[0].phase == "sleeping"
    assert book.views("l", {"i1": {**raw("ready", 11), "phase": None}}, NOW)[0].phase is None
    book.seen("l", {}, NOW)  # the instance went away: its records too
    assert len(book) == 0


def test_launcher_views_come_from_the_streams() -> None:
    launcher = pod("l", uid="l-uid", labels={LC_LABEL: "lc"}, pinned="n1")
    streams = FakeStreams({"l-uid": {"i1": raw("ready", 1)}})
    cluster = state(pods=[launcher], streams=streams)
    (view,) = cluster.launchers_on("n1", NOW)
    assert view.instances is not None and view.instances[0].phase == "ready"
    assert cluster.instance_at("10.0.0.1", 8005) == ("l-uid", "i1", 1)
    assert cluster.instance_at("10.0.0.1", 8006) is None
    streams.views.clear()
    assert cluster.launchers_on("n1", NOW)[0].instances is None  # not listed yet


def test_gpu_map_skips_unparsable_entries() -> None:
    data = {"n1": json.dumps({"GPU-a": 0}), "n2": "nope", "n3": json.dumps({"GPU-b": -1})}
    assert parse_gpu_map(data) == {"n1": {"GPU-a": 0}}
    cm = {"metadata": {"name": "gpu-map", "namespace": "ns", "resourceVersion": "4"},
          "data": data}  # fmt: skip
    assert state(config_maps=[cm]).gpu_map() == {"n1": {"GPU-a": 0}}


def test_expectations_wait_for_own_writes_and_expire() -> None:
    now = [0.0]
    expectations = Expectations(timeout_s=5, clock=lambda: now[0])
    cached = {"req": pod("req", uid="u", rv="10")}
    expectations.expect("item", Expectation("req", "u", "version", 11))
    assert expectations.wait_for("item", cached.get)
    cached["req"] = pod("req", uid="u", rv="11")
    assert not expectations.wait_for("item", cached.get)
    expectations.expect("item", Expectation("new", "n", "present", 20))
    assert expectations.wait_for("item", cached.get)
    now[0] = 6.0
    assert not expectations.wait_for("item", cached.get)  # expired: decide anyway
    assert len(expectations) == 0


def test_expectation_kinds() -> None:
    gone = Expectation("req", "u", "gone")
    assert met(gone, None)
    assert met(gone, pod("req", uid="other"))  # the name belongs to a newer Pod
    terminating = pod("req", uid="u")
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert met(gone, terminating) and not met(gone, pod("req", uid="u"))
    assert not met(Expectation("req", "u", "present"), None)
    assert met(Expectation("req", "u", "version", 5), None)  # deleted meanwhile: nothing to wait


def test_key_labels_stay_fixed() -> None:
    labels = KeyLabels()
    key = ServerKey("u", "req")
    labels.remember(key, "n1")
    labels.remember(key, "n2")
    assert labels(key) == "n1"
    labels.forget(key)
    assert labels(key) == "" and len(labels) == 0


def test_public_names_are_sorted_and_exist() -> None:
    import controller.reconciler as module

    exported = list(module.__all__)
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n[0].islower(), n))
    assert all(hasattr(module, name) for name in exported)
