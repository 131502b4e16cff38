"""The live latency view: background traffic against a call, charted as it runs.

Defined in chapter 1. The numbers cover the calls that finished in the last `window_s` seconds
(2 s by default), so a slider move shows in p50 within about two seconds; the chart draws a
longer history (`history_s`), with a dashed line where a fault knob changed. The traffic is a
`labkit.ui.traffic.Traffic`; the chart is a matplotlib PNG drawn in a worker thread (so drawing
does not inflate the latencies it measures) and placed in an ipywidgets ``Output``. Works in a
browser and headless: tests read ``view.stats()`` and ``view.summary()``.
"""
from __future__ import annotations

import asyncio
import collections
import html
import math

import ipywidgets as W

from labkit._core import runtime, validate
from labkit.obs.metrics import Call, Recorder
from labkit.services.faults import FaultModel
from labkit.ui.charts import figure_png, new_figure, render_off_loop, show_png
from labkit.ui.traffic import MAX_RATE_PER_S, Traffic

__all__ = ["LiveView", "watch", "render_png"]

MAX_HISTORY_CALLS = 50_000
MAX_MARKS = 100


def _stats(calls) -> dict:
    """n, p50_ms, p95_ms, p99_ms, mean_ms, error_rate of `calls` (the Recorder's summary)."""
    calls = list(calls)
    recorder = Recorder(max(1, len(calls)))
    for c in calls:
        recorder.record(c)
    return recorder.stats()


def _since(calls, cutoff: float) -> list[Call]:
    """The calls that finished after `cutoff` (calls are stored in the order they finished)."""
    recent = []
    for c in reversed(calls):
        if c.t <= cutoff:
            break
        recent.append(c)
    recent.reverse()
    return recent


def _mark_text(changed: dict) -> str:
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items()]
    text = ", ".join(parts)
    return text if len(text) <= 40 else text[:39] + "…"


