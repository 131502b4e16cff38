"""Caching (chapter 06): the thundering herd at expiry, measured as backend calls, and the
tutorial's PrefetchCache deadlock.

`herd_lab(mode=...)` runs in virtual time (labkit.sim): `clients` clients read `keys` hot keys
through one `labkit.patterns.cache.Cache` in front of a backend with `backend_workers` workers
(`backend_latency_s` per call, FIFO queue). The cache was filled at start-up by one bulk load
(as the tutorial's PrefetchCache does), so every key was stored at the same moment and,
without jitter, expires at the same moment. Modes:

- "no_single_flight": every miss calls the backend: each expiry sends a herd of calls;
- "single_flight": one call per key per expiry, but all keys still expire together;
- "jitter": single-flight + TTL jitter (±`jitter`): the expiries spread out;
- "refresh_ahead": + refresh after 80 % of the TTL: clients stop waiting for loads at all.

`real_herd(...)` shows it is real: concurrent misses through labkit's HTTP client against the
inventory service, counted by the service itself (`requests_seen`). `prefetch_deadlock()`
runs the tutorial's PrefetchCache under a timeout and reports how long `prefetch` waited for
the lock it holds itself; `prefetch_fixed()` runs the fix.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, List, Optional

from labkit import sim
from labkit._core.validate import choice, integer, number
from labkit.obs.metrics import percentile
from labkit.patterns.cache import Cache, NotFound

__all__ = ["MODES", "herd_lab", "herd_chart", "real_herd", "PrefetchCache",
           "FixedPrefetchCache", "prefetch_deadlock", "prefetch_fixed"]

MODES = ("no_single_flight", "single_flight", "jitter", "refresh_ahead")
_LABELS = {"no_single_flight": "no single-flight", "single_flight": "single-flight",
           "jitter": "single-flight + jittered TTL", "refresh_ahead": "+ refresh-ahead"}
_COLORS = {"no_single_flight": "#d62728", "single_flight": "#ff7f0e", "jitter": "#1f77b4",
           "refresh_ahead": "#2ca02c"}


def herd_lab(*, mode: str, clients: int = 100, keys: int = 20, ttl_s: float = 1.0,
             jitter: float = 0.3, backend_latency_s: float = 0.05, backend_workers: int = 8,
             think_s: float = 0.05, duration_s: float = 2.5, bucket_s: float = 0.05,
             seed: int = 0) -> dict:
    """One run in virtual time; returns the backend calls (total and per `bucket_s`; the bulk
    warm-up at t=0 counts as one), the peak of backend calls outstanding (queued or running),
    the client reads that had to wait for a load, client latency percentiles (ms) and the
    cache's stats."""
    mode = choice("mode", mode, MODES)
    clients = integer("clients", clients, 1, 5000)
    keys = integer("keys", keys, 1, 10_000)
    ttl_s = number("ttl_s", ttl_s, 0, lo_open=True, unit=" s")
    jitter = number("jitter", jitter, 0, 1, hi_open=True)
    backend_latency_s = number("backend_latency_s", backend_latency_s, 0, unit=" s")
    backend_workers = integer("backend_workers", backend_workers, 1, 10_000)
    think_s = number("think_s", think_s, 0, lo_open=True, unit=" s")
    duration_s = number("duration_s", duration_s, 0, 3600, lo_open=True, unit=" s")
    bucket_s = number("bucket_s", bucket_s, 0, duration_s, lo_open=True, unit=" s")
    seed = integer("seed", seed)

    async def main():
        loop = asyncio.get_running_loop()
        workers = asyncio.Semaphore(backend_workers)
        calls: List[float] = []
        outstanding, peak = [0], [0]

        async def backend(key):
            calls.append(loop.time())
            outstanding[0] += 1
            peak[0] = max(peak[0], outstanding[0])
            try:
                async with workers:
                    await asyncio.sleep(backend_latency_s)
            finally:
                outstanding[0] -= 1
            return f"value of {key}"

        cache = Cache(backend, ttl_s=ttl_s, max_entries=keys, timeout_s=60.0,
                      single_flight=mode != "no_single_flight",
                      jitter=jitter if mode in ("jitter", "refresh_ahead") else 0.0,
                      refresh_after_s=0.8 * ttl_s if mode == "refresh_ahead" else None,
                      rng=sim.rng("cache-lab:jitter", seed), name="herd")
        calls.append(loop.time())                 # the bulk warm-up: one call for all keys
        for k in range(keys):
            cache.put(k, f"value of {k}")
        latencies: List[float] = []
        end = loop.time() + duration_s

        async def client(i):
            rng = sim.rng(f"cache-lab:client{i}", seed)
            while loop.time() < end:
                t0 = loop.time()
                await cache.get(rng.randrange(keys))
                latencies.append(loop.time() - t0)
                await asyncio.sleep(rng.expovariate(1 / think_s))

        await asyncio.gather(*(client(i) for i in range(clients)))
        await cache.close()
        return calls, peak[0], latencies, cache.stats()

    calls, peak, latencies, stats = sim.run(main, seed=seed, until_s=duration_s + 600)
    n_buckets = int(round(duration_s / bucket_s))
    per_bucket = [0] * n_buckets
    for t in calls:
        per_bucket[min(int(t / bucket_s), n_buckets - 1)] += 1
    ms = [x * 1000 for x in latencies]
    return {"mode": mode, "label": _LABELS[mode], "clients": clients, "keys": keys,
            "ttl_s": ttl_s, "backend_calls": len(calls), "gets": len(ms),
            "peak_outstanding": peak, "waited": sum(x > 0 for x in ms),
            "bucket_s": bucket_s, "calls_per_bucket": per_bucket,
            "p50_ms": round(percentile(ms, 50), 3), "p99_ms": round(percentile(ms, 99), 3),
            "max_ms": round(max(ms), 3), "stats": stats}


