"""Retry storm (chapter 05): immediate retries turn a short overload into a lasting one (a
metastable failure); no retries, a retry budget, or backoff behind a breaker recover."""
import asyncio
import base64
import json
import math

import pytest

from labkit.labs.storm import MODEL, POLICIES, plot_storm, run_storm, storm_lab

SEEDS = (0, 1, 2)
RECOVERS = ("no_retry", "budget", "backoff_breaker")
QUICK = {"duration_s": 40.0, "trigger_start_s": 10.0, "trigger_duration_s": 5.0}


@pytest.fixture(scope="module")
def spike():
    return {(p, s): run_storm(p, seed=s) for p in POLICIES for s in SEEDS}


@pytest.fixture(scope="module")
def slowdown():
    return {p: run_storm(p, trigger="slowdown", seed=0) for p in POLICIES}


def _mean(xs):
    return sum(xs) / len(xs)


def _stays_broken(r):
    s = r["summary"]
    assert r["recovered"] is False and r["recovery_s"] is None
    # Metastable: goodput stays far below its pre-trigger level to the very end of the run,
    # although the trigger ended 60 s earlier, and the queue stays (nearly) full.
    assert s["goodput_last20_per_s"] < 0.1 * s["goodput_before_per_s"]
    assert s["mean_queue_after"] > 0.9 * MODEL["queue_limit"]
    # The mechanism: timeouts turn into retries (several attempts per request) and most of
    # the server's work goes to requests whose client already gave up.
    assert s["attempts_per_request"] > 2.5 and s["wasted_share"] > 0.5


def _recovers(r):
    s = r["summary"]
    assert r["recovered"] is True, s
    assert 0 <= r["recovery_s"] <= 10.0
    assert s["goodput_last20_per_s"] > 0.9 * s["goodput_before_per_s"]
    assert s["attempts_per_request"] < 1.1


@pytest.mark.parametrize("seed", SEEDS)
def test_retries_keep_the_service_down_after_a_spike(spike, seed):
    _stays_broken(spike["retries", seed])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("policy", RECOVERS)
def test_no_retry_budget_and_breaker_recover_from_a_spike(spike, policy, seed):
    _recovers(spike[policy, seed])


def test_the_same_holds_for_a_slowdown(slowdown):
    _stays_broken(slowdown["retries"])
    for policy in RECOVERS:
        _recovers(slowdown[policy])


def test_the_patterns_actually_acted(spike, slowdown):
    for r in (spike["budget", 0], slowdown["budget"]):
        assert r["summary"]["budget_denied"] > 100      # the budget refused retries
    for r in (spike["backoff_breaker", 0], slowdown["backoff_breaker"]):
        assert r["summary"]["breaker_opened"] >= 1 and r["summary"]["breaker_rejected"] > 100
    assert spike["no_retry", 0]["summary"]["retries"] == 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("policy", POLICIES)
def test_before_the_trigger_goodput_matches_the_offered_load(spike, policy, seed):
    r = spike[policy, seed]
    s = r["summary"]
    pre = [i for i, t in enumerate(r["t"]) if t <= s["trigger_start_s"]]
    assert len(pre) == 20
    ok = sum(r["goodput"][i] for i in pre)
    sent = sum(r["offered"][i] for i in pre)
    # Every attempt sent before the trigger succeeded, except those still in the server at
    # t = 20 s: at most a full queue plus one per worker.
    assert sent - (MODEL["queue_limit"] + MODEL["workers"]) <= ok <= sent
    # And the load is what was asked for: the Poisson count over 20 s has sd sqrt(n), n ~ 3520;
    # allow 4 sd, plus the requests still in the system.
    n = s["arrival_rate_per_s"] * s["trigger_start_s"]
    assert abs(ok - n) <= 4 * math.sqrt(n) + MODEL["queue_limit"] + MODEL["workers"]
    assert s["arrival_rate_per_s"] == pytest.approx(0.88 * MODEL["workers"] / MODEL["service_mean_s"])


def test_series_shapes_and_json(spike):
    r = spike["retries", 0]
    assert set(r) >= {"policy", "t", "goodput", "offered", "queue", "recovered", "recovery_s",
                      "summary"}
    assert r["t"] == [float(k) for k in range(1, 91)]
    assert len(r["goodput"]) == len(r["offered"]) == len(r["queue"]) == len(r["requests"]) == 90
    assert json.loads(json.dumps(r)) == r  # plain JSON values only (testbook passes JSON)


