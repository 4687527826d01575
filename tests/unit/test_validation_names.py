"""Kubernetes name rules and quantities, against examples from the Go tests and docs.

The shared rules (`contract.rules`) are the ones the webhook and the controllers both apply;
`webhook.validation._names` holds the webhook's own.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from contract.rules import (
    QuantityError,
    annotation_key,
    dns1123_label,
    dns1123_subdomain,
    label_key,
    label_value,
    quantity_value,
    reserved_prefix,
)
from webhook.validation._names import env_var_name, field_key, port_name

VALID_QUALIFIED = [
    "simple",
    "now-with-dashes",
    "1-starts-with-num",
    "1234",
    "simple/simple",
    "now-with-dashes/simple",
    "now-with-dashes/now-with-dashes",
    "now.with.dots/now-with-dashes",
    "now-with.dashes-and.dots/now_with.dashes-and_dots",
    "Uppercase_Is_OK_123",
    "example.com/Uppercase_Is_OK_123",
    "a" * 63,
    "a" * 253 + "/" + "b" * 63,
]
INVALID_QUALIFIED = [
    "nospecialchars%^=@",
    "cantendwithadash-",
    "-cantstartwithadash-",
    "only/one/slash",
    "Example.com/abc",
    "example_com/abc",
    "example.com/",
    "/simple",
    "a" * 64,
    "a" * 254 + "/abc",
    "",
]


@pytest.mark.parametrize("key", VALID_QUALIFIED)
def test_valid_qualified_names(key: str) -> None:
    assert label_key(key) == []


@pytest.mark.parametrize("key", INVALID_QUALIFIED)
def test_invalid_qualified_names(key: str) -> None:
    assert label_key(key)


def test_annotation_keys_are_lower_cased_first() -> None:
    assert annotation_key("Example.com/abc") == []
    assert annotation_key("only/one/slash")


@pytest.mark.parametrize("value", ["", "a", "A-b_c.d", "1", "a" * 63])
def test_valid_label_values(value: str) -> None:
    assert label_value(value) == []


@pytest.mark.parametrize("value", ["-a", "a-", "a b", "a/b", "a" * 64, "ä"])
def test_invalid_label_values(value: str) -> None:
    assert label_value(value)


@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        ("dual-pods.llm-d.ai/x", "dual-pods.llm-d.ai/"),
        ("kubernetes.io/x", "kubernetes.io/"),
        ("k8s.io/x", "k8s.io/"),
        ("app.kubernetes.io/x", None),
        ("a.b.k8s.io/x", None),
        ("K8S.IO/x", "k8s.io/"),
        ("example.com/x", None),
        ("notkubernetes.io/x", None),
        ("x.dual-pods.llm-d.ai/x", None),
        ("kubernetes.io", None),
    ],
)
def test_reserved_prefixes(key: str, prefix: str | None) -> None:
    assert reserved_prefix(key) == prefix


def test_dns_names() -> None:
    assert dns1123_label("inference-server") == []
    assert dns1123_label("Inference") and dns1123_label("a" * 64) and dns1123_label("a.b")
    assert dns1123_subdomain("a.b-c.d") == []
    assert dns1123_subdomain("a..b") and dns1123_subdomain("a" * 254)


@pytest.mark.parametrize("name", ["A", "_a", "a.b", "a-b", "-a", ".a", "MY_ENV.NAME"])
def test_valid_env_var_names(name: str) -> None:
    assert env_var_name(name) == []


@pytest.mark.parametrize("name", ["", "1a", "a=b", "a b", ".", "..", "..a", "ü"])
def test_invalid_env_var_names(name: str) -> None:
    assert env_var_name(name)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("http", True),
        ("a-1", True),
        ("123", False),
        ("a--b", False),
        ("HTTP", False),
        ("a" * 16, False),
    ],
)
def test_port_names(name: str, ok: bool) -> None:
    assert (port_name(name) == []) is ok


def test_field_keys_quote_only_when_needed() -> None:
    assert field_key("example.com/a") == "[example.com/a]"
    assert field_key("a b") == '["a b"]'
    assert field_key("a]\n") == '["a]\\n"]'


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", Fraction(0)),
        ("4", Fraction(4)),
        (8, Fraction(8)),
        ("500m", Fraction(1, 2)),
        ("1.5", Fraction(3, 2)),
        (".5", Fraction(1, 2)),
        ("1.", Fraction(1)),
        ("+2", Fraction(2)),
        ("-1k", Fraction(-1000)),
        ("1Ki", Fraction(1024)),
        ("80Gi", Fraction(80 * 2**30)),
        ("1Ei", Fraction(2**60)),
        ("2n", Fraction(2, 10**9)),
        ("3u", Fraction(3, 10**6)),
        ("1M", Fraction(10**6)),
        ("1E", Fraction(10**18)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("12e-3", Fraction(12, 1000)),
        ("1e+2", Fraction(100)),
        (1.5, Fraction(3, 2)),  # a JSON number: Go parses its text (`Quantity.UnmarshalJSON`)
    ],
)
def test_quantities(text: float | str, value: Fraction) -> None:
    assert quantity_value(text) == value


@pytest.mark.parametrize(
    "text",
    ["", "Gi", "1 Gi", "1gi", "1KiB", "1e1.5", "1e", "1e999", "1" * 65, "0x10", True, None],
)
def test_not_quantities(text: object) -> None:
    with pytest.raises(QuantityError):
        quantity_value(text)
