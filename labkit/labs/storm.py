"""Retry storms: a short overload that never ends, because clients retry.

Introduced in chapter 05 (retries). One server (`labkit.sim.SimService`: 8 workers, a queue of
at most 150, exponential service time of mean 40 ms, so 200 requests/s of capacity) gets
Poisson traffic at 88 % of that (176 requests/s); clients give up on an attempt after 0.5 s.
A trigger (a traffic spike or a slowdown of the server) fills the queue for a few seconds.

Why it can stay broken (Bronson et al., "Metastable Failures in Distributed Systems", HotOS
2021): a full queue means a wait of 150 x 40 ms / 8 = 0.75 s, longer than the client's
timeout, so every queued request times out, yet the server still serves it (it does not know
the client left) and its capacity goes into answers nobody reads. Without retries the spare
12 % of capacity drains the queue once the trigger ends. With up to 3 immediate retries, each
timeout becomes another attempt: a request now costs ~3.4 attempts, the load stays far above
capacity after the trigger is gone, the queue stays full, the wait stays above the timeout,
and goodput stays near zero; the overload sustains itself (the metastable state) until load
is shed. A retry budget stops retrying once most calls fail, and a circuit breaker stops
calling for a while; either breaks the feedback loop, so the queue drains and service recovers.

`run_storm` runs one experiment with the course's own `Retry`, `RetryBudget` and
`CircuitBreaker`; `plot_storm` draws goodput, attempts and queue length over time;
`storm_lab` is the widget. Times are seconds (virtual) as floats; charts use seconds too.
"""
from __future__ import annotations

import asyncio
import html
import math
from types import MappingProxyType
from typing import TYPE_CHECKING

import ipywidgets as W

from labkit import sim
from labkit.patterns.backoff import FullJitter, NoBackoff
from labkit.patterns.breaker import CircuitBreaker, State
from labkit.patterns.budget import RetryBudget
from labkit.patterns.errors import ServiceError
from labkit.patterns.retry import Retry
from labkit.ui.charts import figure_png, new_figure, show_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["POLICIES", "TRIGGERS", "MODEL", "run_storm", "plot_storm", "StormLab", "storm_lab"]

POLICIES = ("no_retry", "retries", "budget", "backoff_breaker")
TRIGGERS = ("spike", "slowdown")

#: The fixed part of the model (seconds). Chosen so that the healthy service practically
#: never times out (M/M/8 at 88 %: P(wait > 0.5 s) = 0.65 exp(-24/s x 0.5 s) ~ 4e-6; with a
#: 0.4-s timeout natural bursts still caused a few bad seconds per hour) while a full queue
#: always does (0.75 s > 0.5 s); 200 requests/s of capacity keeps a 90-s run with retries
#: around one second of wall time.
MODEL = MappingProxyType({
    "workers": 8,
    "service_mean_s": 0.040,
    "queue_limit": 150,
    "attempt_timeout_s": 0.5,
    "max_attempts": 4,                   # 1 call + up to 3 retries
    "sample_s": 1.0,                     # one point per second in the series
    "recovery_tolerance": 0.10,          # "back within 10 % of the pre-trigger level"
    "budget": {"max_tokens": 10, "token_ratio": 0.1},                # gRPC's example values
    "breaker": {"window_size": 100, "minimum_number_of_calls": 100,
                "failure_rate_threshold": 50.0, "wait_duration_in_open_s": 2.0,
                "permitted_calls_in_half_open": 10},
    "jitter": {"base": 0.1, "cap": 2.0},  # full jitter: waits up to 0.2, 0.4, 0.8 s
})

_COLORS = {"no_retry": "#7f7f7f", "retries": "#d62728", "budget": "#1f77b4",
           "backoff_breaker": "#2ca02c"}
_LABELS = {"no_retry": "no retry", "retries": "3 immediate retries",
           "budget": "retries + budget", "backoff_breaker": "backoff + breaker"}


