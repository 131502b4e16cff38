"""Circuit-breaker timeline: a breaker in front of a real service, under a fault you control.

Introduced in chapter 05 (retries). Calls go through a `labkit.patterns.breaker.CircuitBreaker` to a
real labkit service (``GET /health``) at a steady rate. Beside the service's fault panel
(`labkit.panel`, with its outage checkbox) a chart shows the breaker's state over time
(closed / half-open / open), every call's outcome (ok, failed, or rejected by the breaker
without leaving this process) and the stretches when the service was in an outage.

The chart reads only recorded events: state changes come from a pybreaker-style listener on
the breaker, outcomes from the calls, outage periods from the service's fault model.
`run_for(seconds)` drives the traffic in the foreground and returns a summary of that stretch,
so a notebook or a test proves a claim from code (tick the outage box, run, see OPEN; untick,
run, see HALF_OPEN then CLOSED). `start()` runs the traffic in the background, for use with
the sliders; ``labkit.shutdown()`` stops it. Times are seconds on the loop clock inside; the
chart's x axis is seconds since the timeline was created.
"""
from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass

import aiohttp
import ipywidgets as W

from labkit._core import runtime
from labkit.patterns.breaker import BreakerListener, CircuitBreaker, State
from labkit.patterns.errors import BreakerOpen, ServiceError, is_service_failure, parse_retry_after
from labkit.ui.charts import figure_png, new_figure, show_png
from labkit.ui.panel import panel as fault_panel

__all__ = ["Outcome", "BreakerTimeline", "breaker_timeline", "default_breaker", "render_png"]

_LEVEL = {State.CLOSED.value: 0, State.HALF_OPEN.value: 1, State.OPEN.value: 2}
_STATE_COLOR = {State.CLOSED.value: "#2ca02c", State.HALF_OPEN.value: "#ff7f0e",
                State.OPEN.value: "#d62728"}
_OUTCOME_STYLE = {"ok": (".", "#2ca02c"), "failed": ("x", "#d62728"), "rejected": ("|", "#7f7f7f")}


@dataclass(frozen=True)
class Outcome:
    """One call as the caller saw it."""

    t: float            # loop time when the call finished, seconds
    outcome: str        # "ok", "failed" (the service failed or timed out), "rejected" (breaker)
    state: str          # breaker state right after the call
    latency_s: float
    detail: str         # "200", "503", "timeout", "breaker open", ...


def default_breaker(name: str = "breaker") -> CircuitBreaker:
    """A breaker tuned to react within a second at tens of calls per second: a window of the
    last 10 calls, opens at >= 50 % failures once 5 calls are in, stays open 1 s, then admits
    3 trial calls."""
    return CircuitBreaker(window_size=10, minimum_number_of_calls=5, failure_rate_threshold=50.0,
                          wait_duration_in_open_s=1.0, permitted_calls_in_half_open=3, name=name)


class _Listener(BreakerListener):
    """Records every state change with the loop time (the chart's state line)."""

    def __init__(self, timeline: "BreakerTimeline"):
        self.timeline = timeline

    def state_change(self, old, new) -> None:
        self.timeline.transitions.append((self.timeline._now(), State(old).value, State(new).value))


