"""AfterBurst: what a burst queues goes out when the loop next waits, in order, in one send; sent at
once without the task, by the caller when the queue is full, after an in-flight send on flush, and
at stop. Oracle: the calls of a recording ``send``, by hand."""

from __future__ import annotations

import asyncio

import pytest

from aiots.services.common.after_burst import AfterBurst


class _Recorder:
    def __init__(self, gate: asyncio.Event | None = None, fail_first: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.gate = gate
        self.fail_first = fail_first

    async def __call__(self, items: list[int]) -> None:
        if self.gate is not None:  # the first send is slow (a Redis round trip), later ones not
            gate, self.gate = self.gate, None
            await gate.wait()
        if self.fail_first:
            self.fail_first = False
            raise ConnectionError("bus down")
        self.calls.append(items)


async def _turn() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_burst_goes_out_in_one_send_when_the_loop_next_waits() -> None:
    rec = _Recorder()
    ab = AfterBurst(rec, limit=100, name="t")
    ab.start()
    for i in range(3):  # a burst: no await that suspends between the puts
        await ab.put([i])
    assert rec.calls == [] and ab.queued == 3
    await _turn()
    assert rec.calls == [[0, 1, 2]] and ab.queued == 0
    await ab.stop(1.0)


async def test_without_the_task_each_put_is_sent_at_once() -> None:
    rec = _Recorder()
    ab = AfterBurst(rec, limit=100, name="t")
    await ab.put([1, 2])
    await ab.put([])
    assert rec.calls == [[1, 2]]
    ab.start()
    await ab.stop(1.0)
    await ab.put([3])  # after stop: at once again
    assert rec.calls == [[1, 2], [3]]


async def test_a_full_queue_is_sent_by_the_caller() -> None:
    rec = _Recorder()
    ab = AfterBurst(rec, limit=2, name="t")
    ab.start()
    await ab.put([1])
    await ab.put([2])  # the queue reached its limit: sent here, before the loop turns
    assert rec.calls == [[1, 2]]
    await ab.put([3])
    await _turn()
    assert rec.calls == [[1, 2], [3]]
    await ab.stop(1.0)


async def test_flush_waits_for_an_in_flight_send_so_order_holds() -> None:
    gate = asyncio.Event()
    rec = _Recorder(gate)
    ab = AfterBurst(rec, limit=100, name="t")
    ab.start()
    await ab.put([1])
    await _turn()  # the task took [1] and waits in send
    assert rec.calls == [] and ab.queued == 0
    await ab.put([2])
    flushing = asyncio.create_task(ab.flush())
    await _turn()
    assert not flushing.done()  # waits for the send of [1]
    gate.set()
    await flushing
    assert rec.calls == [[1], [2]]
    await ab.stop(1.0)


async def test_stop_sends_what_is_queued() -> None:
    rec = _Recorder()
    ab = AfterBurst(rec, limit=100, name="t")
    ab.start()
    await ab.put([1, 2])
    await ab.stop(1.0)  # no turn of the loop in between
    assert rec.calls == [[1, 2]]


async def test_a_failed_send_is_logged_and_the_task_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    rec = _Recorder(fail_first=True)
    ab = AfterBurst(rec, limit=100, name="t")
    ab.start()
    await ab.put([1])
    await _turn()
    assert rec.calls == [] and "1 items not sent" in caplog.text
    await ab.put([2])
    await _turn()
    assert rec.calls == [[2]]  # the task still sends
    await ab.stop(1.0)


async def test_without_a_limit_the_queue_waits_for_the_task() -> None:
    rec = _Recorder()
    ab = AfterBurst(rec, limit=None, name="t")
    ab.start()
    assert ab.running
    for i in range(5000):
        await ab.put([i])
    assert rec.calls == [] and ab.queued == 5000
    await _turn()
    assert rec.calls == [list(range(5000))]
    await ab.stop(None)
    assert not ab.running


async def test_stop_without_a_timeout_waits_for_a_slow_send_and_never_cancels_it() -> None:
    gate = asyncio.Event()
    rec = _Recorder(gate)
    ab = AfterBurst(rec, limit=None, name="t")
    ab.start()
    await ab.put([1])
    await _turn()  # the task took [1] and waits in send
    await ab.put([2])
    stopping = asyncio.create_task(ab.stop(None))
    await asyncio.sleep(0.05)
    assert not stopping.done() and rec.calls == []
    gate.set()
    await stopping
    assert rec.calls == [[1], [2]]


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        AfterBurst(_Recorder(), limit=0, name="t")
