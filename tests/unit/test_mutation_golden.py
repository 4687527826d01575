"""Golden files: realistic vLLM Pods and the exact result of `mutate_pod` for each.

Each case is a folder under tests/golden/mutation/ with `input.yaml` (the Pod), `context.yaml`
(namespace, its labels, InferenceServerConfigs, the owner's selector) and `expected.json` (the
whole MutationResult). Direct-mode cases also keep `server-patch.yaml`, the annotation's text as
the controller reads it, so a review sees the provider's container without JSON escapes.

After an intended change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_mutation_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from crds.models import InferenceServerConfig
from tests.unit.mutation_support import apply
from webhook.mutation import MutationContext, MutationResult, MutationSettings, mutate_pod

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "mutation"
CASES = sorted(path.name for path in GOLDEN.iterdir() if path.is_dir())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
REGENERATE = "UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_mutation_golden.py"
SETTINGS = MutationSettings(
    requester_image="ghcr.io/llm-d/fma:golden",
    webhook_namespace="fma",
    control_trust="<the control CA bundle, PEM>",  # authentication on, as installed by default
)


def load_context(path: Path) -> MutationContext:
    data: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return MutationContext(
        namespace=data["namespace"],
        namespace_labels=data.get("namespaceLabels") or {},
        iscs=[InferenceServerConfig.model_validate(isc) for isc in data.get("iscs") or ()],
        owner_selector=data.get("ownerSelector"),
        settings=SETTINGS,
    )


def as_json(result: MutationResult) -> str:
    document = {
        "skipped": result.skipped,
        "skipCode": result.skip_code,
        "mode": result.mode,
        "warnings": result.warnings,
        "patch": result.patch,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def check_golden(path: Path, actual: str | None) -> None:
    """Compare with (or, with UPDATE_GOLDEN=1, rewrite) one golden file; None means absent."""
    if UPDATE:
        if actual is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(actual)
        return
    expected = path.read_text() if path.exists() else None
    assert actual == expected, (
        f"golden file {path.relative_to(GOLDEN.parent.parent.parent)} is stale or missing; "
        f"if the change is intended, run `{REGENERATE}` and review the diff"
    )


def test_enough_cases() -> None:
    assert len(CASES) >= 12, CASES


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    folder = GOLDEN / case
    pod: dict[str, Any] = yaml.safe_load((folder / "input.yaml").read_text())
    result = mutate_pod(pod, load_context(folder / "context.yaml"))
    check_golden(folder / "expected.json", as_json(result))
    mutated = apply(pod, result)
    patch_text = (
        mutated.get("metadata", {}).get("annotations", {}).get("dual-pods.llm-d.ai/server-patch")
    )
    produced = patch_text if result.mode == "direct" else None
    check_golden(folder / "server-patch.yaml", produced)
    if result.patch:
        again = mutate_pod(mutated, load_context(folder / "context.yaml"))
        assert again.patch == [] and again.skip_code == "already_mutated"
