"""Domain events and the event dispatcher (chapter 02): a failing or hanging handler neither
stops the others nor disappears; ids are seeded; bounds and bad arguments are refused."""
import asyncio

import pytest

from labkit import sim
from labkit._core import seeding
from labkit.patterns.events import DispatchReport, DomainEvent, EventDispatcher


def test_event_ids_are_seeded_distinct_and_repeatable():
    seeding.set_seed(7)
    first = [DomainEvent("order.placed", {"n": i}).event_id for i in range(3)]
    seeding.set_seed(7)
    again = [DomainEvent("order.placed", {"n": i}).event_id for i in range(3)]
    assert first == again and len(set(first)) == 3
    seeding.set_seed(8)
    assert DomainEvent("order.placed").event_id != first[0]
    seeding.set_seed(seeding.DEFAULT_SEED)


def test_occurred_at_is_loop_time_and_zero_outside_a_loop():
    assert DomainEvent("x").occurred_at_s == 0.0

    async def main():
        await asyncio.sleep(12.5)
        return DomainEvent("x")
    assert sim.run(main).occurred_at_s == 12.5


def test_event_is_frozen_and_serialisable():
    e = DomainEvent("user.created", {"user_id": "u1"}, event_id="e-1", occurred_at_s=3.0)
    with pytest.raises(AttributeError):
        e.type = "other"
    assert e.to_dict() == {"event_id": "e-1", "type": "user.created",
                           "data": {"user_id": "u1"}, "occurred_at_s": 3.0}


@pytest.mark.parametrize("kwargs,match", [
    ({"type": ""}, "type must be a non-empty str"),
    ({"type": "*"}, "type must be a non-empty str"),
    ({"type": 3}, "type must be"),
    ({"type": "a", "data": [1]}, "data must be a dict"),
    ({"type": "a", "event_id": ""}, "event_id must be"),
    ({"type": "a", "occurred_at_s": float("nan")}, "occurred_at_s must be a finite number"),
])
def test_bad_events_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DomainEvent(**kwargs)


def test_a_failing_handler_is_recorded_and_the_others_still_run():
    d = EventDispatcher()
    seen = []

    def before(event):
        seen.append(("before", event.data["n"]))

    def broken(event):
        raise KeyError("email")

    async def after(event):
        await asyncio.sleep(0.01)
        seen.append(("after", event.data["n"]))

    d.subscribe("user.created", before)
    d.subscribe("user.created", broken)
    d.subscribe("user.created", after)

    async def main():
        return await d.dispatch(DomainEvent("user.created", {"n": 1}, event_id="e-1"))
    report = sim.run(main)
    assert isinstance(report, DispatchReport)
    assert sorted(seen) == [("after", 1), ("before", 1)]
    assert not report.ok and report.handled == 2 and report.handlers == 3
    assert report.failures == (
        ("test_a_failing_handler_is_recorded_and_the_others_still_run.<locals>.broken",
         "KeyError('email')"),)
    assert list(d.failures) == [("e-1", report.failures[0][0], "KeyError('email')")]
    assert d.counts["failed"] == 1 and d.counts["handled"] == 2


def test_handlers_run_concurrently_and_a_hanging_one_times_out():
    d = EventDispatcher(handler_timeout_s=2.0)
    done = []

    async def slow(event):
        await asyncio.sleep(1.0)
        done.append("slow")

    async def hangs(event):
        await asyncio.sleep(3600)

    for h in (slow, slow, hangs):
        d.subscribe("tick", h)

    async def main():
        loop = asyncio.get_running_loop()
        report = await d.dispatch(DomainEvent("tick"))
        return report, loop.time()
    report, t = sim.run(main, until_s=100)
    assert done == ["slow", "slow"]
    assert t == 2.0           # virtual: the two 1 s handlers overlapped, the hang was cut at 2 s
    assert report.handled == 2 and len(report.failures) == 1
    assert "hangs" in report.failures[0][0] and "HandlerTimeout" in report.failures[0][1]
    assert d.counts["timed_out"] == 1


def test_wildcard_handlers_get_every_type_and_unsubscribe_works():
    d = EventDispatcher()
    got = []
    off_all = d.subscribe("*", lambda e: got.append(("all", e.type)))
    off_order = d.subscribe("order.placed", lambda e: got.append(("order", e.type)))

    async def main():
        await d.dispatch(DomainEvent("order.placed"))
        await d.dispatch(DomainEvent("user.created"))
        off_order()
        off_order()                      # a second unsubscribe is harmless
        r = await d.dispatch(DomainEvent("order.placed"))
        off_all()
        r2 = await d.dispatch(DomainEvent("order.placed"))
        return r, r2
    r, r2 = sim.run(main)
    assert got == [("order", "order.placed"), ("all", "order.placed"), ("all", "user.created"),
                   ("all", "order.placed")]
    assert r.handled == 1 and r2.handled == 0 and r2.ok
    assert d.summary()["handlers"] == {}


def test_the_same_handler_twice_is_two_registrations_removed_one_at_a_time():
    d = EventDispatcher()
    calls = []
    h = calls.append
    off1 = d.subscribe("a", h)
    d.subscribe("a", h)
    off1()
    assert len(d.handlers("a")) == 1

    async def main():
        return await d.dispatch(DomainEvent("a"))
    assert sim.run(main).handled == 1 and len(calls) == 1


def test_failures_are_bounded_newest_kept():
    d = EventDispatcher(max_failures=3)

    def broken(event):
        raise RuntimeError(event.data["n"])
    d.subscribe("x", broken)

    async def main():
        for n in range(10):
            await d.dispatch(DomainEvent("x", {"n": n}, event_id=f"e{n}"))
    sim.run(main)
    assert [f[0] for f in d.failures] == ["e7", "e8", "e9"]
    assert d.counts["failed"] == 10


def test_handlers_per_type_are_bounded_with_a_clear_error():
    d = EventDispatcher(max_handlers=2)
    d.subscribe("a", print)
    d.subscribe("a", print)
    with pytest.raises(ValueError, match="already has 2 handlers .max_handlers=2"):
        d.subscribe("a", print)
    d.subscribe("b", print)             # other types have their own bound


@pytest.mark.parametrize("kwargs,match", [
    ({"handler_timeout_s": 0}, "handler_timeout_s must be a finite number > 0"),
    ({"handler_timeout_s": float("inf")}, "handler_timeout_s"),
    ({"max_failures": 0}, "max_failures must be a whole number"),
    ({"max_handlers": 2.0}, "max_handlers must be a whole number"),
])
def test_bad_dispatcher_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EventDispatcher(**kwargs)


def test_bad_subscribe_and_dispatch_arguments():
    d = EventDispatcher()
    with pytest.raises(ValueError, match="event_type must be a non-empty str"):
        d.subscribe("", print)
    with pytest.raises(ValueError, match="handler must be callable"):
        d.subscribe("a", "not a function")

    async def main():
        await d.dispatch({"type": "a"})
    with pytest.raises(ValueError, match="event must be a DomainEvent"):
        sim.run(main)
