"""Reproductions of published results, small enough to run from a notebook cell.

`backoff_contention` reproduces the contention experiment of Marc Brooker's AWS Architecture
Blog post "Exponential Backoff And Jitter" (2015), following the structure of its simulator:
N clients start at t=0 and each must update one shared row once, by read then conditional
write (optimistic concurrency: the write fails if anyone wrote since the read). Every one-way
message takes |Normal(10 ms, 2 ms)|; the server applies a read or write when the request
arrives. After its k-th failed write a client sleeps backoff(k) (base 5 ms, cap 2000 ms) and
reads again. `calls` counts write attempts; `time_s` is when the last client learns it
succeeded. Times are seconds as floats.

Two engines give the same numbers: "fast", a dedicated heap-of-events loop (the default,
~1 us per event), and "sim", the same clients written as asyncio tasks on labkit.sim's
virtual clock. Each client draws from its own seeded generator, so the event order alone
decides the outcome, and tests check that both engines agree exactly.
"""
from __future__ import annotations

import asyncio
import heapq

from labkit._core import seeding
from labkit._core.validate import choice, integer
from labkit.patterns import backoff as _backoff

__all__ = ["CONTENTION_STRATEGIES", "backoff_contention"]

CONTENTION_STRATEGIES = ("none", "exponential", "full", "equal", "decorrelated")
_NET_MEAN_S, _NET_SD_S = 0.010, 0.002
_BASE_S, _CAP_S = 0.005, 2.0


def _client_rngs(clients, run, seed):
    return [seeding.rng(f"backoff_contention:{run}:{i}", seed) for i in range(clients)]


def _run_fast(clients: int, strategy: _backoff.Strategy, rngs) -> tuple[int, float]:
    """One run on a plain event heap; returns (write attempts, time the last client finished)."""
    mean, sd = _NET_MEAN_S, _NET_SD_S
    gauss = [r.gauss for r in rngs]
    delay = strategy.delay
    heap = []
    seq = 0
    for i in range(clients):  # each client's read request reaches the server
        heap.append((abs(gauss[i](mean, sd)), seq, i, True))
        seq += 1
    heapq.heapify(heap)
    seen = [0] * clients
    attempts = [0] * clients
    prev = [None] * clients
    version = calls = 0
    last = 0.0
    push, pop = heapq.heappush, heapq.heappop
    while heap:
        t, _, i, is_read = pop(heap)
        g = gauss[i]
        if is_read:
            seen[i] = version
            t_write = (t + abs(g(mean, sd))) + abs(g(mean, sd))  # reply back, write out
            push(heap, (t_write, seq, i, False))
        else:
            calls += 1
            ok = seen[i] == version
            if ok:
                version += 1
            t_back = t + abs(g(mean, sd))  # the write's reply reaches the client
            if ok:
                if t_back > last:
                    last = t_back
                continue
            attempts[i] += 1
            t_send = t_back + abs(g(mean, sd))
            wait = delay(attempts[i], rngs[i], prev[i])
            prev[i] = wait
            push(heap, (t_send + wait, seq, i, True))
        seq += 1
    return calls, last


def _run_sim(clients: int, strategy: _backoff.Strategy, rngs) -> tuple[int, float]:
    """The same run as asyncio tasks on the virtual clock (slower; used to check `_run_fast`)."""
    from labkit import sim

    async def main():
        loop = asyncio.get_running_loop()
        row = {"version": 0, "calls": 0}
        done: list[float] = []

        async def client(r):
            def net():
                return abs(r.gauss(_NET_MEAN_S, _NET_SD_S))
            attempt, prev = 0, None
            await asyncio.sleep(net())  # read request travels to the server
            while True:
                seen = row["version"]
                await asyncio.sleep(net())  # read reply travels back
                await asyncio.sleep(net())  # write request travels out
                row["calls"] += 1
                ok = seen == row["version"]
                if ok:
                    row["version"] += 1
                await asyncio.sleep(net())  # write reply travels back
                if ok:
                    done.append(loop.time())
                    return
                attempt += 1
                d = net()
                wait = strategy.delay(attempt, r, prev)
                prev = wait
                await asyncio.sleep(d)
                await asyncio.sleep(wait)

        await asyncio.gather(*(client(r) for r in rngs))
        return row["calls"], max(done)

    return sim.run(main)


def backoff_contention(clients: int, strategy: str, runs: int = 100, seed: int = 0, *,
                       engine: str = "fast") -> dict:
    """Mean write attempts ("calls") and mean completion time ("time_s") over `runs` runs.

    `clients` 1..10 000 (each run's work grows as clients**2), `runs` 1..100 000, `seed` an int.
    """
    integer("clients", clients, 1, 10_000)
    integer("runs", runs, 1, 100_000)
    choice("strategy", strategy, CONTENTION_STRATEGIES)
    integer("seed", seed)
    choice("engine", engine, ("fast", "sim"))
    strat = _backoff.make(strategy, base=_BASE_S, cap=_CAP_S)
    one_run = _run_fast if engine == "fast" else _run_sim
    total_calls = 0
    total_time = 0.0
    for run in range(runs):
        calls, t = one_run(clients, strat, _client_rngs(clients, run, seed))
        total_calls += calls
        total_time += t
    return {"calls": total_calls / runs, "time_s": total_time / runs}
