"""Hedged requests against a long tail: "The Tail at Scale" (Dean & Barroso, 2013) reproduced.

Chapter 06. The paper's benchmark reads 1,000 keys spread over 100 servers; the request is
done when the last read is. Hedging each read after 10 ms cut the request's p99.9 from
1,800 ms to 74 ms, for 2 % more reads. Chapter 1's fan-out lab (`labkit.labs.fanout`) showed
the first half: with 1,000 reads, a request meets the reads' 1-in-a-million tail 1 - (1 -
1e-6)^1000 = 0.1 % of the time, so the read's p99.9999 becomes the request's p99.9.

The model (`ReadLatency`, `PAPER_MODEL`): each read takes a lognormal time, and a hedge goes
to another replica whose time is independent of the first. The lognormal has two
parameters, fitted to the two facts the paper gives about the *unhedged* system: 2 % of reads
take over 10 ms (a hedge after 10 ms adds 2 % more reads) and a request's p99.9 is 1,800 ms
(so a read's p99.9999 is 1,800 ms). Result: median 0.19 ms, sigma 1.92. The hedged p99.9 is
then a *prediction* of the model, to compare with the paper's 74 ms. What it leaves out: the
extra load of hedges (no queueing: a server is as fast with 2 % more work), slowness shared by
replicas or by a server's 10 keys (both would make a hedge less useful), network time.

Two engines, same draws: `tail_at_scale` / `sweep` compute with numpy over 20,000 requests
(20 million reads: 20 requests above the p99.9), using that a read hedged after d takes
min(first, d + second); `simulate` runs the real `labkit.patterns.hedge.hedged` on each read
in labkit.sim's virtual time and gives the same request times for the same seed and delay
(the tests check that), but costs about 10^3 times more per read, so it runs a few requests.
Randomness: one numpy generator per run, seeded from `labkit._core.seeding.rng` (the course
seed unless `seed` is given). `socket_demo` shows the same on real sockets, with the
server's log showing the losers it cancelled.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from labkit import sim
from labkit._core import runtime, seeding
from labkit._core.validate import integer, number
from labkit.patterns.hedge import HedgeStats, hedged

__all__ = ["PAPER", "ReadLatency", "PAPER_MODEL", "request_times_ms", "tail_at_scale", "sweep",
           "simulate", "socket_demo", "sweep_chart"]

#: What the paper reports (Dean & Barroso, "The Tail at Scale", CACM 56(2), 2013, p. 77).
PAPER = {"keys": 1000, "servers": 100, "hedge_after_ms": 10.0, "p999_ms": 1800.0,
         "hedged_p999_ms": 74.0, "extra_share": 0.02}
CHUNK = 500                  # requests drawn at a time (500 x 1,000 float32 = 2 MB per array)
MAX_REQUESTS = 200_000
_N = NormalDist()


@dataclass(frozen=True)
class ReadLatency:
    """A read's latency in ms: lognormal, exp(Normal(ln median_ms, sigma))."""
    median_ms: float
    sigma: float

    def __post_init__(self):
        number("median_ms", self.median_ms, 0.0, lo_open=True, unit=" ms")
        number("sigma", self.sigma, 0.0, 10.0)

    @classmethod
    def fit(cls, *, over_ms: float = 10.0, share_over: float = 0.02, far_ms: float = 1800.0,
            share_far: float = 1e-6) -> "ReadLatency":
        """The lognormal with P(read > over_ms) = share_over and P(read > far_ms) = share_far."""
        over_ms = number("over_ms", over_ms, 0.0, lo_open=True, unit=" ms")
        far_ms = number("far_ms", far_ms, over_ms, lo_open=True, unit=" ms (above over_ms)")
        share_over = number("share_over", share_over, 0.0, 1.0, lo_open=True, hi_open=True)
        share_far = number("share_far", share_far, 0.0, share_over, lo_open=True, hi_open=True)
        z_over, z_far = _N.inv_cdf(1 - share_over), _N.inv_cdf(1 - share_far)
        sigma = math.log(far_ms / over_ms) / (z_far - z_over)
        return cls(over_ms * math.exp(-z_over * sigma), sigma)

    def quantile_ms(self, q: float) -> float:
        """The latency below which a share q (0 < q < 1) of reads finish."""
        q = number("q", q, 0.0, 1.0, lo_open=True, hi_open=True)
        return self.median_ms * math.exp(self.sigma * _N.inv_cdf(q))

    def share_over(self, ms: float) -> float:
        """P(read > ms): the share of reads a hedge after `ms` doubles."""
        ms = number("ms", ms, 0.0, unit=" ms")
        return 1.0 if ms == 0 else 1 - _N.cdf(math.log(ms / self.median_ms) / self.sigma)

    def ms(self, z: np.ndarray) -> np.ndarray:
        """Latencies (ms, float32) from standard normal draws `z`: exp(ln median + sigma z)."""
        x = np.asarray(z, dtype=np.float32) * np.float32(self.sigma)
        x += np.float32(math.log(self.median_ms))                # in place: no temporaries
        return np.exp(x, out=x)