class _Slowable:
    """A latency distribution whose draws are multiplied by `factor` (the slowdown trigger)."""

    def __init__(self, base):
        self.base = base
        self.factor = 1.0

    @property
    def mean_s(self) -> float:
        return self.factor * self.base.mean_s

    def sampler(self, r):
        draw = self.base.sampler(r)
        return lambda: self.factor * draw()


def _number(name, value, lo, hi, *, lo_open=False, unit=""):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}]"
        raise ValueError(f"{name} must be a number in {rng}{unit}, got {value!r}")


def _check(policy, utilisation, trigger, trigger_size, trigger_start_s, trigger_duration_s,
           duration_s, seed):
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {list(POLICIES)}, got {policy!r}")
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {list(TRIGGERS)}, got {trigger!r}")
    _number("utilisation", utilisation, 0.0, 0.97, lo_open=True)
    _number("trigger_size", trigger_size, 1.0, 10.0, unit=" (x the base arrival rate or service time)")
    _number("duration_s", duration_s, 10.0, 600.0, unit=" seconds")
    _number("trigger_start_s", trigger_start_s, 5.0, duration_s - 10.0,
            unit=" seconds (5 s of baseline before it, 10 s of run after it)")
    _number("trigger_duration_s", trigger_duration_s, 0.0, duration_s - 5.0 - trigger_start_s,
            unit=" seconds (the run must go on >= 5 s after the trigger ends)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")


def _client(policy: str, svc: sim.SimService, seed: int):
    """The client side of `policy`: an async request() -> bool, plus the pattern objects."""
    m = MODEL
    timeout = m["attempt_timeout_s"]
    parts: dict = {}
    if policy == "no_retry":
        retry = Retry(max_attempts=1, seed=seed, name="storm:no_retry")
    elif policy in ("retries", "budget"):
        budget = None
        if policy == "budget":
            budget = parts["budget"] = RetryBudget(**m["budget"])
        retry = Retry(max_attempts=m["max_attempts"], backoff=NoBackoff(), budget=budget,
                      seed=seed, name=f"storm:{policy}")
    else:
        parts["breaker"] = CircuitBreaker(name="storm", **m["breaker"])
        retry = Retry(max_attempts=m["max_attempts"], backoff=FullJitter(**m["jitter"]),
                      seed=seed, name="storm:backoff_breaker")
    parts["retry"] = retry
    call, attempt = retry.call, svc.call
    if "breaker" in parts:  # retry outside, breaker inside: an open breaker is not retried
        guarded = parts["breaker"].call

        async def request() -> bool:
            try:
                await call(guarded, attempt, timeout)
                return True
            except ServiceError:
                return False
    else:
        async def request() -> bool:
            try:
                await call(attempt, timeout)
                return True
            except ServiceError:
                return False
    return request, parts


def _recovery(t, requests, success, start_s, end_s):
    """(recovered, recovery_s, pre-trigger success share).

    Judged per 1-s cohort of requests (those that arrived in that second), by the share of
    them that eventually succeeded: the service has recovered from the first cohort after the
    trigger from which every cohort to the end of the run succeeds at least 90 % as often as
    before the trigger. Goodput counted by completion time would do in principle, but a 1-s
    sample of Poisson traffic at 176/s moves by +-7.5 % on its own (and the queue carries
    backlog from one second to the next), so healthy seconds would look like failures.
    """
    m = MODEL
    step = m["sample_s"]
    pre = [i for i, x in enumerate(t) if x <= start_s + 1e-9]
    n0 = sum(requests[i] for i in pre)
    share0 = sum(success[i] * requests[i] for i in pre) / n0 if n0 else 1.0
    need = (1.0 - m["recovery_tolerance"]) * share0
    after = [i for i, x in enumerate(t) if x - step >= end_s - 1e-9]
    first = None
    for i in reversed(after):
        if requests[i] and success[i] < need:
            break
        first = i
    if first is None:
        return False, None, share0
    return True, round(t[first] - step - end_s, 6), share0


