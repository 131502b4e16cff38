"""One background-traffic runner for every live chart: chapter 1's live view (`labkit.watch`)
and chapter 5's breaker timeline (`labkit.labs.timeline`).

`Traffic` calls an async function at a steady rate. The load is *open loop*, as real users
are: a slow answer does not delay the next call. Every call is cut off after `timeout_s`; at
most `max_in_flight` are outstanding, and a tick that cannot be sent (too many in flight, or
the loop fell more than a second behind, e.g. while a long cell ran) is counted in `dropped`
instead of piling up. Each finished call is recorded as a `labkit.obs.metrics.Call` (bounded
history plus running counters).

The background run (`start`) ends by itself after `duration_s`, at `stop()` or at
``labkit.shutdown()``. Ending cancels the calls still in flight and waits for them, so no
request outlives its traffic (no response half-read on a session being closed), then ends the
redraw loop and calls `on_end` once. An exception that stops it is kept in `error` for the
view to show. Time is read from the running loop, so it runs in virtual time (`labkit.sim`).
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any, Awaitable, Callable

from labkit._core import runtime, validate
from labkit.obs.metrics import Call

__all__ = ["Traffic", "judge_reply"]

MAX_RATE_PER_S = 1000.0
SETTLE_S = 5.0           # longest wait for cancelled calls to finish (a bounded wait)


def judge_reply(result: Any) -> tuple[bool, str]:
    """(ok, outcome) of a call's result: an HTTP status >= 400 fails, anything else is ok."""
    status = getattr(result, "status", None)
    if isinstance(status, int):
        return status < 400, str(status)
    return True, "ok"


