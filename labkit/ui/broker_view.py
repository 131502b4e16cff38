"""The live view of the kitchen (chapter 02): queue depth, unacked messages and rates.

Every `refresh_s` it samples `kitchen.stats()` and redraws two charts over the last
`window_s` seconds: ready and unacked messages, and delivered / acked / redelivered /
dead-lettered per second, with a dashed line at each knob change; above them a line with the
delivery checker's running counts. A matplotlib Figure (no pyplot) drawn to PNG off the loop,
in an ipywidgets Output. Bounded history; the background task ends with the kitchen, at
`stop()` or at ``labkit.shutdown()``. Headless code uses `await view.sample(seconds)`.
"""
from __future__ import annotations

import asyncio
import collections
import html
import weakref

import ipywidgets as W

from labkit._core import runtime, validate
from labkit.ui.charts import figure_png, new_figure, render_off_loop, show_png

__all__ = ["BrokerView", "broker_view", "render_png"]

MAX_SAMPLES = 5_000
MAX_MARKS = 100
_RATES = (("delivered", "#1f77b4"), ("acked", "#2ca02c"), ("redelivered", "#ff7f0e"),
          ("dead_lettered", "#d62728"))


class BrokerView:
    """A live chart of one kitchen; build it with `broker_view`."""

    def __init__(self, kitchen, *, window_s: float, refresh_s: float):
        self.kitchen = kitchen
        self.window_s = validate.number("window_s", window_s, 1, 3600, unit=" s")
        self.refresh_s = validate.number("refresh_s", refresh_s, 0.05, 60, unit=" s")
        self.loop = asyncio.get_running_loop()
        n = min(MAX_SAMPLES, int(self.window_s / self.refresh_s) + 10)
        self.samples: collections.deque = collections.deque(maxlen=n)   # (t, stats)
        self.marks: collections.deque = collections.deque(maxlen=MAX_MARKS)
        self.draws = 0
        self.error = ""
        self.chart = W.Output().add_class("labkit-chart")
        self.stats_html = W.HTML().add_class("labkit-stats")
        self.widget = W.VBox([self.stats_html, self.chart])
        self._unsubscribe = kitchen.on_change(self._on_change)
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> "BrokerView":
        if not self.running:
            self._task = runtime.spawn(self._run(), name="labkit-broker-view")
        return self

    async def stop(self) -> None:
        """Stop redrawing (waits until the task has ended); the chart stays."""
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task}, timeout=5)
        self._release()

    def _release(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if callable(unsubscribe):
            unsubscribe()

    def _on_change(self, changed: dict) -> None:
        text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in changed.items())
        self.marks.append((self.loop.time(), text[:40]))

    def record(self) -> dict:
        """Take one sample of the kitchen's stats now (and keep it in the bounded history)."""
        s = self.kitchen.stats()
        self.samples.append((self.loop.time(), s))
        return s

    async def _run(self) -> None:
        try:
            while self.kitchen.running:
                self.record()
                await self._redraw()
                await asyncio.sleep(self.refresh_s)
            self.record()
            await self._redraw()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - shown on screen, never lost
            self.error = f"{type(err).__name__}: {err}"[:200]
            self.stats_html.value = self.status_line()
        finally:
            self._release()

    async def sample(self, seconds: float = 1.0) -> dict:
        """Watch for `seconds` and return the kitchen's stats over that stretch: rates per
        second from the counts (published, delivered, acked, redelivered, dead_lettered),
        the peak ready and unacked, and the end values."""
        seconds = validate.number("seconds", seconds, 0, 600, lo_open=True, unit=" s")
        first = self.kitchen.stats()      # not kept: the chart's history is the redraw loop's
        t0, end = self.loop.time(), self.loop.time() + seconds
        peak_ready, peak_unacked = first["ready"], first["unacked"]
        while self.loop.time() < end:
            await asyncio.sleep(min(0.1, self.refresh_s, max(0.0, end - self.loop.time())))
            s = self.kitchen.stats()
            peak_ready, peak_unacked = max(peak_ready, s["ready"]), max(peak_unacked,
                                                                       s["unacked"])
        last = self.kitchen.stats()
        span = max(self.loop.time() - t0, 1e-9)
        out = dict(last, seconds=span, max_ready=peak_ready, max_unacked=peak_unacked)
        for kind in ("published", "delivered", "acked", "redelivered", "dead_lettered"):
            out[f"{kind}_per_s"] = (last[kind] - first[kind]) / span
        return out

    def status_line(self) -> str:
        c = self.kitchen.checker.counts
        dead = sum(self.kitchen.checker.dead_lettered.values())
        s = self.samples[-1][1] if self.samples else self.kitchen.stats()
        line = (f"<b>queue {html.escape(str(self.kitchen.queue))}</b> · ready {s['ready']} · "
                f"unacked {s['unacked']} · {s['consumers']} consumers · checker: "
                f"published {c['published']}, delivered {c['delivered']} "
                f"({c['redelivered']} redelivered), acked {c['acked']}, dead-lettered {dead}, "
                f"duplicates {s['duplicates']}" + ("" if self.kitchen.running else " · stopped"))
        if self.error:
            line += f"<br><span style='color:#b00'>view stopped: {html.escape(self.error)}</span>"
        return line

    async def _redraw(self) -> None:
        args = (list(self.samples), list(self.marks), self.loop.time(), self.window_s)
        png = await render_off_loop(render_png, *args)
        self.stats_html.value = self.status_line()
        show_png(self.chart, png, f"<broker chart: {len(args[0])} samples>")
        self.draws += 1

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def render_png(samples, marks, now: float, window_s: float) -> bytes:
    """Queue depth and unacked over the last `window_s`, and rates per second below."""
    fig = new_figure(8.5, 3.6)
    ax_q, ax_r = fig.subplots(2, 1, sharex=True)
    recent = [(t - now, s) for t, s in samples if t >= now - window_s]
    if recent:
        xs = [x for x, _ in recent]
        ax_q.plot(xs, [s["ready"] for _, s in recent], color="#1f77b4", label="ready")
        ax_q.plot(xs, [s["unacked"] for _, s in recent], color="#ff7f0e", label="unacked")
        for kind, color in _RATES:
            ax_r.plot(xs, [s[f"{kind}_per_s"] for _, s in recent], color=color,
                      label=kind.replace("_", "-"))
        ax_q.legend(loc="upper left", fontsize=7)
        ax_r.legend(loc="upper left", fontsize=7, ncol=4)
    labelled = -float("inf")
    for t, text in marks:
        if t >= now - window_s:
            for ax in (ax_q, ax_r):
                ax.axvline(t - now, color="#555555", ls="--", lw=1)
            if t - labelled < window_s / 12:
                continue                  # too close to the last label to be readable
            labelled = t
            ax_q.annotate(text, (t - now, 1), xycoords=("data", "axes fraction"), fontsize=6,
                          rotation=90, va="top", ha="right", color="#555555")
    ax_r.set_xlim(-window_s, 0)
    ax_q.set(ylabel="messages")
    ax_r.set(xlabel="seconds ago", ylabel="per s (last 2 s)")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.95, hspace=0.15)
    return figure_png(fig)


_views: "weakref.WeakValueDictionary[int, BrokerView]" = weakref.WeakValueDictionary()


def broker_view(kitchen, *, window_s: float = 30, refresh_s: float = 0.5) -> BrokerView:
    """A live chart of a running kitchen; a new view of the same kitchen (a re-run cell)
    stops the previous one."""
    if not (callable(getattr(kitchen, "stats", None)) and hasattr(kitchen, "checker")):
        raise ValueError(f"kitchen must be a labkit.labs.kitchen.Kitchen, got {kitchen!r}")
    view = BrokerView(kitchen, window_s=window_s, refresh_s=refresh_s)
    previous = _views.get(id(kitchen))
    if previous is not None and previous.kitchen is kitchen:
        if previous.running:
            runtime.spawn(previous.stop())
        else:
            previous._release()
    _views[id(kitchen)] = view
    return view.start()