PAPER_MODEL = ReadLatency.fit()


def _draws(requests: int, keys: int, model: ReadLatency, seed: int | None, hedge_from_ms: float):
    """(first, second) read times in ms, (n, keys) float32 arrays for n <= CHUNK requests.

    `second` (the hedge's time) is drawn only for reads slower than `hedge_from_ms` (the
    earliest hedge); the others get inf, as no hedge is sent for them. The same arguments
    give the same numbers, whichever engine asks.
    """
    gen = np.random.default_rng(seeding.rng("labs:hedging", seed).getrandbits(128))
    for start in range(0, requests, CHUNK):
        first = model.ms(gen.standard_normal((min(CHUNK, requests - start), keys),
                                             dtype=np.float32))
        slow = first > hedge_from_ms
        second = np.full_like(first, np.inf)
        second[slow] = model.ms(gen.standard_normal(int(np.count_nonzero(slow)),
                                                    dtype=np.float32))
        yield first, second


def _check(requests, keys, model):
    integer("requests", requests, 1, MAX_REQUESTS)
    integer("keys", keys, 1, 10_000)
    if not isinstance(model, ReadLatency):
        raise ValueError(f"model must be a ReadLatency, got {model!r}")


def request_times_ms(*, requests: int, keys: int = 1000, hedge_after_ms=(10.0,),
                     model: ReadLatency = PAPER_MODEL, seed: int | None = None) -> dict:
    """Each request's time (the slowest of its `keys` reads), unhedged and per hedge delay.

    Returns {"unhedged": array, d: array for each d in hedge_after_ms, "hedges": {d: count},
    "reads": requests * keys}. A read hedged after d takes min(first, d + second): the hedge
    is sent only if first > d, and if first <= d the minimum is first anyway.
    """
    _check(requests, keys, model)
    delays = [number("hedge_after_ms", d, 0.0, unit=" ms") for d in hedge_after_ms]
    out = {"unhedged": [], **{d: [] for d in delays}}
    hedges = dict.fromkeys(delays, 0)
    for first, second in _draws(requests, keys, model, seed, min(delays, default=math.inf)):
        out["unhedged"].append(first.max(axis=1))
        for d in delays:
            out[d].append(np.minimum(first, second + np.float32(d)).max(axis=1))
            hedges[d] += int(np.count_nonzero(first > d))
    times = {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}
    return {**times, "hedges": hedges, "reads": requests * keys}


def _pcts(xs: np.ndarray) -> dict:
    p50, p99, p999 = np.percentile(xs, [50, 99, 99.9])
    return {"p50_ms": float(p50), "p99_ms": float(p99), "p999_ms": float(p999)}


def tail_at_scale(*, requests: int = 20_000, keys: int = 1000, hedge_after_ms: float = 10.0,
                  model: ReadLatency = PAPER_MODEL, seed: int | None = None) -> dict:
    """The paper's experiment: request p50/p99/p99.9 unhedged and hedged after
    `hedge_after_ms`, the extra reads the hedges added, and the paper's figures beside them."""
    d = number("hedge_after_ms", hedge_after_ms, 0.0, unit=" ms")
    t = request_times_ms(requests=requests, keys=keys, hedge_after_ms=(d,), model=model, seed=seed)
    return {"requests": requests, "keys": keys, "reads": t["reads"], "hedge_after_ms": d,
            "unhedged": _pcts(t["unhedged"]), "hedged": _pcts(t[d]),
            "hedges": t["hedges"][d], "extra_share": t["hedges"][d] / t["reads"],
            "paper": dict(PAPER), "model": {"median_ms": model.median_ms, "sigma": model.sigma}}


