"""The committed CRD YAML matches the models, and `fma-gen-crds` reports and fixes drift."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import crds
from crds.definitions import CRDS_DIR, DEFINITIONS
from crds.generate import HEADER, main, render, stale_files, write_all


def test_committed_crds_are_current() -> None:
    stale = stale_files(CRDS_DIR)
    assert not stale, f"stale CRD files {[p.name for p in stale]}: run `fma-gen-crds`"


def test_crd_files_are_the_generated_ones() -> None:
    assert tuple(d.path for d in DEFINITIONS) == crds.CRD_FILES
    assert sorted(CRDS_DIR.glob("*.yaml")) == sorted(crds.CRD_FILES)


def test_render_is_one_yaml_document_with_header() -> None:
    for definition in DEFINITIONS:
        text = render(definition)
        assert text.startswith(HEADER)
        assert list(yaml.safe_load_all(text)) == [definition.manifest()]


def test_check_names_missing_and_edited_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    for definition in DEFINITIONS:
        assert definition.path.name in err
    assert "fma-gen-crds --out-dir" in err

    assert main(["--out-dir", str(tmp_path)]) == 0
    assert main(["--check", "--out-dir", str(tmp_path)]) == 0

    edited = tmp_path / DEFINITIONS[1].path.name
    edited.write_text(edited.read_text() + "# local edit\n")
    capsys.readouterr()
    assert main(["--check", "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("out of date") == 1
    assert edited.name in err


def test_write_only_rewrites_changed_files(tmp_path: Path) -> None:
    assert len(write_all(tmp_path)) == len(DEFINITIONS)
    assert write_all(tmp_path) == []
