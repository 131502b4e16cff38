"""The kitchen's live view (labkit/ui/broker_view.py): sample() returns numbers, knob changes
are marked, history is bounded, and the view's task ends with the kitchen."""
import asyncio

import pytest

from labkit import messaging
from labkit.labs.kitchen import Kitchen
from labkit.ui import broker_view as bv
from async_tools import other_tasks, until


def test_sample_returns_numbers_and_marks_knob_changes(run):
    async def main():
        conn = await messaging.connect(broker=messaging.Broker())
        k = await Kitchen.start(conn, rate_per_s=50, processing_ms=10, crash_rate=0.2, seed=2)
        view = bv.broker_view(k, window_s=5, refresh_s=0.2)
        before = view.draws
        kept = len(view.samples)
        s = await view.sample(0.6)
        # sample() reads the kitchen; only the redraw loop (one sample per draw) fills the
        # chart's history, so a long sample() cannot push the chart's window out
        assert len(view.samples) - kept <= view.draws - before + 1
        k.set(consumers=2)
        await until(lambda: view.draws >= 3, 10)
        marks, draws, line = list(view.marks), view.draws, view.stats_html.value
        await k.stop()
        await until(lambda: not view.running, 10)
        left = {t for t in other_tasks() if t.get_coro().__qualname__ != "wait_for"}
        return s, marks, draws, line, view, left

    s, marks, draws, line, view, left = run(main())
    assert s["published"] > 0 and s["published_per_s"] > 0 and s["delivered_per_s"] > 0
    assert s["max_ready"] >= s["ready"] >= 0 and s["seconds"] >= 0.6
    assert [text for _, text in marks] == ["consumers=2"]
    assert draws >= 3 and "checker: published" in line and "delivered" in line
    assert not view.running and left == set() and "stopped" in view.stats_html.value
    assert view.samples.maxlen == int(5 / 0.2) + 10            # bounded history
    assert view.chart.outputs[0]["data"]["image/png"]


def test_rerun_stops_the_old_view_and_render_draws_marks():
    samples = [(t / 10, {"ready": t, "unacked": 1, "delivered_per_s": 1.0, "acked_per_s": 1.0,
                         "redelivered_per_s": 0.0, "dead_lettered_per_s": 0.0})
               for t in range(50)]
    png = bv.render_png(samples, [(3.0, "consumers=1")], 5.0, 30)
    assert png[:4] == b"\x89PNG"

    async def main():
        conn = await messaging.connect(broker=messaging.Broker())
        k = await Kitchen.start(conn, rate_per_s=10, seed=2)
        first = bv.broker_view(k, refresh_s=0.1)
        second = bv.broker_view(k, refresh_s=0.1)
        await asyncio.sleep(0.3)
        state = first.running, second.running, len(k._listeners)
        await k.stop()
        await second.stop()
        return state

    assert asyncio.run(main()) == (False, True, 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"window_s": 0}, "window_s must be a finite number"),
    ({"refresh_s": 0.01}, "refresh_s must be a finite number"),
])
def test_bad_arguments(run, kwargs, message):
    async def main():
        conn = await messaging.connect(broker=messaging.Broker())
        k = await Kitchen.start(conn, rate_per_s=5)
        try:
            with pytest.raises(ValueError, match=message):
                bv.broker_view(k, **kwargs)
            with pytest.raises(ValueError, match="kitchen must be"):
                bv.broker_view(object())
        finally:
            await k.stop()
    run(main())
