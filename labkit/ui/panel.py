"""The fault control panel: sliders for the knobs of a service's `FaultModel`.

Defined in chapter 1. Only the knobs that apply are shown: jitter for a "uniform" latency
shape, the p99 for a "long_tail", the share of delayed requests once there is a delay, the
error status once there are errors, Retry-After for a 429/503, and never a knob the target
declares it ignores (its `unsupported_knobs`, e.g. `slow_body_ms` on a gRPC service). Two columns (latency, failures),
about 500 px wide, so the panel fits beside a chart. Works in a browser and headless: tests set
a control's ``.value`` and read ``panel.faults``. Slider labels are in milliseconds; the
library works in seconds.

One panel per fault model: building a new one (re-running the cell) closes the previous one,
which stops listening to the model, so re-runs do not pile up listeners.
"""
from __future__ import annotations

import html
import weakref

import ipywidgets as W

from labkit._core import validate
from labkit.services.faults import ERROR_STATUSES, LATENCY_DISTS, FaultModel

__all__ = ["FaultPanel", "panel", "applies", "WIDTH_PX"]

WIDTH_PX = 500
_COLUMN = W.Layout(width=f"{WIDTH_PX // 2 - 4}px")
_STYLE = {"description_width": "96px"}
LATENCY_KNOBS = ("latency_dist", "latency_ms", "jitter_ms", "latency_p99_ms", "latency_rate",
                 "slow_body_ms")
FAILURE_KNOBS = ("error_rate", "error_status", "retry_after_s", "reset_rate", "outage")


def applies(knob: str, values: dict, unsupported=frozenset()) -> bool:
    """Whether `knob` changes anything, given the other knobs' `values` (what the panel shows)
    and the knobs the target ignores (`unsupported`, its `unsupported_knobs`)."""
    if knob in unsupported:
        return False
    dist = values["latency_dist"]
    if knob == "jitter_ms":
        return dist == "uniform"
    if knob == "latency_p99_ms":
        return dist == "long_tail"
    if knob == "latency_rate":                       # a share of delayed requests needs a delay
        return values["latency_ms"] > 0 or (dist == "uniform" and values["jitter_ms"] > 0)
    if knob == "error_status":
        return values["error_rate"] > 0
    if knob == "retry_after_s":
        return values["error_rate"] > 0 and values["error_status"] in (429, 503)
    return True


def _controls() -> dict:
    """One widget per knob (slider ranges are the useful part of each knob's range)."""
    layout = lambda: W.Layout(width="100%")  # noqa: E731
    int_slider = lambda desc, hi, step: W.IntSlider(  # noqa: E731
        0, min=0, max=hi, step=step, description=desc, layout=layout(), style=_STYLE,
        continuous_update=False)
    rate_slider = lambda desc: W.FloatSlider(  # noqa: E731
        0.0, min=0.0, max=1.0, step=0.01, description=desc, readout_format=".0%",
        layout=layout(), style=_STYLE, continuous_update=False)
    return {
        "latency_dist": W.Dropdown(options=LATENCY_DISTS, description="shape",
                                   layout=layout(), style=_STYLE),
        "latency_ms": int_slider("latency (ms)", 2000, 10),
        "jitter_ms": int_slider("jitter ± ms", 1000, 10),
        "latency_p99_ms": int_slider("p99 (ms)", 5000, 10),
        "latency_rate": rate_slider("delayed"),
        "slow_body_ms": int_slider("slow body ms", 5000, 50),
        "error_rate": rate_slider("errors"),
        "error_status": W.Dropdown(options=ERROR_STATUSES, value=500, description="status",
                                   layout=layout(), style=_STYLE),
        "retry_after_s": W.FloatSlider(1.0, min=0.0, max=60.0, step=0.5,
                                       description="Retry-After", tooltip="seconds",
                                       layout=layout(),
                                       style=_STYLE, continuous_update=False),
        "reset_rate": rate_slider("resets"),
        "outage": W.Checkbox(False, description="outage (all 503)", indent=False,
                             layout=layout()),
    }


