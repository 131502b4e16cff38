"""The circuit-breaker timeline (labkit/timeline.py): a breaker in front of a real service,
driven from code exactly as the outage checkbox drives it."""
import asyncio
import base64
import json

import pytest

import labkit
from labkit.patterns.breaker import CircuitBreaker, State
from labkit.labs.timeline import breaker_timeline, default_breaker
from async_tools import other_tasks as _others, until as _until




def _png(tl) -> bytes:
    out = tl.chart.outputs[0]
    return base64.b64decode(out["data"]["image/png"])


def test_outage_opens_the_breaker_and_recovery_closes_it_through_half_open(run):
    async def main():
        svc = await labkit.start_service("inventory")
        tl = breaker_timeline(svc, rate_per_s=40)
        healthy = await tl.run_for(0.4)
        tl.panel.controls["outage"].value = True          # the checkbox, as a learner ticks it
        assert svc.faults.outage is True
        outage = await tl.run_for(1.4)
        tl.panel.controls["outage"].value = False
        recovery = await tl.run_for(1.5)
        whole = tl.summary()
        png = _png(tl)
        await labkit.shutdown()
        return healthy, outage, recovery, whole, png, tl

    healthy, outage, recovery, whole, png, tl = run(main())
    assert healthy["states"] == ["closed"] and healthy["ok"] == healthy["calls"] > 10
    # Opens after the minimum number of calls (5), then fails fast: most calls never leave.
    assert outage["states"][:2] == ["closed", "open"]
    assert 5 <= outage["failed"] <= 15 and outage["rejected"] > 2 * outage["failed"]
    assert outage["ok"] == 0 and outage["state"] in ("open", "half_open")
    # It opened as soon as failures reached 50 % of the last 10 calls (5 healthy + 5 failed).
    opened = [e for e in tl.breaker.events if e.new == "open"][0]
    assert opened.failure_rate == 50.0
    first_rejection = [c.outcome for c in tl.calls].index("rejected")
    assert 5 <= first_rejection - healthy["calls"] <= 5 + 3   # + calls already in flight
    assert "OUTAGE" in outage["service"]
    # After the outage: half-open admits trial calls, they succeed, the breaker closes.
    assert recovery["states"][-2:] == ["half_open", "closed"] and recovery["state"] == "closed"
    assert recovery["ok"] > 0 and recovery["failed"] == 0
    # The listener saw every transition the breaker made, and the chart was drawn from them.
    assert [(o, n) for _, o, n in tl.transitions] == [(e.old, e.new) for e in tl.breaker.events]
    assert whole["calls"] == healthy["calls"] + outage["calls"] + recovery["calls"]
    assert [t for t, on in tl.outages][1:] and [on for _, on in tl.outages] == [False, True, False]
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert "CLOSED" in tl.status.value
    json.dumps(whole)


def test_half_open_admits_only_the_permitted_trials(run):
    async def main():
        svc = await labkit.start_service("inventory")
        svc.faults.latency_ms = 400                       # trials stay in flight a while
        breaker = CircuitBreaker(window_size=4, minimum_number_of_calls=2,
                                 wait_duration_in_open_s=0.2, permitted_calls_in_half_open=2)
        tl = breaker_timeline(svc, breaker=breaker, rate_per_s=50)
        svc.faults.outage = True
        await tl.run_for(0.2)
        svc.faults.outage = False
        await asyncio.sleep(0.25)                         # open period over: next call half-opens
        s = await tl.run_for(0.08)                        # 4 calls while the trials take 400 ms
        await labkit.shutdown()
        return s

    s = run(main())
    assert s["states"][:2] == ["open", "half_open"]
    assert s["rejected"] >= 1 and s["ok"] == 2             # exactly the 2 permitted trials went out


