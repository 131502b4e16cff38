"""Retries around an open circuit breaker: the source tutorial's order of wrappers vs labkit's.

Defined in chapter 05 (retries), section 7. The tutorial's client wraps its retry decorator
*around* the breaker, so when the breaker is open (it says "not now" in microseconds) the
client still sleeps and asks it again, spending the caller's time for nothing. labkit's
`Retry` classifies `BreakerOpen` as not retryable and gives up at once. Both run against the
same breaker, tripped open for `open_s` seconds, in virtual time (`labkit.sim.run`), so the
comparison takes no real time. Times are seconds as floats.
"""
from __future__ import annotations

import asyncio

from labkit import sim
from labkit._core import validate
from labkit.patterns.breaker import CircuitBreaker
from labkit.patterns.retry import Retry

__all__ = ["tutorial_retry_around_breaker", "compare"]


async def tutorial_retry_around_breaker(call, *, attempts: int = 3, first_wait_s: float = 1.0):
    """The tutorial's ``@retry_on_failure`` around ``circuit_breaker.call``: catch everything,
    sleep first_wait_s * 2**k, try again; `call` is the breaker-guarded call (no arguments)."""
    for attempt in range(attempts):
        try:
            return await call()
        except Exception:                      # BreakerOpen included: the bug
            if attempt < attempts - 1:
                await asyncio.sleep(first_wait_s * 2 ** attempt)
    raise RuntimeError(f"gave up after {attempts} attempts")


def compare(*, attempts: int = 3, first_wait_s: float = 1.0, open_s: float = 60.0,
            seed: int = 0) -> list[dict]:
    """Both clients call a breaker that is open for `open_s`; one dict per client:
    {"client", "rejected" (calls the breaker refused), "failed_after_s", "error"}."""
    attempts = validate.integer("attempts", attempts, lo=1, hi=100)
    first_wait_s = validate.number("first_wait_s", first_wait_s, 0.0, 3600.0, unit=" s")
    open_s = validate.number("open_s", open_s, 0.0, 1e6, lo_open=True, unit=" s")

    async def main() -> list[dict]:
        breaker = CircuitBreaker(minimum_number_of_calls=1, window_size=1,
                                 wait_duration_in_open_s=open_s)
        breaker.record_failure()                                   # tripped: open

        async def service():
            return "ok"

        clients = {
            "tutorial: retry around breaker": lambda: tutorial_retry_around_breaker(
                lambda: breaker.call(service), attempts=attempts, first_wait_s=first_wait_s),
            "labkit Retry (BreakerOpen not retryable)": lambda: Retry(
                max_attempts=attempts).call(breaker.call, service),
        }
        loop, out = asyncio.get_running_loop(), []
        for label, client in clients.items():
            t0, before = loop.time(), breaker.calls_rejected
            error = None
            try:
                await client()
            except Exception as err:  # both are expected to fail: we report how
                error = type(err).__name__
            out.append({"client": label, "rejected": breaker.calls_rejected - before,
                        "failed_after_s": loop.time() - t0, "error": error})
        return out

    return sim.run(main, seed=seed)
