"""GPU UUID → CUDA index mapping and where the map comes from (contracts §5.3, §2.4)."""

from __future__ import annotations

import pytest

from launcher.gpus import (
    GpuMap,
    UnknownGpuError,
    load,
    mock_sequence,
    parse_mapping_json,
    parse_mock_spec,
)


def test_visible_devices_keep_the_requested_order() -> None:
    gpus = GpuMap(indices={"GPU-a": 0, "GPU-b": 1, "GPU-c": 2}, source="mock")
    assert gpus.visible_devices(["GPU-c", "GPU-a"]) == "2,0"


def test_unknown_uuids_are_named_together_with_the_known_ones() -> None:
    gpus = GpuMap(indices={"GPU-b": 1, "GPU-a": 0}, source="mock")
    with pytest.raises(UnknownGpuError) as raised:
        gpus.visible_devices(["GPU-a", "GPU-x", "GPU-y"])
    assert raised.value.unknown == ["GPU-x", "GPU-y"]
    assert str(raised.value) == ("gpu_uuids: unknown GPU UUID(s) GPU-x, GPU-y; known: GPU-a, GPU-b")


def test_a_launcher_without_gpus_says_so() -> None:
    with pytest.raises(UnknownGpuError, match="none"):
        GpuMap(indices={}, source="none").visible_devices(["GPU-0"])


def test_mock_specs_accept_json_or_a_list() -> None:
    assert parse_mock_spec('{"GPU-z": 3}') == {"GPU-z": 3}
    assert parse_mock_spec("GPU-a, GPU-b") == {"GPU-a": 0, "GPU-b": 1}
    assert mock_sequence(2) == {"GPU-0": 0, "GPU-1": 1}


@pytest.mark.parametrize(
    "text", ['["GPU-0"]', '{"GPU-0": -1}', '{"GPU-0": "1"}', '{"GPU-0": true}']
)
def test_bad_gpu_map_entries_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_mapping_json(text)


def test_mock_mode_uses_the_reference_names_and_count() -> None:
    gpus = load(mock=True, mock_count=3, env={})
    assert (gpus.source, dict(gpus.indices)) == ("mock", mock_sequence(3))


def test_an_explicit_mock_map_wins_over_the_count() -> None:
    gpus = load(mock=False, mock_count=8, env={"FMA_MOCK_GPUS": "GPU-x,GPU-y"})
    assert (gpus.source, dict(gpus.indices)) == ("env", {"GPU-x": 0, "GPU-y": 1})


def test_without_nvml_and_without_mock_there_are_no_gpus() -> None:
    # This machine has no NVIDIA driver, so NVML cannot initialise.
    gpus = load(mock=False, mock_count=8, env={})
    assert gpus.source in ("none", "nvml")
    if gpus.source == "none":
        assert not gpus.has_gpus
