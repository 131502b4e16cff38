"""The broker fault panel: sliders for the live kitchen's knobs (chapter 02).

Like the service fault panel (`labkit.ui.panel`, same width and label width): crash rate,
processing time (mean ms) and its distribution (fixed, exponential, long tail), publish rate
(orders/s) and publish latency (ms), consumers, prefetch, an idempotent checkbox, and buttons
to restart the broker, cut off consumer 1 and reset. Bound both ways: a control calls
`kitchen.set(...)`; `kitchen.set` from code moves the controls (no feedback loop). Headless
tests set ``panel.controls[name].value``. Building a new panel for the same kitchen (a re-run
cell) closes the previous one, which stops listening.
"""
from __future__ import annotations

import html
import weakref

import ipywidgets as W

from labkit.ui.panel import WIDTH_PX

__all__ = ["BrokerPanel", "broker_panel"]

_STYLE = {"description_width": "96px"}
_MAX_CONSUMERS = 20
PROCESSING_DISTS = ("fixed", "exponential", "long_tail")   # labkit.labs.kitchen_cooks's
_LEFT = ("crash_rate", "processing_ms", "processing_dist", "idempotent")
_RIGHT = ("rate_per_s", "publish_latency_ms", "consumers", "prefetch")


def _controls() -> dict:
    layout = lambda: W.Layout(width="100%")  # noqa: E731
    common = dict(layout=None, style=_STYLE, continuous_update=False)

    def slider(cls, desc, lo, hi, step, **kw):
        return cls(lo, min=lo, max=hi, step=step, description=desc,
                   **{**common, "layout": layout()}, **kw)
    return {
        "crash_rate": slider(W.FloatSlider, "crash rate", 0.0, 1.0, 0.01, readout_format=".0%"),
        "processing_ms": slider(W.IntSlider, "cooking (ms)", 0, 2000, 10,
                                tooltip="processing time: the mean time a cook takes per order"),
        "processing_dist": W.Dropdown(options=PROCESSING_DISTS, value="fixed",
                                      description="distribution", layout=layout(), style=_STYLE,
                                      tooltip="the cooking time's shape, mean processing (ms)"),
        "rate_per_s": slider(W.FloatSlider, "orders/s", 0.0, 200.0, 1.0, tooltip="publish rate",
                             readout_format=".0f"),
        "publish_latency_ms": slider(W.IntSlider, "publish (ms)", 0, 1000, 10,
                                     tooltip="publish latency: the delay before each publish "
                                     "reaches the broker"),
        "consumers": slider(W.IntSlider, "consumers", 0, _MAX_CONSUMERS, 1),
        "prefetch": slider(W.IntSlider, "prefetch", 1, 100, 1),
        "idempotent": W.Checkbox(False, description="idempotent consumers", indent=False,
                                 layout=layout()),
    }


class BrokerPanel:
    """Controls bound both ways to a `labkit.labs.kitchen.Kitchen`; build it with
    `broker_panel`. ``controls[knob]`` and ``buttons[name]`` are the widgets."""

    def __init__(self, kitchen):
        self.kitchen = kitchen
        self.closed = False
        self._syncing = False
        self.controls = _controls()
        self.readout = W.HTML().add_class("labkit-readout")
        self.buttons = {     # width "auto": a label is never cut off
            "restart": W.Button(description="restart broker", icon="refresh",
                                layout=W.Layout(width="auto")),
            "cut_off": W.Button(description="cut off consumer 1", icon="cut",
                                layout=W.Layout(width="auto")),
            "reset": W.Button(description="reset", icon="undo", layout=W.Layout(width="auto")),
        }
        self.buttons["restart"].on_click(lambda _: self._act(kitchen.restart_broker))
        self.buttons["cut_off"].on_click(lambda _: self._act(lambda: kitchen.cut_off(1)))
        self.buttons["reset"].on_click(lambda _: self._act(kitchen.reset))
        for knob, control in self.controls.items():
            control.observe(lambda change, knob=knob: self._on_control(knob, change["new"]),
                            names="value")
        self._unsubscribe = kitchen.on_change(lambda changed: self._sync())
        self._sync()
        half = W.Layout(width=f"{WIDTH_PX // 2 - 4}px")
        columns = W.HBox([
            W.VBox([self.controls[k] for k in _LEFT], layout=half),
            W.VBox([self.controls[k] for k in _RIGHT], layout=half)])
        title = W.HTML(f"<b>Broker faults: queue {html.escape(str(kitchen.queue))}</b>")
        self.widget = W.VBox([title, columns, W.HBox(list(self.buttons.values())),
                              self.readout],   # flex: never squeezed beside a view
                             layout=W.Layout(width=f"{WIDTH_PX}px", flex="0 0 auto"))
        self.widget.add_class("labkit-panel")

    def close(self) -> None:
        """Stop following the kitchen (idempotent); the controls stay, disabled."""
        if self.closed:
            return
        self.closed = True
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if callable(unsubscribe):
            unsubscribe()
        for w in [*self.controls.values(), *self.buttons.values()]:
            w.disabled = True
        self.readout.value = "this panel was replaced by a newer one (the cell was re-run)"

    def _act(self, action) -> None:
        if self.closed:
            return
        try:
            action()
        except (ValueError, RuntimeError) as err:
            self.readout.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        self._sync()

    def _on_control(self, knob: str, value) -> None:
        if self._syncing or self.closed:
            return
        try:
            self.kitchen.set(**{knob: value})
        except ValueError as err:
            self._sync()
            self.readout.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        self._sync()

    def _sync(self) -> None:
        """Move the controls to the kitchen's knobs (without calling kitchen.set back)."""
        knobs = self.kitchen.knobs
        self._syncing = True
        try:
            for knob, control in self.controls.items():
                value = knobs[knob]
                if hasattr(control, "max") and value > control.max:
                    control.max = value
                control.value = int(round(value)) if isinstance(control, W.IntSlider) else value
        finally:
            self._syncing = False
        where = "embedded broker" if getattr(self.kitchen, "embedded", False) else "RabbitMQ"
        self.readout.value = html.escape(
            f"{where}: {knobs['rate_per_s']:g} orders/s"
            + (f" ({knobs['publish_latency_ms']:g} ms to publish)"
               if knobs.get("publish_latency_ms") else "")
            + f", {knobs['consumers']} consumers × prefetch {knobs['prefetch']}, "
            f"{knobs['processing_ms']:g} ms each ({knobs.get('processing_dist', 'fixed')}), "
            f"crash rate {knobs['crash_rate']:.0%}" + (", idempotent" if knobs["idempotent"]
                                                        else ""))

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


_panels: "weakref.WeakValueDictionary[int, BrokerPanel]" = weakref.WeakValueDictionary()


def broker_panel(kitchen) -> BrokerPanel:
    """A fault panel for a running kitchen (`await Kitchen.start(...)`); a new panel for the
    same kitchen (re-running the cell) closes the previous one."""
    if not (hasattr(kitchen, "knobs") and callable(getattr(kitchen, "set", None))
            and callable(getattr(kitchen, "on_change", None))):
        raise ValueError(f"kitchen must be a labkit.labs.kitchen.Kitchen, got {kitchen!r}")
    previous = _panels.get(id(kitchen))
    if previous is not None and previous.kitchen is kitchen:
        previous.close()
    p = BrokerPanel(kitchen)
    _panels[id(kitchen)] = p
    return p
