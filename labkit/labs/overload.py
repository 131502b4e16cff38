"""Overload control, measured: no limit vs load shedding vs an adaptive limit, and client-side
throttling (chapter 06).

In the virtual-time simulator (`labkit.sim`: fast, deterministic for a seed):

- `ramp_lab()`: offered load ramps from below to above a backend's capacity (Poisson arrivals,
  `workers` workers, exponential service times). Four servers: no limit (an unbounded queue),
  a fixed limit with a bounded queue (plain shedding), and the two adaptive limits of
  `labkit.patterns.limiter` (AIMD, Gradient). Per second of arrival: offered load, goodput
  (successes answered within `slo_s`), p99 latency of the answered requests, shed requests
  and the limit. For the Gradient limit also its smallest RTT (`min_rtt_s`) and, per second,
  the share of its updates with the gradient on its lower clamp of 0.5, where the limit can
  only head for the floor queue_allowance / (1 - 0.5) (`gradient_floor`).
- `throttle_lab()`: the same backend with a bounded queue under a ramp to several times its
  capacity, with and without the SRE book's client-side throttle: how many requests the
  backend had to refuse (work wasted on both sides) against how many succeeded.

On a real labkit service: `burst_lab()` sends a burst above capacity to a service whose
`/work` route needs one of `workers` workers for `work_ms` (a finite capacity, unlike an
injected sleep, which any number of requests can do at once), without and with shedding
(`service.shedding`, labkit.services.shedding), with a fixed cap and with an adaptive one
(a Gradient limit): p99 of the accepted requests, shed count, the cap.

Charts: `ramp_chart`, `throttle_chart`, `burst_chart` return matplotlib Figures.
"""
from __future__ import annotations

import asyncio
import math
import time

from labkit import sim
from labkit._core import validate
from labkit.patterns.bulkhead import Bulkhead
from labkit.patterns.errors import ServiceError
from labkit.patterns.limiter import AIMD, Gradient, Limiter
from labkit.patterns.throttle import Throttle, Throttled

__all__ = ["COLORS", "MODES", "gradient_floor", "ramp_lab", "throttle_lab", "burst_lab", "ramp_chart", "throttle_chart",
           "burst_chart", "p99"]

MODES = ("no_limit", "fixed", "aimd", "gradient")
_LABELS = {"no_limit": "no limit", "fixed": "fixed limit + queue", "aimd": "AIMD limit",
           "gradient": "gradient limit"}
COLORS = {"no_limit": "C0", "fixed": "C1", "aimd": "C2", "gradient": "C3"}  # same in every panel
GRADIENT_CLAMP = 0.5  # labkit.patterns.limiter.Gradient's lowest gradient


def gradient_floor(algorithm: Gradient) -> float:
    """The limit a Gradient heads for while its gradient sits on the 0.5 clamp: the fixed point
    of limit = 0.5 * limit + queue_allowance, i.e. queue_allowance / (1 - 0.5), whatever the
    service (only drops push it lower)."""
    return algorithm.queue_allowance / (1 - GRADIENT_CLAMP)


def p99(values) -> float:
    """The 99th percentile (nearest rank) of `values`; NaN when empty."""
    xs = sorted(values)
    return xs[max(0, math.ceil(0.99 * len(xs)) - 1)] if xs else math.nan


def _ramp(t: float, duration_s: float, start: float, end: float) -> float:
    return start + (end - start) * min(1.0, max(0.0, t / duration_s))


async def _arrivals(rate_at, peak_per_s: float, duration_s: float, request, name: str) -> None:
    """Start `request(t)` at the times of a Poisson process of rate `rate_at(t)` (thinning),
    then wait for every request to finish."""
    loop = asyncio.get_running_loop()
    r = sim.rng(name)
    tasks = set()
    t = loop.time()
    end = t + duration_s
    while True:
        t += r.expovariate(peak_per_s)
        if t >= end:
            break
        if r.random() * peak_per_s > rate_at(t):
            continue
        await asyncio.sleep(t - loop.time())
        task = loop.create_task(request(t))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))


