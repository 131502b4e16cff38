"""Chapter 02, exercise 3 (notebooks/02_async_messaging.ipynb): a publish that never waits
for a slow subscriber. A plain function on asyncio queues (no broker): every subscriber gets the
event, a full queue drops its oldest event first, and the number dropped is returned. Imported
at the end of `labkit.checks.messaging`, so it registers after exercises 1 and 2."""
from __future__ import annotations

import asyncio
import copy

from . import Wrong, exercise, plain, raised, run_rng


def publish_event(subscribers, event):
    """Put `event` on every subscriber's queue without waiting; when a queue is full, drop its
    oldest event first. Returns how many events were dropped."""
    dropped = 0
    for queue in subscribers.values():
        if queue.full():
            queue.get_nowait()               # drop the oldest to make room
            dropped += 1
        queue.put_nowait(event)
    return dropped


_NAMES = ("kitchen", "billing", "email", "stock", "analytics", "loyalty", "audit")
_HINT_3 = ("A plain `def`: for each queue in subscribers.values(), if queue.full(): "
           "queue.get_nowait() and count one drop; then queue.put_nowait(event). Return the count.")


@exercise("02.publish_event", reference=publish_event, title="Exercise 3 · publish_event",
          hint=_HINT_3, timeout_s=10.0)
def check_publish_event(impl) -> None:
    rng = run_rng("02.publish_event")
    n = rng.randint(4, 6)
    full = set(rng.sample(range(2, n - 1), rng.randint(1, n - 3)))    # 2 free before, 1 after
    seq = iter(range(rng.randint(1, 50) * 10, 10**6))
    for flags in ([i in full for i in range(n)], [True] * rng.randint(2, 4),
                  [False] * rng.randint(2, 4)):
        subs, old = {}, {}
        for name, is_full in zip(rng.sample(_NAMES, len(flags)), flags):
            subs[name] = asyncio.Queue(maxsize=rng.randint(1, 4))
            size = subs[name].maxsize if is_full else rng.randint(0, subs[name].maxsize - 1)
            old[name] = [{"type": "OrderPlaced", "seq": next(seq)} for _ in range(size)]
            for e in old[name]:
                subs[name].put_nowait(e)
        _judge_publish(impl, subs, old, {"type": "OrderPlaced", "seq": next(seq)})


def _judge_publish(impl, subs, old, event) -> None:
    names = list(subs)
    full = [s for s in names if len(old[s]) == subs[s].maxsize]
    where = "(subscribers: " + ", ".join(
        f"{s!r} maxsize {subs[s].maxsize}{' (full)' if s in full else ''}" for s in names) + ")"
    kept = copy.deepcopy(event)
    try:
        got = impl(subs, event)
    except asyncio.QueueFull:
        after = [s for s in names[names.index(full[0]) + 1:] if subs[s].qsize() == len(old[s])]
        raise Wrong(f"publish_event raised QueueFull at {full[0]!r}, whose queue was full "
                    f"(maxsize {subs[full[0]].maxsize})"
                    + (f", so {', '.join(map(repr, after))} after it got nothing" if after else "")
                    + ". When a queue is full, drop its oldest event (queue.get_nowait()) "
                    "first, then put_nowait.", _HINT_3) from None
    except asyncio.QueueEmpty:
        empty = [s for s in names if not old[s]]
        raise Wrong("publish_event raised QueueEmpty: you called get_nowait() on an empty queue "
                    f"{where}" + (f"; {', '.join(map(repr, empty))} held no events before the "
                                  "publish" if empty else "")
                    + ". Drop the oldest only when the queue is full: `if queue.full():`.",
                    _HINT_3) from None
    except Exception as err:
        if str(err) or isinstance(err, (NotImplementedError, TimeoutError)):
            raise             # `evaluate` says "raised X: ..." (or has its own words)
        raise Wrong(f"publish_event raised {raised(err)} {where}.", _HINT_3) from None
    got = plain(got, "`publish_event` must not wait: make it a plain `def` that uses put_nowait. "
                     "A publisher that awaits a full subscriber queue waits for that slow "
                     "subscriber (and with the source tutorial's lock held across the await, "
                     "every other publisher waits too).")
    if event != kept:
        raise Wrong(f"publish_event changed the event (it was {kept!r}, now {event!r}): every "
                    "subscriber must get the event as it was published.", _HINT_3)
    have = {s: [subs[s].get_nowait() for _ in range(subs[s].qsize())] for s in names}
    missed = [s for s in names if have[s] == old[s]]
    free = [s for s in missed if s not in full]
    k = names.index(full[0]) if full else len(names)
    if free and [s for s in names if s not in missed] == names[:1]:
        raise Wrong(f"only the first subscriber, {names[0]!r}, got the event {where}: put it "
                    "on every subscriber's queue.", _HINT_3)
    if free and missed in (names[k:], names[k + 1:]):
        who = (f"neither {full[0]!r} (the first full queue) nor any subscriber after it"
               if missed == names[k:] else f"no subscriber after {full[0]!r} (the first full)")
        raise Wrong(f"{who} got the event {where}: your loop stopped at the first full "
                    "queue (break?). The others must not suffer from a slow one.", _HINT_3)
    if free:
        raise Wrong(f"{', '.join(map(repr, free))} did not get the event, although there was "
                    f"room {where}.", _HINT_3)
    if missed:
        raise Wrong(f"the full queues of {', '.join(map(repr, missed))} did not get the new "
                    f"event {where}: you dropped the newest event (the one being published). "
                    "The policy is drop-oldest: get_nowait() the oldest, then put the new one.",
                    _HINT_3)
    for s in names:
        want = (old[s][1:] if s in full else old[s]) + [event]
        if have[s] != want:
            seqs = [[e.get("seq") if isinstance(e, dict) else e for e in q]
                    for q in (have[s], want)]
            raise Wrong(f"after publish_event, {s!r} (maxsize {subs[s].maxsize}) holds events "
                        f"{seqs[0]} by seq, expected {seqs[1]}: drop only the oldest, only when "
                        "the queue is full.", _HINT_3)
    if isinstance(got, bool) or got != len(full):
        delivered = " (the number of subscribers that got it)" if got == len(names) else ""
        raise Wrong(f"publish_event returned {got!r}{delivered}, but it dropped {len(full)} "
                    f"event(s) {where}: return how many events were dropped.", _HINT_3)
