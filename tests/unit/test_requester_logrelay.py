"""`set-log` relaying: every chunk pattern leaves exactly the log, never a byte lost or doubled."""

from __future__ import annotations

import asyncio
import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.requester.logrelay import LogRelay, judge_chunk


@pytest.mark.parametrize(
    ("start", "why"),
    [
        (None, "missing"),
        ("", "not an integer"),
        ("abc", "not an integer"),
        ("1.5", "not an integer"),
        ("1_0", "not an integer"),
        (" 1", "not an integer"),
        ("٣", "not an integer"),  # a non-ASCII digit int() would accept
        ("-1", "negative"),
        ("11", "beyond the 10 bytes"),
    ],
)
def test_bad_start_positions_are_400_and_change_nothing(start: str | None, why: str) -> None:
    verdict = judge_chunk(10, start, b"xyz")
    assert verdict.status == 400
    assert why in verdict.message
    assert (verdict.new_bytes, verdict.accepted_after) == (b"", 10)


def test_a_chunk_entirely_old_is_nothing_new() -> None:
    assert judge_chunk(10, "4", b"abcdef").message == "nothing new\n"
    assert judge_chunk(10, "10", b"").message == "nothing new\n"
    assert judge_chunk(10, "0", b"").status == 200


def test_an_overlapping_chunk_appends_only_its_new_tail() -> None:
    verdict = judge_chunk(10, "8", b"abcdef")
    assert (verdict.status, verdict.new_bytes, verdict.accepted_after) == (200, b"cdef", 14)
    assert judge_chunk(10, "+10", b"z").new_bytes == b"z"


def _apply(log: bytes, sends: list[tuple[int, int]]) -> tuple[bytes, int]:
    """Runs `sends` (start, length) of `log` through `judge_chunk`; returns (output, accepted)."""
    out = bytearray()
    accepted = 0
    for start, length in sends:
        body = log[start : start + length]
        verdict = judge_chunk(accepted, str(start), body)
        if start > accepted:
            assert verdict.status == 400
        elif start + len(body) <= accepted:
            assert (verdict.status, verdict.message) == (200, "nothing new\n")
        else:
            assert (verdict.status, verdict.message) == (200, "OK\n")
        out += verdict.new_bytes
        accepted = verdict.accepted_after
        assert bytes(out) == log[:accepted]
    return bytes(out), accepted


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_chunks_with_overlaps_and_resends_never_lose_or_double_bytes(
    data: st.DataObject,
) -> None:
    log = data.draw(st.binary(min_size=0, max_size=400), label="log")
    sends = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(log)), st.integers(0, len(log))), min_size=0, max_size=30
        ),
        label="sends",
    )
    _, accepted = _apply(log, sends)
    final, _ = _apply(log, [*sends, (accepted, len(log))])
    assert final == log


@settings(max_examples=100, deadline=None)
@given(log=st.binary(min_size=1, max_size=300), seed=st.integers(0, 2**32 - 1))
def test_a_caller_that_resends_after_each_cut_gets_the_whole_log(log: bytes, seed: int) -> None:
    """The controller's pattern: read from an offset, send, sometimes repeat an old window."""
    rng = random.Random(seed)
    sends = []
    pos = 0
    while pos < len(log):
        end = rng.randint(pos + 1, len(log))
        sends.append((pos, end - pos))
        if rng.random() < 0.3:  # a resend of a window already sent
            old = rng.randint(0, end)
            sends.append((old, rng.randint(0, end - old)))
        pos = end
    out, accepted = _apply(log, sends)
    assert (out, accepted) == (log, len(log))


def test_concurrent_offers_in_one_loop_are_serialised() -> None:
    log = bytes(range(256)) * 40
    sink = io.BytesIO()

    async def scenario() -> None:
        relay = LogRelay(sink, threaded=True)
        rng = random.Random(7)

        async def caller() -> None:
            pos = 0
            while pos < len(log):
                end = min(len(log), pos + rng.randint(1, 700))
                verdict = await relay.offer(str(pos), log[pos:end])
                assert verdict.status == 200
                pos = end

        await asyncio.gather(*(caller() for _ in range(8)))
        assert relay.accepted == len(log)

    asyncio.run(scenario())
    assert sink.getvalue() == log


def test_a_failed_write_is_not_counted_so_a_resend_delivers_it() -> None:
    class Flaky(io.BytesIO):
        fail = True

        def write(self, data: bytes, /) -> int:  # type: ignore[override]
            if self.fail:
                self.fail = False
                raise BrokenPipeError("reader went away")
            return super().write(data)

    sink = Flaky()

    async def scenario() -> None:
        relay = LogRelay(sink, threaded=False)
        with pytest.raises(BrokenPipeError):
            await relay.offer("0", b"hello")
        assert relay.accepted == 0
        assert (await relay.offer("0", b"hello")).status == 200

    asyncio.run(scenario())
    assert sink.getvalue() == b"hello"