def herd_chart(results: list):
    """Backend calls per bucket over time, one line per `herd_lab` result (a matplotlib Figure;
    log scale, so one call and a herd of hundreds fit on one chart)."""
    if not results or not all(isinstance(r, dict) and "calls_per_bucket" in r for r in results):
        raise ValueError("results must be a non-empty list of herd_lab() results")
    from labkit.ui.charts import new_figure
    fig = new_figure(8, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    for r in results:
        b = r["bucket_s"]
        xs = [i * b for i in range(len(r["calls_per_bucket"]))]
        ys = [max(c, 0.8) for c in r["calls_per_bucket"]]      # 0 drawn just below 1
        ax.step(xs, ys, where="post", color=_COLORS[r["mode"]],
                label=f"{r['label']}: {r['backend_calls']} calls")
    ax.set_yscale("log")
    ax.set_xlabel("time (virtual s)")
    ax.set_ylabel(f"backend calls per {results[0]['bucket_s'] * 1000:g} ms")
    ax.set_title(f"{results[0]['clients']} clients, {results[0]['keys']} hot keys, "
                 f"TTL {results[0]['ttl_s']:g} s")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


async def real_herd(service=None, *, callers: int = 50, latency_ms: float = 30.0,
                    timeout_s: float = 5.0) -> dict:
    """`callers` concurrent reads of one item through a Cache, with and without single-flight,
    and three reads of a missing item with negative caching: server-side request counts.

    Uses `service` (default: `await labkit.start_service("inventory")`), whose latency is set
    to `latency_ms` for the run so the misses overlap, and reset afterwards.
    """
    from labkit.services.clients import AsyncClient
    from labkit.services.http import start_service
    callers = integer("callers", callers, 1, 1000)
    latency_ms = number("latency_ms", latency_ms, 0, 2000, unit=" ms")
    timeout_s = number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
    service = service or await start_service("inventory")
    out: Dict[str, Any] = {"callers": callers}
    async with AsyncClient(service.url, timeout_s=timeout_s) as client:
        reply = await client.post("/items", json={"sku": f"cache-{service.requests_seen}",
                                                  "stock": 7})
        item_id = reply.data["id"]

        async def load(key):
            r = await client.get(f"/items/{key}")
            if r.status == 404:
                raise NotFound(f"no item {key}")
            if not r.ok:
                raise RuntimeError(f"GET /items/{key}: {r.status}")
            return r.data

        service.faults.latency_ms = latency_ms
        try:
            for single_flight in (False, True):
                cache = Cache(load, ttl_s=60, single_flight=single_flight, timeout_s=timeout_s,
                              name="real-herd")
                before = service.requests_seen
                await asyncio.gather(*(cache.get(item_id) for _ in range(callers)))
                out["requests_single_flight" if single_flight else "requests_no_single_flight"] \
                    = service.requests_seen - before
                await cache.close()
            cache = Cache(load, ttl_s=60, negative_ttl_s=5, timeout_s=timeout_s, name="real-404")
            before = service.requests_seen
            for _ in range(3):
                try:
                    await cache.get(10**9)
                except NotFound:
                    pass
            out["requests_missing_x3_negative_cached"] = service.requests_seen - before
            out["negative_hits"] = cache.stats()["negative_hits"]
            await cache.close()
        finally:
            service.faults.reset()
    return out


# ---- the tutorial's PrefetchCache, as written (the lesson), and the fix ----------------------
class PrefetchCache:
    """预取缓存 (the source tutorial's code, unchanged): `prefetch` holds self.lock and calls
    get(), which takes the same asyncio.Lock. asyncio.Lock is not re-entrant: it deadlocks."""

    def __init__(self, cache_ttl: int = 300):
        self.cache: Dict[str, Dict[str, Any]] = {}
        self.cache_timestamps: Dict[str, float] = {}
        self.cache_ttl = cache_ttl
        self.lock = asyncio.Lock()

    async def get(self, key: str) -> Optional[Any]:
        """获取缓存"""
        async with self.lock:
            if key in self.cache:
                timestamp = self.cache_timestamps[key]
                if asyncio.get_event_loop().time() - timestamp < self.cache_ttl:
                    return self.cache[key]
                else:
                    # 缓存过期，删除
                    del self.cache[key]
                    del self.cache_timestamps[key]
            return None

    async def set(self, key: str, value: Any):
        """设置缓存"""
        async with self.lock:
            self.cache[key] = value
            self.cache_timestamps[key] = asyncio.get_event_loop().time()

    async def prefetch(self, fetch_func: Callable, keys: List[str]) -> Dict[str, Any]:
        """预取数据"""
        results = {}

        # 获取未缓存的键
        uncached_keys = []
        async with self.lock:
            for key in keys:
                cached_value = await self.get(key)
                if cached_value is not None:
                    results[key] = cached_value
                else:
                    uncached_keys.append(key)

        if uncached_keys:
            # 批量获取未缓存的数据
            fetched_data = await fetch_func(uncached_keys)

            # 缓存并添加到结果
            for key in uncached_keys:
                if key in fetched_data:
                    value = fetched_data[key]
                    await self.set(key, value)
                    results[key] = value

        return results


class FixedPrefetchCache(PrefetchCache):
    """The fix: `prefetch` does not take the lock itself; get() and set() each hold it only
    for their own dict operations (never across an await of other work)."""

    async def prefetch(self, fetch_func: Callable, keys: List[str]) -> Dict[str, Any]:
        results, uncached_keys = {}, []
        for key in keys:
            cached_value = await self.get(key)          # get() takes the lock, briefly
            if cached_value is not None:
                results[key] = cached_value
            else:
                uncached_keys.append(key)
        if uncached_keys:
            fetched_data = await fetch_func(uncached_keys)
            for key in uncached_keys:
                if key in fetched_data:
                    await self.set(key, fetched_data[key])
                    results[key] = fetched_data[key]
        return results


async def _users(keys):
    await asyncio.sleep(0.01)
    return {k: {"id": k, "name": f"user {k}"} for k in keys}


async def prefetch_deadlock(*, timeout_s: float = 0.2, cache_class=PrefetchCache) -> dict:
    """Run `cache_class().prefetch` under asyncio.wait_for(timeout_s) so it cannot hang; returns
    whether it deadlocked, how long it waited, whether it held its own lock meanwhile, and the
    calls made to the fetch function."""
    timeout_s = number("timeout_s", timeout_s, 0, 30, lo_open=True, unit=" s")
    cache = cache_class()
    await cache.set("u1", {"id": "u1", "name": "cached"})
    fetches = []

    async def fetch(keys):
        fetches.append(list(keys))
        return await _users(keys)

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(cache.prefetch(fetch, ["u1", "u2", "u3"]))
    await asyncio.sleep(0)
    held = cache.lock.locked()                 # prefetch holds it, and get() is waiting for it
    t0 = loop.time()
    try:
        results = await asyncio.wait_for(task, timeout_s)
        deadlocked = False
    except asyncio.TimeoutError:
        results, deadlocked = None, True
    waited_s = loop.time() - t0
    message = (f"deadlocked: prefetch waited {waited_s:.2f} s for the lock it holds "
               f"(stopped by the {timeout_s:g}-s timeout; fetch called {len(fetches)} times)"
               if deadlocked else
               f"no deadlock: prefetch returned {len(results)} keys in {waited_s * 1000:.0f} ms "
               f"with {len(fetches)} fetch call(s) for {fetches[0] if fetches else []}")
    return {"deadlocked": deadlocked, "waited_s": round(waited_s, 3), "lock_held": held,
            "lock_free_after": not cache.lock.locked(), "fetch_calls": fetches,
            "results": results, "message": message}


async def prefetch_fixed(*, timeout_s: float = 2.0) -> dict:
    """`prefetch_deadlock` with the fixed class: returns at once, one fetch for the misses."""
    return await prefetch_deadlock(timeout_s=timeout_s, cache_class=FixedPrefetchCache)
