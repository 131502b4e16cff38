"""Request batching, measured (chapter 06, notebooks/06_performance.ipynb).

- `simulate_batching` / `batching_sweep`: in virtual time (`labkit.sim`, instant and
  repeatable), Poisson arrivals go through a `labkit.patterns.batcher.Batcher` to a backend
  whose call costs a fixed overhead plus a little per item, `concurrency` calls at a time.
  Each row gives the throughput (items served per second), the backend calls, the mean batch
  and the latency each item saw (mean, p99), against `max_batch` and `max_wait_s`.
- `batch_get_run`: the same on real sockets, against a labkit service's
  ``POST /{collection}/batch-get``, beside one GET per item.
- `TutorialRequestBatcher` and `tutorial_partial_batch_lesson`: the tutorial's batcher, whose
  partial batches only go out if the caller also runs `start_batching()` in the background;
  without it `add_request` waits forever (shown with a timeout, in virtual time).
Times are seconds unless a name says otherwise.
"""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any, Callable, Dict, List

import aiohttp

from labkit import sim
from labkit._core import validate
from labkit.obs.metrics import percentile
from labkit.patterns.batcher import Batcher, BatcherFull

__all__ = ["simulate_batching", "batching_sweep", "batch_get_run", "TutorialRequestBatcher",
           "tutorial_partial_batch_lesson"]


# ---- virtual time -------------------------------------------------------------------------------
def simulate_batching(*, max_batch: int, max_wait_s: float, rate_per_s: float = 2000.0,
                      items: int = 1000, call_overhead_s: float = 0.005,
                      per_item_s: float = 0.00005, concurrency: int = 4,
                      max_queue: int = 2000, seed: int = 0) -> dict:
    """One virtual-time run: `items` requests arrive (Poisson, `rate_per_s`), each submitted
    to a Batcher; a backend call for n items takes call_overhead_s + n * per_item_s, at most
    `concurrency` at once. Returns throughput (items/s), calls, mean batch, refused (BatcherFull)
    and latency in ms (mean, p99) from submit to result."""
    max_batch = validate.integer("max_batch", max_batch, 1, 100_000)
    max_wait_s = validate.number("max_wait_s", max_wait_s, 0, 60, unit=" seconds")
    rate_per_s = validate.number("rate_per_s", rate_per_s, 0, 1e7, lo_open=True, unit=" per s")
    items = validate.integer("items", items, 1, 1_000_000)
    call_overhead_s = validate.number("call_overhead_s", call_overhead_s, 0, 60, unit=" seconds")
    per_item_s = validate.number("per_item_s", per_item_s, 0, 60, unit=" seconds")
    concurrency = validate.integer("concurrency", concurrency, 1, 100_000)

    async def main():
        loop = asyncio.get_running_loop()
        backend = asyncio.Semaphore(concurrency)
        calls = 0

        async def process(batch):
            nonlocal calls
            async with backend:
                calls += 1
                await asyncio.sleep(call_overhead_s + per_item_s * len(batch))
            return batch

        batcher = Batcher(process, max_batch=max_batch, max_wait_s=max_wait_s,
                          max_queue=max(max_queue, max_batch))
        latencies, refused, last = [], 0, [0.0]

        async def one(x):
            nonlocal refused
            t0 = loop.time()
            try:
                await batcher.submit(x)
            except BatcherFull:
                refused += 1
                return
            latencies.append(loop.time() - t0)
            last[0] = loop.time()

        arrivals = sim.rng("batching:arrivals", seed)
        tasks = []
        for x in range(items):
            await asyncio.sleep(arrivals.expovariate(rate_per_s))
            tasks.append(asyncio.ensure_future(one(x)))
        await asyncio.gather(*tasks)
        await batcher.close()
        served = len(latencies)
        return {"max_batch": max_batch, "max_wait_ms": max_wait_s * 1000,
                "offered_per_s": rate_per_s, "throughput_per_s": served / last[0] if served else 0.0,
                "served": served, "refused": refused, "calls": calls,
                "mean_batch": served / calls if calls else 0.0,
                "mean_ms": 1000 * sum(latencies) / served if served else float("nan"),
                "p99_ms": 1000 * percentile(latencies, 99) if served else float("nan"),
                "unbatched_ms": 1000 * (call_overhead_s + per_item_s)}

    return sim.run(main, seed=seed)


def batching_sweep(batch_sizes=(1, 4, 16, 64), max_waits_s=(0.0, 0.002, 0.005, 0.010),
                   **options) -> list[dict]:
    """`simulate_batching` for every (max_batch, max_wait_s); `options` go to each run."""
    return [simulate_batching(max_batch=b, max_wait_s=w, **options)
            for b in batch_sizes for w in max_waits_s]


