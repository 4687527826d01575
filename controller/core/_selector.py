"""Node selection of an LPP: label selector and allocatable ranges (contracts §3.3, §10)."""

from __future__ import annotations

from collections.abc import Mapping

from contract.rules import QuantityError, quantity_value, requirement_problem
from controller.core._views import NodeView
from crds.models import EnhancedNodeSelector


class SelectorError(ValueError):
    """The LPP's selector cannot be evaluated (reported in LPP status)."""


def check_selector(selector: EnhancedNodeSelector) -> None:
    """Raise SelectorError for an operator or value list Kubernetes would reject."""
    for req in selector.label_selector.match_expressions or []:
        problem = requirement_problem(req.operator, req.values or [])
        if problem is None:
            continue
        field, text = problem
        raise SelectorError(f"{field}: {text} (key {req.key!r})" if field == "values" else text)
    for name, bounds in (selector.allocatable_resources or {}).items():
        for bound in (bounds.min, bounds.max):
            if bound is not None:
                try:
                    quantity_value(bound)
                except QuantityError as error:
                    raise SelectorError(
                        f"allocatableResources[{name}]: {bound!r} is not a quantity: {error}"
                    ) from error


def matches(selector: EnhancedNodeSelector, node: NodeView) -> bool:
    """Whether `node` is selected (call `check_selector` first)."""
    return _labels_match(selector, node.labels) and _resources_match(selector, node.allocatable)


def _labels_match(selector: EnhancedNodeSelector, labels: Mapping[str, str]) -> bool:
    sel = selector.label_selector
    if any(labels.get(k) != v for k, v in (sel.match_labels or {}).items()):
        return False
    for req in sel.match_expressions or []:
        values = req.values or []
        present = req.key in labels
        ok = {
            "In": present and labels.get(req.key) in values,
            "NotIn": not present or labels.get(req.key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[req.operator]
        if not ok:
            return False
    return True


def _resources_match(selector: EnhancedNodeSelector, allocatable: Mapping[str, object]) -> bool:
    for name, bounds in (selector.allocatable_resources or {}).items():
        if name not in allocatable:
            return False
        try:
            have = quantity_value(allocatable[name])
        except QuantityError:
            return False
        if bounds.min is not None and have < quantity_value(bounds.min):
            return False
        if bounds.max is not None and have > quantity_value(bounds.max):
            return False
    return True
