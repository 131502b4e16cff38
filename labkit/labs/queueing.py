"""Latency against utilisation, simulated and checked against queueing theory (chapter 06).

`simulate` runs one queue (M/M/1, M/M/c or M/D/1) in virtual time and measures the mean and
p99 response time and the share of customers who waited, each with a confidence interval
from batch means, beside the formula (`labkit.sim.formulas`). `sweep` does it for several
utilisations, sizing each run with `mm1_customers_needed`; `latency_chart` draws the hockey
stick. `littles_law` measures L, λ and W on a real labkit service.

Why batch means: consecutive customers share the queue, so their times are correlated (at
ρ = 0.8 one customer's time predicts the next hundred's) and the textbook standard error
σ/√n is several times too small. The run is cut into `batches` equal batches, each far
longer than the correlation; their means are nearly independent, so their spread gives an
honest interval (Student t with batches − 1 degrees of freedom). The p99 is taken over the
whole run and its interval from the spread of the batches' p99s ("sectioning"); a batch's own
p99 is biased low when the batch is short, so only the spread is used.
"""
from __future__ import annotations

import asyncio
import math
from array import array
import statistics
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

from labkit import sim
from labkit._core import seeding
from labkit._core.validate import boolean, choice, integer, number
from labkit.sim import formulas
from labkit.sim.queueing import poisson_customers

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MODELS", "QueueRun", "simulate", "sweep", "latency_chart", "littles_law",
           "formula_mean_s", "t_quantile"]

MODELS = ("M/M/1", "M/M/c", "M/D/1")
MAX_CUSTOMERS = 5_000_000   # each kept as an 8-byte float for the p99: 40 MB at most


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student t quantile (Cornish–Fisher expansion; within 0.002 for dof >= 5)."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    n = float(dof)
    return (z + (z ** 3 + z) / (4 * n) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * n ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * n ** 3))


def formula_mean_s(model: str, *, utilisation: float, service_mean_s: float,
                   workers: int = 1) -> float:
    """The theoretical mean response time of `model` at `utilisation` (see module docstring)."""
    model = choice("model", model, MODELS)
    c = workers if model == "M/M/c" else 1
    lam = formulas.arrival_rate_for(utilisation, service_mean_s=service_mean_s, workers=c)
    if model == "M/D/1":
        return formulas.md1_response_mean_s(arrival_rate_per_s=lam, service_mean_s=service_mean_s)
    return formulas.mmc_response_mean_s(workers=c, arrival_rate_per_s=lam,
                                        service_mean_s=service_mean_s)


@dataclass(frozen=True)
class QueueRun:
    """One simulated queue: measured values with CI half-widths, and the formulas' values."""

    model: str
    utilisation: float
    workers: int
    service_mean_s: float
    customers: int          # measured (after the warm-up)
    warmup_customers: int   # simulated first and not measured
    batches: int
    confidence: float
    mean_s: float
    mean_half_width_s: float
    formula_mean_s: float
    p99_s: float
    p99_half_width_s: float
    formula_p99_s: float | None  # known in closed form for M/M/1 only
    waited_share: float          # share of customers who found every worker busy
    waited_half_width: float
    formula_waited_share: float  # Erlang C (ρ for one worker, by PASTA)

    @property
    def rel_error(self) -> float:
        """(measured mean − formula) / formula."""
        return self.mean_s / self.formula_mean_s - 1.0

    @property
    def mean_within_ci(self) -> bool:
        return abs(self.mean_s - self.formula_mean_s) <= self.mean_half_width_s

    def summary(self) -> dict:
        return {**asdict(self), "rel_error": self.rel_error, "mean_within_ci": self.mean_within_ci}


def _warmup(rho: float) -> int:
    # The queue starts empty; its relaxation time is about S/(1 − √ρ)² (Morse), i.e.
    # ρ/(1 − √ρ)² customers: drop five of those (and never fewer than 500 customers).
    return max(500, math.ceil(5 * rho / (1 - math.sqrt(rho)) ** 2))