def run_storm(policy: str, *, utilisation: float = 0.88, trigger: str = "spike",
              trigger_size: float = 2.0, trigger_start_s: float = 20.0,
              trigger_duration_s: float = 10.0, duration_s: float = 90.0, seed: int = 0) -> dict:
    """Run the retry-storm experiment once (virtual time; ~0.3-1 s of wall time).

    `policy`: one of POLICIES. `utilisation`: base load as a share of capacity (0, 0.97].
    `trigger`: "spike" multiplies the arrival rate by `trigger_size`, "slowdown" the service
    time, from `trigger_start_s` for `trigger_duration_s` seconds. Returns per-second series
    `t` (end of each 1-s sample), `goodput` (successful responses/s), `offered` (attempts/s
    reaching the server), `queue` (queue length at t); per 1-s cohort of arrivals, `requests`
    (new client requests/s) and `success` (share of them that eventually succeeded); then
    `recovered`, `recovery_s` (see `_recovery`; None when it never recovered) and `summary`
    (plain JSON-able numbers).
    """
    _check(policy, utilisation, trigger, trigger_size, trigger_start_s, trigger_duration_s,
           duration_s, seed)
    m = MODEL
    rate = utilisation * m["workers"] / m["service_mean_s"]
    end_s = trigger_start_s + trigger_duration_s
    step = m["sample_s"]

    async def main():
        loop = asyncio.get_running_loop()
        latency = _Slowable(sim.Exponential(m["service_mean_s"]))
        svc = sim.SimService("storm-server", workers=m["workers"], queue_limit=m["queue_limit"],
                             latency=latency, seed=seed, record=False)
        request, parts = _client(policy, svc, seed)
        n = round(duration_s / step)
        cohort_n, cohort_ok = [0] * n, [0] * n  # requests by arrival second, and how many succeeded

        async def one() -> None:
            k = min(n - 1, int(loop.time() / step))
            cohort_n[k] += 1
            ok = await request()  # (not `cohort_ok[k] += await ...`: that reads before awaiting)
            cohort_ok[k] += ok

        rows: list[tuple] = []
        last = [0, 0]

        def sample(k: int) -> None:
            now = (svc.delivered_ok, svc.arrived)
            rows.append((k * step, now[0] - last[0], now[1] - last[1], svc.queue_length))
            last[:] = now
            if k < n:
                loop.call_at((k + 1) * step, sample, k + 1)

        loop.call_at(step, sample, 1)

        async def fire() -> None:
            if trigger_duration_s <= 0 or trigger_size == 1.0:
                return
            await asyncio.sleep(trigger_start_s)
            if trigger == "spike":
                await sim.poisson_arrivals(rate * (trigger_size - 1.0), trigger_duration_s, one,
                                           seed=seed, name="storm:spike")
            else:
                latency.factor = float(trigger_size)
                await asyncio.sleep(trigger_duration_s)
                latency.factor = 1.0

        await asyncio.gather(sim.poisson_arrivals(rate, duration_s, one, seed=seed,
                                                  name="storm:arrivals"), fire())
        return (rows, svc.summary(), cohort_n, cohort_ok,
                {k: v.summary() for k, v in parts.items()})

    rows, server, cohort_n, cohort_ok, parts = sim.run(main, seed=seed)
    t = [r[0] for r in rows]
    goodput = [r[1] / step for r in rows]
    offered = [r[2] / step for r in rows]
    queue = [r[3] for r in rows]
    requests = [c / step for c in cohort_n]
    success = [ok / c if c else 1.0 for ok, c in zip(cohort_ok, cohort_n)]
    recovered, recovery_s, share0 = _recovery(t, requests, success, trigger_start_s, end_s)
    counts = {"requests": sum(cohort_n), "ok": sum(cohort_ok)}

    def mean(xs):
        return sum(xs) / len(xs) if xs else 0.0

    before = [g for x, g in zip(t, goodput) if x <= trigger_start_s + 1e-9]
    after = [g for x, g in zip(t, goodput) if x - step >= end_s - 1e-9]
    last20 = [g for x, g in zip(t, goodput) if x > duration_s - 20.0 + 1e-9]
    summary = {
        "policy": policy, "trigger": trigger, "trigger_size": float(trigger_size),
        "trigger_start_s": float(trigger_start_s), "trigger_end_s": float(end_s),
        "duration_s": float(duration_s), "utilisation": float(utilisation), "seed": seed,
        "arrival_rate_per_s": rate, "capacity_per_s": m["workers"] / m["service_mean_s"],
        "workers": m["workers"], "service_mean_s": m["service_mean_s"],
        "queue_limit": m["queue_limit"], "attempt_timeout_s": m["attempt_timeout_s"],
        "max_attempts": 1 if policy == "no_retry" else m["max_attempts"],
        "requests": counts["requests"], "succeeded": counts["ok"],
        "success_rate": counts["ok"] / max(1, counts["requests"]),
        "attempts": server["arrived"], "attempts_per_request": server["arrived"] / max(1, counts["requests"]),
        "rejected": server["rejected"], "timed_out": server["timed_out"],
        # share of the server's finished work whose caller had already given up
        "wasted_share": 1.0 - server["delivered_ok"] / max(1, server["completed"]),
        "goodput_before_per_s": mean(before), "goodput_after_per_s": mean(after),
        "goodput_last20_per_s": mean(last20), "success_share_before": share0,
        "mean_queue_after": mean([q for x, q in zip(t, queue) if x - step >= end_s - 1e-9]),
        "recovered": recovered, "recovery_s": recovery_s,
        "retries": parts["retry"]["retries"],
    }
    if "budget" in parts:
        summary["budget_denied"] = parts["budget"]["denied"]
    if "breaker" in parts:
        b = parts["breaker"]
        summary["breaker_opened"] = sum(1 for _, _, new in b["transitions"] if new == State.OPEN.value)
        summary["breaker_rejected"] = b["calls_rejected"]
    return {"policy": policy, "t": t, "goodput": goodput, "offered": offered,
            "requests": requests, "success": success, "queue": queue, "recovered": recovered,
            "recovery_s": recovery_s, "summary": summary}