def test_same_seed_same_result_other_seed_differs(spike):
    again = run_storm("budget", seed=1)
    assert again == spike["budget", 1]
    assert again["goodput"] != spike["budget", 2]["goodput"]


def test_a_trigger_of_size_one_changes_nothing():
    r = run_storm("retries", trigger_size=1.0, **QUICK)
    assert r["recovered"] and r["recovery_s"] == 0.0
    assert max(r["queue"]) < MODEL["queue_limit"] / 2


def test_runs_from_inside_a_running_loop_like_a_notebook_cell():
    async def cell():
        return run_storm("no_retry", seed=3, **QUICK)

    assert asyncio.run(cell()) == run_storm("no_retry", seed=3, **QUICK)


@pytest.mark.parametrize("kwargs,needle", [
    ({"policy": "hedging"}, "policy"),
    ({"policy": "retries", "trigger": "outage"}, "trigger"),
    ({"policy": "retries", "trigger_size": 0.5}, "trigger_size"),
    ({"policy": "retries", "trigger_size": "2"}, "trigger_size"),
    ({"policy": "retries", "utilisation": 1.2}, "utilisation"),
    ({"policy": "retries", "utilisation": 0}, "utilisation"),
    ({"policy": "retries", "trigger_start_s": 1.0}, "trigger_start_s"),
    ({"policy": "retries", "trigger_duration_s": -1.0}, "trigger_duration_s"),
    ({"policy": "retries", "trigger_duration_s": 70.0}, "trigger_duration_s"),
    ({"policy": "retries", "duration_s": 5.0}, "duration_s"),
    ({"policy": "retries", "duration_s": float("nan")}, "duration_s"),
    ({"policy": "retries", "seed": "0"}, "seed"),
    ({"policy": "retries", "seed": True}, "seed"),
    ({"policy": "retries", "utilisation": float("nan")}, "utilisation"),
    ({"policy": "retries", "trigger_size": float("inf")}, "trigger_size"),
    ({"policy": "retries", "trigger_size": True}, "trigger_size"),
    ({"policy": "retries", "duration_s": 10 ** 400}, "duration_s"),
])
def test_bad_arguments_name_themselves(kwargs, needle):
    policy = kwargs.pop("policy")
    with pytest.raises(ValueError, match=needle):
        run_storm(policy, **kwargs)


def test_plot_storm_draws_three_panels_with_the_trigger_shaded(spike):
    fig = plot_storm([spike[p, 0] for p in POLICIES])
    axes = fig.get_axes()
    assert len(axes) == 3
    assert len(axes[0].get_lines()) == len(POLICIES) + 1        # + the pre-trigger level
    assert len(axes[0].patches) == 1                             # the shaded trigger
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert any("did not recover" in t for t in labels)
    with pytest.raises(ValueError, match="results"):
        plot_storm([])


def _png(lab):
    data = lab.chart.outputs[0]["data"]["image/png"]
    return base64.b64decode(data)


def test_lab_run_equals_run_storm_and_draws_a_png():
    lab = storm_lab(**QUICK)
    assert lab.chart.outputs == ()                              # nothing runs until asked
    result = lab.run(policy="no_retry", trigger="slowdown", trigger_size=3.0, seed=4)
    assert result == run_storm("no_retry", trigger="slowdown", trigger_size=3.0, seed=4, **QUICK)
    assert _png(lab).startswith(b"\x89PNG\r\n\x1a\n")
    # The controls show what ran, and the status line says how it went.
    assert (lab.policy.value, lab.trigger.value, lab.size.value) == ("no_retry", "slowdown", 3.0)
    assert "recovered" in lab.status.value


def test_lab_controls_rerun_and_overlay_policies():
    lab = storm_lab(policy="budget", **QUICK)
    first = lab.run()
    png = _png(lab)
    lab.policy.value = "no_retry"           # what a click does
    assert lab.last["policy"] == "no_retry" and lab.last is not first
    assert _png(lab) != png
    runs = next(iter(lab.results.values()))
    assert set(runs) == {"budget", "no_retry"}                   # both on one chart
    lab.size.value = 3.0
    assert lab.last["summary"]["trigger_size"] == 3.0
    assert lab.last == run_storm("no_retry", trigger_size=3.0, **QUICK)