def test_background_traffic_and_shutdown(run):
    async def main():
        svc = await labkit.start_service("inventory")
        tl = breaker_timeline(svc, rate_per_s=50, refresh_s=0.1)
        tl.start()
        assert tl.running
        assert await _until(lambda: len(tl.calls) >= 15)
        drawn = len(tl.calls)
        stopped = await labkit.shutdown()
        return drawn, stopped, tl

    drawn, stopped, tl = run(main())
    assert drawn >= 15 and not tl.running and stopped["services"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"rate_per_s": 0}, "rate_per_s must be a finite number in"),
    ({"rate_per_s": "40"}, "rate_per_s"),
    ({"timeout_s": float("nan")}, "timeout_s"),
    ({"window_s": 0}, "window_s"),
    ({"refresh_s": 0}, "refresh_s"),
    ({"max_in_flight": "x"}, r"max_in_flight must be a whole number \(int\)"),
    ({"title": 3}, "title must be a string"),
    ({"breaker": "fast"}, "breaker must be a labkit breaker"),
])
def test_bad_arguments_are_named(run, kwargs, message):
    async def main():
        svc = await labkit.start_service("inventory")
        try:
            with pytest.raises(ValueError, match=message):
                breaker_timeline(svc, **kwargs)
            with pytest.raises(ValueError, match="labkit service"):
                breaker_timeline("inventory")
            tl = breaker_timeline(svc)
            with pytest.raises(ValueError, match="seconds"):
                await tl.run_for(-1)
            with pytest.raises(ValueError, match="duration_s"):
                tl.start(duration_s="long")
            assert not tl.running
        finally:
            await labkit.shutdown()

    run(main())


def test_rerunning_the_cell_closes_the_previous_timeline(run):
    async def main():
        svc = await labkit.start_service("inventory")
        breaker = default_breaker()
        timelines = [breaker_timeline(svc, breaker=breaker) for _ in range(3)]
        timelines[0].start()
        await _until(lambda: len(svc.faults._listeners) <= 2 and len(breaker.listeners) <= 1,
                     timeout_s=10)
        counts = len(svc.faults._listeners), len(breaker.listeners)
        assert counts == (2, 1)        # the newest timeline's outage marks and its panel
        assert [t.closed for t in timelines] == [True, True, False]
        with pytest.raises(RuntimeError, match="replaced by a newer one"):
            await timelines[0].run_for(0.1)
        await labkit.shutdown()
        return counts, timelines

    _, timelines = run(main())
    assert not timelines[0].running


def test_a_bug_in_the_calls_is_shown_and_raised_not_swallowed(run):
    async def main():
        svc = await labkit.start_service("inventory")
        tl = breaker_timeline(svc, rate_per_s=20, refresh_s=0.1)

        async def buggy():
            raise KeyError("status")                    # not a service failure: a bug
        tl._get = buggy
        tl.start()
        await _until(lambda: "stopped by an error" in tl.status.value, timeout_s=10)
        shown = tl.status.value
        with pytest.raises(KeyError):
            await tl.run_for(0.2)
        await labkit.shutdown()
        return shown

    shown = run(main())
    assert "traffic stopped by an error: KeyError" in shown


def test_background_traffic_ends_after_its_duration_with_no_task_left(run):
    async def main():
        svc = await labkit.start_service("inventory")
        tl = breaker_timeline(svc, rate_per_s=20, refresh_s=0.1).start(duration_s=0.3)
        assert await tl.traffic.wait(timeout_s=30) and not tl.running
        left = {t.get_name() for t in _others() if t.get_name().startswith("labkit")}
        await labkit.shutdown()
        return left, tl

    left, tl = run(main())
    assert left == set() and tl.counts.total() == 6


def test_records_are_bounded_and_counters_keep_the_totals(run):
    from labkit.labs import timeline as module

    async def main():
        svc = await labkit.start_service("inventory")
        tl = breaker_timeline(svc)
        listener = tl.breaker.listeners[-1]           # as the breaker reports its moves
        for i in range(1500):
            listener.state_change(*((State.CLOSED, State.OPEN) if i % 2 == 0 else
                                    (State.OPEN, State.CLOSED)))
        summary = tl.summary()
        await labkit.shutdown()
        return tl, summary

    tl, summary = run(main())
    assert len(tl.transitions) < 1500                                  # bounded...
    assert len(tl.transitions) == module.MAX_EVENTS and tl.n_transitions == 1500   # ...counted
    assert len(summary["transitions"]) == module.MAX_EVENTS
    assert summary["states"][-1] == "closed" and len(summary["states"]) == module.MAX_EVENTS + 1
    json.dumps(summary)


def test_default_breaker_reacts_within_a_second():
    b = default_breaker("x")
    assert (b.window_size, b.minimum_number_of_calls, b.wait_duration_in_open_s,
            b.permitted_calls_in_half_open) == (10, 5, 1.0, 3)
