"""The fault panel (labkit/ui/panel.py), headless: which knobs it shows, that the model follows
the controls, that a re-run cell does not leave listeners behind, and its layout contract."""
import types

import ipywidgets as W
import pytest

from labkit.services.faults import FaultModel
from labkit.ui.panel import panel

ALWAYS = {"latency_dist", "latency_ms", "slow_body_ms", "error_rate", "reset_rate", "outage"}


def _shown(p) -> set:
    return {k for k, c in p.controls.items() if c.layout.display != "none"}


def test_each_latency_shape_shows_only_the_knobs_that_apply():
    f = FaultModel()
    p = panel(f)
    assert _shown(p) == ALWAYS == set(p.visible())          # fixed, no delay, no errors
    p.controls["latency_dist"].value = "uniform"
    assert f.latency_dist == "uniform" and _shown(p) == ALWAYS | {"jitter_ms"}
    p.controls["jitter_ms"].value = 40                       # a delay now exists: share shown
    assert f.jitter_ms == 40 and _shown(p) == ALWAYS | {"jitter_ms", "latency_rate"}
    p.controls["latency_dist"].value = "long_tail"
    assert _shown(p) == ALWAYS | {"latency_p99_ms"}          # no jitter; p50 is 0: no share
    p.controls["latency_ms"].value = 100
    assert (f.latency_ms, f.latency_p99_ms) == (100, 100)
    assert _shown(p) == ALWAYS | {"latency_p99_ms", "latency_rate"}
    assert p.controls["latency_ms"].description == "p50 (ms)"
    p.controls["latency_dist"].value = "fixed"
    assert f.latency_dist == "fixed" and _shown(p) == ALWAYS | {"latency_rate"}
    assert p.controls["latency_ms"].description == "latency (ms)"
    p.controls["latency_rate"].value = 0.5
    assert f.latency_rate == 0.5


def test_error_knobs_appear_with_errors_and_retry_after_with_429_or_503():
    f = FaultModel()
    p = panel(f)
    p.controls["error_rate"].value = 0.2
    assert f.error_rate == 0.2 and _shown(p) == ALWAYS | {"error_status"}
    p.controls["error_status"].value = 503
    assert f.error_status == 503 and "retry_after_s" in _shown(p)
    p.controls["retry_after_s"].value = 2.5
    assert f.retry_after_s == 2.5
    p.controls["error_status"].value = 500
    assert "retry_after_s" not in _shown(p)
    f.set(error_rate=0.0)                                    # a change from code re-lays it out
    assert _shown(p) == ALWAYS


def test_rerunning_a_panel_cell_leaves_exactly_one_listener():
    service = types.SimpleNamespace(name="users", faults=FaultModel())
    panels = [panel(service) for _ in range(5)]
    f = service.faults
    assert f.listener_count == 1
    assert [p.closed for p in panels] == [True] * 4 + [False]
    f.latency_ms = 50
    assert panels[-1].controls["latency_ms"].value == 50
    assert panels[0].controls["latency_ms"].value == 0 and panels[0].controls["latency_ms"].disabled
    panels[0].controls["latency_ms"].value = 900             # a stale panel changes nothing
    assert f.latency_ms == 50
    panels[-1].close()
    panels[-1].close()                                       # idempotent
    assert f.listener_count == 0
    other = FaultModel()
    panel(other)
    assert (other.listener_count, f.listener_count) == (1, 0)


def test_compact_layout_and_the_browser_contract():
    from labkit.ui.panel import WIDTH_PX
    p = panel(FaultModel(), title="users")
    assert p.widget.layout.width == f"{WIDTH_PX}px" and WIDTH_PX <= 520
    assert "labkit-panel" in p.widget._dom_classes
    columns = [w for w in p.widget.children if isinstance(w, W.HBox)][0].children
    assert len(columns) == 2
    latency = p.controls["latency_ms"]
    assert isinstance(latency, W.IntSlider) and "labkit-latency" in latency._dom_classes
    assert latency in columns[0].children
    assert "labkit-readout" in p.readout._dom_classes and "latency 0 ms" in p.readout.value


@pytest.mark.parametrize("target, kwargs, message", [
    (42, {}, "target must be a labkit service"),
    (types.SimpleNamespace(faults={"latency_ms": 3}), {}, "target must be a labkit service"),
    (FaultModel(), {"title": 3}, "title must be a string or None, got 3"),
])
def test_panel_rejects_bad_arguments(target, kwargs, message):
    with pytest.raises(ValueError, match=message):
        panel(target, **kwargs)


def test_knobs_a_target_does_not_support_are_never_shown():
    from labkit.protocols.grpc_service import GrpcService
    from labkit.ui.panel import applies
    p = panel(GrpcService("users"))
    assert _shown(p) == ALWAYS - {"slow_body_ms"}
    p.controls["error_rate"].value = 0.2                    # other knobs still follow the rules
    assert _shown(p) == ALWAYS - {"slow_body_ms"} | {"error_status"}
    p.faults.set(slow_body_ms=100)                          # even when set from code
    assert "slow_body_ms" not in p.visible()
    assert not applies("slow_body_ms", p.faults.summary(), {"slow_body_ms"})
    assert applies("slow_body_ms", p.faults.summary())
    plain = types.SimpleNamespace(name="x", faults=FaultModel())   # no declaration: all shown
    assert _shown(panel(plain)) == ALWAYS


@pytest.mark.parametrize("unsupported", ["slow_body_ms", {"warp_ms"}, 5])
def test_bad_unsupported_knobs_are_refused(unsupported):
    target = types.SimpleNamespace(faults=FaultModel(), unsupported_knobs=unsupported)
    with pytest.raises(ValueError, match="unsupported_knobs must be a set of knob names"):
        panel(target)
