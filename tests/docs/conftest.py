"""Fixtures of the docs tests: a local control plane of their own.

The docs' commands use fixed names (namespaces `llm` and `fma-system`, the chart's webhook
configurations) and some are destructive (the uninstall steps delete fma's CRDs), so they run on
a cluster the rest of the suite does not share. It lives only while this folder's tests run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcluster.controlplane import LocalCluster
from localcluster.stack import install_crds


@pytest.fixture(scope="package")
def docs_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("docs-cluster")) as cluster:
        install_crds(cluster)
        yield cluster
