"""Command-line flags and where the bearer token comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher.cli import parse_args
from launcher.settings import DEFAULT_ENTRY, Settings


def test_defaults_match_the_reference_where_it_has_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FMA_LAUNCHER_TOKEN", raising=False)
    monkeypatch.delenv("FMA_LAUNCHER_TOKEN_FILE", raising=False)
    settings = parse_args([])
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 8001, "info")
    assert (settings.mock_gpus, settings.mock_gpu_count) == (False, 8)
    assert (settings.start_timeout, settings.stop_grace) == (600.0, 10.0)
    assert settings.token is None
    assert settings.instance_entry == DEFAULT_ENTRY
    assert settings == Settings(), "every flag defaults to its Settings default"


def test_token_from_file_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abc\n")
    monkeypatch.setenv("FMA_LAUNCHER_TOKEN", "from-env")
    assert parse_args(["--token-file", str(token_file)]).token == "abc"
    assert parse_args([]).token == "from-env"
    monkeypatch.setenv("FMA_LAUNCHER_TOKEN_FILE", str(token_file))
    assert parse_args([]).token == "abc"


def test_an_empty_token_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SystemExit, match="empty"):
        parse_args(["--token-file", str(empty)])
