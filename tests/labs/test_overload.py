"""The overload lab: shapes that must hold (a limit keeps p99 bounded, no limit does not),
determinism for a seed, and one short real-service burst."""
import math

import pytest

from labkit.labs import overload


@pytest.fixture(scope="module")
def ramp():
    return overload.ramp_lab(duration_s=20, seed=4)


def test_without_a_limit_latency_grows_and_goodput_collapses(ramp):
    run = ramp["runs"]["no_limit"]
    p99 = run["p99_s"]
    assert run["totals"]["shed"] == 0
    assert p99[-1] > 5 * max(p99[:5])                   # grows past anything seen below capacity
    assert p99[-1] > p99[-4] > p99[-8]                  # and keeps growing
    assert run["goodput_per_s"][-1] == 0                # nothing answered within the SLO


@pytest.mark.parametrize("mode", ["fixed", "aimd", "gradient"])
def test_with_a_limit_p99_stays_bounded_and_goodput_near_capacity(ramp, mode):
    run, cap = ramp["runs"][mode], ramp["capacity_per_s"]
    free = ramp["runs"]["no_limit"]
    assert max(run["p99_s"][-5:]) < 0.5 < free["p99_s"][-1]
    assert run["totals"]["shed"] > 0
    assert sum(run["goodput_per_s"][-5:]) > 0.8 * 5 * cap
    assert run["totals"]["goodput"] > 1.5 * free["totals"]["goodput"]


def test_every_mode_sees_the_same_arrivals(ramp):
    offered = {m: r["offered_per_s"] for m, r in ramp["runs"].items()}
    assert len({tuple(v) for v in offered.values()}) == 1


def test_adaptive_limits_move(ramp):
    for mode in ("aimd", "gradient"):
        limits = ramp["runs"][mode]["limit"]
        assert len(set(limits)) > 2 and all(1 <= x <= 200 for x in limits)


def test_aimd_is_cut_by_latency_not_only_grown(ramp):
    """No call is dropped in the simulator, so every fall of the AIMD limit is a latency cut."""
    limits = ramp["runs"]["aimd"]["limit"]
    assert any(b < a for a, b in zip(limits, limits[1:]))
    assert max(limits) < 50                              # it did not just grow towards 200


def test_gradient_under_overload_sits_on_its_floor(ramp):
    """Under overload the RTT is above 3 x its minimum, the gradient on its 0.5 clamp, and the
    limit at the floor queue_allowance / (1 - 0.5) = 8; without drops it never goes lower."""
    g = ramp["runs"]["gradient"]
    assert g["gradient_floor"] == 8.0
    assert all(x >= 8 for x in g["limit"][1:])
    assert g["limit"][-5:] == [8] * 5
    assert min(g["gradient_clamped_share"][-3:]) > 0.9
    assert "gradient_clamped_share" not in ramp["runs"]["aimd"]


def test_notebook_ramp_gradient_never_learns_from_latency():
    """The notebook's seeded run (seed 6): one early 9 ms call (exponential service, mean 40 ms)
    is the minimum RTT, so 1.5 x min / rtt < 0.5 even below capacity: the gradient is clamped
    from second 1 and the limit is exactly the floor, 8, the whole time."""
    r = overload.ramp_lab(duration_s=12, seed=6, modes=("gradient",))
    g = r["runs"]["gradient"]
    assert g["min_rtt_s"] < r["params"]["service_s"] / 3
    assert min(g["gradient_clamped_share"][1:]) > 0.9
    assert g["limit"][1:] == [8] * 11


def test_gradient_floor_is_twice_the_queue_allowance():
    from labkit.patterns.limiter import Gradient

    assert overload.gradient_floor(Gradient(queue_allowance=4)) == 8
    assert overload.gradient_floor(Gradient(queue_allowance=3)) == 6
    # and the algorithm really converges there while clamped (RTT far above 3 x the minimum)
    g = Gradient(initial_limit=30, queue_allowance=3)
    g.on_sample(rtt_s=0.001, in_flight=30, dropped=False, started_s=0, now_s=0)
    for i in range(200):
        g.on_sample(rtt_s=1.0, in_flight=30, dropped=False, started_s=i / 100, now_s=i / 100)
    assert g.gradient == overload.GRADIENT_CLAMP and abs(g.limit - 6) < 0.01


def test_same_seed_same_numbers_other_seed_other_numbers():
    a = overload.ramp_lab(duration_s=5, seed=1, modes=("aimd",))
    b = overload.ramp_lab(duration_s=5, seed=1, modes=("aimd",))
    c = overload.ramp_lab(duration_s=5, seed=2, modes=("aimd",))
    assert a["runs"] == b["runs"]
    assert a["runs"]["aimd"]["offered_per_s"] != c["runs"]["aimd"]["offered_per_s"]


