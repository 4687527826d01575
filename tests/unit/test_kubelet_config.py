"""The hollow kubelet's YAML configuration and the addressing derived from it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pydantic
import pytest

from localcluster.kubelet.config import KubeletConfig, NodeConfig, dump_config, load_config
from localcluster.kubelet.network import PodIpAllocator, node_networks

YAML = """
podNetwork: 127.42.0.0/16
kubeletPort: 10250
restartBackoff: {initialSeconds: 0.5, maxSeconds: 4}
nodes:
  - name: gpu-a
    gpus: 2
    labels: {pool: a}
    taints: [{key: dedicated, value: ml, effect: NoSchedule}]
  - name: gpu-b
    subnet: 7
images:
  python:3.11:
    cmd: [python3]
    path: [.venv/bin]
    workingDir: work
"""


def test_load_resolves_relative_paths_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.yaml"
    path.write_text(YAML)
    config = load_config(path)
    image = config.images["python:3.11"]
    assert image.path == [str(tmp_path / ".venv" / "bin")]
    assert image.working_dir == str(tmp_path / "work")
    assert config.restart_backoff.initial_seconds == 0.5
    assert config.nodes[0].taints[0].effect == "NoSchedule"
    assert (
        KubeletConfig.model_validate_json(
            KubeletConfig.model_validate(config.model_dump(by_alias=True)).model_dump_json(
                by_alias=True
            )
        )
        == config
    )
    assert "podNetwork: 127.42.0.0/16" in dump_config(config)


def test_node_addresses_come_from_their_subnet(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.yaml"
    path.write_text(YAML)
    networks = node_networks(load_config(path))
    assert networks["gpu-a"].node_ip == "127.42.1.1"
    assert networks["gpu-a"].pod_cidr == "127.42.1.0/24"
    assert networks["gpu-b"].node_ip == "127.42.7.1"
    ips = networks["gpu-b"].pod_ips()
    assert (ips[0], ips[-1], len(ips)) == ("127.42.7.2", "127.42.7.254", 253)


def _config(**changes: object) -> KubeletConfig:
    base: dict[str, object] = {"podNetwork": "127.42.0.0/16", "nodes": [{"name": "n"}]}
    base.update(changes)
    return KubeletConfig.model_validate(base)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"podNetwork": "10.0.0.0/16"}, "inside 127.0.0.0/8"),
        ({"nodes": [{"name": "n"}, {"name": "n"}]}, "unique"),
        ({"nodes": [{"name": "a", "subnet": 2}, {"name": "b"}]}, "share a subnet"),
        ({"podNetwork": "127.42.0.0/24"}, "does not fit"),
        ({"nodes": [{"name": "N_1"}]}, "pattern"),
        ({"nodes": [{"name": "n", "gpu": 1}]}, "Extra inputs"),
    ],
)
def test_invalid_configs_say_why(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=fragment):
        _config(**changes)


def test_pod_ips_are_handed_out_round_robin() -> None:
    network = node_networks(_config())["n"]
    allocator = PodIpAllocator(network)
    first = allocator.allocate("a")
    assert first == "127.42.1.2"
    assert allocator.allocate("a") == first
    assert allocator.allocate("b") == "127.42.1.3"
    allocator.release("a")
    assert allocator.allocate("c") == "127.42.1.4"  # a freed address is not reused at once


def test_pod_ip_allocator_restores_and_fills_up() -> None:
    network = node_networks(_config(podNetwork="127.9.0.0/16"))["n"]
    allocator = PodIpAllocator(network)
    allocator.restore([("old", "127.9.1.9"), ("foreign", "10.0.0.1")])
    assert allocator.by_pod == {"old": "127.9.1.9"}
    given = {allocator.allocate(f"p{i}") for i in range(252)}
    assert "127.9.1.9" not in given
    assert allocator.allocate("one-too-many") is None


def test_node_defaults() -> None:
    node = NodeConfig(name="n")
    assert (node.gpus, node.cpu, node.memory, node.pods) == (0, "8", "32Gi", 110)
    assert _config().pod_network == ipaddress.IPv4Network("127.42.0.0/16")


def test_probe_period_scale_is_a_test_knob_within_0_and_1() -> None:
    assert _config().probe_period_scale == 1.0  # the real kubelet's periods by default
    assert _config(probePeriodScale=0.05).probe_period_scale == 0.05
    for bad in (0, 1.5):
        with pytest.raises(pydantic.ValidationError):
            _config(probePeriodScale=bad)
