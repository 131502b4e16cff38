"""The live latency view: background traffic against a call, charted as it runs.

Defined in chapter 1. Works in a browser and headless: tests read ``view.stats()``. The chart
is a matplotlib PNG (drawn in a worker thread, so drawing does not inflate the latencies it
measures) placed in an ipywidgets ``Output``.
"""
from __future__ import annotations

import asyncio
import html
import math

import ipywidgets as W

from labkit._core import runtime
from labkit.obs.metrics import Call, Recorder
from labkit.ui.charts import figure_png, new_figure, show_png

__all__ = ["LiveView", "watch"]


class LiveView:
    """Calls `call` at a steady rate and charts the recent calls; see `watch`."""

    def __init__(self, call, *, rate_per_s: float, window: int, timeout_s: float,
                 refresh_s: float, duration_s: float, max_in_flight: int, title: str):
        for name, value, low in (("rate_per_s", rate_per_s, 0.0), ("timeout_s", timeout_s, 0.0),
                                 ("refresh_s", refresh_s, 0.05), ("duration_s", duration_s, 0.0)):
            if not isinstance(value, (int, float)) or not value > low:
                raise ValueError(f"{name} must be a number > {low:g}, got {value!r}")
        self.call = call
        self.rate_per_s, self.timeout_s = rate_per_s, timeout_s
        self.refresh_s, self.duration_s = refresh_s, duration_s
        self.max_in_flight = max_in_flight
        self.title = title
        self.recorder = Recorder(window)
        self.dropped = 0
        self.draws = 0
        self.in_flight = 0
        self.loop = asyncio.get_running_loop()
        self.chart = W.Output().add_class("labkit-chart")
        self.stats_html = W.HTML().add_class("labkit-stats")
        stop = W.Button(description="stop traffic", icon="stop")
        stop.on_click(lambda _: runtime.spawn(self.stop()))
        self.widget = W.VBox([self.stats_html, self.chart, stop])
        self._tasks: list[asyncio.Task] = []
        self._drawn_total = -1
        runtime.on_shutdown(self.stop, loop=self.loop)

    # ---- traffic -----------------------------------------------------------
    async def _one(self) -> Call:
        loop = self.loop
        start = loop.time()
        self.in_flight += 1
        try:
            result = await asyncio.wait_for(self.call(), self.timeout_s)
            status = getattr(result, "status", None)
            ok, outcome = (status is None or status < 400), str(status or "ok")
        except asyncio.TimeoutError:
            ok, outcome = False, "timeout"
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a failed call is data here, not a crash
            ok, outcome = False, type(err).__name__
        finally:
            self.in_flight -= 1
        call = Call(loop.time(), loop.time() - start, ok, outcome)
        self.recorder.record(call)
        return call

    async def _traffic(self) -> None:
        interval = 1.0 / self.rate_per_s
        end = self.loop.time() + self.duration_s
        pending: set[asyncio.Task] = set()
        try:
            while self.loop.time() < end:
                if self.in_flight < self.max_in_flight:
                    t = self.loop.create_task(self._one())
                    pending.add(t)
                    t.add_done_callback(pending.discard)
                else:
                    self.dropped += 1
                await asyncio.sleep(interval)
        finally:
            for t in list(pending):
                t.cancel()

    async def _redraw_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            if self.recorder.total != self._drawn_total:
                # Render in a thread: ~0.1 s of matplotlib on the loop would add to every
                # latency the chart is measuring.
                total, calls, stats = self.recorder.total, list(self.recorder.calls), self.stats()
                png = await asyncio.to_thread(render_png, calls, stats, self.title)
                self._show(png, stats, total)

    def start(self) -> "LiveView":
        """Start background traffic and periodic redraws (stops after `duration_s`)."""
        if not self.running:
            self._tasks = [runtime.spawn(self._traffic(), name="labkit-traffic"),
                           runtime.spawn(self._redraw_loop(), name="labkit-redraw")]
        return self

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks[:1])

    async def stop(self) -> None:
        """Stop the traffic and the redraws; the last chart stays."""
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        self._tasks = []
        self.draw()

    async def sample(self, n: int = 20) -> dict:
        """Make `n` calls one after another and return *their* stats (handy headless).

        They are drawn on the chart too; calls of the background traffic are left out of the
        returned numbers, so a fault change shows cleanly.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        mine = Recorder(n)
        for _ in range(n):
            mine.record(await self._one())
        self.draw()
        return mine.stats()

    # ---- reading -----------------------------------------------------------
    def stats(self) -> dict:
        """The numbers shown above the chart (window of recent calls)."""
        return self.recorder.stats()

    def summary(self) -> dict:
        return {**self.stats(), "total": self.recorder.total, "dropped": self.dropped,
                "draws": self.draws, "running": self.running}

    def draw(self) -> None:
        """Redraw the chart and the numbers from the recorded calls."""
        stats = self.stats()
        self._show(render_png(self.recorder.calls, stats, self.title), stats, self.recorder.total)

    def _show(self, png: bytes, s: dict, total: int) -> None:
        fmt = lambda v: "–" if math.isnan(v) else f"{v:,.0f}"  # noqa: E731
        err = "–" if math.isnan(s["error_rate"]) else f"{s['error_rate']:.0%}"
        self.stats_html.value = (
            f"<b>{html.escape(self.title)}</b> · last {s['n']} calls · p50 {fmt(s['p50_ms'])} ms · "
            f"p95 {fmt(s['p95_ms'])} ms · p99 {fmt(s['p99_ms'])} ms · errors {err}")
        show_png(self.chart, png, f"<latency chart: {s['n']} calls>")
        self._drawn_total = total
        self.draws += 1

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def render_png(calls, stats: dict, title: str) -> bytes:
    """Latency over time (errors as red crosses) and a histogram with p50/p95/p99 lines."""
    fig = new_figure(8.5, 2.8)
    ax_t, ax_h = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    calls = list(calls)
    if calls:
        t0 = calls[0].t
        good = [(c.t - t0, c.latency_s * 1000) for c in calls if c.ok]
        bad = [(c.t - t0, c.latency_s * 1000) for c in calls if not c.ok]
        if good:
            ax_t.plot(*zip(*good), ".", ms=4, color="#1f77b4", label="ok")
        if bad:
            ax_t.plot(*zip(*bad), "x", ms=5, color="#d62728", label="error")
        ax_h.hist([c.latency_s * 1000 for c in calls], bins=30, color="#7f7f7f")
        for q, color in (("p50_ms", "#2ca02c"), ("p95_ms", "#ff7f0e"), ("p99_ms", "#d62728")):
            ax_h.axvline(stats[q], color=color, lw=1.5, label=q.replace("_ms", ""))
        ax_t.legend(loc="upper left", fontsize=7)
        ax_h.legend(fontsize=7)
    ax_t.set(xlabel="time (s)", ylabel="latency (ms)", title=title)
    ax_h.set(xlabel="latency (ms)", ylabel="calls")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.88, wspace=0.25)
    return figure_png(fig)


def watch(call, *, rate_per_s: float = 10.0, window: int = 200, timeout_s: float = 5.0,
          refresh_s: float = 1.0, duration_s: float = 300.0, max_in_flight: int = 50,
          title: str | None = None, start: bool = True) -> LiveView:
    """Call `call` (an async function, or a service: GET /health) `rate_per_s` times a second
    and show a live latency chart over the last `window` calls.

    Each call is cut off after `timeout_s` (counted as "timeout"); traffic stops by itself
    after `duration_s` or at ``labkit.shutdown()``; at most `max_in_flight` calls are
    outstanding (extra ticks are counted as dropped, so an outage cannot pile up tasks).
    Calling it again with the same title (re-running the cell) stops the previous view.
    """
    if hasattr(call, "faults") and hasattr(call, "url"):
        service = call
        call = _health_call(service)
        title = title or f"GET {service.name}/health"
    if not callable(call):
        raise ValueError(f"call must be an async function or a service, got {call!r}")
    title = title or getattr(call, "__name__", "calls")
    previous = _views.get(title)
    if previous is not None and previous.loop is asyncio.get_running_loop() and previous.running:
        runtime.spawn(previous.stop())           # re-running the cell replaces the old view
    view = LiveView(call, rate_per_s=rate_per_s, window=window, timeout_s=timeout_s,
                    refresh_s=refresh_s, duration_s=duration_s, max_in_flight=max_in_flight,
                    title=title)
    _views[title] = view
    view.draw()
    return view.start() if start else view


_views: dict[str, LiveView] = {}


def _health_call(service):
    """An async function that GETs the service's /health on one reused session."""
    session = None

    async def get_health():
        nonlocal session
        if session is None or session.closed:
            session = runtime.session()
        async with session.get(service.url + "/health") as resp:
            await resp.read()
            return resp
    return get_health