def test_throttle_cuts_backend_refusals_not_successes():
    r = overload.throttle_lab(duration_s=20, start_x=4.0, end_x=4.0, seed=3)
    plain, thr = r["runs"]["plain"], r["runs"]["throttled"]
    assert plain["totals"]["offered"] == thr["totals"]["offered"]
    assert plain["totals"]["throttled"] == 0 < thr["totals"]["throttled"]
    assert thr["peak"]["refused_by_backend"] < 0.5 * plain["peak"]["refused_by_backend"]
    assert thr["peak"]["sent"] < 0.7 * plain["peak"]["sent"]
    assert thr["totals"]["ok"] > 0.9 * plain["totals"]["ok"]


@pytest.mark.parametrize("kw, match", [({"workers": 0}, "workers"), ({"slo_s": 0}, "slo_s"),
                                       ({"modes": ("none",)}, "mode must be")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        overload.ramp_lab(**kw)


def test_p99_nearest_rank():
    assert overload.p99(range(1, 101)) == 99
    assert overload.p99([5]) == 5
    assert math.isnan(overload.p99([]))


def test_real_burst_sheds_and_keeps_accepted_latency_low(run):
    """Generous shapes only (a busy 2-core machine): shedding answers some requests with 503 +
    Retry-After, and the accepted ones wait less than without shedding."""
    r = run(overload.burst_lab(burst_s=0.3), timeout_s=120)
    plain, shed = r["runs"]["no shedding"], r["runs"]["shedding"]
    assert plain["shed"] == 0 and plain["ok"] == plain["sent"]
    assert shed["shed"] > 0 and shed["shed"] == shed["shed_counted"]
    assert shed["retry_after"] == ["1"]
    assert shed["p99_ms"] < plain["p99_ms"]
    assert plain["limits"] == [] and shed["limits"] == [8] == [shed["limit_end"]]
    assert plain["gradient_end"] is None and shed["min_rtt_ms"] is None  # not a Gradient


def test_real_burst_adaptive_cap_learns_down_from_a_wrong_guess(run):
    """The third run: a Gradient limit started at 20 on a service whose right cap is about 8
    (4 workers + a small queue) sheds, and ends the burst below its first guess."""
    r = run(overload.burst_lab(burst_s=0.3, adaptive_initial_limit=20), timeout_s=120)
    assert list(r["runs"]) == ["no shedding", "shedding", "adaptive"]
    plain, ad = r["runs"]["no shedding"], r["runs"]["adaptive"]
    assert r["params"]["adaptive_initial_limit"] == 20
    assert ad["limit_start"] == ad["limits"][0] == 20
    assert len(set(ad["limits"])) > 2                   # it moved
    assert ad["limit_end"] < 20                          # and came down from the guess
    assert ad["shed"] > 0 and ad["shed"] == ad["shed_counted"]
    assert ad["retry_after"] == ["1"]
    assert ad["p99_ms"] < plain["p99_ms"]
    assert 0.5 <= ad["gradient_end"] <= 1.0
    assert ad["min_rtt_ms"] >= 0.9 * r["params"]["work_ms"]  # nothing is faster than the work
    assert ad["rtt_end_ms"] >= ad["min_rtt_ms"]


def test_real_burst_without_the_adaptive_run(run):
    r = run(overload.burst_lab(burst_s=0.05, adaptive_initial_limit=None), timeout_s=120)
    assert list(r["runs"]) == ["no shedding", "shedding"]


@pytest.mark.parametrize("bad", [0, 2.5, "20"])
def test_bad_adaptive_initial_limit(run, bad):
    with pytest.raises(ValueError, match="adaptive_initial_limit"):
        run(overload.burst_lab(adaptive_initial_limit=bad), timeout_s=30)


def test_ramp_chart_one_colour_per_mode_in_every_panel_with_legends(ramp):
    fig = overload.ramp_chart(ramp)
    axes = fig.axes[:3]
    for ax in axes:
        assert ax.get_legend() is not None
        colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
        for mode, label in overload._LABELS.items():
            if label in colours:
                assert colours[label] == overload.COLORS[mode], (ax.get_ylabel(), mode)
    limit_labels = {t.get_text() for t in axes[2].get_legend().get_texts()}
    assert limit_labels == {overload._LABELS[m] for m in ("fixed", "aimd", "gradient")}


def test_ramp_chart_latency_axis_has_plain_ms_labels(ramp):
    fig = overload.ramp_chart(ramp)
    fig.canvas.draw()
    ax = fig.axes[1]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    minor = [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
    assert len(labels) >= 3 and minor == []
    assert all(text.replace(".", "").isdigit() for text in labels), labels


def test_charts_draw(ramp):
    from matplotlib.figure import Figure

    assert isinstance(overload.ramp_chart(ramp), Figure)
    t = overload.throttle_lab(duration_s=3)
    assert isinstance(overload.throttle_chart(t), Figure)
    fake = {"capacity_per_s": 1, "runs": {"no shedding": {"p99_ms": 5, "ok": 3, "shed": 0},
                                          "shedding": {"p99_ms": 1, "ok": 2, "shed": 1}}}
    assert isinstance(overload.burst_chart(fake), Figure)
    with pytest.raises(ValueError, match="ramp_lab"):
        overload.ramp_chart({})
