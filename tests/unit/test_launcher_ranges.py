"""Log Range decisions (contracts §5.5, reference-differences C4), one status code at a time."""

from __future__ import annotations

import pytest

from launcher.ranges import MAX_CHUNK, Refusal, Slice, plan


def test_no_range_serves_from_zero_with_content_range() -> None:
    decision = plan(None, 10)
    assert decision == Slice(status=200, start=0, end=9, total=10)
    assert decision.headers() == {"Accept-Ranges": "bytes", "Content-Range": "bytes 0-9/10"}


def test_no_range_is_capped_at_one_mebibyte() -> None:
    decision = plan(None, MAX_CHUNK + 5)
    assert isinstance(decision, Slice)
    assert (decision.status, decision.start, decision.length) == (200, 0, MAX_CHUNK)


def test_empty_log_without_range_is_an_empty_200_not_416() -> None:
    decision = plan(None, 0)
    assert isinstance(decision, Slice)
    assert (decision.status, decision.length) == (200, 0)
    assert "Content-Range" not in decision.headers()


@pytest.mark.parametrize(
    ("header", "total", "start", "end"),
    [
        ("bytes=0-3", 10, 0, 3),
        ("bytes=4-", 10, 4, 9),
        ("bytes=4-100", 10, 4, 9),  # the end is clamped to the last byte
        ("bytes=9-9", 10, 9, 9),
        ("bytes=2-", MAX_CHUNK * 3, 2, MAX_CHUNK + 1),  # open ranges are capped at 1 MiB
    ],
)
def test_single_ranges_are_206(header: str, total: int, start: int, end: int) -> None:
    decision = plan(header, total)
    assert decision == Slice(status=206, start=start, end=end, total=total)
    assert decision.headers()["Content-Range"] == f"bytes {start}-{end}/{total}"


@pytest.mark.parametrize(
    "header",
    ["bytes=-5", "bytes=0-1,3-4", "bytes=a-", "items=0-1", "bytes 0-1", "", "bytes=5-3"],
)
def test_unsupported_or_malformed_ranges_are_400(header: str) -> None:
    decision = plan(header, 10)
    assert isinstance(decision, Refusal)
    assert decision.status == 400
    assert header in decision.detail or "Invalid Range" in decision.detail


@pytest.mark.parametrize(
    ("header", "total"), [("bytes=10-", 10), ("bytes=11-20", 10), ("bytes=0-", 0)]
)
def test_start_at_or_past_the_end_is_416_with_the_size(header: str, total: int) -> None:
    decision = plan(header, total)
    assert isinstance(decision, Refusal)
    assert decision.status == 416
    assert decision.headers() == {"Content-Range": f"bytes */{total}"}
