"""`$(VAR)` expansion: cases from Kubernetes' own expansion tests."""

from __future__ import annotations

import pytest

from localcluster.kubelet.expansion import expand, mapping_for

CONTEXT = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
        ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
        ("$$(VAR_A)$(VAR_A)", "$(VAR_A)A"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("foo\\$(VAR_C)bar", "foo\\Cbar"),
        ("$(VAR_REF)", "$(VAR_A)"),  # values are not expanded again
        ("$(VAR_EMPTY)", ""),
        ("$(VAR_DNE)", "$(VAR_DNE)"),
        ("$(VAR_A", "$(VAR_A"),
        ("$(", "$("),
        ("$()", "$()"),
        ("$", "$"),
        ("$$", "$"),
        ("$$$", "$$"),
        ("$VAR_A", "$VAR_A"),
        ("${VAR_A}", "${VAR_A}"),
        ("$(VAR_A)$", "A$"),
        ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
        ("$$$$$$$(VAR_A)", "$$$A"),
        ("no variables", "no variables"),
        ("", ""),
    ],
)
def test_expand_like_kubernetes(text: str, expected: str) -> None:
    assert expand(text, mapping_for(CONTEXT)) == expected


def test_contexts_are_searched_in_order() -> None:
    assert expand("$(X)", mapping_for({"X": "first"}, {"X": "second"})) == "first"
    assert expand("$(Y)", mapping_for({"X": "first"}, {"Y": "second"})) == "second"
