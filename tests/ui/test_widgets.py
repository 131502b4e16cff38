import asyncio

import pytest

import labkit
from labkit.services.faults import FaultModel
from labkit.ui.panel import panel


def test_sliders_drive_the_fault_model_and_the_readout():
    f = FaultModel()
    p = panel(f, title="users")
    before = p.readout.value
    p.controls["latency_ms"].value = 250
    p.controls["error_rate"].value = 0.2
    p.controls["error_status"].value = 503
    p.controls["outage"].value = True
    assert (f.latency_ms, f.error_rate, f.error_status, f.outage) == (250, 0.2, 503, True)
    assert p.readout.value != before and "OUTAGE" in p.readout.value
    p.controls["outage"].value = False
    assert "latency 250 ms" in p.readout.value


def test_code_changes_move_the_sliders_even_beyond_their_range():
    f = FaultModel()
    p = panel(f)
    f.set(latency_ms=7000, reset_rate=0.3)
    assert p.controls["latency_ms"].value == 7000 and p.controls["latency_ms"].max >= 7000
    assert p.controls["reset_rate"].value == 0.3
    assert f.latency_ms == 7000          # the slider's echo did not clamp the model
    f.reset()
    assert p.controls["latency_ms"].value == 0


def test_long_tail_sliders_keep_p99_at_or_above_p50():
    f = FaultModel()
    p = panel(f)
    p.controls["latency_dist"].value = "long_tail"
    p.controls["latency_ms"].value = 100
    assert f.latency_p99_ms >= 100
    p.controls["latency_p99_ms"].value = 40        # below p50: snaps back to p50
    assert f.latency_p99_ms == 100 and p.controls["latency_p99_ms"].value == 100
    p.controls["latency_p99_ms"].value = 900
    assert (f.latency_ms, f.latency_p99_ms) == (100, 900)


def test_reset_button_turns_everything_off():
    f = FaultModel(latency_ms=30, error_rate=0.5)
    p = panel(f)
    button = [w for w in p.widget.children if getattr(w, "description", "") == "all faults off"][0]
    button.click()
    assert f.all_off and p.controls["error_rate"].value == 0


def test_watch_numbers_and_chart_follow_a_slider(run):
    async def main():
        users = await labkit.start_service("users")
        p = labkit.panel(users)
        view = labkit.watch(users, rate_per_s=20, refresh_s=0.1)
        calm = await view.sample(10)
        png_before = view.chart.outputs[0]["data"]["image/png"]
        p.controls["latency_ms"].value = 120
        assert users.faults.latency_ms == 120
        slow = await view.sample(5)
        assert calm["p50_ms"] < 60 <= 120 <= slow["p50_ms"] < 600
        assert view.chart.outputs[0]["data"]["image/png"] != png_before
        assert "p50" in view.stats_html.value
        p.controls["latency_ms"].value = 0
        p.controls["error_rate"].value = 1.0
        broken = await view.sample(10)
        assert broken["error_rate"] == 1.0 and calm["error_rate"] == 0.0
        p.controls["error_rate"].value = 0.0
        await asyncio.sleep(0.35)              # background traffic + redraw keep going
        s = view.summary()
        assert s["running"] and s["draws"] >= 3 and s["total"] > 25
        await view.stop()
        assert not view.running
        await labkit.shutdown()
    run(main())


def test_watch_counts_timeouts_and_caps_in_flight_calls(run):
    async def main():
        users = await labkit.start_service("users")
        users.faults.latency_ms = 5000
        view = labkit.watch(users, rate_per_s=100, timeout_s=0.2, max_in_flight=5, refresh_s=1)
        await asyncio.sleep(0.5)
        s = view.summary()
        assert view.in_flight <= 5 and s["dropped"] > 0
        assert view.recorder.calls and {c.outcome for c in view.recorder.calls} == {"timeout"}
        await labkit.shutdown()
    run(main())


def test_watch_stops_by_itself_after_duration(run):
    async def main():
        users = await labkit.start_service("users")
        view = labkit.watch(users, rate_per_s=50, duration_s=0.2, refresh_s=0.1)
        await asyncio.sleep(0.5)
        assert not view.running
        total = view.recorder.total
        await asyncio.sleep(0.2)
        assert view.recorder.total == total
        await labkit.shutdown()
    run(main())


@pytest.mark.parametrize("kwargs, message", [
    ({"rate_per_s": 0}, "rate_per_s must be a number > 0"),
    ({"timeout_s": -1}, "timeout_s must be a number > 0"),
    ({"window": 0}, "window must be a positive int"),
])
def test_watch_rejects_bad_arguments(run, kwargs, message):
    async def main():
        async def call():
            return None
        with pytest.raises(ValueError, match=message):
            labkit.watch(call, **kwargs)
    run(main())


def test_rerunning_watch_replaces_the_previous_view(run):
    async def main():
        users = await labkit.start_service("users")
        first = labkit.watch(users, rate_per_s=20)
        second = labkit.watch(users, rate_per_s=20)
        await asyncio.sleep(0.2)
        assert not first.running and second.running
        await labkit.shutdown()
    run(main())
