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
`CircuitBreaker` (`await run_storm_async(...)` does the same without blocking the caller's
loop); `plot_storm` draws goodput, attempts and queue length over time; `storm_lab` (in
labkit.labs.storm_widget) is the widget, whose controls re-run it off the kernel's loop.
Times are seconds (virtual) as floats; charts use seconds too. A run keeps only per-second
series and counters, never a list per request, so memory stays bounded however long the run.
"""
from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import TYPE_CHECKING

from labkit import sim
from labkit._core.validate import choice, integer, number
from labkit.patterns.backoff import FullJitter, NoBackoff
from labkit.patterns.breaker import CircuitBreaker
from labkit.patterns.budget import RetryBudget
from labkit.patterns.errors import ServiceError
from labkit.patterns.retry import Retry
from labkit.ui.charts import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["POLICIES", "TRIGGERS", "MODEL", "run_storm", "run_storm_async", "plot_storm"]
# StormLab and storm_lab (the widget) are in labkit.labs.storm_widget; importing them from
# here works too (see __getattr__ at the end).

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


def _check(policy, utilisation, trigger, trigger_size, trigger_start_s, trigger_duration_s,
           duration_s, seed) -> dict:
    """The run_storm arguments, checked, as a dict (numbers as floats)."""
    duration_s = number("duration_s", duration_s, 10.0, 600.0, unit=" seconds")
    start_s = number("trigger_start_s", trigger_start_s, 5.0, duration_s - 10.0,
                     unit=" seconds (5 s of baseline before it, 10 s of run after it)")
    return {
        "policy": choice("policy", policy, POLICIES),
        "utilisation": number("utilisation", utilisation, 0.0, 0.97, lo_open=True),
        "trigger": choice("trigger", trigger, TRIGGERS),
        "trigger_size": number("trigger_size", trigger_size, 1.0, 10.0,
                               unit=" (x the base arrival rate or service time)"),
        "trigger_start_s": start_s,
        "trigger_duration_s": number(
            "trigger_duration_s", trigger_duration_s, 0.0, duration_s - 5.0 - start_s,
            unit=" seconds (the run must go on >= 5 s after the trigger ends)"),
        "duration_s": duration_s, "seed": integer("seed", seed)}


def _client(policy: str, svc: sim.SimService, seed: int):
    """The client side of `policy`: one request is `await retry.call(*args)` (raising
    ServiceError when it failed); returns (retry.call, args, the pattern objects)."""
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
    # svc.submit returns the reply future itself: awaiting it is what svc.call does, minus a
    # coroutine per attempt (the same events in the same order, less work).
    args = (svc.submit, timeout)
    if "breaker" in parts:  # retry outside, breaker inside: an open breaker is not retried
        args = (parts["breaker"].call, *args)
    return retry.call, args, parts


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


def _simulation(policy, utilisation, trigger, trigger_size, trigger_start_s,
                trigger_duration_s, duration_s, seed):
    """The run as a coroutine function for labkit.sim (what run_storm and its async form run)."""
    m = MODEL
    rate = utilisation * m["workers"] / m["service_mean_s"]
    step = m["sample_s"]

    async def main():
        loop = asyncio.get_running_loop()
        latency = _Slowable(sim.Exponential(m["service_mean_s"]))
        svc = sim.SimService("storm-server", workers=m["workers"], queue_limit=m["queue_limit"],
                             latency=latency, seed=seed, record=False)
        call, args, parts = _client(policy, svc, seed)
        n = round(duration_s / step)
        cohort_n, cohort_ok = [0] * n, [0] * n  # requests by arrival second, and how many succeeded

        async def one() -> None:
            k = min(n - 1, int(loop.time() / step))
            cohort_n[k] += 1
            try:
                await call(*args)
            except ServiceError:
                return
            cohort_ok[k] += 1

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
                                           seed=seed, name="storm:spike", keep_results=False)
            else:
                latency.factor = trigger_size
                await asyncio.sleep(trigger_duration_s)
                latency.factor = 1.0

        await asyncio.gather(sim.poisson_arrivals(rate, duration_s, one, seed=seed,
                                                  name="storm:arrivals", keep_results=False),
                             fire())
        return (rows, svc.summary(), cohort_n, cohort_ok,
                {k: v.summary() for k, v in parts.items()})

    return main


def _mean(xs) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _result(raw, policy, utilisation, trigger, trigger_size, trigger_start_s,
            trigger_duration_s, duration_s, seed) -> dict:
    """The run's per-second series and summary (see run_storm)."""
    rows, server, cohort_n, cohort_ok, parts = raw
    m = MODEL
    step = m["sample_s"]
    end_s = trigger_start_s + trigger_duration_s
    t = [r[0] for r in rows]
    goodput = [r[1] / step for r in rows]
    offered = [r[2] / step for r in rows]
    queue = [r[3] for r in rows]
    requests = [c / step for c in cohort_n]
    success = [ok / c if c else 1.0 for ok, c in zip(cohort_ok, cohort_n)]
    recovered, recovery_s, share0 = _recovery(t, requests, success, trigger_start_s, end_s)
    n_req, n_ok = sum(cohort_n), sum(cohort_ok)
    before = [g for x, g in zip(t, goodput) if x <= trigger_start_s + 1e-9]
    after = [g for x, g in zip(t, goodput) if x - step >= end_s - 1e-9]
    last20 = [g for x, g in zip(t, goodput) if x > duration_s - 20.0 + 1e-9]
    summary = {
        "policy": policy, "trigger": trigger, "trigger_size": trigger_size,
        "trigger_start_s": trigger_start_s, "trigger_end_s": end_s,
        "duration_s": duration_s, "utilisation": utilisation, "seed": seed,
        "arrival_rate_per_s": utilisation * m["workers"] / m["service_mean_s"],
        "capacity_per_s": m["workers"] / m["service_mean_s"],
        "workers": m["workers"], "service_mean_s": m["service_mean_s"],
        "queue_limit": m["queue_limit"], "attempt_timeout_s": m["attempt_timeout_s"],
        "max_attempts": 1 if policy == "no_retry" else m["max_attempts"],
        "requests": n_req, "succeeded": n_ok, "success_rate": n_ok / max(1, n_req),
        "attempts": server["arrived"], "attempts_per_request": server["arrived"] / max(1, n_req),
        "rejected": server["rejected"], "timed_out": server["timed_out"],
        # share of the server's finished work whose caller had already given up
        "wasted_share": 1.0 - server["delivered_ok"] / max(1, server["completed"]),
        "goodput_before_per_s": _mean(before), "goodput_after_per_s": _mean(after),
        "goodput_last20_per_s": _mean(last20), "success_share_before": share0,
        "mean_queue_after": _mean([q for x, q in zip(t, queue) if x - step >= end_s - 1e-9]),
        "recovered": recovered, "recovery_s": recovery_s,
        "retries": parts["retry"]["retries"],
    }
    if "budget" in parts:
        summary["budget_denied"] = parts["budget"]["denied"]
    if "breaker" in parts:
        summary["breaker_opened"] = parts["breaker"]["opened"]
        summary["breaker_rejected"] = parts["breaker"]["calls_rejected"]
    return {"policy": policy, "t": t, "goodput": goodput, "offered": offered,
            "requests": requests, "success": success, "queue": queue, "recovered": recovered,
            "recovery_s": recovery_s, "summary": summary}


