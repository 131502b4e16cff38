"""Retry amplification: retries at every layer of a call chain multiply.

Introduced in chapter 05 (retries). A request goes through `layers` callers in a row (the
edge calls A, A calls B, ...), and the last of them calls a service that is down. If every
caller tries its downstream call up to `attempts` times, each failed call below is retried by
every caller above, so the failing service sees attempts**layers calls per user request: 3
attempts over 5 layers is 243 calls for one click, at the moment the service is least able to
take them. The fixes: retry at one layer only (the caller next to the failing service; the
others pass the error up), or give every layer a retry budget (gRPC retry throttling): in an
outage each budget allows its first few retries (3 with gRPC's 10 tokens, 3 attempts) and
then none, so the factor tends to 1 as requests go on.

Runs on labkit.sim's virtual clock with labkit's `Retry` and `RetryBudget`; the failing
service is a `SimService` with error rate 1 (HTTP 500, retryable). Times are seconds. A run
keeps counters, not a list per request, so memory stays bounded by the requests in flight.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from labkit import sim
from labkit._core import seeding
from labkit._core.validate import choice, integer, number
from labkit.patterns.backoff import FullJitter
from labkit.patterns.budget import RetryBudget
from labkit.patterns.errors import ServiceError
from labkit.patterns.retry import Retry
from labkit.ui.charts import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AMPLIFICATION_POLICIES", "POLICIES", "MAX_BOTTOM_CALLS", "amplification", "expected_factor",
           "plot_amplification"]

AMPLIFICATION_POLICIES = POLICIES = ("every_layer", "one_layer", "budget")
#: Upper bound on attempts**layers * requests: beyond it a run would take many seconds.
MAX_BOTTOM_CALLS = 300_000

_BACKOFF = FullJitter(base=0.001, cap=0.01)  # small: virtual time is free, but keep it short
_BUDGET = {"max_tokens": 10, "token_ratio": 0.1}  # gRPC's example values, one budget per layer
_RATE_PER_S = 50.0  # user requests arrive as a Poisson stream at this rate
_LATENCY_S = 0.001  # the failing service answers (with an error) after 1 ms


def expected_factor(layers: int, attempts: int, policy: str = "every_layer",
                    failure_rate: float = 1.0) -> float | None:
    """Expected bottom calls per user request (None for "budget": it depends on history).

    Each caller that retries turns one call with failure probability f into
    (1 - f**a) / (1 - f) calls (a when f = 1) that fail together with probability f**a.
    """
    f, calls = failure_rate, 1.0
    if policy == "budget":
        return None
    for layer in range(layers, 0, -1):  # from the caller next to the failing service upwards
        a = attempts if policy == "every_layer" or layer == layers else 1
        calls *= a if f == 1 else (1 - f ** a) / (1 - f)
        f = f ** a
    return calls


def amplification(layers: int, attempts: int, *, policy: str = "every_layer",
                  requests: int = 100, failure_rate: float = 1.0, seed: int = 0) -> dict:
    """Send `requests` user requests down a chain of `layers` retrying callers; count the calls
    that reach the failing bottom service.

    `policy`: "every_layer" (every caller makes up to `attempts` attempts), "one_layer" (only
    the caller next to the failing service does; the others pass the error up) or "budget"
    (every caller retries, each behind its own RetryBudget). `failure_rate` is the bottom
    service's error rate (1.0: an outage). Returns layers, attempts, policy, top_requests,
    bottom_calls, factor (= bottom_calls / top_requests), calls_per_layer (calls into each
    caller, top first), succeeded, expected (see `expected_factor`) and seed.
    """
    integer("layers", layers, 1, 10)
    integer("attempts", attempts, 1, 10)
    choice("policy", policy, AMPLIFICATION_POLICIES)
    integer("requests", requests, 1, 100_000)
    failure_rate = number("failure_rate", failure_rate, 0.0, 1.0)
    integer("seed", seed)
    if attempts ** layers * requests > MAX_BOTTOM_CALLS:
        raise ValueError(
            f"layers={layers}, attempts={attempts}, requests={requests} could send "
            f"{attempts ** layers * requests:,} calls to the bottom service (attempts**layers * "
            f"requests must be <= {MAX_BOTTOM_CALLS:,}); use fewer layers, attempts or requests")

    async def main():
        loop = asyncio.get_running_loop()
        bottom = sim.SimService("amplification:bottom", workers=1_000_000, latency=_LATENCY_S,
                                error_rate=failure_rate, seed=seed, record=False)
        calls = [0] * layers
        policies = []
        for i in range(layers):  # i = 0 is the edge; i = layers - 1 calls the bottom service
            retries_here = policy != "one_layer" or i == layers - 1
            policies.append(Retry(
                max_attempts=attempts if retries_here else 1, max_total_s=1e9,
                backoff=_BACKOFF, seed=seed, name=f"amplification:layer{i}",
                budget=RetryBudget(**_BUDGET) if policy == "budget" else None))

        def downstream(i):
            """What caller i calls: caller i + 1, or the bottom service."""
            if i == layers - 1:
                return bottom.submit  # its reply future (bottom.call without a coroutine)
            retry_next, nxt = policies[i + 1], downstream(i + 1)

            async def call_next():
                calls[i + 1] += 1
                return await retry_next.call(nxt)
            return call_next

        top, first = policies[0], downstream(0)
        ok = [0]

        async def user_request():
            calls[0] += 1
            try:
                await top.call(first)
                ok[0] += 1
            except ServiceError:
                pass

        expo = seeding.rng("amplification:arrivals", seed).expovariate
        in_flight: set[asyncio.Task] = set()   # only unfinished requests: memory stays bounded
        all_done = None

        def finished(task):
            in_flight.discard(task)
            if not in_flight and all_done is not None and not all_done.done():
                all_done.set_result(None)

        for _ in range(requests):
            await asyncio.sleep(expo(_RATE_PER_S))
            task = loop.create_task(user_request())
            in_flight.add(task)
            task.add_done_callback(finished)
        if in_flight:
            all_done = loop.create_future()
            await all_done
        return bottom.arrived, calls, ok[0]

    bottom_calls, calls, succeeded = sim.run(main, seed=seed)
    return {"layers": layers, "attempts": attempts, "policy": policy, "top_requests": requests,
            "bottom_calls": bottom_calls, "factor": bottom_calls / requests,
            "calls_per_layer": calls, "succeeded": succeeded,
            "failure_rate": failure_rate,
            "expected": expected_factor(layers, attempts, policy, failure_rate), "seed": seed}


_COLORS = {"every_layer": "#d62728", "one_layer": "#2ca02c", "budget": "#1f77b4"}
_LABELS = {"every_layer": "retry at every layer", "one_layer": "retry at one layer",
           "budget": "every layer, with a retry budget"}


def plot_amplification(results: list[dict] | None = None, *, attempts: int = 3,
                       max_layers: int = 5, requests: int = 100, seed: int = 0) -> "Figure":
    """Calls reaching the failing service per user request vs number of layers (log y).

    Plots `results` (amplification() dicts) or, when None, runs every policy for 1..max_layers
    layers with `attempts` attempts. The dashed line is attempts**layers.
    """
    if results is None:
        integer("max_layers", max_layers, 1, 10)
        results = [amplification(n, attempts, policy=p, requests=requests, seed=seed)
                   for p in AMPLIFICATION_POLICIES for n in range(1, max_layers + 1)]
    results = list(results)
    if not results or not all(isinstance(r, dict) and "factor" in r for r in results):
        raise ValueError("results must be a non-empty list of amplification() results")
    fig = new_figure(6.0, 3.6)
    ax = fig.subplots()
    n_max = max(r["layers"] for r in results)
    a = results[0]["attempts"]
    xs = list(range(1, n_max + 1))
    ax.plot(xs, [a ** n for n in xs], ls="--", color="black", lw=1, zorder=5,
            label=f"attempts**layers ({a} attempts per caller)")
    for policy in AMPLIFICATION_POLICIES:
        rows = sorted((r for r in results if r["policy"] == policy), key=lambda r: r["layers"])
        if rows:
            ax.plot([r["layers"] for r in rows], [r["factor"] for r in rows], "o-",
                    color=_COLORS[policy], label=_LABELS[policy])
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set(xlabel="layers of retrying callers",
           ylabel="calls to the failing service\nper user request")
    ax.grid(alpha=0.25, which="both")
    ax.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.14, top=0.96)
    return fig