class Traffic:
    """Calls `call()` `rate_per_s` times a second; see the module docstring.

    `judge(result) -> (ok, outcome)` labels a returned value (default `judge_reply`).
    `call_errors`: "record" counts an exception from a call as a failed call (its type name
    is the outcome, the message is in `last_error`); "stop" stops the traffic and keeps the
    exception in `error` (for calls that catch the failures they expect, so an exception
    there is a bug). `history` is how many recent calls `calls` keeps (0: none).
    """

    def __init__(self, call: Callable[[], Awaitable[Any]], *, rate_per_s: float = 10.0,
                 timeout_s: float = 5.0, max_in_flight: int = 50, duration_s: float = 300.0,
                 history: int = 10_000, judge: Callable[[Any], tuple[bool, str]] | None = None,
                 call_errors: str = "record", name: str = "labkit-traffic"):
        if not callable(call):
            raise ValueError(f"call must be an async function, got {call!r}")
        self.call = call
        self.rate_per_s = validate.number("rate_per_s", rate_per_s, 0, MAX_RATE_PER_S,
                                          lo_open=True, unit=" calls/s")
        self.timeout_s = validate.number("timeout_s", timeout_s, 0, 600, lo_open=True, unit=" s")
        self.max_in_flight = validate.integer("max_in_flight", max_in_flight, 1, 10_000)
        self.duration_s = validate.number("duration_s", duration_s, 0, 86_400, lo_open=True,
                                          unit=" s")
        self.calls: collections.deque[Call] = collections.deque(
            maxlen=validate.integer("history", history, 0, 1_000_000))
        self.call_errors = validate.choice("call_errors", call_errors, ("record", "stop"))
        self.judge = judge or judge_reply
        self.name = name
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.issued = self.completed = self.dropped = self.in_flight = 0
        self.last_error = ""
        self.error: BaseException | None = None
        self._calls: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self._active = False
        self._background = False

    # ---- one call ----------------------------------------------------------------------
    async def call_once(self) -> Call:
        """Make one call now (with the timeout), record it and return the record."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.in_flight += 1
        try:
            try:
                result = await asyncio.wait_for(self.call(), self.timeout_s)
            finally:
                self.in_flight -= 1
            ok, outcome = self.judge(result)
        except (TimeoutError, asyncio.TimeoutError):
            ok, outcome = False, "timeout"
        except Exception as err:  # noqa: BLE001 - a failed call is data here (or a stop)
            if self.call_errors == "stop":
                raise
            ok, outcome = False, type(err).__name__
            self.last_error = f"{type(err).__name__}: {err}"[:200]
        end = loop.time()
        record = Call(end, end - start, bool(ok), str(outcome))
        self.calls.append(record)
        self.outcomes[record.outcome] += 1
        self.completed += 1
        return record

    # ---- running -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while calls are being issued (in the background or by `run`)."""
        task = self._task
        return self._active or (self._background and task is not None and not task.done())

    def start(self, *, duration_s: float | None = None,
              on_refresh: Callable[[], Awaitable[None]] | None = None, refresh_s: float = 1.0,
              on_end: Callable[[], Awaitable[None]] | None = None) -> "Traffic":
        """Run in the background; `on_refresh()` every `refresh_s` while it runs, `on_end()`
        once when it has ended (whatever ended it). No-op if already running."""
        duration = self._duration(duration_s)
        refresh_s = validate.number("refresh_s", refresh_s, 0.05, 600, unit=" s")
        if not self.running:
            self.error = None
            self._background = True
            self._task = runtime.spawn(self._main(duration, on_refresh, refresh_s, on_end),
                                       name=self.name)
        return self

    async def run(self, duration_s: float | None = None) -> None:
        """Issue calls in the foreground for `duration_s`, then wait for the last ones.

        Raises what stopped it (with ``call_errors="stop"``, the first call's exception)."""
        duration = self._duration(duration_s)
        if self.running:
            raise RuntimeError(f"{self.name} is already running; stop it first")
        self.error = None
        await self._run(duration)

    async def stop(self) -> None:
        """Stop issuing calls, cancel those in flight and wait until all of it has ended."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=3 * SETTLE_S)

    async def wait(self, timeout_s: float = 60.0) -> bool:
        """Wait (at most `timeout_s`) until the background run has ended; True if it has."""
        timeout_s = validate.number("timeout_s", timeout_s, 0, 86_400, unit=" s")
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=timeout_s)
        return self._task is None or self._task.done()

    def summary(self) -> dict:
        """Counts so far (JSON-friendly)."""
        return {"issued": self.issued, "completed": self.completed, "dropped": self.dropped,
                "in_flight": self.in_flight, "outcomes": dict(self.outcomes),
                "running": self.running, "error": _describe(self.error)}

    def _duration(self, duration_s):
        if duration_s is None:
            return self.duration_s
        return validate.number("duration_s", duration_s, 0, 86_400, lo_open=True, unit=" s")

    async def _main(self, duration, on_refresh, refresh_s, on_end) -> None:
        loop = asyncio.get_running_loop()
        children = {loop.create_task(self._run(duration), name=f"{self.name}-calls")}
        if on_refresh is not None:
            children.add(loop.create_task(self._redraw_loop(on_refresh, refresh_s),
                                          name=f"{self.name}-redraw"))
        try:
            await asyncio.wait(children, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for child in children:
                child.cancel()
            try:
                await _settle(children)
            finally:                # even if cancelled twice (stop() and then shutdown())
                self._background = False
                for child in children:
                    if child.done() and not child.cancelled() and child.exception() is not None:
                        self.error = self.error or child.exception()
                if on_end is not None:
                    try:
                        await on_end()
                    except Exception as err:  # noqa: BLE001 - shown by the owner, never lost
                        self.error = self.error or err

    async def _redraw_loop(self, on_refresh, refresh_s) -> None:
        while True:
            await asyncio.sleep(refresh_s)
            await on_refresh()

    async def _run(self, duration: float) -> None:
        """Tick `rate_per_s` times a second until `duration` has passed."""
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rate_per_s
        start = loop.time()
        n_ticks = max(1, round(duration * self.rate_per_s))
        burst = max(1, int(self.rate_per_s))        # catch up at most one second of ticks
        self._active = True
        finished = False
        try:
            i = 0
            while i < n_ticks:
                if self.error is not None:
                    raise self.error
                due = start + i * interval
                now = loop.time()
                if due > now:
                    await asyncio.sleep(due - now)
                    continue
                late = int((now - due) / interval) - burst
                if late > 0:                          # the loop was blocked: skip, do not flood
                    late = min(late, n_ticks - i - 1)
                    self.dropped += late
                    i += late
                self._tick(loop)
                i += 1
            finished = True
        finally:
            # Natural end: let the last calls finish (each has its timeout); otherwise cancel.
            await _settle(self._calls, grace_s=self.timeout_s + 1.0 if finished else 0.0)
            self._active = False
        if self.error is not None:
            raise self.error

    def _tick(self, loop) -> None:
        if len(self._calls) >= self.max_in_flight:
            self.dropped += 1
            return
        self.issued += 1
        task = loop.create_task(self.call_once())
        self._calls.add(task)
        task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task) -> None:
        self._calls.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.error = self.error or task.exception()


def _describe(err: BaseException | None) -> str:
    return "" if err is None else f"{type(err).__name__}: {err}"


async def _settle(tasks, grace_s: float = 0.0) -> None:
    """Wait up to `grace_s` for `tasks`, cancel the rest and wait (bounded) until they end.

    Runs to completion even if the caller is cancelled meanwhile (then re-raises), so that a
    request is never left half-done behind a closing session."""
    pending = {t for t in tasks if not t.done()}
    if not pending:
        return
    loop = asyncio.get_running_loop()
    cancelled = False
    if grace_s > 0:
        try:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        except asyncio.CancelledError:
            cancelled = True
    for t in pending:
        t.cancel()
    deadline = loop.time() + SETTLE_S
    while pending and loop.time() < deadline:
        try:
            _, pending = await asyncio.wait(pending, timeout=deadline - loop.time())
        except asyncio.CancelledError:
            cancelled = True
            pending = {t for t in pending if not t.done()}
    if cancelled:
        raise asyncio.CancelledError