class LiveView:
    """Steady traffic against `call` with a live chart; build it with `watch`."""

    def __init__(self, call, *, rate_per_s: float, window_s: float, history_s: float,
                 timeout_s: float, refresh_s: float, duration_s: float, max_in_flight: int,
                 title: str, faults: FaultModel | None = None, closer=None):
        self.window_s = validate.number("window_s", window_s, 0, 600, lo_open=True, unit=" s")
        self.history_s = validate.number("history_s", history_s, self.window_s, 3600, unit=" s")
        self.refresh_s = validate.number("refresh_s", refresh_s, 0.05, 600, unit=" s")
        rate_per_s = validate.number("rate_per_s", rate_per_s, 0, MAX_RATE_PER_S, lo_open=True,
                                     unit=" calls/s")
        self.traffic = Traffic(call, rate_per_s=rate_per_s, timeout_s=timeout_s,
                               max_in_flight=max_in_flight, duration_s=duration_s,
                               history=min(MAX_HISTORY_CALLS,
                                           int(rate_per_s * self.history_s * 1.5) + 100),
                               name="labkit-liveview")
        self.title = title
        self.faults = faults
        self.marks: collections.deque[tuple[float, str]] = collections.deque(maxlen=MAX_MARKS)
        self.draws = 0
        self.loop = asyncio.get_running_loop()
        self._closer = closer
        self._unsubscribe = None
        self.chart = W.Output().add_class("labkit-chart")
        self.stats_html = W.HTML().add_class("labkit-stats")
        stop = W.Button(description="stop traffic", icon="stop")
        stop.on_click(lambda _: runtime.spawn(self.stop()))
        self.widget = W.VBox([self.stats_html, self.chart, stop])

    # ---- what the chart measures ----------------------------------------------------------
    @property
    def calls(self):
        """The recorded calls, oldest first (bounded history)."""
        return self.traffic.calls

    @property
    def running(self) -> bool:
        return self.traffic.running

    @property
    def chart_title(self) -> str:
        return (f"{self.title} · p50/p95/p99 over the last {self.window_s:g} s · "
                f"{self.traffic.rate_per_s:g} calls/s")

    def stats(self, now: float | None = None) -> dict:
        """The numbers above the chart: calls that finished in the last `window_s` before
        `now` (loop time, seconds; default: the loop's clock)."""
        now = self.loop.time() if now is None else validate.number("now", now)
        return _stats(_since(self.traffic.calls, now - self.window_s))

    def summary(self) -> dict:
        t = self.traffic
        return {**self.stats(), "window_s": self.window_s, "total": t.completed,
                "issued": t.issued, "dropped": t.dropped, "draws": self.draws,
                "running": self.running, "marks": len(self.marks),
                "error": t.summary()["error"]}

    # ---- running ---------------------------------------------------------------------------
    def start(self) -> "LiveView":
        """Start the traffic and periodic redraws (they stop after `duration_s` or `stop()`)."""
        if not self.running:
            if self.faults is not None and self._unsubscribe is None:
                self._unsubscribe = self.faults.on_change(self._on_fault_change)
            self.traffic.start(on_refresh=self._redraw, refresh_s=self.refresh_s,
                               on_end=self._ended)
        return self

    async def stop(self) -> None:
        """Stop the traffic and the redraws (waits until they have ended); the chart stays."""
        await self.traffic.stop()
        self._release()

    async def wait(self, timeout_s: float = 60.0) -> bool:
        """Wait (at most `timeout_s`) until the traffic has ended; True if it has."""
        return await self.traffic.wait(timeout_s)

    async def sample(self, n: int = 20) -> dict:
        """Make `n` calls one after another and return *their* stats (handy headless).

        They are drawn on the chart too; calls of the background traffic are left out of the
        returned numbers, so a fault change shows cleanly.
        """
        n = validate.integer("n", n, 1, 10_000)
        mine = [await self.traffic.call_once() for _ in range(n)]
        await self._redraw()
        return _stats(mine)

    def _on_fault_change(self, changed: dict) -> None:
        self.marks.append((self.loop.time(), _mark_text(changed)))

    def _release(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if callable(unsubscribe):
            unsubscribe()
        if _views.get(self.title) is self:
            del _views[self.title]

    async def _ended(self) -> None:
        self._release()
        try:
            if self._closer is not None:
                await self._closer()
            await self._redraw()
        except Exception as err:  # noqa: BLE001 - shown in the status line, not lost
            self.traffic.error = self.traffic.error or err
            self.stats_html.value = self.status_line(self.stats())

    # ---- drawing ---------------------------------------------------------------------------
    def _snapshot(self):
        now = self.loop.time()
        calls = _since(self.traffic.calls, now - self.history_s)
        stats = _stats(_since(calls, now - self.window_s))
        return (calls, list(self.marks), stats, now, self.window_s, self.history_s,
                self.chart_title), stats

    async def _redraw(self) -> None:
        args, stats = self._snapshot()
        self._show(await render_off_loop(render_png, *args), stats)

    def draw(self) -> None:
        """Redraw the chart and the numbers now, on the loop (a cell's explicit redraw)."""
        args, stats = self._snapshot()
        self._show(render_png(*args), stats)

    def _show(self, png: bytes, s: dict) -> None:
        self.stats_html.value = self.status_line(s)
        show_png(self.chart, png, f"<latency chart: {s['n']} calls in the last "
                                  f"{self.window_s:g} s>")
        self.draws += 1

    def status_line(self, s: dict) -> str:
        """The HTML line above the chart (what it measures, the numbers, and any error)."""
        def ms(q):
            return "–" if math.isnan(s[q]) else f"{s[q]:.0f} ms"
        err = "–" if math.isnan(s["error_rate"]) else f"{s['error_rate']:.0%}"
        t = self.traffic
        line = (f"<b>{html.escape(self.title)}</b> · last {self.window_s:g} s: {s['n']} calls · "
                f"p50 {ms('p50_ms')} · p95 {ms('p95_ms')} · p99 {ms('p99_ms')} · errors {err} · "
                f"{t.rate_per_s:g} calls/s" + ("" if self.running else " · stopped"))
        if t.dropped:
            line += f" · {t.dropped} ticks dropped"
        if s["n"] and s["error_rate"] > 0 and t.last_error:
            line += f" · last error: {html.escape(t.last_error)}"
        if t.error is not None:
            line += (f"<br><span style='color:#b00'>traffic stopped by an error: "
                     f"{html.escape(t.summary()['error'])}</span>")
        return line

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def render_png(calls, marks, stats: dict, now: float, window_s: float, history_s: float,
               title: str) -> bytes:
    """Latency over the last `history_s` (errors as red crosses, the stats window shaded,
    fault changes as dashed lines) and a histogram of the window with p50/p95/p99 lines."""
    fig = new_figure(8.5, 2.9)
    ax_t, ax_h = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    ax_t.axvspan(-window_s, 0, color="#fff3c4", lw=0, label=f"last {window_s:g} s")
    good = [(c.t - now, c.latency_s * 1000) for c in calls if c.ok]
    bad = [(c.t - now, c.latency_s * 1000) for c in calls if not c.ok]
    if good:
        ax_t.plot(*zip(*good), ".", ms=4, color="#1f77b4", label="ok")
    if bad:
        ax_t.plot(*zip(*bad), "x", ms=5, color="#d62728", label="error")
    for t, text in marks:
        if t >= now - history_s:
            ax_t.axvline(t - now, color="#555555", ls="--", lw=1)
            ax_t.annotate(text, (t - now, 1), xycoords=("data", "axes fraction"), fontsize=6,
                          rotation=90, va="top", ha="right", color="#555555")
    ax_t.set_xlim(-history_s, 0)
    ax_t.legend(loc="upper left", fontsize=7)
    ax_t.set(xlabel="seconds ago", ylabel="latency (ms)")
    recent = [c.latency_s * 1000 for c in calls if c.t > now - window_s]
    if recent:
        lo, hi = min(recent), max(recent)
        spread = (lo, hi) if hi - lo > 1e-6 * max(1.0, hi) else (lo - 0.5, hi + 0.5)
        ax_h.hist(recent, bins=20, range=spread, color="#7f7f7f")
        for q, color in (("p50_ms", "#2ca02c"), ("p95_ms", "#ff7f0e"), ("p99_ms", "#d62728")):
            ax_h.axvline(stats[q], color=color, lw=1.5, label=q.replace("_ms", ""))
        ax_h.legend(fontsize=7)
    ax_h.set(xlabel=f"latency (ms), last {window_s:g} s", ylabel="calls")
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.86, wspace=0.25)
    return figure_png(fig)