def sweep_table(rows: list[dict]) -> str:
    """The sweep's rows as an aligned text table."""
    lines = [f"{'max_batch':>9}{'max_wait ms':>12}{'items/s':>9}{'calls':>7}{'mean batch':>11}"
             f"{'refused':>8}{'mean ms':>9}{'p99 ms':>9}"]
    for r in rows:
        lines.append(f"{r['max_batch']:>9}{r['max_wait_ms']:>12g}{r['throughput_per_s']:>9.0f}"
                     f"{r['calls']:>7}{r['mean_batch']:>11.1f}{r['refused']:>8}"
                     f"{r['mean_ms']:>9.1f}{r['p99_ms']:>9.1f}")
    return "\n".join(lines)


# ---- real sockets -------------------------------------------------------------------------------
async def batch_get_run(service, *, lookups: int = 400, concurrency: int = 40,
                        max_batch: int = 50, max_wait_s: float = 0.002,
                        latency_ms: float | None = 5.0, timeout_s: float = 30.0) -> list[dict]:
    """`lookups` reads of records by id from a labkit `service`, `concurrency` callers at a
    time: one GET per read, then through a Batcher whose batches are one
    ``POST /{collection}/batch-get`` each. Returns a row per way: reads/s, requests the server
    saw, mean latency per read (ms). Creates the records it reads if missing; `latency_ms` is
    set on the service for the run and restored afterwards (None: leave it)."""
    from labkit.services.http import BATCH_MAX_IDS
    lookups = validate.integer("lookups", lookups, 1, 100_000)
    concurrency = validate.integer("concurrency", concurrency, 1, 1000)
    max_batch = validate.integer("max_batch", max_batch, 1, BATCH_MAX_IDS)
    timeout = aiohttp.ClientTimeout(total=validate.number("timeout_s", timeout_s, 0,
                                                          lo_open=True, unit=" seconds"))
    base = service.url + service.spec.path
    saved = service.faults.summary()
    rows = []
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            service.faults.reset()
            known = await _ensure_records(service, session, base, 100)
            ids = [known[i % len(known)] for i in range(lookups)]
            if latency_ms is not None:
                service.faults.set(latency_ms=validate.number("latency_ms", latency_ms, 0,
                                                              60_000, unit=" ms"))

            async def get_one(i):
                async with session.get(f"{base}/{i}") as resp:
                    return await resp.json() if resp.status == 200 else None

            async def process(batch):
                async with session.post(f"{base}/batch-get", json={"ids": batch}) as resp:
                    resp.raise_for_status()
                    return (await resp.json())["results"]

            batcher = Batcher(process, max_batch=max_batch, max_wait_s=max_wait_s,
                              max_queue=max(lookups, max_batch))
            for way, fetch in (("one GET per read", get_one),
                               (f"batch-get (max_batch={max_batch}, max_wait "
                                f"{max_wait_s * 1000:g} ms)", batcher.submit)):
                rows.append(await _timed(way, fetch, ids, concurrency, service))
            await batcher.close()
            rows[-1]["batches"] = batcher.batches
        finally:
            service.faults.set(**saved)
    return rows


async def _ensure_records(service, session, base, n: int) -> list[int]:
    """The ids of `n` records of the service, created through its API if missing."""
    fields = service.spec.fields
    for k in range(1, 10 * n + 1):
        if len(service.items) >= n:
            break
        body = {f: (f"lab-{k}-{f}" if typ is str else k if typ is int else float(k)
                    if typ is float else True) for f, typ in fields.items()}
        async with session.post(base, json=body) as resp:
            await resp.read()
    return sorted(service.items)[:n]


async def _timed(way: str, fetch: Callable, ids: list, concurrency: int, service) -> dict:
    loop = asyncio.get_running_loop()
    todo = iter(ids)
    latencies, found = [], 0

    async def worker():
        nonlocal found
        for i in todo:
            t0 = loop.time()
            record = await fetch(i)
            latencies.append(loop.time() - t0)
            found += record is not None and record.get("id") == i
    before = service.requests_seen
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(ids)))))
    wall_s = time.perf_counter() - start
    return {"way": way, "reads": len(ids), "found": found, "seconds": wall_s,
            "reads_per_s": len(ids) / wall_s, "server_requests": service.requests_seen - before,
            "mean_ms": 1000 * sum(latencies) / len(latencies)}


