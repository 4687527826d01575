"""The kubelet's shared services: the checkpoint is written once per burst of changes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

from localcluster.kubelet.config import KubeletConfig, NodeConfig
from localcluster.kubelet.gpus import GpuAllocator
from localcluster.kubelet.services import Services


def _services(tmp_path: Path) -> Services:
    config = KubeletConfig(pod_network="127.42.0.0/16", nodes=[NodeConfig(name="n")])
    unused = cast(Any, None)
    return Services(
        config=config,
        config_path=tmp_path / "config.yaml",
        state_dir=tmp_path,
        api=unused,
        events=unused,
        registry=unused,
        gpus=GpuAllocator({"n": ["GPU-a", "GPU-b"]}),
        ips={},
        host_environ={},
    )


def test_a_burst_of_changes_is_one_write_soon_after(tmp_path: Path) -> None:
    services = _services(tmp_path)
    writes: list[str] = []

    async def scenario() -> None:
        original = services.flush_checkpoint

        def counting() -> None:
            writes.append("write")
            original()

        services.flush_checkpoint = counting  # type: ignore[method-assign]
        for _ in range(100):
            services.save_checkpoint()
        assert not services.checkpoint_path.exists()  # not yet: the burst may go on
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert writes == ["write"]
    assert json.loads(services.checkpoint_path.read_text())["gpus"] is not None


def test_outside_a_loop_and_on_flush_it_is_written_at_once(tmp_path: Path) -> None:
    services = _services(tmp_path)
    services.save_checkpoint()
    assert services.checkpoint_path.exists()
    services.checkpoint_path.unlink()

    async def scenario() -> None:
        services.save_checkpoint()
        services.flush_checkpoint()  # e.g. at shutdown
        assert services.checkpoint_path.exists()

    asyncio.run(scenario())
