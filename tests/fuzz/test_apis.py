"""Every HTTP API fma serves, fuzzed: no 5xx, no crash, refusals change nothing and name the
field, oversized bodies get 413 (see `tests.fuzz.properties`).

A few hundred inputs in all by default; `FMA_FUZZ_EXAMPLES=<total>` scales the run (the
benchmark, `bench/fuzz.py`, runs at least 10,000).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.harness import Targets, running_targets
from tests.fuzz.properties import PROPERTIES, Property, examples_for, total_examples


@pytest.fixture(scope="module")
def targets() -> Iterator[Targets]:
    with running_targets() as running:
        yield running


@pytest.mark.parametrize("prop", PROPERTIES, ids=lambda p: f"{p.api}-{p.name}")
def test_hostile_input(targets: Targets, prop: Property) -> None:
    tally = targets.tally
    crashes, server_errors = len(tally.crashes), tally.server_errors[prop.api]
    prop.run(targets, examples_for(prop, total_examples()))
    assert tally.crashes[crashes:] == []
    assert tally.server_errors[prop.api] == server_errors
