"""The live view (labkit/ui/liveview.py) in virtual time: its numbers follow a fault within the
2 s window, it marks fault changes, says what it measures, shows its errors, and every task it
started ends. Virtual time makes these counts exact on a busy machine."""
import asyncio
import importlib.util
import pathlib
import sys
import types

import pytest

import labkit
from labkit import sim
from labkit.services.faults import FaultModel
from labkit.ui import liveview
from async_tools import other_tasks as _others

_LAB = pathlib.Path(__file__).resolve().parents[1] / "browser" / "lab.py"
_spec = importlib.util.spec_from_file_location("browser_lab_for_ui_tests", _LAB)
browser_lab = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(browser_lab)     # the regexes the browser test reads the page with


def _slow_as(faults):
    async def call():                       # a service whose latency is the fault's
        await asyncio.sleep(0.005 + faults.latency_ms / 1000)
    return call


def test_p50_shows_a_slider_move_within_two_seconds():
    async def main():
        faults = FaultModel()
        view = labkit.watch(_slow_as(faults), rate_per_s=10, refresh_s=1, title="calls")
        await asyncio.sleep(8)
        before = view.stats()["p50_ms"]
        faults.latency_ms = 300                     # the slider move
        await asyncio.sleep(2.05)
        after, shown = view.stats()["p50_ms"], view.stats_html.value
        await view.stop()
        return before, after, shown

    before, after, shown = sim.run(main)
    assert before < 10 and after >= 300
    assert browser_lab.parse_number(browser_lab.P50_RE, shown) >= 300     # on screen too


def test_stats_cover_the_calls_of_the_last_window_seconds():
    async def main():
        async def call():
            return None
        view = labkit.watch(call, rate_per_s=10, window_s=3, start=False)
        for i in range(100):                         # one call every 0.1 s, t = 0.0 .. 9.9
            view.calls.append(liveview.Call(i / 10, 0.001 if i < 90 else 0.5, True, "ok"))
        return view.stats(now=9.95), view.stats(now=20.0)

    recent, later = sim.run(main)
    assert recent["n"] == 30 and recent["p50_ms"] == pytest.approx(1.0)   # t in (6.95, 9.95]
    assert recent["p99_ms"] == pytest.approx(500.0)
    assert later["n"] == 0


def test_fault_changes_are_marked_and_the_title_says_what_is_measured():
    async def main():
        faults = FaultModel()
        service = types.SimpleNamespace(name="users", url="http://127.0.0.1:9", faults=faults)
        idle = labkit.watch(service, start=False)
        title = idle.chart_title
        view = labkit.watch(_slow_as(faults), faults=service, refresh_s=5, title="page")
        listening = faults.listener_count
        await asyncio.sleep(1)
        faults.latency_ms = 120
        faults.set(error_rate=0.5, error_status=503)
        await asyncio.sleep(1)
        marks = list(view.marks)
        await view.stop()
        faults.latency_ms = 0                                   # after stop: not marked
        return title, listening, marks, faults.listener_count, view

    title, listening, marks, after_stop, view = sim.run(main)
    assert title == "GET users/health · p50/p95/p99 over the last 2 s · 10 calls/s"
    assert [text for _, text in marks] == ["latency_ms=120", "error_rate=0.5, error_status=503"]
    assert [round(t, 6) for t, _ in marks] == [1.0, 1.0]
    assert listening == 1 and after_stop == 0 and len(view.marks) == 2


def test_after_its_duration_no_task_is_left_and_the_view_says_stopped():
    async def main():
        view = labkit.watch(_slow_as(FaultModel()), rate_per_s=20, duration_s=3, refresh_s=0.5)
        await asyncio.sleep(10)
        return view, _others()

    view, left = sim.run(main)
    assert left == set() and not view.running
    assert view.summary()["total"] == 60 and "stopped" in view.stats_html.value


def test_stop_ends_traffic_and_redraws():
    async def main():
        view = labkit.watch(_slow_as(FaultModel()), refresh_s=0.5)
        await asyncio.sleep(2)
        await view.stop()
        return view, _others()

    view, left = sim.run(main)
    assert left == set() and not view.running


def test_an_error_in_the_background_task_is_shown_not_swallowed(monkeypatch):
    async def main():
        view = labkit.watch(_slow_as(FaultModel()), refresh_s=0.5)

        def broken(*_args):
            raise RuntimeError("chart exploded")
        monkeypatch.setattr(liveview, "render_png", broken)
        await asyncio.sleep(2)
        return view

    view = sim.run(main)
    assert not view.running
    assert "traffic stopped by an error: RuntimeError: chart exploded" in view.stats_html.value


def test_failing_calls_show_their_message():
    async def main():
        async def profile_page():
            raise RuntimeError("page failed: users 503, inventory 200")
        view = labkit.watch(profile_page, refresh_s=0.5)
        await asyncio.sleep(2.2)
        shown = view.stats_html.value
        await view.stop()
        return shown

    shown = sim.run(main)
    assert "errors 100%" in shown
    assert "last error: RuntimeError: page failed: users 503, inventory 200" in shown


@pytest.mark.parametrize("kwargs, message", [
    ({"max_in_flight": "x"}, r"max_in_flight must be a whole number \(int\) in 1..10000, got 'x'"),
    ({"max_in_flight": 2.0}, "max_in_flight"),
    ({"rate_per_s": 0}, "rate_per_s must be a finite number in"),
    ({"rate_per_s": float("inf")}, "rate_per_s"),
    ({"timeout_s": -1}, "timeout_s"),
    ({"window_s": 0}, "window_s"),
    ({"history_s": 1}, r"history_s must be a finite number in \[2, 3600\]"),
    ({"refresh_s": 0}, "refresh_s"),
    ({"duration_s": 10**400}, "duration_s"),
    ({"title": 7}, "title must be a string"),
    ({"start": "yes"}, "start must be True or False"),
    ({"faults": "users"}, "faults must be a labkit service"),
])
def test_watch_rejects_bad_arguments_at_the_call(kwargs, message):
    async def main():
        async def call():
            return None
        with pytest.raises(ValueError, match=message):
            labkit.watch(call, **kwargs)
        with pytest.raises(ValueError, match="call must be an async function"):
            labkit.watch(42)
        return _others()

    assert sim.run(main) == set()                 # nothing started