def _p99(values: list) -> float:
    values.sort()
    k = 0.99 * (len(values) - 1)
    i = int(k)
    j = min(i + 1, len(values) - 1)
    return values[i] + (values[j] - values[i]) * (k - i)


def _ci(xs: list, confidence: float) -> tuple[float, float]:
    return statistics.fmean(xs), t_quantile(confidence, len(xs) - 1) * statistics.stdev(xs) / \
        math.sqrt(len(xs))


def simulate(model: str = "M/M/1", *, utilisation: float = 0.8, workers: int = 4,
             service_mean_s: float = 0.010, customers: int = 100_000,
             warmup_customers: int | None = None, batches: int = 20, confidence: float = 0.95,
             seed: int = 0) -> QueueRun:
    """Simulate `customers` customers of `model` at `utilisation` in virtual time.

    `workers` counts only for M/M/c. Service times: exponential (M/M/·) or fixed (M/D/1) with
    mean `service_mean_s`. The first `warmup_customers` (default: five relaxation times) are
    not measured. Mean, p99 and waited share come with a `confidence` interval from
    `batches` batch means. About 1 s per 100,000 customers on an idle machine.
    """
    model = choice("model", model, MODELS)
    rho = number("utilisation", utilisation, 0.0, 1.0, lo_open=True, hi_open=True)
    c = integer("workers", workers, 1, 10_000) if model == "M/M/c" else 1
    s = number("service_mean_s", service_mean_s, 0.0, 3600.0, lo_open=True, unit=" seconds")
    batches = integer("batches", batches, 10, 1000)
    n = integer("customers", customers, 50 * batches, MAX_CUSTOMERS,
                unit=f" (at least 50 per batch, {batches} batches)")
    warm = _warmup(rho) if warmup_customers is None else \
        integer("warmup_customers", warmup_customers, 0, MAX_CUSTOMERS)
    confidence = number("confidence", confidence, 0.5, 1.0, hi_open=True)
    seed = integer("seed", seed)
    size = n // batches
    lam = formulas.arrival_rate_for(rho, service_mean_s=s, workers=c)

    async def main():
        latency = sim.Fixed(s) if model == "M/D/1" else sim.Exponential(s)
        svc = sim.SimService(f"queue {model}", workers=c, latency=latency, record=False)
        seen = [0]
        kept = array("d")              # every measured response time (n <= MAX_CUSTOMERS)
        waited = [0]
        means, p99s, shares = [], [], []

        def on_response(response_s: float, was_queued: bool) -> None:
            seen[0] += 1
            if seen[0] <= warm:
                return
            kept.append(response_s)
            waited[0] += was_queued
            if len(kept) % size == 0 and len(means) < batches:
                batch = kept[-size:]
                means.append(math.fsum(batch) / size)
                shares.append(waited[0] / size)
                p99s.append(_p99(list(batch)))
                waited[0] = 0

        await poisson_customers(svc, lam, warm + size * batches, on_response=on_response,
                                name="queueing arrivals")
        return means, p99s, shares, _p99(list(kept))

    means, p99s, shares, p99 = sim.run(main, seed=seed)
    mean, mean_hw = _ci(means, confidence)
    p99_hw = _ci(p99s, confidence)[1]
    share, share_hw = _ci(shares, confidence)
    p99_formula = (formulas.mm1_response_quantile_s(0.99, arrival_rate_per_s=lam, service_mean_s=s)
                   if model == "M/M/1" else None)
    return QueueRun(model, rho, c, s, size * batches, warm, batches, confidence, mean, mean_hw,
                    formula_mean_s(model, utilisation=rho, service_mean_s=s, workers=c),
                    p99, p99_hw, p99_formula, share, share_hw,
                    formulas.erlang_c(workers=c, arrival_rate_per_s=lam, service_mean_s=s))