# ---- the tutorial's batcher, as a lesson ---------------------------------------------------------
class TutorialRequestBatcher:
    """The tutorial's `RequestBatcher` (source_tutorial_zh.md, "请求批处理和合并"), as written,
    comments translated. A batch goes out when it is full (inside `add_request`), or when the
    `start_batching()` loop, which the caller must run as a background task, wakes up. Without
    that task a partial batch is never sent and `add_request` waits forever; with it, the wait
    depends on where the loop's fixed sleep happens to be, not on the oldest item."""

    def __init__(self, batch_size: int = 10,
                 max_wait_time: float = 0.1):
        self.batch_size = batch_size
        self.max_wait_time = max_wait_time
        self.pending_requests: Dict[str, List[Dict]] = defaultdict(list)
        self.processors: Dict[str, Callable] = {}
        self.running = False

    def register_processor(self, request_type: str, processor: Callable):
        """Register a batch processor."""
        self.processors[request_type] = processor

    async def add_request(self, request_type: str, request_data: Dict[str, Any]) -> Any:
        """Add a request to the batch."""
        if request_type not in self.processors:
            raise ValueError(f"No processor registered for request type: {request_type}")

        future = asyncio.Future()

        self.pending_requests[request_type].append({
            'data': request_data,
            'future': future
        })

        # process at once if the batch is full
        if len(self.pending_requests[request_type]) >= self.batch_size:
            await self._process_batch(request_type)

        return await future

    async def start_batching(self):
        """Start batching."""
        self.running = True

        while self.running:
            await asyncio.sleep(self.max_wait_time)

            # process every request whose batch time has come
            for request_type in list(self.pending_requests.keys()):
                if self.pending_requests[request_type]:
                    await self._process_batch(request_type)

    async def stop_batching(self):
        """Stop batching."""
        self.running = False

    async def _process_batch(self, request_type: str):
        """Process one batch."""
        if not self.pending_requests[request_type]:
            return

        batch = self.pending_requests[request_type]
        self.pending_requests[request_type] = []

        # the batch's data
        batch_data = [req['data'] for req in batch]

        try:
            # call the batch processor
            results = await self.processors[request_type](batch_data)

            # hand out the results
            for i, req in enumerate(batch):
                result = results[i] if isinstance(results, list) else results
                if not req['future'].done():
                    req['future'].set_result(result)

        except Exception as e:
            # set the exception
            for req in batch:
                if not req['future'].done():
                    req['future'].set_exception(e)


def tutorial_partial_batch_lesson(*, requests: int = 3, batch_size: int = 5,
                                  first_at_s: float = 0.0, timeout_s: float = 10.0) -> dict:
    """`requests` (< batch_size) calls to the tutorial's batcher (max_wait_time 50 ms), all
    made `first_at_s` after the batcher (and its `start_batching` loop, if run) started, in
    virtual time: without `start_batching` running, still waiting after `timeout_s`; with it,
    answered when the loop's 50 ms sleep ends (so 30 ms into a cycle, 20 ms later). The same
    requests through labkit's Batcher (max_wait_s 50 ms) go out 50 ms after the first
    arrived. The lookup takes 5 ms. Returns {way: what happened}."""
    requests = validate.integer("requests", requests, 1, 1000)
    batch_size = validate.integer("batch_size", batch_size, 1, 1000)
    first_at_s = validate.number("first_at_s", first_at_s, 0, 60, unit=" seconds")
    timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" seconds")

    def answered(loop, got) -> str:
        at_ms, first_ms = 1000 * loop.time(), 1000 * first_at_s
        return (f"answered at {at_ms:.0f} ms, {at_ms - first_ms:.0f} ms after the requests "
                f"arrived (at {first_ms:.0f} ms): {list(got)}")

    async def lookup(batch):
        await asyncio.sleep(0.005)
        return [f"user {x['user_id']}" if isinstance(x, dict) else f"user {x}" for x in batch]

    async def tutorial(background: bool):
        loop = asyncio.get_running_loop()
        b = TutorialRequestBatcher(batch_size=batch_size, max_wait_time=0.05)
        b.register_processor("get_users", lookup)
        runner = asyncio.ensure_future(b.start_batching()) if background else None
        try:
            await asyncio.sleep(first_at_s)
            calls = [b.add_request("get_users", {"user_id": i}) for i in range(requests)]
            got = await asyncio.wait_for(asyncio.gather(*calls), timeout_s)
            return answered(loop, got)
        except asyncio.TimeoutError:
            return (f"TimeoutError: still waiting after {timeout_s:g} s; "
                    f"{len(b.pending_requests['get_users'])} requests never sent")
        finally:
            await b.stop_batching()
            if runner is not None:
                runner.cancel()

    async def fixed():
        loop = asyncio.get_running_loop()
        b = Batcher(lookup, max_batch=batch_size, max_wait_s=0.05)
        await asyncio.sleep(first_at_s)
        got = await asyncio.wait_for(asyncio.gather(*(b.submit(i) for i in range(requests))),
                                     timeout_s)
        await b.close()
        return answered(loop, got)

    return {"tutorial, without start_batching": sim.run(lambda: tutorial(False)),
            "tutorial, with start_batching in the background": sim.run(lambda: tutorial(True)),
            "labkit Batcher (timer from the first item)": sim.run(fixed)}