def sweep(*, percentiles=(50, 90, 95, 98, 99, 99.9), requests: int = 20_000, keys: int = 1000,
          model: ReadLatency = PAPER_MODEL, seed: int | None = None) -> list[dict]:
    """Extra load against tail reduction: one row per hedge delay, set at a percentile of the
    *read* latency (p95: hedge the 5 % slowest reads). The first row is no hedging."""
    pcts = [number("percentile", p, 0.0, 100.0, lo_open=True, hi_open=True) for p in percentiles]
    delays = [model.quantile_ms(p / 100) for p in pcts]
    t = request_times_ms(requests=requests, keys=keys, hedge_after_ms=delays, model=model,
                         seed=seed)
    rows = [{"percentile": None, "hedge_after_ms": None, "extra_share": 0.0,
             **_pcts(t["unhedged"])}]
    for p, d in zip(pcts, delays):
        rows.append({"percentile": p, "hedge_after_ms": d,
                     "extra_share": t["hedges"][d] / t["reads"], **_pcts(t[d])})
    return rows


def simulate(*, requests: int = 5, keys: int = 1000, servers: int = 100,
             hedge_after_ms: float = 10.0, model: ReadLatency = PAPER_MODEL,
             seed: int | None = None) -> dict:
    """The same experiment on labkit.sim's virtual clock, with the real `hedged()` per read.

    Key k lives on servers k % servers (the original) and (k + 1) % servers (its replica,
    which gets the hedge); a read there sleeps the drawn time. Requests run one after the
    other. Returns the request times in ms (equal to `request_times_ms`'s for the same
    arguments), the hedge counts (`HedgeStats.summary()`), the reads each server answered
    and the tasks left running at the end (0: every loser was cancelled and awaited).
    """
    _check(requests, keys, model)
    integer("servers", servers, 2, 10_000)
    d_s = number("hedge_after_ms", hedge_after_ms, 0.0, unit=" ms") / 1000
    chunks = list(_draws(requests, keys, model, seed, d_s * 1000))

    async def main():
        stats = HedgeStats()
        served = [0] * servers
        loop = asyncio.get_running_loop()
        times = []

        def read(first_ms, second_ms, key):
            async def attempt(n):
                served[(key + n) % servers] += 1
                await asyncio.sleep(float(first_ms if n == 0 else second_ms) / 1000)
                return key
            return attempt

        for first, second in chunks:
            for a, b in zip(first, second):
                t0 = loop.time()
                await asyncio.gather(*(hedged(read(a[k], b[k], k), hedge_after_s=d_s,
                                              idempotent=True, stats=stats)
                                       for k in range(keys)))
                times.append((loop.time() - t0) * 1000)
        me = asyncio.current_task()
        left = sum(1 for t in asyncio.all_tasks() if t is not me and not t.done())
        return {"request_ms": times, "stats": stats.summary(), "served": served,
                "tasks_left": left}

    return sim.run(main, seed=0 if seed is None else seed)