def _legend(r: dict) -> str:
    label = _LABELS.get(r["policy"], r["policy"])
    return f"{label}: {_verdict(r)}"


def _verdict(r: dict) -> str:
    if not r["recovered"]:
        return "did not recover"
    if r["recovery_s"] < 1:
        return "recovered at once"
    return f"recovered after {r['recovery_s']:.0f} s"


def plot_storm(results) -> "Figure":
    """Goodput, attempts sent and queue length over time for `results` (run_storm dicts).

    The trigger is shaded; the dotted line is the first result's pre-trigger goodput.
    """
    if isinstance(results, dict):
        results = [results]
    results = list(results)
    if not results or not all(isinstance(r, dict) and "goodput" in r for r in results):
        raise ValueError("results must be a non-empty list of run_storm() results")
    fig = new_figure(7.5, 6.8)
    ax_good, ax_sent, ax_queue = fig.subplots(3, 1, sharex=True)
    s0 = results[0]["summary"]
    for ax in (ax_good, ax_sent, ax_queue):
        if s0["trigger_end_s"] > s0["trigger_start_s"]:
            ax.axvspan(s0["trigger_start_s"], s0["trigger_end_s"], color="#ffbf00", alpha=0.18,
                       lw=0)
        ax.grid(alpha=0.25)
    for r in results:
        color = _COLORS.get(r["policy"], None)
        ax_good.plot(r["t"], r["goodput"], color=color, lw=1.6, label=_legend(r))
        ax_sent.plot(r["t"], r["offered"], color=color, lw=1.2)
        ax_queue.plot(r["t"], r["queue"], color=color, lw=1.2)
    ax_good.axhline(s0["goodput_before_per_s"], color="black", ls=":", lw=1,
                    label="goodput before the trigger")
    ax_queue.axhline(s0["queue_limit"], color="black", ls=":", lw=1)
    ax_queue.text(1.0, s0["queue_limit"], "queue limit ", ha="right", va="bottom", fontsize=7,
                  transform=ax_queue.get_yaxis_transform())
    kind = "traffic spike" if s0["trigger"] == "spike" else "server slowdown"
    fig.suptitle(f"{kind} x{s0['trigger_size']:g} for "
                 f"{s0['trigger_end_s'] - s0['trigger_start_s']:g} s (shaded), "
                 f"base load {s0['utilisation']:.0%} of capacity", fontsize=10, y=0.985)
    ax_good.set_ylabel("goodput\n(ok responses/s)")
    ax_sent.set_ylabel("attempts sent\nto server /s")
    ax_queue.set_ylabel("queue length")
    ax_queue.set_xlabel("time (s)")
    ax_good.set_ylim(bottom=0)
    ax_sent.set_ylim(bottom=0)
    ax_queue.set_ylim(0, s0["queue_limit"] * 1.08)
    ax_good.legend(loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=2, fontsize=8,
                   frameon=False)
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.07, top=0.84, hspace=0.12)
    return fig


