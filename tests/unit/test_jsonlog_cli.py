"""`jsonlog.cli.settings_from`: flags become a settings dataclass by field name."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from jsonlog.cli import settings_from


@dataclass(frozen=True, kw_only=True)
class _Settings:
    host: str = "0.0.0.0"
    port: int = 80
    names: frozenset[str] = frozenset()
    retries: int = 3


def test_fields_come_from_flags_of_the_same_name_and_the_rest_keep_their_defaults() -> None:
    args = argparse.Namespace(host="::", port=8080, names=["a", "a"], token_file="t")
    settings = settings_from(_Settings, args, names=frozenset(args.names))
    assert settings == _Settings(host="::", port=8080, names=frozenset({"a"}))