class BreakerTimeline:
    """Traffic through a circuit breaker to a real service, with its chart; see the module doc."""

    def __init__(self, service, *, breaker: CircuitBreaker | None = None, rate_per_s: float = 40.0,
                 timeout_s: float = 0.5, window_s: float = 30.0, refresh_s: float = 0.5,
                 title: str | None = None):
        for name, value in (("rate_per_s", rate_per_s), ("timeout_s", timeout_s),
                            ("window_s", window_s), ("refresh_s", refresh_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if not (hasattr(service, "faults") and hasattr(service, "url")):
            raise ValueError(f"service must be a labkit service (await labkit.start_service(...)), "
                             f"got {service!r}")
        self.service = service
        self.breaker = breaker if breaker is not None else default_breaker(f"{service.name} breaker")
        self.rate_per_s, self.timeout_s = float(rate_per_s), float(timeout_s)
        self.window_s, self.refresh_s = float(window_s), float(refresh_s)
        self.title = title or f"breaker in front of {service.name}"
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.calls: list[Outcome] = []
        self.transitions: list[tuple[float, str, str]] = []
        self.outages: list[tuple[float, bool]] = [(self.t0, bool(service.faults.outage))]
        self.breaker.listeners.append(_Listener(self))
        self._initial_state = self.breaker.state.value
        service.faults.on_change(self._on_fault_change)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []
        self.panel = fault_panel(service)
        self.chart = W.Output().add_class("labkit-chart")
        self.status = W.HTML().add_class("labkit-stats")
        start = W.Button(description="start traffic", icon="play")
        stop = W.Button(description="stop traffic", icon="stop")
        start.on_click(lambda _: self.start())
        stop.on_click(lambda _: runtime.spawn(self.stop()))
        self.widget = W.VBox([self.status, self.chart, W.HBox([start, stop]), self.panel.widget])
        runtime.on_shutdown(self.stop, loop=self.loop)
        self.draw()

    # ---- recording ---------------------------------------------------------------------
    def _now(self) -> float:
        return self.loop.time()

    def _on_fault_change(self, changed: dict) -> None:
        if "outage" in changed:
            self.outages.append((self._now(), bool(changed["outage"])))

    async def _get(self):
        if self._session is None or self._session.closed:
            self._session = runtime.session()
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with self._session.get(self.service.url + "/health", timeout=timeout) as resp:
            await resp.read()
            if resp.status >= 500 or resp.status == 429:
                raise ServiceError.from_status(
                    resp.status, retry_after_s=parse_retry_after(resp.headers.get("Retry-After")))
            return resp.status

    async def call_once(self) -> Outcome:
        """One call through the breaker; returns (and records) its outcome."""
        start = self._now()
        try:
            status = await self.breaker.call(self._get)
            outcome, detail = "ok", str(status)
        except BreakerOpen:
            outcome, detail = "rejected", "breaker open"
        except (TimeoutError, asyncio.TimeoutError):
            outcome, detail = "failed", "timeout"
        except ServiceError as err:
            outcome, detail = "failed", str(err.status or err.kind.value)
        except Exception as err:  # noqa: BLE001 - a failed call is data here
            if not is_service_failure(err):
                raise
            outcome, detail = "failed", type(err).__name__
        end = self._now()
        rec = Outcome(end, outcome, self.breaker.state.value, end - start, detail)
        self.calls.append(rec)
        return rec

    # ---- driving traffic ------------------------------------------------------------------
    async def run_for(self, seconds: float) -> dict:
        """Call at `rate_per_s` for `seconds` (calls overlap when slow), wait for the last ones,
        redraw, and return the summary of just this stretch (see `summarise`)."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 600:
            raise ValueError(f"seconds must be a number in (0, 600], got {seconds!r}")
        first_call, first_change = len(self.calls), len(self.transitions)
        start_state = self.breaker.state.value
        start = self._now()
        await self._traffic(start + seconds)
        self.draw()
        return self.summarise(self.calls[first_call:], self.transitions[first_change:],
                              start_state, start)

    async def _traffic(self, until: float) -> None:
        interval = 1.0 / self.rate_per_s
        pending: set[asyncio.Task] = set()
        tick = self._now()
        try:
            while self._now() < until:
                task = self.loop.create_task(self.call_once())
                pending.add(task)
                task.add_done_callback(pending.discard)
                tick += interval
                await asyncio.sleep(max(0.0, tick - self._now()))
            if pending:
                await asyncio.gather(*pending)
        finally:
            for task in list(pending):
                task.cancel()

    def start(self, duration_s: float = 300.0) -> "BreakerTimeline":
        """Background traffic for `duration_s` with a redraw every `refresh_s` (for the sliders)."""
        if not self.running:
            self._tasks = [runtime.spawn(self._traffic(self._now() + duration_s),
                                         name="labkit-breaker-traffic"),
                           runtime.spawn(self._redraw_loop(), name="labkit-breaker-redraw")]
        return self

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks[:1])

    async def stop(self) -> None:
        """Stop background traffic and redraws; the last chart stays."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        self.draw()

    async def _redraw_loop(self) -> None:
        drawn = -1
        while True:
            await asyncio.sleep(self.refresh_s)
            if len(self.calls) != drawn or not self.running:
                drawn = len(self.calls)
                args = self._chart_args()
                png = await asyncio.to_thread(render_png, *args)
                self._show(png)
                if not self.running:
                    return

    # ---- reading ----------------------------------------------------------------------
    def summarise(self, calls, transitions, start_state: str, start: float) -> dict:
        """Counts of outcomes, the states visited in order, transitions (seconds after
        `start`), the state now, and what the service's faults were at the end."""
        counts = {k: sum(1 for c in calls if c.outcome == k) for k in ("ok", "failed", "rejected")}
        states = [start_state] + [new for _, _, new in transitions]
        return {"calls": len(calls), **counts, "states": states,
                "transitions": [[round(t - start, 3), old, new] for t, old, new in transitions],
                "state": self.breaker.state.value, "service": self.service.faults.describe()}

    def summary(self) -> dict:
        """The whole history so far, as `summarise` reports a stretch."""
        return self.summarise(self.calls, self.transitions, self._initial_state, self.t0)

    def _chart_args(self):
        now = self._now()
        return (list(self.calls), list(self.transitions), list(self.outages), self._initial_state,
                self.t0, now, self.window_s, self.title)

    def draw(self) -> None:
        """Redraw the chart and the status line from the recorded events."""
        self._show(render_png(*self._chart_args()))

    def _show(self, png: bytes) -> None:
        recent = self.calls[-40:]
        counts = {k: sum(1 for c in recent if c.outcome == k) for k in ("ok", "failed", "rejected")}
        state = self.breaker.state.value
        self.status.value = (
            f"<b>{html.escape(self.title)}</b> · breaker <b style='color:{_STATE_COLOR[state]}'>"
            f"{state.upper()}</b> · last {len(recent)} calls: {counts['ok']} ok, "
            f"{counts['failed']} failed, {counts['rejected']} rejected by the breaker · "
            f"service: {html.escape(self.service.faults.describe())}")
        show_png(self.chart, png, f"<breaker timeline: {len(self.calls)} calls, state {state}>")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def _state_steps(transitions, initial, t0, now):
    """[(start, end, state)] segments covering t0..now."""
    segs, state, since = [], initial, t0
    for t, _old, new in transitions:
        segs.append((since, t, state))
        state, since = new, t
    segs.append((since, now, state))
    return segs


def _outage_spans(outages, now):
    spans, since = [], None
    for t, on in outages:
        if on and since is None:
            since = t
        elif not on and since is not None:
            spans.append((since, t))
            since = None
    if since is not None:
        spans.append((since, now))
    return spans


def render_png(calls, transitions, outages, initial_state, t0, now, window_s, title) -> bytes:
    """The timeline chart: breaker state (top) and call outcomes (bottom) over the last
    `window_s` seconds; outage periods shaded grey."""
    fig = new_figure(8.5, 3.6)
    ax_s, ax_c = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.2]})
    lo = max(0.0, now - t0 - window_s)
    hi = max(now - t0, lo + 1.0)
    for a, b in _outage_spans(outages, now):
        for ax in (ax_s, ax_c):
            ax.axvspan(a - t0, b - t0, color="#bbbbbb", alpha=0.35, lw=0)
    xs, ys = [], []
    for a, b, state in _state_steps(transitions, initial_state, t0, now):
        xs += [a - t0, b - t0]
        ys += [_LEVEL[state]] * 2
        ax_s.axvspan(a - t0, b - t0, ymin=0.0, ymax=0.06, color=_STATE_COLOR[state], lw=0)
    ax_s.plot(xs, ys, color="black", lw=1.5)
    ax_s.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
    ax_s.set_ylim(-0.4, 2.4)
    ax_s.set_title(title + " (grey: service outage)", fontsize=10)
    rows = {"ok": 0, "failed": 1, "rejected": 2}
    for kind, (marker, color) in _OUTCOME_STYLE.items():
        pts = [c.t - t0 for c in calls if c.outcome == kind and c.t - t0 >= lo]
        if pts:
            ax_c.plot(pts, [rows[kind]] * len(pts), marker, color=color, ms=6, ls="none")
    ax_c.set_yticks([0, 1, 2], ["ok", "failed", "rejected\nby breaker"])
    ax_c.set_ylim(-0.6, 2.6)
    ax_c.set_xlabel("time (s)")
    ax_c.set_xlim(lo, hi)
    for ax in (ax_s, ax_c):
        ax.grid(alpha=0.25, axis="x")
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.13, top=0.9, hspace=0.12)
    return figure_png(fig)


def breaker_timeline(service, **kwargs) -> BreakerTimeline:
    """A `BreakerTimeline` for `service` (call it inside the notebook's running loop).

    Keyword arguments: breaker (default `default_breaker()`), rate_per_s (40), timeout_s (0.5),
    window_s (30, the chart's span), refresh_s (0.5, background redraws), title. Nothing is
    called until `run_for(...)` or `start()`.
    """
    return BreakerTimeline(service, **kwargs)
