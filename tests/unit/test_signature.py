"""The swap signature (issue 16): each field that must block a swap blocks it, nothing else does.

The checkpoints are written here by hand in the layout `localcluster/testing/tiny_model.py`
saves (config, tokenizer files, one safetensors file), so this needs neither torch nor vLLM:
checkpoint B is A with other tensor values (a fine-tune: swap-compatible), the others each
change one thing that vLLM fixes at start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest

from contract.launcher import VllmConfig, swap_key, swap_model, swap_options
from launcher.signature import (
    FIELDS,
    Signature,
    SignatureCache,
    Swappable,
    compute,
    safetensors_header,
)

SHAPES = {"lm_head.weight": [8, 4], "model.embed_tokens.weight": [8, 4]}
OPTIONS = "--enforce-eager --dtype float32 --served-model-name tiny --port 8005"


def write_safetensors(path: Path, shapes: dict[str, list[int]], fill: int) -> None:
    """A float32 safetensors file whose every byte of data is `fill` (the values differ, the
    header does not)."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = 4
        for n in shape:
            size *= n
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes([fill]) * offset)


def checkpoint(
    root: Path, name: str, *, fill: int = 1, shapes: dict[str, list[int]] | None = None
) -> Path:
    model = root / name
    model.mkdir()
    config = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 4,
        "rope_parameters": {"rope_theta": 10000.0},
        "_name_or_path": str(model),
        "transformers_version": "5.19.0",
    }
    (model / "config.json").write_text(json.dumps(config))
    (model / "generation_config.json").write_text(json.dumps({"bos_token_id": 0}))
    (model / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0}}}))
    (model / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "</s>", "chat_template": "{{ messages }}"})
    )
    write_safetensors(model / "model.safetensors", shapes or SHAPES, fill)
    return model


def config(
    options: str, env: dict[str, str] | None = None, gpus: list[str] | None = None
) -> VllmConfig:
    return VllmConfig(options=options, env_vars=env, gpu_uuids=gpus or ["GPU-0"])


def sig(
    model: Path | str,
    options: str = OPTIONS,
    *,
    env: dict[str, str] | None = None,
    gpus: list[str] | None = None,
    cache: SignatureCache | None = None,
) -> Signature:
    result = compute(config(f"{model} {options}", env, gpus), cache or SignatureCache())
    assert isinstance(result, Swappable), result
    return result.signature


def edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_another_checkpoint_of_the_same_shape_is_compatible(tmp_path: Path) -> None:
    a, b = checkpoint(tmp_path, "a", fill=1), checkpoint(tmp_path, "b", fill=2)
    assert (a / "model.safetensors").read_bytes() != (b / "model.safetensors").read_bytes()
    assert sig(a).differences(sig(b)) == []
    assert sig(a).digest == sig(b).digest


def test_the_weights_path_may_be_given_as_model_flag(tmp_path: Path) -> None:
    a, b = checkpoint(tmp_path, "a"), checkpoint(tmp_path, "b", fill=2)
    cache = SignatureCache()
    positional = compute(config(f"{a} {OPTIONS}"), cache)
    flagged = compute(config(f"--model {b} {OPTIONS}"), cache)
    assert isinstance(positional, Swappable) and isinstance(flagged, Swappable)
    assert positional.signature == flagged.signature
    assert flagged.model_dir == b


def _blocked(tmp_path: Path, field: str, change: object) -> None:
    a, b = checkpoint(tmp_path, "a"), checkpoint(tmp_path, "b", fill=2)
    assert callable(change)
    options = change(b)
    first = sig(a)
    second = sig(b, options) if isinstance(options, str) else sig(b)
    assert first.differences(second) == [field]


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("config", lambda b: edit_json(b / "config.json", rope_parameters={"rope_theta": 5e5})),
        ("config", lambda b: edit_json(b / "config.json", hidden_size=8)),
        ("tokenizer", lambda b: edit_json(b / "tokenizer.json", model={"vocab": {"b": 0}})),
        ("tokenizer", lambda b: edit_json(b / "tokenizer_config.json", eos_token="<eos>")),
        ("tokenizer", lambda b: (b / "special_tokens_map.json").write_text("{}")),
        ("chat_template", lambda b: edit_json(b / "tokenizer_config.json", chat_template="x")),
        ("chat_template", lambda b: (b / "chat_template.jinja").write_text("{{ x }}")),
        ("generation_config", lambda b: edit_json(b / "generation_config.json", top_p=0.5)),
        ("options", lambda _b: OPTIONS.replace("tiny", "other")),
        ("options", lambda _b: OPTIONS.replace("8005", "8006")),
        ("options", lambda _b: OPTIONS + " --max-model-len 256"),
    ],
)
def test_each_field_that_vllm_fixes_at_start_up_blocks_a_swap(
    tmp_path: Path, field: str, change: object
) -> None:
    _blocked(tmp_path, field, change)