def _series(n: int) -> dict:
    return {"offered_per_s": [0] * n, "ok_per_s": [0] * n, "goodput_per_s": [0] * n,
            "shed_per_s": [0] * n, "latencies": [[] for _ in range(n)]}


async def _ramp_run(mode: str, p: dict) -> dict:
    loop = asyncio.get_running_loop()
    n = int(math.ceil(p["duration_s"]))
    s = _series(n)
    svc = sim.SimService("backend", workers=p["workers"], latency=sim.Exponential(p["service_s"]),
                         queue_limit=p["queue"] if mode == "fixed" else None, record=False)
    limiter = None
    if mode == "aimd":
        limiter = Limiter(AIMD(initial_limit=p["workers"], latency_threshold_s=4 * p["service_s"]))
    elif mode == "gradient":
        limiter = Limiter(Gradient(initial_limit=p["workers"]))
    limits = [0.0] * n
    capacity = p["workers"] / p["service_s"]
    updates, clamped = [0] * n, [0] * n   # Gradient: updates, and those on the 0.5 clamp

    async def request(t0):
        i = min(n - 1, int(t0))
        s["offered_per_s"][i] += 1
        try:
            if limiter is None:
                await svc.call()
            else:
                async with limiter.admit():
                    await svc.call()
                if mode == "gradient":     # admit() just fed this call's RTT to the algorithm
                    updates[i] += 1
                    clamped[i] += limiter.algorithm.gradient <= GRADIENT_CLAMP
        except ServiceError:               # Overloaded (limiter) or 503 (fixed queue full)
            s["shed_per_s"][i] += 1
            return
        latency = loop.time() - t0
        s["ok_per_s"][i] += 1
        s["goodput_per_s"][i] += latency <= p["slo_s"]  # a late answer is wasted work
        s["latencies"][i].append(latency)

    def sample_limit(i=0):
        if i < n:
            limits[i] = (limiter.limit if limiter else
                         p["workers"] + (p["queue"] if mode == "fixed" else math.inf))
            loop.call_later(1.0, sample_limit, i + 1)

    sample_limit()
    rate = lambda t: capacity * _ramp(t, p["duration_s"], p["start_x"], p["end_x"])  # noqa: E731
    await _arrivals(rate, capacity * max(p["start_x"], p["end_x"]), p["duration_s"], request,
                    "overload:arrivals")
    lat = s.pop("latencies")
    s["p99_s"] = [p99(x) for x in lat]
    s["limit"] = limits
    s["t_s"] = list(range(n))
    s["drained_at_s"] = loop.time()
    s["totals"] = {"offered": sum(s["offered_per_s"]), "ok": sum(s["ok_per_s"]),
                   "goodput": sum(s["goodput_per_s"]), "shed": sum(s["shed_per_s"]),
                   "p99_last_5s": p99([x for b in lat[-5:] for x in b])}
    if mode == "gradient":
        s["gradient_clamped_share"] = [c / u if u else math.nan for c, u in zip(clamped, updates)]
        s["min_rtt_s"] = limiter.algorithm.min_rtt_s
        s["gradient_floor"] = gradient_floor(limiter.algorithm)
    return s


def _ramp_params(workers, service_ms, queue, start_x, end_x, duration_s, slo_s, seed) -> dict:
    return {"workers": validate.integer("workers", workers, 1, 64),
            "service_s": validate.number("service_ms", service_ms, 0.1, 1000, unit=" ms") / 1000,
            "queue": validate.integer("queue", queue, 0, 10_000),
            "start_x": validate.number("start_x", start_x, 0.0, 10.0, lo_open=True),
            "end_x": validate.number("end_x", end_x, 0.0, 10.0, lo_open=True),
            "duration_s": validate.number("duration_s", duration_s, 1.0, 600.0, unit=" seconds"),
            "slo_s": validate.number("slo_s", slo_s, 0.0, 60.0, lo_open=True, unit=" seconds"),
            "seed": validate.integer("seed", seed)}