def sweep(utilisations=(0.2, 0.4, 0.6, 0.7, 0.8, 0.9), *, models=MODELS, workers: int = 4,
          service_mean_s: float = 0.010, rel_half_width: float = 0.15,
          min_customers: int = 10_000, max_customers: int = 60_000, seed: int = 0) -> list:
    """`simulate` every model at every utilisation; a list of QueueRun.

    Each run simulates `formulas.mm1_customers_needed(ρ, rel_half_width=...)` customers (for
    a 95 % interval of ±rel_half_width on M/M/1; M/M/c and M/D/1 vary less, so theirs come out
    narrower), clamped to [min_customers, max_customers]: near ρ = 1 the cap wins and the
    printed interval is wider than asked.
    """
    models = [choice("model", m, MODELS) for m in models]
    lo = integer("min_customers", min_customers, 1000, MAX_CUSTOMERS)
    hi = integer("max_customers", max_customers, lo, MAX_CUSTOMERS)
    runs = []
    for rho in utilisations:
        n = min(hi, max(lo, formulas.mm1_customers_needed(rho, rel_half_width=rel_half_width)))
        for m in models:
            runs.append(simulate(m, utilisation=rho, workers=workers,
                                 service_mean_s=service_mean_s, customers=n, seed=seed))
    return runs


_COLOURS = {"M/M/1": "tab:red", "M/M/c": "tab:blue", "M/D/1": "tab:green"}


