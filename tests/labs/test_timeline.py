"""The circuit-breaker timeline (labkit/timeline.py): a breaker in front of a real service,
driven from code exactly as the outage checkbox drives it."""
import asyncio
import base64
import json

import pytest

import labkit
from labkit.patterns.breaker import CircuitBreaker
from labkit.labs.timeline import breaker_timeline, default_breaker


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
    assert outage["transitions"][0][0] < 0.3            # within a fraction of a second
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
        svc.faults.latency_ms = 100                       # trials stay in flight a while
        breaker = CircuitBreaker(window_size=4, minimum_number_of_calls=2,
                                 wait_duration_in_open_s=0.2, permitted_calls_in_half_open=2)
        tl = breaker_timeline(svc, breaker=breaker, rate_per_s=50)
        svc.faults.outage = True
        await tl.run_for(0.2)
        svc.faults.outage = False
        await asyncio.sleep(0.25)                         # open period over: next call half-opens
        s = await tl.run_for(0.08)                        # ~4 calls while the trials take 100 ms
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
        await asyncio.sleep(0.5)
        drawn = len(tl.calls)
        stopped = await labkit.shutdown()
        return drawn, stopped, tl

    drawn, stopped, tl = run(main())
    assert drawn >= 15 and not tl.running and stopped["services"] == 1


def test_bad_arguments_are_named(run):
    async def main():
        svc = await labkit.start_service("inventory")
        try:
            with pytest.raises(ValueError, match="rate_per_s"):
                breaker_timeline(svc, rate_per_s=0)
            with pytest.raises(ValueError, match="labkit service"):
                breaker_timeline("inventory")
            tl = breaker_timeline(svc)
            with pytest.raises(ValueError, match="seconds"):
                await tl.run_for(-1)
        finally:
            await labkit.shutdown()

    run(main())


def test_default_breaker_reacts_within_a_second():
    b = default_breaker("x")
    assert (b.window_size, b.minimum_number_of_calls, b.wait_duration_in_open_s,
            b.permitted_calls_in_half_open) == (10, 5, 1.0, 3)
