"""The fork server's learned preload (`launcher.preload`): learn once, skip what fails."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from launcher import preload


def test_a_child_writes_its_modules_once_it_started_an_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / preload.file_name("pkg.mod:serve")
    remember = preload.start_learning(path, after_s=3600)
    remember()  # ended at once (say, a bad flag): it imported nothing, so it teaches nothing
    assert not path.exists()
    for index in range(preload.MIN_NEW_MODULES):  # what an engine's start imports
        monkeypatch.setitem(sys.modules, f"fma_fake_module_{index}", sys)
    remember()
    names = json.loads(path.read_text())
    assert "json" in names and "__main__" not in names
    path.write_text('["kept"]')
    preload.start_learning(path, after_s=0.01)  # learned already: nothing is rewritten
    time.sleep(0.1)
    assert json.loads(path.read_text()) == ["kept"]


def test_each_entry_learns_for_itself() -> None:
    assert preload.file_name("a:serve") != preload.file_name("b:serve")
    assert preload.file_name("a:serve") == preload.file_name("a:serve")


def test_only_missing_modules_are_imported_and_failures_are_counted(tmp_path: Path) -> None:
    path = tmp_path / preload.file_name("pkg.mod:serve")
    sys.modules.pop("colorsys", None)
    path.write_text(json.dumps(["json", "colorsys", "no_such_module_fma", 7]))
    missing = preload.learned(path)
    assert missing == ["colorsys", "no_such_module_fma"]
    assert preload.import_all(missing) == (1, 1)
    assert "colorsys" in sys.modules
    for broken in ("{not json", '{"a": 1}'):
        path.write_text(broken)
        assert preload.learned(path) == []
    assert preload.learned(None) == [] and preload.learned(tmp_path / "absent") == []
    preload.forget(path)
    assert not path.exists()
