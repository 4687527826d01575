"""Swap compatibility: the architecture signature of an instance's model and options (issue 16).

A sleeping vLLM engine can take new weights in place (`reload_weights`) only when everything it
fixed at start-up stays right for them: the model's architecture and tensor shapes, the
tokenizer, chat template and generation defaults (read once at start-up), and every vLLM
option. vLLM does not check this for us: a checkpoint of another shape breaks the engine, and
one with another `rope_theta` "succeeds" while silently keeping the old config. So the launcher
decides before it calls vLLM at all, by comparing signatures:

- `config`: `config.json` without `_name_or_path` and `transformers_version`;
- `tokenizer`: the hashes of the tokenizer files;
- `chat_template`: the chat template (its own file, or the one in `tokenizer_config.json`);
- `generation_config`: `generation_config.json`;
- `weights`: the safetensors header map, tensor name → (shape, dtype); only each file's header
  is read (8 bytes of length, then JSON), never the tensors;
- `options`: every vLLM option except the weights path, the environment and the GPUs, so the
  served model name must match too (without `--served-model-name` vLLM serves the path as the
  name, so two paths never match).

Only a model that is a local directory has a signature: a hub id names files the launcher does
not hold, so it is never swapped. Reading the files costs milliseconds for a tiny model and
more for a large tokenizer, so the file part is cached by the directory's listing (names, sizes
and modification times): computed once per model directory, never again on the hot path.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from contract.launcher import VllmConfig, swap_options

FIELDS: Final = ("config", "tokenizer", "chat_template", "generation_config", "weights", "options")
"""The fields of a signature, in the order a mismatch is reported."""

_CONFIG_VOLATILE: Final = ("_name_or_path", "transformers_version")
"""Keys of `config.json` that name where and by what the checkpoint was saved, not what it is."""
_TOKENIZER_FILES: Final = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
)
_CHAT_TEMPLATE_FILES: Final = ("chat_template.jinja", "chat_template.json")
_MAX_HEADER: Final = 100 << 20
"""A safetensors header larger than this is not one (the format's own limit is 100 MB)."""


class SignatureError(ValueError):
    """The model directory cannot be read as a checkpoint (the message says which file)."""


@dataclass(frozen=True, slots=True)
class Signature:
    """An instance's swap signature: one hash per field, and the digest over all of them."""

    fields: Mapping[str, str]

    @property
    def digest(self) -> str:
        """The hex SHA-256 of all fields: equal digests ⇔ swap-compatible."""
        return _hash([[name, self.fields.get(name, "")] for name in FIELDS])

    def differences(self, other: Signature) -> list[str]:
        """The fields that differ, in `FIELDS` order (empty: the two are swap-compatible)."""
        return [name for name in FIELDS if self.fields.get(name) != other.fields.get(name)]


def _hash(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_hash(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _json_file(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SignatureError(f"{path.name}: not readable JSON: {err}") from None


def safetensors_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Tensor name → (shape, dtype) from one safetensors file's header, without its data."""
    try:
        with path.open("rb") as file:
            raw = file.read(8)
            if len(raw) != 8:
                raise SignatureError(f"{path.name}: shorter than a safetensors header")
            (length,) = struct.unpack("<Q", raw)
            if length > _MAX_HEADER:
                raise SignatureError(f"{path.name}: header of {length} bytes is not safetensors")
            header = json.loads(file.read(length))
    except (OSError, ValueError) as err:
        raise SignatureError(f"{path.name}: unreadable safetensors header: {err}") from None
    if not isinstance(header, dict):
        raise SignatureError(f"{path.name}: the safetensors header is not a JSON object")
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for name, entry in header.items():
        if name == "__metadata__" or not isinstance(entry, dict):
            continue
        out[name] = (tuple(int(n) for n in entry.get("shape") or ()), str(entry.get("dtype")))
    return out


def _chat_template(model_dir: Path, tokenizer_config: Any) -> object:
    for name in _CHAT_TEMPLATE_FILES:
        if (model_dir / name).is_file():
            return [name, _file_hash(model_dir / name)]
    if isinstance(tokenizer_config, dict):
        return tokenizer_config.get("chat_template")
    return None


def file_fields(model_dir: Path) -> dict[str, str]:
    """The fields read from the model directory (all but `options`)."""
    config = _json_file(model_dir / "config.json")
    if not isinstance(config, dict):
        raise SignatureError("config.json: missing or not a JSON object")
    for key in _CONFIG_VOLATILE:
        config.pop(key, None)
    weights: dict[str, tuple[tuple[int, ...], str]] = {}
    shards = sorted(model_dir.glob("*.safetensors"))
    if not shards:
        raise SignatureError("no *.safetensors file (other formats are not swapped)")
    for shard in shards:
        weights.update(safetensors_header(shard))
    tokenizer_config = _json_file(model_dir / "tokenizer_config.json")
    if isinstance(tokenizer_config, dict):
        tokenizer_config = {k: v for k, v in tokenizer_config.items() if k != "chat_template"}
    tokenizer = {name: _file_hash(model_dir / name) for name in _TOKENIZER_FILES}
    tokenizer["tokenizer_config.json"] = _hash(tokenizer_config)
    return {
        "config": _hash(config),
        "tokenizer": _hash(tokenizer),
        "chat_template": _hash(
            _chat_template(model_dir, _json_file(model_dir / "tokenizer_config.json"))
        ),
        "generation_config": _hash(_json_file(model_dir / "generation_config.json")),
        "weights": _hash(
            sorted([name, list(shape), dtype] for name, (shape, dtype) in weights.items())
        ),
    }


def _listing(model_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """What the cache is keyed by: every entry's name, size and modification time."""
    entries = []
    for entry in sorted(model_dir.iterdir()):
        stat = entry.stat()
        entries.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


class SignatureCache:
    """File fields per model directory, keyed by (path, listing): a rewritten file changes its
    size or modification time, so a stale entry is never used."""

    def __init__(self, limit: int = 64) -> None:
        self._entries: dict[tuple[str, tuple[tuple[str, int, int], ...]], dict[str, str]] = {}
        self._limit = limit
        self.computed = 0
        """How many times the files were read (a test checks the cache)."""

    def file_fields(self, model_dir: Path) -> dict[str, str]:
        key = (str(model_dir.resolve()), _listing(model_dir))
        cached = self._entries.get(key)
        if cached is None:
            cached = file_fields(model_dir)
            self.computed += 1
            if len(self._entries) >= self._limit:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = cached
        return cached


@dataclass(frozen=True, slots=True)
class Swappable:
    """An instance's signature and the local model directory it was computed from."""

    signature: Signature
    model_dir: Path


def compute(config: VllmConfig, cache: SignatureCache) -> Swappable | str:
    """The signature of an instance started with `config`, or why it has none (a hub id, a
    directory that is not a safetensors checkpoint). The options field is
    `contract.launcher.swap_options`, which the controller compares too."""
    found = swap_options(config)
    if found is None:
        return "the options name no model"
    model, options = found
    model_dir = Path(model)
    if not model_dir.is_dir():
        return f"model {model!r} is not a local directory (a hub id is never swapped)"
    try:
        fields = dict(cache.file_fields(model_dir))
    except (OSError, ValueError, TypeError) as err:  # SignatureError is a ValueError
        return f"model directory {model}: {err}"
    fields["options"] = _hash(options)
    return Swappable(Signature(fields), model_dir)