def run_storm(policy: str, *, utilisation: float = 0.88, trigger: str = "spike",
              trigger_size: float = 2.0, trigger_start_s: float = 20.0,
              trigger_duration_s: float = 10.0, duration_s: float = 90.0, seed: int = 0) -> dict:
    """Run the retry-storm experiment once, in virtual time (it blocks; widgets and code that
    must not freeze a running loop use `await run_storm_async(...)`).

    `policy`: one of POLICIES. `utilisation`: base load as a share of capacity (0, 0.97].
    `trigger`: "spike" multiplies the arrival rate by `trigger_size`, "slowdown" the service
    time, from `trigger_start_s` for `trigger_duration_s` seconds. Returns per-second series
    `t` (end of each 1-s sample), `goodput` (successful responses/s), `offered` (attempts/s
    reaching the server), `queue` (queue length at t); per 1-s cohort of arrivals, `requests`
    (new client requests/s) and `success` (share of them that eventually succeeded); then
    `recovered`, `recovery_s` (see `_recovery`; None when it never recovered) and `summary`
    (plain JSON-able numbers). Wall time grows with the attempts simulated: see
    benchmarks/bench_sim.py and the chapter, which prints what each run took.
    """
    args = _check(policy, utilisation, trigger, trigger_size, trigger_start_s,
                  trigger_duration_s, duration_s, seed)
    return _result(sim.run(_simulation(**args), seed=args["seed"]), **args)


async def run_storm_async(policy: str, **kwargs) -> dict:
    """`await run_storm_async(policy, ...)`: run_storm's result, computed in a worker thread so
    the caller's loop (real services, live charts) keeps running; cancelling it stops the run."""
    args = _check(**{**_RUN_DEFAULTS, **kwargs, "policy": policy})
    raw = await sim.run_async(_simulation(**args), seed=args["seed"])
    return _result(raw, **args)


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


_RUN_DEFAULTS = {"policy": "retries", "utilisation": 0.88, "trigger": "spike", "trigger_size": 2.0,
                 "trigger_start_s": 20.0, "trigger_duration_s": 10.0, "duration_s": 90.0, "seed": 0}


def __getattr__(name: str):
    """`StormLab` and `storm_lab` live in labkit.labs.storm_widget (the ipywidgets part)."""
    if name in ("StormLab", "storm_lab"):
        from labkit.labs import storm_widget
        return getattr(storm_widget, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