_views: dict[str, LiveView] = {}


def watch(call, *, rate_per_s: float = 10.0, window_s: float = 2.0, history_s: float = 30.0,
          timeout_s: float = 5.0, refresh_s: float = 1.0, duration_s: float = 300.0,
          max_in_flight: int = 50, title: str | None = None, faults=None,
          start: bool = True) -> LiveView:
    """Call `call` (an async function, or a service: GET /health) `rate_per_s` times a second
    and show a live latency chart.

    The numbers cover the calls that finished in the last `window_s` seconds; the chart shows
    the last `history_s` seconds, redrawn every `refresh_s`, with a dashed line whenever a
    knob of `faults` changed (a service's own faults by default; pass a service or
    `FaultModel` to mark another one's). Each call is cut off after `timeout_s` (counted as
    "timeout"); at most `max_in_flight` calls are outstanding (extra ticks are counted as
    dropped, so an outage cannot pile up tasks); traffic stops by itself after `duration_s`
    or at ``labkit.shutdown()``. Calling it again with the same title (re-running the cell)
    stops the previous view.
    """
    closer = None
    if hasattr(call, "faults") and hasattr(call, "url"):
        service = call
        call = _HealthCall(service)
        closer = call.aclose
        title = title if title is not None else f"GET {service.name}/health"
        faults = service if faults is None else faults
    if not callable(call):
        raise ValueError(f"call must be an async function or a service, got {call!r}")
    validate.text("title", title, optional=True)
    start = validate.boolean("start", start)
    faults = _fault_model(faults)
    title = title or getattr(call, "__name__", "calls")
    view = LiveView(call, rate_per_s=rate_per_s, window_s=window_s, history_s=history_s,
                    timeout_s=timeout_s, refresh_s=refresh_s, duration_s=duration_s,
                    max_in_flight=max_in_flight, title=title, faults=faults, closer=closer)
    previous = _views.get(title)
    if previous is not None and previous.loop is view.loop and previous.running:
        runtime.spawn(previous.stop())           # re-running the cell replaces the old view
    _views[title] = view
    view.draw()
    return view.start() if start else view


def _fault_model(faults) -> FaultModel | None:
    if faults is None or isinstance(faults, FaultModel):
        return faults
    if isinstance(getattr(faults, "faults", None), FaultModel):
        return faults.faults
    raise ValueError(f"faults must be a labkit service, a FaultModel or None, got {faults!r}")


class _HealthCall:
    """GET the service's /health on one reused session (closed when the view's traffic ends;
    a later call, e.g. `sample`, opens a new one)."""

    def __init__(self, service):
        self.service = service
        self.__name__ = f"GET {service.name}/health"
        self._session = None
        self._busy = 0

    async def __call__(self):
        if self._session is None or self._session.closed:
            self._session = runtime.session()
        self._busy += 1
        try:
            async with self._session.get(self.service.url + "/health") as resp:
                await resp.read()
                return resp
        finally:
            self._busy -= 1

    async def aclose(self) -> None:
        if self._session is not None and not self._busy:
            session, self._session = self._session, None
            await session.close()
