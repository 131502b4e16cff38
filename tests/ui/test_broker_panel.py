"""The broker fault panel (labkit/ui/broker_panel.py), headless: controls drive the kitchen,
kitchen.set moves the controls without a feedback loop, buttons act, a re-run closes the old."""
import ipywidgets as W
import pytest

from labkit import messaging
from labkit.labs.kitchen import KNOBS, Kitchen
from labkit.labs.kitchen_cooks import PROCESSING_DISTS
from labkit.ui.broker_panel import broker_panel
from labkit.ui.panel import WIDTH_PX


async def _kitchen(**kw):
    conn = await messaging.connect(broker=messaging.Broker())
    return await Kitchen.start(conn, rate_per_s=20, seed=1, **kw)


def test_controls_set_the_kitchen_and_code_moves_the_controls(run):
    async def main():
        k = await _kitchen()
        p = broker_panel(k)
        calls = []
        real_set = k.set
        k.set = lambda **kw: calls.append(kw) or real_set(**kw)
        p.controls["crash_rate"].value = 0.25
        p.controls["processing_ms"].value = 120
        p.controls["rate_per_s"].value = 55.0
        p.controls["consumers"].value = 2
        p.controls["prefetch"].value = 4
        p.controls["idempotent"].value = True
        p.controls["processing_dist"].value = "long_tail"
        p.controls["publish_latency_ms"].value = 300
        from_panel = (dict(k.knobs), k.faults.crash_rate, k.faults.processing.mean_s,
                      k.faults.publish_latency_ms)
        readout = p.readout.value
        n_calls = len(calls)
        real_set(consumers=5, crash_rate=0.5, processing_dist="exponential",
                 publish_latency_ms=40)                       # from code
        moved = tuple(p.controls[c].value for c in ("consumers", "crash_rate",
                                                    "processing_dist", "publish_latency_ms"))
        after_code = len(calls)
        p.buttons["restart"].click()
        restarts = k.faults.restarts
        p.buttons["reset"].click()
        reset = (p.controls["consumers"].value, k.knobs["crash_rate"],
                 p.controls["processing_dist"].value, p.controls["publish_latency_ms"].value,
                 k.faults.publish_latency_ms)
        await k.stop()
        return from_panel, readout, n_calls, moved, after_code, restarts, reset, p

    from_panel, readout, n_calls, moved, after_code, restarts, reset, p = run(main())
    knobs, crash, processing_s, latency = from_panel
    assert knobs == {"crash_rate": 0.25, "processing_ms": 120, "rate_per_s": 55.0,
                     "consumers": 2, "prefetch": 4, "idempotent": True,
                     "processing_dist": "long_tail", "publish_latency_ms": 300}
    assert crash == 0.25 and processing_s == 0.0     # the kitchen sleeps; faults only crash
    assert latency == 300                             # the broker delays each publish
    assert "300 ms to publish" in readout and "(long_tail)" in readout
    assert n_calls == 8 and after_code == 8                   # moving controls back: no set()
    assert moved == (5, 0.5, "exponential", 40) and restarts == 1
    assert reset == (3, 0.0, "fixed", 0, 0.0)
    assert p.widget.layout.width == f"{WIDTH_PX}px"
    assert {"restart", "cut_off", "reset"} == set(p.buttons)
    assert isinstance(p.controls["idempotent"], W.Checkbox)
    assert isinstance(p.controls["processing_dist"], W.Dropdown)
    assert tuple(p.controls["processing_dist"].options) == PROCESSING_DISTS
    assert set(p.controls) == set(KNOBS)                      # every knob has a control
    columns = p.widget.children[1].children                  # two columns, four rows each
    assert [len(c.children) for c in columns] == [4, 4]
    assert all(c.style.description_width == "96px" for c in p.controls.values()
               if not isinstance(c, W.Checkbox))


def test_rerunning_the_panel_cell_closes_the_old_one(run):
    async def main():
        k = await _kitchen()
        panels = [broker_panel(k) for _ in range(4)]
        listeners = len(k._listeners)
        panels[0].controls["consumers"].value = 1              # a stale panel changes nothing
        stale = k.knobs["consumers"]
        k.set(prefetch=7)
        shown = panels[-1].controls["prefetch"].value, panels[0].controls["prefetch"].value
        panels[-1].close()
        panels[-1].close()
        await k.stop()
        return listeners, stale, shown, len(k._listeners), panels

    listeners, stale, shown, after, panels = run(main())
    assert listeners == 1 and stale == 3 and shown == (7, 10) and after == 0
    assert [p.closed for p in panels] == [True] * 4
    assert panels[0].controls["consumers"].disabled


def test_buttons_that_need_the_embedded_broker_say_so_and_bad_kitchens_are_refused(run):
    async def main():
        k = await _kitchen(consumers=1)
        p = broker_panel(k)
        k.embedded = False                                    # as on RabbitMQ
        p.buttons["cut_off"].click()
        text = p.readout.value
        k.embedded = True
        await k.stop()
        return text

    assert "needs the embedded broker" in run(main())
    with pytest.raises(ValueError, match="kitchen must be a labkit.labs.kitchen.Kitchen"):
        broker_panel(42)
