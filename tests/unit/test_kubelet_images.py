"""Image map lookup and argv resolution with Docker/Kubernetes rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.kubelet.config import ImageConfig
from localcluster.kubelet.images import (
    describe_missing,
    find_executable,
    find_image,
    image_id,
    image_not_found_message,
    normalize_image,
    resolve_argv,
    resolve_cwd,
)
from localcluster.kubelet.podspec import ContainerSpec

IMAGE = ImageConfig(entrypoint=["/entry"], cmd=["--default"], working_dir="/img")


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ((), (), ["/entry", "--default"]),
        (("run",), (), ["run"]),
        ((), ("--flag",), ["/entry", "--flag"]),
        (("run",), ("--flag",), ["run", "--flag"]),
    ],
)
def test_argv_follows_the_documented_table(
    command: tuple[str, ...], args: tuple[str, ...], expected: list[str]
) -> None:
    container = ContainerSpec("c", "img", command=command, args=args)
    assert resolve_argv(container, IMAGE, {}) == expected


def test_only_the_containers_own_parts_are_expanded() -> None:
    image = ImageConfig(entrypoint=["/entry", "$(X)"], cmd=["$(X)"])
    container = ContainerSpec("c", "img", args=("$(X)", "$$(X)", "$(UNSET)"))
    assert resolve_argv(container, image, {"X": "x"}) == ["/entry", "$(X)", "x", "$(X)", "$(UNSET)"]
    assert resolve_argv(ContainerSpec("c", "img"), image, {"X": "x"}) == ["/entry", "$(X)", "$(X)"]


def test_working_directory_precedence() -> None:
    assert resolve_cwd(ContainerSpec("c", "i", working_dir="/w"), IMAGE, "/d") == "/w"
    assert resolve_cwd(ContainerSpec("c", "i"), IMAGE, "/d") == "/img"
    assert resolve_cwd(ContainerSpec("c", "i"), ImageConfig(), "/d") == "/d"


def test_image_names_are_normalized_like_docker() -> None:
    assert normalize_image("python") == "python:latest"
    assert normalize_image("docker.io/library/python:3.11") == "python:3.11"
    assert normalize_image("registry:5000/team/app") == "registry:5000/team/app:latest"
    images = {"python:3.11": IMAGE, "ghcr.io/x/y": ImageConfig()}
    assert find_image(images, "docker.io/library/python:3.11") is IMAGE
    assert find_image(images, "ghcr.io/x/y:latest") is images["ghcr.io/x/y"]
    assert find_image(images, "python:3.12") is None


def test_unknown_image_message_names_image_and_config() -> None:
    message = image_not_found_message("acme/app:2", "/etc/kubelet.yaml")
    assert '"acme/app:2"' in message
    assert "images:" in message
    assert "/etc/kubelet.yaml" in message


def test_image_id_is_stable_and_tracks_the_mapping() -> None:
    first = image_id("acme/app:2", IMAGE)
    assert first == image_id("acme/app:2", IMAGE)
    assert first.startswith("acme/app@sha256:")
    assert image_id("acme/app:2", ImageConfig(cmd=["other"])) != first


def test_executables_resolve_through_the_container_path(tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    env = {"PATH": f"{tool.parent}:/usr/bin"}
    assert find_executable("tool", env, "/") == str(tool)
    assert find_executable("./bin/tool", env, str(tmp_path)) == str(tmp_path / "bin" / "tool")
    assert find_executable("missing-tool", env, "/") is None
    assert "executable file not found in $PATH" in describe_missing(["missing-tool"], env)
    assert "no command specified" in describe_missing([], env)


def test_a_wildcard_tag_matches_any_tag_of_its_repository() -> None:
    entry = ImageConfig(path=["/opt/fma/bin"])
    images = {"ghcr.io/llm-d/fma:*": entry}
    assert find_image(images, "ghcr.io/llm-d/fma:v0.1.0") is entry
    assert find_image(images, "ghcr.io/llm-d/fma") is entry
    assert find_image(images, "ghcr.io/llm-d/other:v0.1.0") is None
