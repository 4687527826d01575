"""From a container's image and spec to the argv, cwd and image identity of a local process.

The argv follows Docker's rules as Kubernetes documents them ("Define a Command and Arguments
for a Container"):

| container.command | container.args | runs                          |
|-------------------|----------------|-------------------------------|
| unset             | unset          | image entrypoint + image cmd  |
| set               | unset          | command                       |
| unset             | set            | image entrypoint + args       |
| set               | set            | command + args                |

An empty list counts as unset (the kubelet tests `len(...) != 0`). Only the container's own
command and args are `$(VAR)`-expanded, with the container's environment; the image's entrypoint
and cmd are taken literally, as a container runtime does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from localcluster.kubelet.config import ImageConfig
from localcluster.kubelet.expansion import expand, mapping_for
from localcluster.kubelet.podspec import ContainerSpec

_DEFAULT_REGISTRY = "docker.io/"
_OFFICIAL_PREFIX = "library/"


def normalize_image(image: str) -> str:
    """`python:3.11` and `docker.io/library/python:3.11` name one image; no tag means `latest`."""
    name = image.removeprefix(_DEFAULT_REGISTRY).removeprefix(_OFFICIAL_PREFIX)
    last = name.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        name += ":latest"
    return name


def find_image(images: Mapping[str, ImageConfig], image: str) -> ImageConfig | None:
    """The config entry for `image`: an exact key first, else one naming the same image, else a
    `repository:*` key matching any tag of that repository (so a config need not follow every
    release of fma's own image)."""
    if image in images:
        return images[image]
    wanted = normalize_image(image)
    for key, entry in images.items():
        if normalize_image(key) == wanted:
            return entry
    repository = wanted.split("@", 1)[0].rsplit(":", 1)[0]
    for key, entry in images.items():
        if key.endswith(":*") and normalize_image(key[:-2]).rsplit(":", 1)[0] == repository:
            return entry
    return None


def image_not_found_message(image: str, config_path: str) -> str:
    """The ErrImagePull message: which image, and what to add to which file."""
    return (
        f'image "{image}" is not in the hollow kubelet\'s image map; add an entry under '
        f'`images: {{"{image}": {{entrypoint: [...], cmd: [...]}}}}` in {config_path}'
    )


def image_id(image: str, entry: ImageConfig) -> str:
    """A stable digest standing for the image, changing whenever its mapping does."""
    body = json.dumps(entry.model_dump(mode="json"), sort_keys=True).encode()
    digest = hashlib.sha256(image.encode() + b"\0" + body).hexdigest()
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
    return f"{repository}@sha256:{digest}"


def resolve_argv(container: ContainerSpec, image: ImageConfig, env: Mapping[str, str]) -> list[str]:
    """The process's argv per the table in the module docstring."""
    lookup = mapping_for(env)
    command = [expand(part, lookup) for part in container.command]
    args = [expand(part, lookup) for part in container.args]
    if command:
        return command + args
    if args:
        return list(image.entrypoint) + args
    return list(image.entrypoint) + list(image.cmd)


def resolve_cwd(container: ContainerSpec, image: ImageConfig, default: str) -> str:
    """container.workingDir, else the image's WORKDIR, else `default` (the container's own dir)."""
    return container.working_dir or image.working_dir or default


def find_executable(argv0: str, env: Mapping[str, str], cwd: str) -> str | None:
    """argv[0] as exec would find it: a path (relative to cwd) or a search of the env's PATH."""
    if "/" in argv0:
        path = Path(cwd) / argv0
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(argv0, path=env.get("PATH", os.defpath))


def describe_missing(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """containerd's StartError message for an executable that cannot be found."""
    if not argv:
        return (
            "no command specified: the image has no entrypoint or cmd and the container sets none"
        )
    if "/" in argv[0]:
        return f'exec: "{argv[0]}": stat {argv[0]}: no such file or directory, or not executable'
    return f'exec: "{argv[0]}": executable file not found in $PATH (PATH={env.get("PATH", "")})'
