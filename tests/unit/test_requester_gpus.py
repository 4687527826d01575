"""Which GPUs a requester reports, and the memory double, without a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launcher.requester.gpus import (
    MEMORY_ENV,
    MEMORY_FILE_ENV,
    NO_GPUS,
    FixedGpus,
    GpuError,
    discover_gpus,
    fixed_gpus_from_env,
    nvml_uuids,
    parse_visible_devices,
)

A = "GPU-0d1d8df2-aaaa-bbbb-cccc-000000000001"
B = "GPU-0d1d8df2-aaaa-bbbb-cccc-000000000002"


@pytest.mark.parametrize("value", [None, "", "  ", "void", "none", "NONE"])
def test_no_gpus_spellings(value: str | None) -> None:
    assert parse_visible_devices(value) == ((), None)


def test_a_uuid_list_keeps_order_and_drops_blanks_and_repeats() -> None:
    assert parse_visible_devices(f" {B}, {A},,{B} ") == ((B, A), None)
    assert parse_visible_devices("MIG-1234") == (("MIG-1234",), None)


def test_all_without_nvml_is_an_error_that_says_so() -> None:
    uuids, problem = parse_visible_devices("all")
    assert uuids == ()
    assert problem is not None and "NVIDIA_VISIBLE_DEVICES=all" in problem
    with pytest.raises(GpuError, match="all names no GPU"):
        FixedGpus(uuids, problem).accelerators()


def test_indices_are_not_uuids() -> None:
    _, problem = parse_visible_devices("0,1")
    assert problem is not None and "['0', '1']" in problem


def test_no_gpus_is_the_references_message() -> None:
    gpus = FixedGpus(())
    with pytest.raises(GpuError) as raised:
        gpus.accelerators()
    assert str(raised.value) == NO_GPUS == "no GPUs found"
    with pytest.raises(GpuError, match=NO_GPUS):
        gpus.memory_used_mib()


def test_memory_is_zero_per_gpu_by_default() -> None:
    assert FixedGpus((A, B)).memory_used_mib() == {A: 0, B: 0}


def test_memory_from_env_and_file_file_wins_and_foreign_uuids_are_ignored(tmp_path: Path) -> None:
    file = tmp_path / "mem.json"
    env = {
        "NVIDIA_VISIBLE_DEVICES": f"{A},{B}",
        MEMORY_ENV: json.dumps({A: 100, B: 200, "GPU-other": 5}),
        MEMORY_FILE_ENV: str(file),
    }
    gpus = fixed_gpus_from_env(env)
    assert gpus.memory_used_mib() == {A: 100, B: 200}  # an absent file means idle
    file.write_text(json.dumps({B: 70000}))
    assert gpus.memory_used_mib() == {A: 100, B: 70000}  # re-read on every call
    file.write_text("{not json")
    with pytest.raises(GpuError, match=MEMORY_FILE_ENV):
        gpus.memory_used_mib()


@pytest.mark.parametrize("bad", ['{"x": -1}', '{"x": 1.5}', '{"x": true}', "[1]", "oops"])
def test_bad_memory_overrides_fail_the_memory_call_only(bad: str) -> None:
    gpus = fixed_gpus_from_env({"NVIDIA_VISIBLE_DEVICES": A, MEMORY_ENV: bad})
    assert gpus.accelerators() == [A]
    with pytest.raises(GpuError, match=MEMORY_ENV):
        gpus.memory_used_mib()


def test_discovery_without_nvml_reads_the_environment() -> None:
    if nvml_uuids() is not None:
        pytest.skip("this machine has NVML; the env fallback is not what auto picks here")
    gpus = discover_gpus({"NVIDIA_VISIBLE_DEVICES": A})
    assert gpus.accelerators() == [A]


def test_source_env_ignores_nvml_and_source_nvml_insists_on_it() -> None:
    assert discover_gpus({"NVIDIA_VISIBLE_DEVICES": B}, "env").accelerators() == [B]
    if nvml_uuids() is not None:
        pytest.skip("this machine has NVML")
    with pytest.raises(GpuError, match="NVML is not available"):
        discover_gpus({"NVIDIA_VISIBLE_DEVICES": B}, "nvml").accelerators()
