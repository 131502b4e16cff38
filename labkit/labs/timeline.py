"""Circuit-breaker timeline: a breaker in front of a real service, under a fault you control.

Introduced in chapter 05 (retries). Calls go through a `labkit.patterns.breaker.CircuitBreaker` to a
real labkit service (``GET /health``) at a steady rate (the course's one traffic runner,
`labkit.ui.traffic.Traffic`). Beside the service's fault panel
(`labkit.panel`, with its outage checkbox) a chart shows the breaker's state over time
(closed / half-open / open), every call's outcome (ok, failed, or rejected by the breaker
without leaving this process) and the stretches when the service was in an outage.

The chart reads only recorded events: state changes come from a pybreaker-style listener on
the breaker, outcomes from the calls, outage periods from the service's fault model.
`run_for(seconds)` drives the traffic in the foreground and returns a summary of that stretch,
so a notebook or a test proves a claim from code (tick the outage box, run, see OPEN; untick,
run, see HALF_OPEN then CLOSED). `start()` runs the traffic in the background, for use with
the sliders; it stops by itself after its duration, at `stop()` or ``labkit.shutdown()``.
Records are bounded (the last MAX_CALLS outcomes and MAX_EVENTS state changes; running counters
keep the totals). Times are seconds on the loop clock inside; the chart's x axis is seconds
since the timeline was created.
"""
from __future__ import annotations

import asyncio
import collections
import html
import weakref
from dataclasses import dataclass

import aiohttp
import ipywidgets as W

from labkit._core import runtime, validate
from labkit.patterns.breaker import BreakerListener, CircuitBreaker, State
from labkit.patterns.errors import (BreakerOpen, EventLog, ServiceError, is_service_failure,
                                    parse_retry_after)
from labkit.ui.charts import figure_png, new_figure, render_off_loop, show_png
from labkit.ui.panel import panel as fault_panel
from labkit.ui.traffic import Traffic

__all__ = ["Outcome", "BreakerTimeline", "breaker_timeline", "default_breaker", "render_png"]

MAX_CALLS = 20_000        # outcomes kept for the chart (running counters keep the totals)
MAX_EVENTS = 1_000        # state changes and outage toggles kept
_LEVEL = {State.CLOSED.value: 0, State.HALF_OPEN.value: 1, State.OPEN.value: 2}
_STATE_COLOR = {State.CLOSED.value: "#2ca02c", State.HALF_OPEN.value: "#ff7f0e",
                State.OPEN.value: "#d62728"}
_OUTCOME_STYLE = {"ok": (".", "#2ca02c"), "failed": ("x", "#d62728"), "rejected": ("|", "#7f7f7f")}
_KINDS = ("ok", "failed", "rejected")


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
        self.timeline._record_transition(State(old).value, State(new).value)


