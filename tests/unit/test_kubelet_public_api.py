"""The hollow kubelet's public surface is the sorted `__all__` of its package."""

from __future__ import annotations

from localcluster import kubelet


def test_exports() -> None:
    assert kubelet.__all__ == sorted(kubelet.__all__)
    assert set(kubelet.__all__) == {
        "BackoffConfig",
        "HollowKubeletHandle",
        "ImageConfig",
        "KubeletConfig",
        "NodeConfig",
        "Taint",
        "dump_config",
        "gpu_uuid",
        "hollow_kubelet",
        "load_config",
        "start_hollow_kubelet",
    }
    for name in kubelet.__all__:
        assert getattr(kubelet, name) is not None