def ramp_lab(*, workers: int = 4, service_ms: float = 40.0, queue: int = 8,
             start_x: float = 0.5, end_x: float = 2.0, duration_s: float = 30.0,
             slo_s: float = 0.5, seed: int = 0, modes=MODES) -> dict:
    """Offered load ramping from `start_x` to `end_x` times capacity, for each mode in `modes`.

    Capacity is workers / service time (4 / 40 ms = 100 requests/s by default). Returns
    {"params": ..., "capacity_per_s": ..., "runs": {mode: per-second series and totals}}.
    Every mode sees the same arrivals. The "gradient" run also has "gradient_clamped_share"
    (per second), "min_rtt_s" and "gradient_floor" (see `gradient_floor`). Virtual time: about 0.15 s of real time per mode with
    the defaults; the same seed gives the same numbers.
    """
    p = _ramp_params(workers, service_ms, queue, start_x, end_x, duration_s, slo_s, seed)
    for m in modes:
        validate.choice("mode", m, MODES)
    runs = {m: sim.run(lambda m=m: _ramp_run(m, p), seed=p["seed"]) for m in modes}
    return {"params": p, "capacity_per_s": p["workers"] / p["service_s"], "runs": runs}


async def _throttle_run(throttled: bool, p: dict) -> dict:
    n = int(math.ceil(p["duration_s"]))
    s = {"offered_per_s": [0] * n, "sent_per_s": [0] * n, "refused_by_backend_per_s": [0] * n,
         "throttled_per_s": [0] * n, "ok_per_s": [0] * n}
    svc = sim.SimService("backend", workers=p["workers"], latency=sim.Exponential(p["service_s"]),
                         queue_limit=p["queue"], record=False)
    throttle = Throttle(k=p["k"], window_s=p["window_s"], buckets=max(1, int(p["window_s"])),
                        name="client") if throttled else None
    capacity = p["workers"] / p["service_s"]

    async def request(t0):
        i = min(n - 1, int(t0))
        s["offered_per_s"][i] += 1
        try:
            if throttle is not None:
                throttle.check()
            s["sent_per_s"][i] += 1
            await svc.call()
        except Throttled:
            s["throttled_per_s"][i] += 1
            return
        except ServiceError:
            s["refused_by_backend_per_s"][i] += 1
            if throttle is not None:
                throttle.record(accepted=False)
            return
        if throttle is not None:
            throttle.record(accepted=True)
        s["ok_per_s"][i] += 1

    rate = lambda t: capacity * _ramp(t, p["duration_s"], p["start_x"], p["end_x"])  # noqa: E731
    await _arrivals(rate, capacity * max(p["start_x"], p["end_x"]), p["duration_s"], request,
                    "overload:throttle")
    s["t_s"] = list(range(n))
    s["totals"] = {k.replace("_per_s", ""): sum(v) for k, v in s.items() if k.endswith("_per_s")}
    s["peak"] = {k.replace("_per_s", ""): sum(v[-5:]) for k, v in s.items() if k.endswith("_per_s")}
    return s