def latency_chart(runs, *, max_utilisation: float = 0.95, p99_points: bool = True) -> "Figure":
    """Mean response (ms) against utilisation: formula curves and simulated points with CIs.

    Also the M/M/1 p99 formula (dashed) when `runs` hold M/M/1 runs, with the simulated p99s
    (hollow points) if `p99_points`: leave them out for short runs, whose p99 is biased low
    (a few thousand correlated customers rarely reach the far tail)."""
    from labkit.ui.charts import new_figure

    p99_points = boolean("p99_points", p99_points)
    runs = list(runs)
    if not runs or not all(isinstance(r, QueueRun) for r in runs):
        raise ValueError(f"runs must be a non-empty list of QueueRun, got {runs!r:.80}")
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    grid = [i / 200 for i in range(0, int(max_utilisation * 200) + 1)]
    for model in MODELS:
        mine = [r for r in runs if r.model == model]
        if not mine:
            continue
        r0 = mine[0]
        label = f"M/M/{r0.workers}" if model == "M/M/c" else model
        colour = _COLOURS[model]
        ys = [formula_mean_s(model, utilisation=g, service_mean_s=r0.service_mean_s,
                             workers=r0.workers) * 1000 for g in grid]
        ax.plot(grid, ys, color=colour, lw=1.5, label=f"{label} mean (formula)")
        ax.errorbar([r.utilisation for r in mine], [r.mean_s * 1000 for r in mine],
                    yerr=[r.mean_half_width_s * 1000 for r in mine], fmt="o", color=colour,
                    ms=4, capsize=3, label=f"{label} mean (simulated, 95 % CI)")
        if model == "M/M/1":
            ys = [formulas.mm1_response_quantile_s(
                0.99, arrival_rate_per_s=g / r0.service_mean_s,
                service_mean_s=r0.service_mean_s) * 1000 for g in grid]
            ax.plot(grid, ys, color=colour, lw=1, ls="--", label="M/M/1 p99 (formula)")
            if p99_points:
                ax.errorbar([r.utilisation for r in mine], [r.p99_s * 1000 for r in mine],
                            yerr=[r.p99_half_width_s * 1000 for r in mine], fmt="o", mfc="none",
                            color=colour, ms=4, capsize=3, label="M/M/1 p99 (simulated)")
    s_ms = runs[0].service_mean_s * 1000
    top = formula_mean_s("M/M/1", utilisation=max_utilisation,
                         service_mean_s=runs[0].service_mean_s) * 1000
    ax.set_ylim(0, 2.2 * top)
    ax.set_xlim(0, 1.0)
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("utilisation ρ (share of time each worker is busy)")
    ax.set_ylabel("response time, ms")
    ax.set_title(f"Latency against utilisation (mean service time {s_ms:g} ms)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


async def littles_law(service, *, rate_per_s: float = 200.0, duration_s: float = 1.0,
                      sample_every_s: float = 0.005, timeout_s: float = 5.0,
                      max_in_flight: int = 2000, seed: int | None = None) -> dict:
    """Measure L, λ and W on a real labkit service (`await labkit.start_service(...)`).

    Sends GET {collection} at Poisson times (`rate_per_s` for `duration_s`, open loop: a
    request never waits for another) and counts the requests in flight: sent, no reply yet.
    A sampler reads that count every `sample_every_s` like a gauge (L = its time-weighted
    mean), each request's time is measured from send to reply (W = the mean), and
    λ = replies / the time from the first send to the last reply. Little's law says
    L = λ·W; `gap` is L/(λW) − 1 (typically −2 % to 0: a gauge read by the same loop tends
    to wake after a burst of replies has been handled, so it reads slightly low). Inject latency first (``service.faults.set(latency_ms=50)``)
    so there is something in flight. Requests beyond `max_in_flight` are not sent (counted
    in `skipped`); each waits at most `timeout_s`.
    """
    from labkit.services.clients import AsyncClient

    rate = number("rate_per_s", rate_per_s, 0.0, 5000.0, lo_open=True, unit=" requests per second")
    duration = number("duration_s", duration_s, 0.0, 60.0, lo_open=True, unit=" seconds")
    every = number("sample_every_s", sample_every_s, 0.001, 1.0, unit=" seconds")
    timeout = number("timeout_s", timeout_s, 0.0, 60.0, lo_open=True, unit=" seconds")
    cap = integer("max_in_flight", max_in_flight, 1, 100_000)
    loop = asyncio.get_running_loop()
    expo = seeding.rng("littles_law", seed).expovariate
    path = service.spec.path
    state = {"in_flight": 0, "ok": 0, "failed": 0, "skipped": 0, "last_reply": None}
    times: list[float] = []                       # bounded: at most rate * duration * ~2 sends
    samples: list[tuple[float, int]] = []
    max_samples = math.ceil(duration / every) * 4 + 1000

    async def one(client):
        t0 = loop.time()
        state["in_flight"] += 1
        try:
            reply = await client.get(path)
            state["ok" if reply.status < 500 else "failed"] += 1
        except (asyncio.TimeoutError, OSError, ValueError):
            state["failed"] += 1
        finally:
            state["in_flight"] -= 1
            now = loop.time()
            state["last_reply"] = now
            times.append(now - t0)

    async def sampler():
        while len(samples) < max_samples:
            samples.append((loop.time(), state["in_flight"]))
            await asyncio.sleep(every)

    client = AsyncClient(service.url, timeout_s=timeout)
    tasks: set[asyncio.Task] = set()
    gauge = None
    try:
        await client.get("/health")               # open the connection pool before measuring
        start = loop.time()
        gauge = asyncio.create_task(sampler())
        t = start
        while True:
            t += expo(rate)
            if t - start >= duration:
                break
            await asyncio.sleep(max(0.0, t - loop.time()))
            if state["in_flight"] >= cap:
                state["skipped"] += 1
                continue
            task = asyncio.create_task(one(client))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(list(tasks), timeout=timeout + 1.0)
        end = state["last_reply"] or loop.time()
        samples.append((loop.time(), state["in_flight"]))
    finally:
        if gauge is not None:
            gauge.cancel()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*[x for x in (gauge, *tasks) if x is not None],
                             return_exceptions=True)
        await client.close()
    # L: the gauge's time-weighted mean over [start, end] (each reading holds until the next).
    area = 0.0
    for (t0, n0), (t1, _) in zip(samples, samples[1:]):
        area += n0 * max(0.0, min(t1, end) - min(t0, end))
    window = end - start
    in_flight = area / window
    lam = len(times) / window
    w = statistics.fmean(times) if times else float("nan")
    return {"service": service.name, "requests": len(times), "ok": state["ok"],
            "failed": state["failed"], "skipped": state["skipped"], "window_s": window,
            "samples": len(samples), "in_flight_mean": in_flight, "throughput_per_s": lam,
            "response_mean_s": w, "lambda_times_w": lam * w,
            "gap": in_flight / (lam * w) - 1.0 if times else float("nan")}
