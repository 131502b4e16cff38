"""The retry-storm widget of chapter 05: controls that re-run `labkit.labs.storm.run_storm`
and overlay the policies on one chart.

In a notebook a control move runs the storm off the kernel's loop (`run_storm_async`), so real
services and live charts keep going while it computes. `from labkit.labs.storm import
storm_lab` also works.
"""
from __future__ import annotations

import asyncio
import html

import ipywidgets as W

from labkit._core.validate import boolean
from labkit.labs.storm import (_LABELS, _RUN_DEFAULTS, POLICIES, TRIGGERS, _check, _verdict,
                               plot_storm, run_storm, run_storm_async)
from labkit.ui.charts import figure_png, render_off_loop, show_png
from labkit.ui.latest import LatestRun, error_html

__all__ = ["StormLab", "storm_lab"]


class StormLab:
    """Policy, trigger, size and trigger-length controls; every change re-runs and redraws.

    The chart overlays every policy run with the current trigger settings, so switching the
    policy compares them. In a notebook a control move runs the storm off the kernel's loop
    (`run_storm_async`): the status says "running…", real services and live charts keep
    going, and a newer move supersedes a run still computing (its result is dropped). With
    no loop running (a plain script) it runs at once. `run(**kwargs)` runs from code and
    returns the result; `await run_async(**kwargs)` does it without blocking the loop;
    `await wait()` waits for the run a control started. `run(draw=False)` skips the redraw
    (chapter 05 runs all four policies, then shows the lab: one chart instead of four); the
    chart is drawn when the lab is displayed. It keeps the results of the last
    `MAX_SETTINGS` trigger settings.
    """

    MAX_SETTINGS = 20
    _CONTROLS = {"policy": "policy", "trigger": "trigger", "trigger_size": "size",
                 "trigger_duration_s": "duration"}

    def __init__(self, **defaults):
        self.defaults = dict(defaults)
        self.results: dict[tuple, dict[str, dict]] = {}
        self.last: dict | None = None
        style = {"description_width": "110px"}
        layout = W.Layout(width="380px")
        self.policy = W.Dropdown(options=POLICIES, value=defaults.get("policy", "retries"),
                                 description="client policy", style=style, layout=layout)
        self.trigger = W.Dropdown(options=TRIGGERS, value=defaults.get("trigger", "spike"),
                                  description="trigger", style=style, layout=layout)
        size = defaults.get("trigger_size", 2.0)
        length = defaults.get("trigger_duration_s", 10.0)
        self.size = W.FloatSlider(size, min=min(1.0, size), max=max(4.0, size), step=0.25,
                                  description="trigger size (x)", readout_format=".2f",
                                  continuous_update=False, style=style, layout=layout)
        self.duration = W.FloatSlider(length, min=min(1.0, length), max=max(30.0, length),
                                      step=1.0, description="trigger length (s)",
                                      readout_format=".0f", continuous_update=False,
                                      style=style, layout=layout)
        self.status = W.HTML()
        self._latest = LatestRun(self.status, name="labkit-storm-lab")
        self.chart = W.Output().add_class("labkit-chart")
        self.widget = W.VBox([W.HBox([W.VBox([self.policy, self.trigger]),
                                      W.VBox([self.size, self.duration])]),
                              self.status, self.chart])
        self._syncing = False
        self._stale = False                     # a run(draw=False) the chart does not show yet
        for control in (self.policy, self.trigger, self.size, self.duration):
            control.observe(self._on_change, names="value")

    def _on_change(self, _change) -> None:
        if self._syncing:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:                   # no loop (a script): run here and now
            try:
                self.run()
            except ValueError as err:
                self._error(err)
            return
        self._latest.start(self.run_async, f"running {html.escape(str(self.policy.value))}…")

    def _error(self, err: Exception) -> None:
        self.status.value = error_html(err)

    async def wait(self, timeout_s: float = 120.0) -> dict | None:
        """Wait (at most `timeout_s` real seconds) for the run a control started; the result."""
        await self._latest.wait(timeout_s)
        return self.last

    def _params(self, kwargs) -> tuple[str, dict]:
        params = dict(self.defaults)
        params.update({k: getattr(self, attr).value for k, attr in self._CONTROLS.items()})
        params.update(kwargs)
        policy = params.pop("policy")
        self.status.value = f"running {html.escape(str(policy))}…"
        return policy, params

    def run(self, *, draw: bool = True, **kwargs) -> dict:
        """Run with the controls' values (overridden by `kwargs`), redraw (unless `draw` is
        False: then displaying the lab or `draw()` does it), return the result.
        Blocks a running loop while it computes: widget code uses `run_async`."""
        draw = boolean("draw", draw)
        policy, params = self._params(kwargs)
        result = run_storm(policy, **params)  # raises ValueError before any control moves
        runs = self._overlay(policy, params, result)
        png = figure_png(plot_storm(list(runs.values()))) if draw else None
        self._show(policy, params, runs, png)
        return result

    async def run_async(self, **kwargs) -> dict:
        """`run`, computed and drawn in worker threads so the caller's loop keeps running."""
        policy, params = self._params(kwargs)
        result = await run_storm_async(policy, **params)
        runs = self._overlay(policy, params, result)
        png = await render_off_loop(lambda: figure_png(plot_storm(list(runs.values()))))
        self._show(policy, params, runs, png)  # not reached when superseded meanwhile
        return result

    def _overlay(self, policy, params, result) -> dict[str, dict]:
        """`result` with the stored runs of the same trigger settings, in POLICIES order."""
        runs = {**self.results.get(tuple(sorted(params.items())), {}), policy: result}
        return {p: runs[p] for p in POLICIES if p in runs}

    def _show(self, policy, params, runs: dict, png: bytes | None) -> None:
        """Store and show the run (the newest settings last, at most MAX_SETTINGS kept);
        `png` None: the chart is drawn later (`draw`)."""
        key = tuple(sorted(params.items()))
        self.results.pop(key, None)
        self.results[key] = runs
        while len(self.results) > self.MAX_SETTINGS:
            del self.results[next(iter(self.results))]
        result = runs[policy]
        self._sync(policy, params)
        self.last = result
        if png is None:
            self._stale = True
        else:
            self._stale = False
            show_png(self.chart, png, "<retry storm chart>")
        s = result["summary"]
        verdict = (f"{_verdict(result)} (once the trigger ended)" if result["recovered"] else
                   f"<b>did not recover</b>: goodput {s['goodput_last20_per_s']:.0f}/s in the last "
                   f"20 s against {s['goodput_before_per_s']:.0f}/s before the trigger")
        self.status.value = (f"{html.escape(_LABELS[policy])}: {verdict}; "
                             f"{s['attempts_per_request']:.2f} attempts per request, "
                             f"{s['wasted_share']:.0%} of the server's work wasted")

    def _sync(self, policy, params) -> None:
        self._syncing = True
        try:
            self.policy.value = policy
            self.trigger.value = params["trigger"]
            for attr, key in (("size", "trigger_size"), ("duration", "trigger_duration_s")):
                control, value = getattr(self, attr), params[key]
                control.max = max(control.max, value)
                control.min = min(control.min, value)
                control.value = value
        finally:
            self._syncing = False

    def draw(self) -> None:
        """Redraw the chart of the newest trigger settings (what the last run showed)."""
        if self.results:
            self._stale = False
            runs = next(reversed(self.results.values()))
            show_png(self.chart, figure_png(plot_storm(list(runs.values()))),
                     "<retry storm chart>")

    def _ipython_display_(self):
        from IPython.display import display
        if self.last is None:
            try:
                self.run()
            except ValueError as err:
                self._error(err)
        elif self._stale:
            self.draw()
        display(self.widget)


def storm_lab(**defaults) -> StormLab:
    """The retry-storm experiment as a widget. `defaults` are run_storm keyword arguments
    (policy, trigger, trigger_size, trigger_duration_s set the controls' starting values).

    Nothing runs until the widget is displayed or a control moves (or `.run()` is called).
    """
    unknown = set(defaults) - set(_RUN_DEFAULTS)
    if unknown:
        raise ValueError(f"storm_lab got unknown argument(s) {sorted(unknown)}; it takes "
                         f"run_storm's keyword arguments {sorted(_RUN_DEFAULTS)}")
    _check(**{**_RUN_DEFAULTS, **defaults})
    return StormLab(**defaults)