def throttle_lab(*, workers: int = 4, service_ms: float = 40.0, queue: int = 8,
                 start_x: float = 0.5, end_x: float = 4.0, duration_s: float = 30.0,
                 k: float = 2.0, window_s: float = 10.0, seed: int = 0) -> dict:
    """A backend with a bounded queue (it sheds) under a ramp to `end_x` times its capacity,
    with and without the client-side throttle (accept ratio `k`, a `window_s` window).

    Returns {"params", "capacity_per_s", "runs": {"plain": ..., "throttled": ...}} with per
    second: offered, sent to the backend, refused by the backend, throttled locally, ok; and
    the sums over the whole run ("totals") and over its last 5 seconds ("peak").
    Both runs see the same arrivals (same seed).
    """
    p = _ramp_params(workers, service_ms, queue, start_x, end_x, duration_s, 1.0, seed)
    p["k"] = validate.number("k", k, 0.0, 100.0, lo_open=True)
    p["window_s"] = validate.number("window_s", window_s, 1.0, 600.0, unit=" seconds")
    runs = {name: sim.run(lambda t=t: _throttle_run(t, p), seed=p["seed"])
            for name, t in (("plain", False), ("throttled", True))}
    return {"params": p, "capacity_per_s": p["workers"] / p["service_s"], "runs": runs}


# -- a real service ---------------------------------------------------------------------------

async def _burst_once(service, session, rate_per_s: float, burst_s: float,
                      timeout_s: float) -> dict:
    import aiohttp

    loop = asyncio.get_running_loop()
    url = service.url + "/work"
    n = max(1, int(rate_per_s * burst_s))
    statuses, latencies, retry_after = [], [], set()

    async def one():
        t0 = loop.time()
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                await resp.read()
                statuses.append(resp.status)
                if resp.status == 200:
                    latencies.append(loop.time() - t0)
                elif "Retry-After" in resp.headers:
                    retry_after.add(resp.headers["Retry-After"])
        except (asyncio.TimeoutError, aiohttp.ClientError):
            statuses.append(0)

    shed_before = service.counts["shed"]
    limit_start = service.shedding.limiter.limit if service.shedding is not None else None
    start = loop.time()
    tasks = []
    for i in range(n):                       # evenly spaced arrivals at `rate_per_s`
        await asyncio.sleep(max(0.0, start + i / rate_per_s - loop.time()))
        tasks.append(loop.create_task(one()))
    await asyncio.gather(*tasks)
    limiter = service.shedding.limiter if service.shedding is not None else None
    return {"sent": n, "ok": statuses.count(200), "shed": statuses.count(503),
            "limit_start": limit_start, "limit_end": limiter.limit if limiter else None,
            "limits": [limit_start] + [cap for t, cap in limiter.history if t >= start]
                      if limiter else [],
            "failed": sum(1 for s in statuses if s not in (200, 503)),
            "shed_counted": service.counts["shed"] - shed_before,
            "min_rtt_ms": _gradient_ms(limiter, "min_rtt_s"),
            "rtt_end_ms": _gradient_ms(limiter, "rtt_s"),
            "gradient_end": getattr(limiter.algorithm, "gradient", None) if limiter else None,
            "retry_after": sorted(retry_after), "p50_ms": _ms(latencies, 0.5),
            "p99_ms": _ms(latencies, 0.99), "max_ms": max(latencies, default=0) * 1000,
            "wall_s": loop.time() - start}


def _gradient_ms(limiter, attr: str) -> float | None:
    """A Gradient limiter's (smoothed or minimum) RTT in ms; None for other limiters."""
    value = getattr(limiter.algorithm, attr, None) if limiter is not None else None
    return None if value is None else value * 1000


def _ms(xs, q) -> float:
    xs = sorted(xs)
    return xs[max(0, math.ceil(q * len(xs)) - 1)] * 1000 if xs else math.nan


