"""Tiny OCI image archives made locally, for a node that can reach no registry.

`busybox_image` writes an OCI image layout tarball (what `ctr images import` reads) whose only
layer is Debian's static busybox (`busybox-static`) with a link for each of its applets under
`/bin`. The real node uses one as its pause (sandbox) image, and tests use one as a container
image with a shell, `env` and an HTTP server (`httpd`), so they need no image from anyone else.
The archive is deterministic (fixed timestamps and order), so the same inputs give the same
digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

BUSYBOX: Final = Path("/bin/busybox")
"""Debian's `busybox-static` installs its static binary here."""
_ARCHES: Final = {"x86_64": "amd64", "aarch64": "arm64"}


def oci_arch() -> str:
    machine = platform.machine()
    return _ARCHES.get(machine, machine)


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return sorted({line.strip() for line in out.splitlines() if line.strip()} - {"busybox"})


def _busybox_layer(busybox: Path) -> bytes:
    """An uncompressed layer: /bin/busybox, a link per applet, and /tmp."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
            tar.addfile(info)

        add_dir("bin")
        add_dir("tmp", 0o1777)
        data = busybox.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
        for applet in _applets(busybox):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode, link.mtime = tarfile.SYMTYPE, "busybox", 0o777, 0
            tar.addfile(link)
    return buffer.getvalue()


def _blob(tar: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest.removeprefix('sha256:')}")
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))
    return digest, len(data)


def busybox_image(
    path: Path,
    name: str,
    *,
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = ("sh",),
    env: Sequence[str] = ("PATH=/bin",),
    busybox: Path = BUSYBOX,
) -> Path:
    """Writes an OCI archive of image `name` (e.g. `fma.local/pause:1`) to `path`."""
    if not busybox.is_file():
        raise FileNotFoundError(f"{busybox} is missing: install Debian's `busybox-static` package")
    layer = _busybox_layer(busybox)
    config = {
        "architecture": oci_arch(),
        "os": "linux",
        "config": {"Env": list(env), "Entrypoint": list(entrypoint) or None, "Cmd": list(cmd)},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created_by": "fma localcluster.realnode.oci (busybox-static)"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        layer_digest, layer_size = _blob(tar, layer)
        config_digest, config_size = _blob(tar, json.dumps(config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        }
        manifest_digest, manifest_size = _blob(tar, json.dumps(manifest, sort_keys=True).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "platform": {"architecture": oci_arch(), "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": tag,
                    },
                }
            ],
        }
        for member, data in (
            ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
            ("index.json", json.dumps(index, sort_keys=True).encode()),
        ):
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return path
