"""The compatibility switch, `--control-auth off`, on the local cluster (contracts §14).

For installs that mix in the reference's controller or launcher image: fma's controller creates
launchers with `FMA_CONTROL_AUTH=off`, drives requesters written for it without tokens, and the
endpoints answer anyone, as the reference's do. (The same environment cannot share a module with
`test_control_auth.py`'s: one hollow node per module.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import httpx
import pytest

from contract import auth
from contract.launcher import LAUNCHER_PORT
from contract.requester import SPI_PORT
from localcluster.controlplane import LocalCluster
from localcluster.fma.environment import FmaEnvironment, controller_args, fma_environment
from localcluster.fma.manifests import requester_template
from tests.e2e import inspect as i

LC: Final = "open-lc"


@pytest.fixture(scope="module")
def open_env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FmaEnvironment]:
    with fma_environment(cluster, tmp_path_factory.mktemp("e2e-open"), nodes=1) as environment:
        environment.apply_launcher_config(LC, max_instances=1)
        environment.apply_isc("model-a", lc=LC, port=8005)
        environment.start_controller(*controller_args("--control-auth", "off"))
        yield environment


def test_with_the_switch_off_the_wire_is_the_references(open_env: FmaEnvironment) -> None:
    """`--control-auth off`: launchers are created open (`FMA_CONTROL_AUTH=off`), requesters
    written for it run open, the controller actuates without tokens, and anyone may call."""
    env = open_env
    template = requester_template("chat", node=env.nodes[0], isc="model-a", control=False)
    env.create_deployment("chat", template)
    requester = i.ready_requester(env, "chat", timeout=40)
    (launcher,) = [p for p in i.launchers(env, env.nodes[0]) if i.live(p)]
    (server,) = [c for c in launcher["spec"]["containers"] if c["name"] == "inference-server"]
    launcher_env = {e["name"]: e for e in server["env"]}
    assert launcher_env[auth.MODE_ENV]["value"] == auth.MODE_OFF
    assert auth.TRUST_ENV not in launcher_env
    spi = f"http://{requester['status']['podIP']}:{SPI_PORT}"
    with httpx.Client(timeout=10) as http:  # as the reference: no token, and it works
        assert http.post(spi + "/v1/become-ready").status_code == 200
        launcher_api = f"http://{launcher['status']['podIP']}:{LAUNCHER_PORT}/v2/vllm/instances"
        assert http.delete(launcher_api + "/no-such-instance").status_code == 404  # not 401