async def burst_lab(*, workers: int = 4, work_ms: float = 20.0, overload_x: float = 3.0,
                    burst_s: float = 0.5, max_concurrency: int = 8, max_queue: int = 8,
                    max_wait_s: float = 0.05, adaptive_initial_limit: int | None = 20,
                    timeout_s: float = 10.0) -> dict:
    """A real labkit service with capacity workers / work (200 requests/s by default) gets
    `overload_x` times that for `burst_s` seconds, first without shedding, then with
    `Shedding(max_concurrency, max_queue, max_wait_s)` (a fixed cap), then, unless
    `adaptive_initial_limit` is None, with an adaptive one: `Limiter(Gradient(initial_limit=
    adaptive_initial_limit))` and the same queue, which starts from that guess and moves the
    cap with the latency it measures. Returns the runs: requests sent, ok, shed (503 with
    Retry-After), p50/p99/max latency of the accepted (ok) ones in ms, and for the shedding
    runs the cap at the start and end of the burst and every cap it took ("limits"); for the
    adaptive run also the Gradient's minimum and smoothed RTT at the end ("min_rtt_ms",
    "rtt_end_ms", both ms) and its last gradient ("gradient_end"; None for the others).

    Wall-clock and a busy machine: expect ranges, not exact numbers. The service is stopped
    at the end, even on error.
    """
    import aiohttp

    from labkit._core import runtime
    from labkit.services.http import ServiceSpec, start_service
    from labkit.services.shedding import Shedding

    workers = validate.integer("workers", workers, 1, 256)
    work_s = validate.number("work_ms", work_ms, 0.1, 1000, unit=" ms") / 1000
    overload_x = validate.number("overload_x", overload_x, 0.0, 20.0, lo_open=True)
    burst_s = validate.number("burst_s", burst_s, 0.05, 10.0, unit=" seconds")
    timeout_s = validate.number("timeout_s", timeout_s, 0.1, 60.0, unit=" seconds")
    shedding = Shedding(max_concurrency, max_queue=max_queue, max_wait_s=max_wait_s)
    knobs = [("no shedding", None), ("shedding", shedding)]
    if adaptive_initial_limit is not None:
        start_limit = validate.integer("adaptive_initial_limit", adaptive_initial_limit, 1, 1000)
        knobs.append(("adaptive", Shedding(limiter=Limiter(
            Gradient(initial_limit=start_limit, max_limit=max(200, start_limit)),
            max_queue=max_queue, max_wait_s=max_wait_s, name="shedding"))))
    pool = Bulkhead(workers, max_queue=100_000, max_wait_s=timeout_s, name="workers")

    async def work(service, request):
        from aiohttp import web
        async with pool:                     # one of `workers` workers, for work_s
            await asyncio.sleep(work_s)
        return web.json_response({"done": True})

    spec = ServiceSpec("overload-lab", routes=(("GET", "/work", work),))
    capacity = workers / work_s
    service = await start_service(spec)
    session = runtime.session(connector=aiohttp.TCPConnector(limit=0))
    runs = {}
    t0 = time.perf_counter()
    try:
        for name, knob in knobs:
            service.shedding = knob
            runs[name] = await _burst_once(service, session, capacity * overload_x, burst_s,
                                           timeout_s)
    finally:
        service.shedding = None
        await session.close()
        await service.stop()
    return {"params": {"workers": workers, "work_ms": work_s * 1000, "overload_x": overload_x,
                       "burst_s": burst_s, "max_concurrency": max_concurrency,
                       "max_queue": max_queue, "max_wait_s": max_wait_s,
                       "adaptive_initial_limit": adaptive_initial_limit},
            "capacity_per_s": capacity, "runs": runs, "wall_s": time.perf_counter() - t0}


# -- charts -------------------------------------------------------------------------------------

