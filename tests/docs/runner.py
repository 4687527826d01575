"""Runs a doc's marked blocks the way a reader would, in order, against a local cluster.

Each doc gets a working directory of its own. It shows the parts of the repository the docs
read (so `helm install fma charts/fma` and `kubectl apply -f crds/examples/` work as written)
and receives the files of `file` markers and whatever the commands write. Commands run in bash
with `set -euo pipefail`, with `kubectl` (the local cluster's, through KUBECONFIG), the docs'
`helm` (`tests.docs.helm_shim`) and fma's console scripts on PATH."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import kubernetes.client
from kubernetes.client.rest import ApiException

from localcluster.binaries import k8s_binary
from localcluster.controlplane import LocalCluster
from localcluster.fma.webhook_process import Webhook
from localcluster.stack import install_crds
from tests.docs.markdown import REPO, Block, Doc, Marker

LINKED: Final = ("charts", "crds", "docs", "bench", "tests", ".venv")
"""What the working directory shows of the repository, for reading (a doc's commands write files
only into the working directory itself; nothing else of the checkout is linked)."""
BLOCK_TIMEOUT_S: Final = 180.0
NAMESPACE_GONE_TIMEOUT_S: Final = 90.0


class BlockFailedError(AssertionError):
    """A marked block did not do what its marker says."""


class DocRunner:
    """The working directory, environment and cluster state of one doc's run."""

    def __init__(self, cluster: LocalCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.transcript = workdir / "transcript.txt"
        self.last_output = ""
        self.cwd = workdir / "work"
        self.cwd.mkdir(parents=True)
        for name in LINKED:
            (self.cwd / name).symlink_to(REPO / name)
        bin_dir = workdir / "bin"
        bin_dir.mkdir()
        (bin_dir / "kubectl").symlink_to(k8s_binary("kubectl"))
        helm = bin_dir / "helm"
        helm.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.docs.helm_shim "$@"\n')
        helm.chmod(0o755)
        path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
        self.env = {
            **os.environ,
            "PATH": path,
            "KUBECONFIG": str(cluster.kubeconfig),
            "PYTHONPATH": str(REPO),
            "FMA_DOCS_HELM_STATE": str(workdir / "helm-releases.json"),
            "FMA_DOCS_KUBE_VERSION": "v1.20.2",
        }

    def bash(
        self, script: str, timeout: float = BLOCK_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run_doc(self, doc: Doc) -> list[str]:
        """Runs every step; returns what ran, one line each (for the test's report)."""
        ran: list[str] = []
        for step in doc.steps:
            if isinstance(step, Marker):
                if step.kind == "setup":
                    self._setup(doc, step)
                    ran.append(f"{doc.path.name}:{step.line} setup")
                continue
            marker = step.marker
            if marker is None:
                continue
            if marker.kind == "file":
                target = self.cwd / marker.argument
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(step.text)
            elif marker.kind in ("run", "fails"):
                self.run_block(step, marker)
                ran.append(f"{step.where} {marker.kind}")
            elif marker.kind == "output":
                self.check_output(step)
        return ran

    def _setup(self, doc: Doc, marker: Marker) -> None:
        result = self.bash(marker.argument)
        if result.returncode != 0:
            raise BlockFailedError(
                f"{doc.path.name}:{marker.line}: hidden setup failed ({result.returncode}):\n"
                f"{marker.argument}\n{result.stdout}{result.stderr}"
            )

    def run_block(self, block: Block, marker: Marker) -> None:
        deadline = time.monotonic() + marker.retry_s
        while True:
            problem = self._attempt(block, marker)
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise BlockFailedError(f"{block.where}: {problem}\n--- block:\n{block.text}")
            time.sleep(1)

    def check_output(self, block: Block) -> None:
        """Every line of an output sample is a line the last command printed."""
        printed = {line.rstrip() for line in self.last_output.splitlines()}
        missing = [line for line in block.text.splitlines() if line.strip() and line not in printed]
        if missing:
            raise BlockFailedError(
                f"{block.where}: the sample shows lines the command did not print: {missing}\n"
                f"--- printed:\n{self.last_output}"
            )

    def _attempt(self, block: Block, marker: Marker) -> str | None:
        result = self.bash(block.text)
        output = result.stdout + result.stderr
        self.last_output = output
        with self.transcript.open("a") as transcript:
            transcript.write(f"### {block.where} (exit {result.returncode})\n{block.text}")
            transcript.write(f"--- output\n{output}\n")
        if marker.kind == "run" and result.returncode != 0:
            return f"exited {result.returncode}, expected success\n--- output:\n{output}"
        if marker.kind == "fails" and result.returncode == 0:
            return f"succeeded, expected a failure\n--- output:\n{output}"
        missing = [text for text in marker.expects if text not in output]
        if missing:
            return f"output lacks {missing}\n--- output:\n{output}"
        return None


@contextlib.contextmanager
def environment(names: set[str], cluster: LocalCluster, workdir: Path) -> Iterator[None]:
    """Starts what a doc's `environment` marker asks for; only `webhook` exists."""
    unknown = names - {"webhook"}
    if unknown:
        raise ValueError(f"unknown doc environment {sorted(unknown)}")
    if "webhook" not in names:
        yield
        return
    # A webhook process with a registration of its own (unique names), standing in for the
    # chart's webhook Deployment, which cannot run here (no image, no cert-manager).
    webhook = Webhook(cluster, workdir / "webhook")
    try:
        webhook.start()
        yield
    finally:
        webhook.close()


class ClusterState:
    """What a doc may leave behind, and its removal: namespaces and webhook configurations it
    created. CRDs (which the uninstall steps delete) are put back before each doc."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.api = cluster.api_client()
        install_crds(cluster)
        self.namespaces = self._namespaces()
        self.configurations = self._configurations()

    def _namespaces(self) -> set[str]:
        core = kubernetes.client.CoreV1Api(self.api)
        return {ns.metadata.name for ns in core.list_namespace().items}

    def _configurations(self) -> set[tuple[str, str]]:
        admission = kubernetes.client.AdmissionregistrationV1Api(self.api)
        mutating = admission.list_mutating_webhook_configuration().items
        validating = admission.list_validating_webhook_configuration().items
        return {("mutating", c.metadata.name) for c in mutating} | {
            ("validating", c.metadata.name) for c in validating
        }

    def restore(self) -> None:
        admission = kubernetes.client.AdmissionregistrationV1Api(self.api)
        for kind, name in self._configurations() - self.configurations:
            with contextlib.suppress(ApiException):
                if kind == "mutating":
                    admission.delete_mutating_webhook_configuration(name)
                else:
                    admission.delete_validating_webhook_configuration(name)
        core = kubernetes.client.CoreV1Api(self.api)
        created = self._namespaces() - self.namespaces
        for namespace in created:
            for pod in core.list_namespaced_pod(namespace).items:
                if pod.metadata.finalizers:
                    with contextlib.suppress(ApiException):
                        core.patch_namespaced_pod(
                            pod.metadata.name, namespace, {"metadata": {"finalizers": None}}
                        )
            with contextlib.suppress(ApiException):
                core.delete_namespace(namespace)
        deadline = time.monotonic() + NAMESPACE_GONE_TIMEOUT_S
        while created & self._namespaces():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"namespaces not deleted: {sorted(created & self._namespaces())}"
                )
            time.sleep(0.5)
        self.api.close()
