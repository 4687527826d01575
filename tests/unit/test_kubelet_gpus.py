"""Fake GPUs and device-plugin allocation."""

from __future__ import annotations

import json

import pytest

from localcluster.kubelet.gpus import (
    GpuAdmissionError,
    GpuAllocator,
    gpu_uuid,
    node_gpus,
    visible_devices_env,
)


def _allocator() -> GpuAllocator:
    return GpuAllocator({"a": node_gpus("a", 2), "b": node_gpus("b", 1)})


def test_uuids_are_stable_and_distinct() -> None:
    assert gpu_uuid("a", 0) == gpu_uuid("a", 0)
    assert gpu_uuid("a", 0).startswith("GPU-")
    assert len({gpu_uuid(n, i) for n in "ab" for i in range(4)}) == 8


def test_allocation_is_per_container_idempotent_and_exclusive() -> None:
    gpus = _allocator()
    first = gpus.allocate("a", "pod1", "c", 1)
    assert gpus.allocate("a", "pod1", "c", 1) == first
    second = gpus.allocate("a", "pod2", "c", 1)
    assert set(first).isdisjoint(second)
    with pytest.raises(GpuAdmissionError, match="Requested: 1, Available: 0"):
        gpus.allocate("a", "pod3", "c", 1)
    assert gpus.allocate("a", "pod3", "no-gpu", 0) == ()
    assert gpus.release_pod("pod1")
    assert gpus.allocate("a", "pod3", "c", 1) == first
    assert not gpus.release_pod("nobody")


def test_init_container_devices_are_reused_by_app_containers() -> None:
    gpus = _allocator()
    init = gpus.allocate("a", "p", "init", 2, init=True)
    app = gpus.allocate("a", "p", "app", 2)
    assert set(app) == set(init)
    assert gpus.free("a") == []
    with pytest.raises(GpuAdmissionError):
        gpus.allocate("a", "p", "second-app", 1)


def test_checkpoint_round_trip_drops_unknown_devices() -> None:
    gpus = _allocator()
    gpus.allocate("a", "p", "c", 2)
    data = json.loads(json.dumps(gpus.to_checkpoint()))
    restored = GpuAllocator({"a": node_gpus("a", 1)})
    restored.restore(data)
    assert restored.devices_of("p") == {"c": (gpu_uuid("a", 0),)}
    assert restored.pods() == {"p"}


def test_visible_devices_env() -> None:
    assert visible_devices_env(["GPU-1", "GPU-2"]) == {"NVIDIA_VISIBLE_DEVICES": "GPU-1,GPU-2"}
    assert visible_devices_env([]) == {}