class StormLab:
    """Policy, trigger, size and trigger-length controls; every change re-runs and redraws.

    The chart overlays every policy run with the current trigger settings, so switching the
    policy compares them. `run(**kwargs)` does the same from code and returns the result.
    """

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
        self.chart = W.Output().add_class("labkit-chart")
        self.widget = W.VBox([W.HBox([W.VBox([self.policy, self.trigger]),
                                      W.VBox([self.size, self.duration])]),
                              self.status, self.chart])
        self._syncing = False
        for control in (self.policy, self.trigger, self.size, self.duration):
            control.observe(self._on_change, names="value")

    _CONTROLS = {"policy": "policy", "trigger": "trigger", "trigger_size": "size",
                 "trigger_duration_s": "duration"}

    def _on_change(self, _change) -> None:
        if self._syncing:
            return
        try:
            self.run()
        except ValueError as err:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"

    def run(self, **kwargs) -> dict:
        """Run with the controls' values (overridden by `kwargs`), redraw, return the result."""
        params = {k: v for k, v in self.defaults.items()}
        params.update({k: getattr(self, attr).value for k, attr in self._CONTROLS.items()})
        params.update(kwargs)
        policy = params.pop("policy")
        self.status.value = f"running {html.escape(str(policy))}…"
        result = run_storm(policy, **params)  # raises ValueError before any control moves
        self._sync(policy, params)
        s = result["summary"]
        key = tuple(sorted((k, v) for k, v in params.items()))
        self.results.setdefault(key, {})[policy] = result
        self.last = result
        self.draw(key)
        verdict = (f"{_verdict(result)} (once the trigger ended)" if result["recovered"] else
                   f"<b>did not recover</b>: goodput {s['goodput_last20_per_s']:.0f}/s in the last "
                   f"20 s against {s['goodput_before_per_s']:.0f}/s before the trigger")
        self.status.value = (f"{html.escape(_LABELS[policy])}: {verdict}; "
                             f"{s['attempts_per_request']:.2f} attempts per request, "
                             f"{s['wasted_share']:.0%} of the server's work wasted")
        return result

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

    def draw(self, key=None) -> None:
        if key is None and self.last is None:
            return
        runs = self.results.get(key, {}) if key is not None else {self.last["policy"]: self.last}
        ordered = [runs[p] for p in POLICIES if p in runs]
        show_png(self.chart, figure_png(plot_storm(ordered)), "<retry storm chart>")

    def _ipython_display_(self):
        from IPython.display import display
        if self.last is None:
            try:
                self.run()
            except ValueError as err:
                self.status.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
        display(self.widget)


_RUN_DEFAULTS = {"policy": "retries", "utilisation": 0.88, "trigger": "spike", "trigger_size": 2.0,
                 "trigger_start_s": 20.0, "trigger_duration_s": 10.0, "duration_s": 90.0, "seed": 0}


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