def test_lab_bad_arguments():
    with pytest.raises(ValueError, match="policy"):
        storm_lab(policy="hedging")
    with pytest.raises(ValueError, match="unknown"):
        storm_lab(workers=3)
    lab = storm_lab(**QUICK)
    with pytest.raises(ValueError, match="trigger_size"):
        lab.run(trigger_size=50.0)
    assert lab.size.value == 2.0 and lab.last is None           # nothing moved, nothing ran


async def _until(predicate, timeout_s=120.0):
    """Wait (real time, polling every 10 ms) until predicate() holds; fail after timeout_s."""
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout_s} s")


def test_a_control_move_in_a_running_loop_does_not_freeze_it():
    """In a kernel, widget callbacks run on the kernel's loop: the storm must run off it, so
    real services and live charts keep going while it computes (issue 7)."""
    async def kernel():
        lab = storm_lab(duration_s=60.0)
        ticks = [0]

        async def ticker():                    # stands in for a live chart or a real service
            while True:
                await asyncio.sleep(0.01)
                ticks[0] += 1

        t = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        lab.policy.value = "no_retry"          # what a click does: the callback runs here
        at_click, status = ticks[0], lab.status.value
        await _until(lambda: lab.last is not None)
        during = ticks[0] - at_click
        t.cancel()
        return lab, during, status

    lab, during, status = asyncio.run(kernel())
    assert during >= 2, f"the loop ticked {during} times while the storm ran"
    assert "running" in status
    assert lab.last == run_storm("no_retry", duration_s=60.0)
    assert _png(lab).startswith(b"\x89PNG\r\n\x1a\n")
    assert "recovered" in lab.status.value


def test_a_newer_control_move_supersedes_an_older_run():
    async def kernel():
        lab = storm_lab(policy="budget", **QUICK)
        lab.policy.value = "no_retry"
        first = lab._latest.task
        await asyncio.sleep(0.05)              # the first run is computing in its thread
        lab.size.value = 3.0                   # moved again before the first run finished
        result = await lab.wait(timeout_s=120)
        assert first.cancelled()
        return lab, result

    lab, result = asyncio.run(kernel())
    assert result is lab.last and result == run_storm("no_retry", trigger_size=3.0, **QUICK)
    # The superseded run (size 2.0) was dropped: only the newest settings have a result.
    assert [r["summary"]["trigger_size"] for runs in lab.results.values() for r in runs.values()] \
        == [3.0]


def test_a_bad_value_from_code_in_a_running_loop_is_shown_not_raised_later():
    async def kernel():
        lab = storm_lab(**QUICK)
        lab.defaults["utilisation"] = 2.0      # a bad value reaches the next run
        lab.policy.value = "no_retry"
        await lab.wait(timeout_s=120)
        return lab

    lab = asyncio.run(kernel())
    assert "utilisation" in lab.status.value and lab.last is None


def test_a_run_keeps_no_list_per_request(monkeypatch):
    """Arrivals are counted, not collected: a long run's memory is bounded by the requests in
    flight (a 600-s run with retries has ~10^5 requests)."""
    from labkit import sim
    seen = []
    original = sim.poisson_arrivals

    async def spy(*args, **kwargs):
        seen.append(kwargs.get("keep_results", True))
        return await original(*args, **kwargs)

    monkeypatch.setattr(sim, "poisson_arrivals", spy)
    r = run_storm("no_retry", **QUICK)
    assert seen == [False, False]                      # base load and the spike
    assert r["summary"]["requests"] > 1000


def test_runs_from_code_can_skip_the_redraw_and_display_draws_once(monkeypatch):
    """Chapter 05 runs the four policies, then shows the lab: one chart, not four."""
    from labkit.labs import storm_widget
    drawn = []
    real = storm_widget.figure_png
    monkeypatch.setattr(storm_widget, "figure_png", lambda fig: drawn.append(fig) or real(fig))
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    lab = storm_lab(**QUICK)
    for policy in ("no_retry", "budget"):
        lab.run(policy=policy, draw=False)
    assert drawn == [] and lab.chart.outputs == ()
    lab._ipython_display_()                          # what `lab` as a cell's last line does
    assert len(drawn) == 1 and _png(lab).startswith(b"\x89PNG")
    assert set(next(iter(lab.results.values()))) == {"no_retry", "budget"}   # both overlaid
    lab._ipython_display_()                          # shown again: nothing new to draw
    assert len(drawn) == 1