class BreakerTimeline:
    """Traffic through a circuit breaker to a real service, with its chart; see the module doc."""

    def __init__(self, service, *, breaker: CircuitBreaker | None = None, rate_per_s: float = 40.0,
                 timeout_s: float = 0.5, window_s: float = 30.0, refresh_s: float = 0.5,
                 max_in_flight: int = 100, title: str | None = None):
        if not (hasattr(service, "faults") and hasattr(service, "url")):
            raise ValueError(f"service must be a labkit service (await labkit.start_service(...)), "
                             f"got {service!r}")
        if breaker is not None and not (callable(getattr(breaker, "call", None))
                                        and isinstance(getattr(breaker, "listeners", None), list)):
            raise ValueError(f"breaker must be a labkit breaker (CircuitBreaker(...)) or None, "
                             f"got {breaker!r}")
        validate.text("title", title, optional=True)
        self.timeout_s = validate.number("timeout_s", timeout_s, 0, 60, lo_open=True, unit=" s")
        self.window_s = validate.number("window_s", window_s, 0, 3600, lo_open=True, unit=" s")
        self.refresh_s = validate.number("refresh_s", refresh_s, 0.05, 600, unit=" s")
        # The call has its own timeout (timeout_s, counted by the breaker as a failure); the
        # traffic's cut-off is only a safety net behind it.
        self.traffic = Traffic(self.call_once, rate_per_s=rate_per_s,
                               timeout_s=2 * self.timeout_s + 1.0, max_in_flight=max_in_flight,
                               history=0, judge=lambda o: (o.outcome == "ok", o.outcome),
                               call_errors="stop", name="labkit-breaker-traffic")
        self.rate_per_s = self.traffic.rate_per_s
        self.service = service
        self.breaker = breaker if breaker is not None else default_breaker(f"{service.name} breaker")
        self.title = title or f"breaker in front of {service.name}"
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.calls: EventLog = EventLog(MAX_CALLS)           # Outcome records, newest last
        self.counts: collections.Counter[str] = collections.Counter()
        self.transitions: EventLog = EventLog(MAX_EVENTS)    # (t, old, new)
        self.n_transitions = 0
        self.outages: EventLog = EventLog(MAX_EVENTS)        # (t, outage on?)
        self.outages.append((self.t0, bool(service.faults.outage)))
        self._listener = _Listener(self)
        self.breaker.listeners.append(self._listener)
        self._initial_state = self.breaker.state.value
        self._unsubscribe = service.faults.on_change(self._on_fault_change)
        self._session: aiohttp.ClientSession | None = None
        self.closed = False
        self.panel = fault_panel(service)
        self.chart = W.Output().add_class("labkit-chart")
        self.status = W.HTML().add_class("labkit-stats")
        start = W.Button(description="start traffic", icon="play")
        stop = W.Button(description="stop traffic", icon="stop")
        start.on_click(lambda _: self.start())
        stop.on_click(lambda _: runtime.spawn(self.stop()))
        self.widget = W.VBox([self.status, self.chart, W.HBox([start, stop]), self.panel.widget])
        self.draw()

    # ---- recording ---------------------------------------------------------------------
    def _now(self) -> float:
        return self.loop.time()

    def _record_transition(self, old: str, new: str) -> None:
        self.transitions.append((self._now(), old, new))
        self.n_transitions += 1

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
        self.counts[outcome] += 1
        return rec

    # ---- driving traffic ------------------------------------------------------------------
    async def run_for(self, seconds: float) -> dict:
        """Call at `rate_per_s` for `seconds` (calls overlap when slow), wait for the last ones,
        redraw, and return the summary of just this stretch (see `summary`)."""
        seconds = validate.number("seconds", seconds, 0, 600, lo_open=True, unit=" s")
        self._check_open()
        counts, n_changes = collections.Counter(self.counts), self.n_transitions
        start_state = self.breaker.state.value
        start = self._now()
        try:
            await self.traffic.run(duration_s=seconds)
        finally:
            await self._redraw()
        return self._summarise(self.counts - counts, self._since(n_changes), start_state, start)

    def start(self, duration_s: float = 300.0) -> "BreakerTimeline":
        """Background traffic for `duration_s` with a redraw every `refresh_s` (for the sliders);
        it stops by itself, at `stop()` or at ``labkit.shutdown()``."""
        self._check_open()
        self.traffic.start(duration_s=duration_s, on_refresh=self._redraw,
                           refresh_s=self.refresh_s, on_end=self._ended)
        return self

    @property
    def running(self) -> bool:
        return self.traffic.running

    async def stop(self) -> None:
        """Stop background traffic and redraws (waits until they have ended); the chart stays."""
        await self.traffic.stop()

    async def close(self) -> None:
        """Stop, and stop listening to the breaker and the service's faults (idempotent)."""
        await self.stop()
        if self.closed:
            return
        self.closed = True
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if callable(unsubscribe):
            unsubscribe()
        if self._listener in self.breaker.listeners:
            self.breaker.listeners.remove(self._listener)
        self.panel.close()
        await self._close_session()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this timeline was closed (replaced by a newer one); use the new one")

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def _ended(self) -> None:
        try:
            await self._close_session()
            await self._redraw()
        except Exception as err:  # noqa: BLE001 - shown in the status line, not lost
            self.traffic.error = self.traffic.error or err
            self._show(None)

    # ---- reading ----------------------------------------------------------------------
    def _since(self, n_changes: int) -> list:
        """The state changes recorded after the first `n_changes` (as far as they are kept)."""
        new = self.n_transitions - n_changes
        return self.transitions[-new:] if new > 0 else []

    def _summarise(self, counts, transitions, start_state: str, start: float) -> dict:
        """Counts of outcomes, the states visited in order, transitions (seconds after
        `start`), the state now, and what the service's faults were at the end."""
        counts = {k: counts.get(k, 0) for k in _KINDS}
        states = [start_state] + [new for _, _, new in transitions]
        return {"calls": sum(counts.values()), **counts, "states": states,
                "transitions": [[round(t - start, 3), old, new] for t, old, new in transitions],
                "state": self.breaker.state.value, "service": self.service.faults.describe(),
                "dropped": self.traffic.dropped, "error": self.traffic.summary()["error"]}

    def summary(self) -> dict:
        """The whole history so far (the last MAX_EVENTS state changes), like `run_for`'s."""
        return self._summarise(self.counts, list(self.transitions), self._initial_state
                               if self.n_transitions <= MAX_EVENTS else self.transitions[0][1],
                               self.t0)

    def _chart_args(self):
        now = self._now()
        lo = now - self.window_s
        return ([c for c in self.calls if c.t >= lo], list(self.transitions), list(self.outages),
                self._initial_state if self.n_transitions <= MAX_EVENTS else
                self.transitions[0][1], self.t0, now, self.window_s, self.title)

    async def _redraw(self) -> None:
        self._show(await render_off_loop(render_png, *self._chart_args()))

    def draw(self) -> None:
        """Redraw the chart and the status line from the recorded events, now."""
        self._show(render_png(*self._chart_args()))

    def _show(self, png: bytes | None) -> None:
        recent = self.calls[-40:]
        counts = {k: sum(1 for c in recent if c.outcome == k) for k in _KINDS}
        state = self.breaker.state.value
        line = (
            f"<b>{html.escape(self.title)}</b> · breaker <b style='color:{_STATE_COLOR[state]}'>"
            f"{state.upper()}</b> · last {len(recent)} calls: {counts['ok']} ok, "
            f"{counts['failed']} failed, {counts['rejected']} rejected by the breaker · "
            f"service: {html.escape(self.service.faults.describe())}")
        if self.traffic.error is not None:
            line += (f"<br><span style='color:#b00'>traffic stopped by an error: "
                     f"{html.escape(self.traffic.summary()['error'])}</span>")
        self.status.value = line
        if png is not None:
            show_png(self.chart, png,
                     f"<breaker timeline: {self.counts.total()} calls, state {state}>")

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


_timelines: "weakref.WeakValueDictionary[int, BreakerTimeline]" = weakref.WeakValueDictionary()


def breaker_timeline(service, **kwargs) -> BreakerTimeline:
    """A `BreakerTimeline` for `service` (call it inside the notebook's running loop).

    Keyword arguments: breaker (default `default_breaker()`), rate_per_s (40), timeout_s (0.5),
    window_s (30, the chart's span), refresh_s (0.5, background redraws), max_in_flight (100),
    title. Nothing is called until `run_for(...)` or `start()`. A new timeline for the same
    service (re-running the cell) closes the previous one.
    """
    timeline = BreakerTimeline(service, **kwargs)
    previous = _timelines.get(id(service))
    if previous is not None and previous.service is service and not previous.closed:
        runtime.spawn(previous.close())
    _timelines[id(service)] = timeline
    return timeline