def test_names_that_only_say_where_it_was_saved_do_not_block(tmp_path: Path) -> None:
    a, b = checkpoint(tmp_path, "a"), checkpoint(tmp_path, "b", fill=2)
    edit_json(b / "config.json", _name_or_path="elsewhere", transformers_version="9")
    assert sig(a).differences(sig(b)) == []


def test_another_shape_blocks_through_the_header_map(tmp_path: Path) -> None:
    a = checkpoint(tmp_path, "a")
    wider = checkpoint(tmp_path, "wider", shapes={**SHAPES, "lm_head.weight": [8, 5]})
    renamed = checkpoint(tmp_path, "renamed", shapes={"lm_head.w": [8, 4], **SHAPES})
    assert sig(a).differences(sig(wider)) == ["weights"]
    assert sig(a).differences(sig(renamed)) == ["weights"]


def test_the_dtype_blocks(tmp_path: Path) -> None:
    a, b = checkpoint(tmp_path, "a"), checkpoint(tmp_path, "b")
    raw = (b / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = raw[8 : 8 + length].replace(b'"F32"', b'"F16"')
    (b / "model.safetensors").write_bytes(raw[:8] + header + raw[8 + length :])
    assert safetensors_header(b / "model.safetensors")["lm_head.weight"] == ((8, 4), "F16")
    assert sig(a).differences(sig(b)) == ["weights"]


def test_environment_and_gpus_block(tmp_path: Path) -> None:
    a, b = checkpoint(tmp_path, "a"), checkpoint(tmp_path, "b", fill=2)
    assert sig(a).differences(sig(b, gpus=["GPU-1"])) == ["options"]
    assert sig(a).differences(sig(b, env={"VLLM_X": "1"})) == ["options"]


def test_without_a_served_name_the_path_is_the_name(tmp_path: Path) -> None:
    a, b = checkpoint(tmp_path, "a"), checkpoint(tmp_path, "b", fill=2)
    bare = "--enforce-eager --port 8005"
    assert sig(a, bare).differences(sig(b, bare)) == ["options"]
    found = swap_options(config("--model /m --port 1"))
    assert found == (
        "/m",
        {"argv": ["--port", "1", "--served-model-name", "/m"], "env": {}, "gpus": ["GPU-0"]},
    )


def test_a_hub_id_or_a_broken_directory_has_no_signature(tmp_path: Path) -> None:
    cache = SignatureCache()
    assert "hub id" in str(compute(config("org/model --port 1"), cache))
    assert "no model" in str(compute(config("--port 1"), cache))
    assert "no model" in str(compute(config("'unbalanced"), cache))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "config.json" in str(compute(config(str(empty)), cache))
    a = checkpoint(tmp_path, "a")
    (a / "model.safetensors").unlink()
    assert "safetensors" in str(compute(config(str(a)), cache))
    b = checkpoint(tmp_path, "b")
    (b / "model.safetensors").write_bytes(b"\xff" * 16)
    assert "header" in str(compute(config(str(b)), cache))


def test_the_model_is_found_after_switches_and_valued_flags() -> None:
    def model(*argv: str) -> str | None:
        found = swap_model(list(argv))
        return found[0] if found else None

    assert model("--enforce-eager", "/m", "--port", "1") == "/m"
    assert model("--dtype", "float32", "/m") == "/m"
    assert model("--dtype=float32", "/m") == "/m"
    assert model("/m", "--model", "/n") == "/n"
    assert model("--port", "1") is None


def test_the_controller_sees_the_same_options_key_as_the_launcher() -> None:
    """The controller compares `swap_key`s of what it asks for and what a sleeper runs: the
    launcher's stored env carries `CUDA_VISIBLE_DEVICES`, the controller's config does not."""
    asked = config(f"/a {OPTIONS}")
    stored = VllmConfig(
        options=f"/b {OPTIONS}", gpu_uuids=["GPU-0"], env_vars={"CUDA_VISIBLE_DEVICES": "0"}
    )
    assert swap_key(asked) == swap_key(stored) is not None
    assert swap_key(config(f"/b {OPTIONS} --max-model-len 9")) != swap_key(asked)
    assert swap_key(config(f"/b {OPTIONS}", gpus=["GPU-1"])) != swap_key(asked)
    assert swap_key(config("--port 1")) is None


def test_the_files_are_read_once_per_listing(tmp_path: Path) -> None:
    a = checkpoint(tmp_path, "a")
    cache = SignatureCache()
    first = sig(a, cache=cache)
    sig(a, cache=cache)
    assert cache.computed == 1
    generation = a / "generation_config.json"
    generation.write_text(json.dumps({"bos_token_id": 1}))
    stat = generation.stat()
    os.utime(generation, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert sig(a, cache=cache).differences(first) == ["generation_config"]
    assert cache.computed == 2


def test_a_copied_checkpoint_is_compatible_with_its_source(tmp_path: Path) -> None:
    a = checkpoint(tmp_path, "a")
    shutil.copytree(a, tmp_path / "copy")
    assert sig(a) == sig(tmp_path / "copy")
    assert set(sig(a).fields) == set(FIELDS)
