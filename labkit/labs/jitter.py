"""Jitter and the thundering herd: many clients drawing backoff waits, and how crowded their
retries are.

Defined in chapter 05 (retries), section 2. `waits` draws every client's waits from its own
stream (one `random.Random` per client, derived from `seed`), so clients are independent and a
run is repeatable; `send_times` turns one client's waits into the moments its retries go out,
and `busiest_window` counts the retries in the most crowded window — the number a server sees
when a blip made every client fail at the same instant. Times are seconds as floats.
"""
from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from itertools import accumulate

from labkit._core import validate
from labkit.patterns.backoff import Backoff, Strategy

__all__ = ["waits", "send_times", "busiest_window", "herd"]


def waits(strategy: Strategy, clients: int, retries: int, *, seed: int = 1) -> list[list[float]]:
    """Each of `clients` clients' waits (seconds) before its first `retries` retries, one list
    per client, drawn exactly as `labkit.patterns.retry.Retry` draws them (a `Backoff` per
    client). Client i draws from its own ``random.Random(f"{seed}:{i}")``."""
    if not isinstance(strategy, Strategy):
        raise ValueError(f"strategy must be a labkit.patterns.backoff strategy, got {strategy!r}")
    clients = validate.integer("clients", clients, lo=1, hi=1_000_000)
    retries = validate.integer("retries", retries, lo=1, hi=10_000)
    seed = validate.integer("seed", seed)
    out = []
    for client in range(clients):
        b = Backoff(strategy, random.Random(f"{seed}:{client}"))
        out.append([b.next_delay() for _ in range(retries)])
    return out


def send_times(client_waits: Sequence[float]) -> list[float]:
    """When one client's retries go out, in seconds after the failure: running sums of its waits."""
    return list(accumulate(client_waits))


def busiest_window(times: Sequence[float], window_s: float) -> int:
    """The most events in any window of `window_s` seconds (closed at both ends)."""
    window_s = validate.number("window_s", window_s, lo=0.0, hi=1e9)
    ordered = sorted(times)
    return max((bisect.bisect_right(ordered, t + window_s) - i for i, t in enumerate(ordered)),
               default=0)


def herd(strategy: Strategy, clients: int = 1000, retries: int = 3, *, window_s: float = 0.010,
         seed: int = 1) -> dict:
    """`clients` clients fail together at time 0 and retry `retries` times each: how many of
    their retries land in the busiest `window_s`? Returns {"retries", "busiest", "window_s"}."""
    sends = [t for w in waits(strategy, clients, retries, seed=seed)
             for t in send_times(w)]
    return {"retries": len(sends), "busiest": busiest_window(sends, window_s), "window_s": window_s}
