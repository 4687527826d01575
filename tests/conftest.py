"""Fixtures shared by the whole suite: the real local control plane and per-test namespaces.

The control plane is started once per session (about 5 s) and every test that needs it works in
a namespace of its own, so tests stay independent without paying for a cluster each.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import kubernetes.client
import pytest

from localcluster.controlplane import LocalCluster
from localcluster.stack import install_crds


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/cluster/" in str(item.path):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The session's cluster, with kube-proxy: required under `hack/in-netns.sh` (as the README
    test command runs the suite), else where it can run (the Service tests skip otherwise)."""
    kube_proxy: bool | Literal["auto"] = True if os.environ.get("FMA_IN_NETNS") else "auto"
    with LocalCluster(tmp_path_factory.mktemp("cluster"), kube_proxy=kube_proxy) as running:
        yield running


@pytest.fixture(scope="session")
def api_client(cluster: LocalCluster) -> Iterator[kubernetes.client.ApiClient]:
    client = cluster.api_client()
    yield client
    client.close()


@pytest.fixture
def core_v1(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def namespace(
    request: pytest.FixtureRequest, core_v1: kubernetes.client.CoreV1Api
) -> Iterator[str]:
    """A fresh namespace whose `default` ServiceAccount has its token (Pods can be created)."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    core_v1.create_namespace({"metadata": {"name": name, "labels": {"fma-test": "true"}}})
    deadline = time.monotonic() + 30
    while True:
        accounts = core_v1.list_namespaced_service_account(name).items
        if any(sa.metadata.name == "default" and sa.secrets for sa in accounts):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"namespace {name}: the default ServiceAccount got no token")
        time.sleep(0.1)
    yield name
    core_v1.delete_namespace(name)


@pytest.fixture(scope="session")
def crds_installed(cluster: LocalCluster) -> None:
    """fma's CRDs, applied once per session and Established before any test uses them."""
    install_crds(cluster)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