async def socket_demo(*, calls: int = 40, slow_share: float = 0.1, slow_ms: float = 250.0,
                      hedge_after_ms: float = 60.0, service=None) -> dict:
    """On real sockets: `calls` concurrent GETs to a labkit service whose fault layer delays a
    share `slow_share` of requests by `slow_ms`, sent once without and once with hedging.

    Both runs use the same request ids for the originals, so the same calls are slow in both
    (faults are keyed by the service's seed and X-Request-Id, so a re-run repeats them too);
    each hedge has its own id. Returns per-run latencies
    (ms, sorted), hedges sent, and from the server's log the cancelled losers (status 0: the
    client hung up) with how long the server had worked on them. `service`: a labkit
    Service (default: a private one); its fault knobs are restored after.
    """
    from labkit.services.http import REQUEST_ID_HEADER, SPECS, Service, ServiceSpec
    import aiohttp

    integer("calls", calls, 1, 500)
    slow_share = number("slow_share", slow_share, 0.0, 1.0)
    slow_ms = number("slow_ms", slow_ms, 1.0, 10_000.0, unit=" ms")
    hedge_after_ms = number("hedge_after_ms", hedge_after_ms, 0.0, slow_ms, unit=" ms")
    if service is None:
        spec = ServiceSpec("hedging backend", SPECS["users"].fields, collection="users")
        service = runtime.services().get(spec.name) or await Service(spec).start()
    elif not isinstance(service, Service):
        raise ValueError(f"service must be a labkit Service (or None), got {service!r}")
    saved = service.faults.summary()
    loop = asyncio.get_running_loop()
    url = service.url + "/health"
    result = {"calls": calls, "slow_share": slow_share, "slow_ms": slow_ms,
              "hedge_after_ms": hedge_after_ms}
    try:
        async with runtime.session(timeout=aiohttp.ClientTimeout(total=10 + slow_ms / 1000),
                                   connector=aiohttp.TCPConnector(limit=4 * calls)) as session:
            async def get(rid: str) -> int:
                async with session.get(url, headers={REQUEST_ID_HEADER: rid}) as resp:
                    await resp.read()
                    return resp.status

            async def timed(coro) -> float:
                t0 = loop.time()
                await coro
                return (loop.time() - t0) * 1000

            service.faults.reset()
            await asyncio.gather(*(get(f"warm-{i}") for i in range(calls)))  # open connections
            service.faults.set(latency_dist="fixed", latency_ms=slow_ms, latency_rate=slow_share)
            originals = [f"demo-{i}" for i in range(calls)]   # the same ids every run
            plain = await asyncio.gather(*(timed(get(rid)) for rid in originals))
            stats = HedgeStats()
            before = service.requests_seen

            def attempt_of(i):
                return lambda n: get(originals[i] if n == 0 else f"{originals[i]}-hedge{n}")

            hedged_ms = await asyncio.gather(*(
                timed(hedged(attempt_of(i), hedge_after_s=hedge_after_ms / 1000,
                             idempotent=True, stats=stats)) for i in range(calls)))
            sent = calls + stats.hedges
            for _ in range(200):                         # the server logs a loser once it
                if service.requests_seen - before >= sent:   # notices the hang-up
                    break
                await asyncio.sleep(0.01)
    finally:
        service.faults.set(**saved)
    seen = service.requests_seen - before
    log = list(service.log)[-seen:] if seen else []
    cancelled = [{"request_id": s.request_id, "worked_ms": s.duration_s * 1000,
                  "delay_ms": s.delay_s * 1000} for s in log if s.status == 0]
    result.update({
        "plain_ms": sorted(plain), "hedged_ms": sorted(hedged_ms),
        "plain": _pcts(np.array(plain)) | {"max_ms": max(plain)},
        "hedged": _pcts(np.array(hedged_ms)) | {"max_ms": max(hedged_ms)},
        "hedge_stats": stats.summary(), "server_saw": seen, "cancelled_on_server": cancelled,
        "slow_originals": sum(s.delay_s > 0 for s in log if s.request_id in set(originals)),
        "slow_hedges": sum(s.delay_s > 0 for s in log if s.request_id not in set(originals))})
    return result


def sweep_chart(rows: list[dict]):
    """Request p99.9 against extra reads, one point per hedge delay (from `sweep`'s rows),
    with the paper's two points: a matplotlib Figure."""
    from labkit.ui.charts import new_figure

    fig = new_figure(6, 3.2)
    ax = fig.subplots()
    base = rows[0]
    pts = rows[1:]
    ax.plot([100 * r["extra_share"] for r in pts], [r["p999_ms"] for r in pts], "o-",
            color="#1f77b4", label="model: hedged at read pNN")
    for r in pts:
        ax.annotate(f"p{r['percentile']:g}", (100 * r["extra_share"], r["p999_ms"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(base["p999_ms"], color="#d62728", ls="--",
               label=f"model, no hedge: {base['p999_ms']:.0f} ms")
    ax.plot([0, 100 * PAPER["extra_share"]], [PAPER["p999_ms"], PAPER["hedged_p999_ms"]], "s",
            color="black", label="paper (no hedge; hedge at 10 ms)")
    top = max(100 * r["extra_share"] for r in pts)
    ax.set(xscale="symlog", yscale="log", xlabel="extra reads (%)", xlim=(-0.05, 2 * top),
           ylabel="request p99.9 (ms)")
    ax.legend(fontsize=8, loc="center right")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.16, top=0.95)
    return fig