class FaultPanel:
    """Controls bound both ways to a service's `FaultModel`; build it with `panel`.

    Moving a control changes the model at once (the next request sees it); changing the model
    from code moves the controls. ``panel.controls["latency_ms"].value = 300`` is what a test
    does instead of a mouse; ``panel.visible()`` lists the knobs shown.
    """

    def __init__(self, faults: FaultModel, *, name: str, unsupported=frozenset()):
        self.faults = faults
        self.unsupported = frozenset(unsupported)      # knobs the target ignores: never shown
        self.closed = False
        self.controls = _controls()
        self.controls["latency_ms"].add_class("labkit-latency")
        self.readout = W.HTML().add_class("labkit-readout")
        reset = W.Button(description="all faults off", icon="undo",
                         layout=W.Layout(width="140px"))
        reset.on_click(lambda _: self.faults.reset())
        self.reset_button = reset
        self._syncing = False
        for knob, control in self.controls.items():
            control.observe(lambda change, knob=knob: self._on_control(knob, change["new"]),
                            names="value")
        self._unsubscribe = self.faults.on_change(lambda changed: self._sync_from_model())
        self._sync_from_model()
        columns = W.HBox([W.VBox([self.controls[k] for k in knobs], layout=_COLUMN)
                          for knobs in (LATENCY_KNOBS, FAILURE_KNOBS)])
        self.widget = W.VBox([W.HTML(f"<b>Faults: {html.escape(name)}</b>"), columns, reset,
                              self.readout], layout=W.Layout(width=f"{WIDTH_PX}px"))
        self.widget.add_class("labkit-panel")

    def visible(self) -> list[str]:
        """The knobs whose controls are shown now."""
        return [k for k, c in self.controls.items() if c.layout.display != "none"]

    def close(self) -> None:
        """Stop following the model (idempotent); the controls stay on screen, disabled."""
        if self.closed:
            return
        self.closed = True
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if callable(unsubscribe):
            unsubscribe()
        for control in [*self.controls.values(), self.reset_button]:
            control.disabled = True
        self.readout.value = "this panel was replaced by a newer one (the cell was re-run)"

    def _on_control(self, knob: str, value) -> None:
        if self._syncing or self.closed:
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
        values = self.faults.summary()
        self._syncing = True
        try:
            for knob, control in self.controls.items():
                value = values[knob]
                if hasattr(control, "max") and value > control.max:
                    control.max = value
                control.value = int(value) if isinstance(control, W.IntSlider) else value
                control.layout.display = None if applies(knob, values, self.unsupported) \
                    else "none"
        finally:
            self._syncing = False
        self.controls["latency_ms"].description = (
            "p50 (ms)" if values["latency_dist"] == "long_tail" else "latency (ms)")
        self.readout.value = html.escape(self.faults.describe())

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


_panels: "weakref.WeakValueDictionary[int, FaultPanel]" = weakref.WeakValueDictionary()


def panel(target, *, title: str | None = None) -> FaultPanel:
    """A fault control panel for a service (or a bare `FaultModel`).

    A new panel for the same model (re-running the cell) closes the previous one. Knobs in
    the target's `unsupported_knobs` (a set of knob names) are hidden."""
    faults = target if isinstance(target, FaultModel) else getattr(target, "faults", None)
    if not isinstance(faults, FaultModel):
        raise ValueError(f"target must be a labkit service (await labkit.start_service(...)) "
                         f"or a FaultModel, got {target!r}")
    validate.text("title", title, optional=True)
    unsupported = getattr(target, "unsupported_knobs", None) or frozenset()
    if isinstance(unsupported, str) or not all(
            k in LATENCY_KNOBS + FAILURE_KNOBS for k in _iter(unsupported)):
        raise ValueError(f"target.unsupported_knobs must be a set of knob names from "
                         f"{LATENCY_KNOBS + FAILURE_KNOBS}, got {unsupported!r}")
    previous = _panels.get(id(faults))
    if previous is not None and previous.faults is faults:
        previous.close()
    p = FaultPanel(faults, name=title or getattr(target, "name", "service"),
                   unsupported=unsupported)
    _panels[id(faults)] = p
    return p


def _iter(value) -> list:
    try:
        return list(value)
    except TypeError:
        return [None]                       # not iterable: refused by the caller's check
