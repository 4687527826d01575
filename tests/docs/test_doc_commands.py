"""Every command of the user docs that can run here is run here (issue 7's acceptance).

Each doc is read in order, like a reader follows it: marked ```bash blocks run against the docs'
own local control plane (Kubernetes 1.20; with fma's webhook where the doc asks for it), the
files of `file` markers are written first, and each block must succeed (or fail) and print what
its marker expects. Blocks that need GPUs, cert-manager or the internet carry a `skip` marker
with the reason, and `test_doc_blocks.py` checks that no ```bash block goes unmarked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.controlplane import LocalCluster
from tests.docs.markdown import DOCS, USER_DOCS, parse
from tests.docs.runner import ClusterState, DocRunner, environment

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("name", USER_DOCS)
def test_doc_commands_run(name: str, docs_cluster: LocalCluster, tmp_path: Path) -> None:
    doc = parse(DOCS / name)
    state = ClusterState(docs_cluster)
    try:
        with environment(doc.environment, docs_cluster, tmp_path):
            DocRunner(docs_cluster, tmp_path).run_doc(doc)
    finally:
        state.restore()
