"""The fault control panel: one slider per knob of a service's `FaultModel`.

Defined in chapter 1. Works in a browser and headless: tests set a slider's ``.value`` and
read ``panel.faults``. Slider labels are in milliseconds; the library works in seconds.
"""
from __future__ import annotations

import html

import ipywidgets as W

from labkit.services.faults import ERROR_STATUSES, LATENCY_DISTS, FaultModel

__all__ = ["FaultPanel", "panel"]

_LAYOUT = W.Layout(width="420px")
_STYLE = {"description_width": "130px"}


def _controls() -> dict:
    """One widget per fault knob (slider ranges are the useful part of each knob's range)."""
    int_slider = lambda desc, hi, step: W.IntSlider(  # noqa: E731
        0, min=0, max=hi, step=step, description=desc, layout=_LAYOUT, style=_STYLE,
        continuous_update=False)
    rate_slider = lambda desc: W.FloatSlider(  # noqa: E731
        0.0, min=0.0, max=1.0, step=0.01, description=desc, readout_format=".0%",
        layout=_LAYOUT, style=_STYLE, continuous_update=False)
    return {
        "latency_dist": W.Dropdown(options=LATENCY_DISTS, description="latency shape",
                                   layout=_LAYOUT, style=_STYLE),
        "latency_ms": int_slider("latency (ms)", 2000, 10),
        "latency_rate": rate_slider("share delayed"),
        "jitter_ms": int_slider("jitter ± (ms)", 1000, 10),
        "latency_p99_ms": int_slider("p99 latency (ms)", 5000, 10),
        "error_rate": rate_slider("error rate"),
        "error_status": W.Dropdown(options=ERROR_STATUSES, value=500, description="error status",
                                   layout=_LAYOUT, style=_STYLE),
        "outage": W.Checkbox(False, description="outage (all 503)", style=_STYLE),
        "reset_rate": rate_slider("connection resets"),
        "slow_body_ms": int_slider("slow body (ms)", 5000, 50),
    }


class FaultPanel:
    """Sliders bound both ways to a service's `FaultModel`.

    Moving a slider changes the model at once (the next request sees it); changing the model
    from code moves the sliders. ``panel.controls["latency_ms"].value = 300`` is what a test
    does instead of a mouse.
    """

    def __init__(self, target, *, title: str | None = None):
        self.faults: FaultModel = target if isinstance(target, FaultModel) else target.faults
        name = title or getattr(target, "name", "service")
        self.controls = _controls()
        self.controls["latency_ms"].add_class("labkit-latency")
        self.readout = W.HTML().add_class("labkit-readout")
        reset = W.Button(description="all faults off", icon="undo")
        reset.on_click(lambda _: self.faults.reset())
        self._syncing = False
        for knob, control in self.controls.items():
            control.observe(lambda change, knob=knob: self._on_control(knob, change["new"]),
                            names="value")
        self.faults.on_change(lambda changed: self._sync_from_model())
        self._sync_from_model()
        self.widget = W.VBox([W.HTML(f"<b>Faults: {html.escape(name)}</b>"),
                              *self.controls.values(), reset, self.readout]).add_class("labkit-panel")

    def _on_control(self, knob: str, value) -> None:
        if self._syncing:
            return
        f = self.faults
        change = {knob: value}
        # A long tail needs p99 >= p50: the p99 slider cannot go below p50, and p50 drags p99 up.
        dist = value if knob == "latency_dist" else f.latency_dist
        if dist == "long_tail":
            p50 = value if knob == "latency_ms" else f.latency_ms
            p99 = value if knob == "latency_p99_ms" else f.latency_p99_ms
            change["latency_p99_ms"] = max(p99, p50)
        try:
            f.set(**change)
        except ValueError as err:
            self._sync_from_model()
            self.readout.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        self._sync_from_model()        # the model may have adjusted or refused the value

    def _sync_from_model(self) -> None:
        self._syncing = True
        try:
            for knob, control in self.controls.items():
                value = getattr(self.faults, knob)
                if hasattr(control, "max") and value > control.max:
                    control.max = value
                control.value = int(value) if isinstance(control, W.IntSlider) else value
        finally:
            self._syncing = False
        self.readout.value = html.escape(self.faults.describe())

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def panel(target, *, title: str | None = None) -> FaultPanel:
    """A fault control panel for a service (or a bare `FaultModel`)."""
    return FaultPanel(target, title=title)