def ramp_chart(result: dict):
    """Goodput, p99 latency and the limit per second of arrival, one line per mode."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    from labkit.ui.charts import new_figure

    if not isinstance(result, dict) or "runs" not in result or "capacity_per_s" not in result:
        raise ValueError("result must be what ramp_lab() returned")
    p, cap = result["params"], result["capacity_per_s"]
    fig = new_figure(9.0, 3.2)
    ax_good, ax_p99, ax_lim = fig.subplots(1, 3)
    for mode, run in result["runs"].items():
        t, style = run["t_s"], {"label": _LABELS[mode], "color": COLORS[mode]}
        ax_good.plot(t, run["goodput_per_s"], **style)
        ax_p99.plot(t, [x * 1000 for x in run["p99_s"]], **style)
        if mode != "no_limit":              # no limit has no line here (it is infinite)
            ax_lim.plot(t, run["limit"], **style)
    offered = [cap * _ramp(x + 0.5, p["duration_s"], p["start_x"], p["end_x"])
               for x in range(len(next(iter(result["runs"].values()))["t_s"]))]
    ax_good.plot(range(len(offered)), offered, "k:", label="offered")
    ax_good.axhline(cap, color="grey", lw=0.8)
    ax_good.set_ylabel(f"goodput (ok within {p['slo_s']:g} s) per s")
    ax_p99.set_yscale("log")
    p99_ms = [x * 1000 for run in result["runs"].values() for x in run["p99_s"] if x == x]
    if p99_ms:                              # plain ms labels (1-2-5 steps), not 2x10^2
        lo, hi = min(p99_ms), max(p99_ms)
        ticks = [m * 10 ** e for e in range(-1, 7) for m in (1, 2, 5)]
        ax_p99.yaxis.set_major_locator(FixedLocator(
            [v for v in ticks if lo / 2 <= v <= hi * 2] or [lo]))
        ax_p99.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_p99.yaxis.set_minor_formatter(NullFormatter())
    ax_p99.set_ylabel("p99 latency of answered (ms)")
    ax_lim.set_ylabel("concurrency limit")
    for ax in (ax_good, ax_p99, ax_lim):
        ax.set_xlabel("arrival time (virtual s)")
        if ax.get_lines():
            ax.legend(fontsize=7)
    fig.suptitle(f"load ramps {p['start_x']:g}x -> {p['end_x']:g}x capacity "
                 f"({cap:g}/s: {p['workers']} workers x {p['service_s'] * 1000:g} ms)", fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.88, wspace=0.35)
    return fig


def throttle_chart(result: dict):
    """Requests the backend refused per second, without and with the client-side throttle."""
    from labkit.ui.charts import new_figure

    if not isinstance(result, dict) or set(result.get("runs", {})) != {"plain", "throttled"}:
        raise ValueError("result must be what throttle_lab() returned")
    fig = new_figure(6.0, 3.0)
    ax = fig.subplots()
    for name, style in (("plain", "-"), ("throttled", "--")):
        run = result["runs"][name]
        ax.plot(run["t_s"], run["refused_by_backend_per_s"], style, label=f"{name}: refused by backend")
        ax.plot(run["t_s"], run["ok_per_s"], style, label=f"{name}: ok")
    ax.plot(run["t_s"], run["throttled_per_s"], ":", label="throttled: refused locally")
    ax.set_xlabel("arrival time (virtual s)")
    ax.set_ylabel("requests per s")
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.16, top=0.95)
    return fig


def burst_chart(result: dict):
    """p99 of accepted requests and what happened to the burst, without and with shedding."""
    from labkit.ui.charts import new_figure

    if not isinstance(result, dict) or "runs" not in result or "capacity_per_s" not in result:
        raise ValueError("result must be what burst_lab() returned")
    names = list(result["runs"])
    runs = [result["runs"][n] for n in names]
    fig = new_figure(7.0, 2.8)
    ax_lat, ax_n = fig.subplots(1, 2)
    bars = ax_lat.bar(names, [r["p99_ms"] for r in runs])
    ax_lat.bar_label(bars, fmt="%.0f", fontsize=8)
    ax_lat.set_ylabel("p99 of accepted (ms)")
    xs = range(len(names))
    for dx, key in ((-0.2, "ok"), (0.2, "shed")):
        b = ax_n.bar([x + dx for x in xs], [r[key] for r in runs], 0.4, label=key)
        ax_n.bar_label(b, fontsize=8)
    ax_n.set_xticks(list(xs), names)
    ax_n.set_ylabel("requests")
    ax_n.legend(fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.12, top=0.95, wspace=0.35)
    return fig
