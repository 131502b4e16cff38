"""Request batching: many small calls become one batch call (chapter 06, notebooks/06_performance).

`Batcher(process_batch, max_batch=..., max_wait_s=..., max_queue=...)`: callers
``await batcher.submit(item)`` one item at a time and each gets its own result; the batcher
sends ``await process_batch(items)`` when `max_batch` items are waiting, or when the *oldest*
waiting item has waited `max_wait_s`, whichever comes first. The wait is a timer started by
the first item of a batch (``loop.call_later``), so a partial batch always goes out on time;
the tutorial's `RequestBatcher` instead relied on a background loop that the caller had to
start, and without it a partial batch was never sent.

`process_batch` returns one result per item, in order; a result that is an exception instance
fails that item alone (the others get their results). If it raises, every item of that batch
gets the exception; if it returns the wrong number of results, every item fails with
`BatchResultMismatch`, because results matched by position would go to the wrong callers.

Bounded: at most `max_queue` items are submitted and not yet answered (waiting or in a batch
being processed); `submit` beyond that raises `BatcherFull` at once (backpressure, not an
ever-growing queue). `close()` sends what is waiting (or fails it with `BatcherClosed`) and
waits, with a timeout, for the batches in flight: no item is lost and none waits forever.
Time comes only from the running loop, so it runs unchanged in virtual time (`labkit.sim`).
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any, Awaitable, Callable

from labkit._core import validate

__all__ = ["Batcher", "BatcherFull", "BatcherClosed", "BatchResultMismatch"]


class BatcherFull(RuntimeError):
    """`submit` on a batcher already holding `max_queue` unanswered items."""


class BatcherClosed(RuntimeError):
    """`submit` after `close()`, or an item that `close(flush=False)` (or its timeout) failed."""


class BatchResultMismatch(ValueError):
    """`process_batch` returned a number of results different from the number of items."""


class Batcher:
    """Collects items into batches for `process_batch`; see the module docstring.

    `max_batch` (items, >= 1) sends a batch as soon as it is full; `max_wait_s` (seconds,
    >= 0) is the longest the oldest item of a batch waits for others; `max_queue` (items,
    >= max_batch) bounds the unanswered items. `stats()` reports batches sent and why.
    """

    def __init__(self, process_batch: Callable[[list], Awaitable[list]], *, max_batch: int,
                 max_wait_s: float, max_queue: int = 10_000):
        if not callable(process_batch):
            raise ValueError(f"process_batch must be an async function of a list of items, "
                             f"got {process_batch!r}")
        self.process_batch = process_batch
        self.max_batch = validate.integer("max_batch", max_batch, 1)
        self.max_wait_s = validate.number("max_wait_s", max_wait_s, 0.0, unit=" seconds")
        self.max_queue = validate.integer("max_queue", max_queue, self.max_batch)
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._inflight: set[asyncio.Task] = set()
        self._unanswered = 0
        self._closed = False
        self.batches = 0
        self.items = 0
        self.flushes: collections.Counter = collections.Counter()   # "full"/"max_wait"/"close"
        self.sizes: collections.deque[int] = collections.deque(maxlen=10_000)

    # ---- the caller's side ---------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Items waiting for their batch to be sent."""
        return len(self._pending)

    @property
    def unanswered(self) -> int:
        """Items submitted and not yet answered (waiting or in a batch being processed)."""
        return self._unanswered

    async def submit(self, item) -> Any:
        """The result for `item`, once its batch is processed (or the exception for it)."""
        if self._closed:
            raise BatcherClosed("the batcher is closed: submit to a new one")
        if self._unanswered >= self.max_queue:
            raise BatcherFull(f"batcher full: {self._unanswered} items unanswered "
                              f"(max_queue={self.max_queue}); slow down or raise max_queue")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future))
        self._unanswered += 1
        if len(self._pending) >= self.max_batch:
            self._flush("full")
        elif self._timer is None:                # the first item of a batch starts its timer
            self._timer = loop.call_later(self.max_wait_s, self._flush, "max_wait")
        return await future

    async def close(self, *, flush: bool = True, timeout_s: float = 30.0) -> None:
        """Stop taking items; send the waiting ones (`flush=True`) or fail them with
        `BatcherClosed`; then wait up to `timeout_s` for batches in flight, and fail the items
        of any still running (they are cancelled). Calling it again does nothing more."""
        timeout_s = validate.number("timeout_s", timeout_s, 0.0, lo_open=True, unit=" seconds")
        self._closed = True
        if flush:
            while self._pending:
                self._flush("close")
        else:
            self._cancel_timer()
            pending, self._pending = self._pending, []
            self._fail(pending, BatcherClosed("the batcher was closed before this item was sent"))
        if self._inflight:
            _, late = await asyncio.wait(set(self._inflight), timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)

    def stats(self) -> dict:
        """Batches and items sent, mean batch size, and why batches went out."""
        return {"batches": self.batches, "items": self.items,
                "mean_batch": self.items / self.batches if self.batches else 0.0,
                "flushes": dict(self.flushes), "waiting": self.waiting,
                "unanswered": self.unanswered}

    # ---- sending ---------------------------------------------------------------------------
    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush(self, reason: str) -> None:
        """Send up to max_batch waiting items as one batch (in a task of its own)."""
        self._cancel_timer()
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        if self._pending:     # items left over (after close): their batch starts its own timer
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.max_wait_s, self._flush, "max_wait")
        if not batch:
            return
        self.batches += 1
        self.items += len(batch)
        self.flushes[reason] += 1
        self.sizes.append(len(batch))
        task = asyncio.ensure_future(self._run(batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run(self, batch: list) -> None:
        try:
            results = await self.process_batch([item for item, _ in batch])
        except asyncio.CancelledError:
            self._fail(batch, BatcherClosed("the batcher was closed while this item's batch "
                                            "was still being processed"))
            raise
        except Exception as err:
            self._fail(batch, err)
            return
        try:
            results = list(results)
        except TypeError:
            results = None
        if results is None or len(results) != len(batch):
            got = "no list" if results is None else f"{len(results)} results"
            self._fail(batch, BatchResultMismatch(
                f"process_batch returned {got} for a batch of {len(batch)} items: it must return "
                "one result per item, in the order of the items"))
            return
        for (_, future), result in zip(batch, results):
            self._unanswered -= 1
            if future.done():                      # its caller gave up (cancelled)
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _fail(self, batch: list, err: BaseException) -> None:
        for _, future in batch:
            self._unanswered -= 1
            if not future.done():
                future.set_exception(err)
