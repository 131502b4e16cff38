"""The tutorial's pub/sub stall, measured in virtual time (chapter 02).

`TutorialPubSub` keeps the tutorial's `PubSubManager.publish` as it was written (a lesson, do
not copy it): it holds an `asyncio.Lock` while it awaits `queue.put` on every subscriber's
bounded queue. When one subscriber is slow its queue fills, `await put` waits for room, and
the publisher (and every other publisher, queued on the lock) advances at the slow
subscriber's pace; the fast subscribers get each event only when the slow one has made room.
Its `except asyncio.QueueFull` branch never runs: `await put` waits, only `put_nowait` raises.

`stall_lab` runs one publisher (an event every `publish_every_s`) with `subscribers` readers,
`slow` of which take `slow_every_s` per event, against the tutorial's manager and against
`labkit.patterns.pubsub.PubSub` with "drop-oldest" and with "block" (`block_timeout_s`).
Each run is a `labkit.sim` run in virtual time with a virtual-time limit, so the tutorial
version cannot hang the notebook. Times in the result are milliseconds (`_ms`) or virtual
seconds (`_s`). `stall_chart(result)` draws it (a matplotlib Figure, no pyplot).
"""
from __future__ import annotations

import asyncio

from labkit import sim
from labkit._core import validate
from labkit.obs.metrics import percentile
from labkit.patterns.pubsub import PubSub

__all__ = ["TutorialPubSub", "stall_lab", "stall_chart", "VARIANTS"]

VARIANTS = ("tutorial", "drop-oldest", "block")


class TutorialPubSub:
    """The tutorial's PubSubManager (source tutorial, section 3), kept as a lesson.

    Changes: `print` became a counter (`queue_full_branch_ran`) so the lab can show that the
    branch never runs; `datetime.now()` became the loop's clock (virtual time); options gone.
    """

    def __init__(self):
        self._topics: dict[str, list[asyncio.Queue]] = {}
        self._global_subscribers: list[asyncio.Queue] = []
        self._lock = asyncio.Lock()
        self.queue_full_branch_ran = 0

    async def publish(self, topic: str, message) -> None:
        async with self._lock:                      # held across every await below
            if topic not in self._topics:
                self._topics[topic] = []
            for queue in self._topics[topic]:
                try:
                    await queue.put({"topic": topic, "message": message,
                                     "timestamp": asyncio.get_running_loop().time()})
                except asyncio.QueueFull:           # never: `await put` waits for room
                    self.queue_full_branch_ran += 1
            for queue in self._global_subscribers:
                try:
                    await queue.put({"topic": topic, "message": message,
                                     "timestamp": asyncio.get_running_loop().time()})
                except asyncio.QueueFull:
                    self.queue_full_branch_ran += 1

    async def subscribe_to_topic(self, topic: str, maxsize: int = 100) -> asyncio.Queue:
        async with self._lock:
            if topic not in self._topics:
                self._topics[topic] = []
            queue = asyncio.Queue(maxsize=maxsize)
            self._topics[topic].append(queue)
            return queue

    async def subscribe_global(self, maxsize: int = 100) -> asyncio.Queue:
        async with self._lock:
            queue = asyncio.Queue(maxsize=maxsize)
            self._global_subscribers.append(queue)
            return queue

    async def unsubscribe_from_topic(self, topic: str, queue: asyncio.Queue) -> None:
        async with self._lock:
            if topic in self._topics and queue in self._topics[topic]:
                self._topics[topic].remove(queue)


def _ms(seconds: float) -> float:
    """Milliseconds rounded to a microsecond (no 49.99999 from float sums of virtual time)."""
    return round(seconds * 1000, 3)


async def _one_run(variant: str, p: dict) -> dict:
    """One variant in virtual time: publisher and readers; the measurements as a dict."""
    loop = asyncio.get_running_loop()
    n_sub, n_slow, events = p["subscribers"], p["slow"], p["events"]
    intended_end_s = events * p["publish_every_s"]
    received = [0] * n_sub
    by_end = [0] * n_sub               # received by the time the publisher meant to be done
    lag = [[] for _ in range(n_sub)]   # publish intent -> received, per reader (s)
    fast_rng = [sim.rng(f"pubsub_stall:fast:{i}") for i in range(n_sub)]

    if variant == "tutorial":
        manager = TutorialPubSub()
        queues = [await manager.subscribe_to_topic("orders", maxsize=p["maxsize"])
                  for _ in range(n_sub)]

        async def take(i):
            item = await queues[i].get()
            return item["message"]

        async def publish(stamp):
            await manager.publish("orders", stamp)
    else:
        manager = PubSub(maxsize=p["maxsize"], overflow=variant,
                         block_timeout_s=p["block_timeout_s"])
        subs = [manager.subscribe("orders") for _ in range(n_sub)]

        async def take(i):
            return await subs[i].get(timeout_s=None)

        async def publish(stamp):
            await manager.publish("orders", stamp)

    async def reader(i):
        slow = i < n_slow
        while True:
            stamp = await take(i)
            now = loop.time()
            received[i] += 1
            by_end[i] += now <= intended_end_s + 1e-9
            lag[i].append(now - stamp)
            # a slow reader works slow_every_s per event; a fast one 0.5-1.5 ms (seeded)
            await asyncio.sleep(p["slow_every_s"] if slow else
                                fast_rng[i].uniform(0.0005, 0.0015))

    readers = [asyncio.create_task(reader(i)) for i in range(n_sub)]
    publish_s = []
    for k in range(events):
        intended = k * p["publish_every_s"]
        if loop.time() < intended:
            await asyncio.sleep(intended - loop.time())
        start = loop.time()
        await publish(intended)
        publish_s.append(loop.time() - start)
    publisher_end_s = loop.time()
    # let the readers drain what is queued (bounded: at most a full queue of slow work)
    await asyncio.sleep(p["maxsize"] * p["slow_every_s"] + 0.1)
    for t in readers:
        t.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    fast = range(n_slow, n_sub)
    slow = range(n_slow)
    return {
        "variant": variant,
        "publish_p50_ms": _ms(percentile(publish_s, 50)),
        "publish_max_ms": _ms(max(publish_s)),
        "publisher_end_s": round(publisher_end_s, 6),
        "intended_end_s": round(intended_end_s, 6),
        "fast_received": [received[i] for i in fast],
        "fast_received_by_intended_end": [by_end[i] for i in fast],
        "fast_lag_p50_ms": _ms(percentile([x for i in fast for x in lag[i]], 50)),
        "fast_lag_max_ms": _ms(max((x for i in fast for x in lag[i]), default=0.0)),
        "slow_received": [received[i] for i in slow],
        "slow_dropped": [events - received[i] for i in slow],
        "queue_full_branch_ran": (manager.queue_full_branch_ran if variant == "tutorial"
                                  else None),
    }


async def stall_lab(*, subscribers: int = 5, slow: int = 1, events: int = 200,
                    maxsize: int = 10, slow_every_s: float = 0.05,
                    publish_every_s: float = 0.01, block_timeout_s: float = 0.02,
                    seed: int = 0) -> dict:
    """The tutorial's manager vs PubSub("drop-oldest") vs PubSub("block"), in virtual time.

    Returns {"params": ..., "runs": {variant: measurements}}. Per run: publisher time per
    event (`publish_p50_ms`, `publish_max_ms`), when the publisher finished
    (`publisher_end_s`, vs `intended_end_s`), events each fast reader received in total and by
    `intended_end_s`, their lag (publish intent to receipt, ms), what each slow reader received
    and missed, and for the tutorial how often its `QueueFull` branch ran (always 0). Each run
    stops at a virtual-time limit (SimTimeout) rather than hang. Chapter 02.
    """
    p = {
        "subscribers": validate.integer("subscribers", subscribers, 1, 1000),
        "slow": validate.integer("slow", slow, 0, subscribers),
        "events": validate.integer("events", events, 1, 100_000),
        "maxsize": validate.integer("maxsize", maxsize, 1, 100_000),
        "slow_every_s": validate.number("slow_every_s", slow_every_s, 0, 10, unit=" s"),
        "publish_every_s": validate.number("publish_every_s", publish_every_s, 0, 10, unit=" s"),
        "block_timeout_s": validate.number("block_timeout_s", block_timeout_s, 0, 10, unit=" s"),
        "seed": validate.integer("seed", seed),
    }
    # Worst case: every event waits for a slow reader (tutorial), plus the drain.
    until_s = p["events"] * (p["publish_every_s"] + p["slow_every_s"] + p["block_timeout_s"]) \
        + p["maxsize"] * p["slow_every_s"] + 10.0
    runs = {}
    for variant in VARIANTS:
        runs[variant] = await sim.run_async(lambda v=variant: _one_run(v, p), seed=p["seed"],
                                            until_s=until_s)
    return {"params": p, "until_s": until_s, "runs": runs}


def stall_chart(result: dict):
    """Publisher time per event and what the readers got, per variant (a matplotlib Figure)."""
    if not isinstance(result, dict) or set(result.get("runs", {})) != set(VARIANTS):
        raise ValueError("result must be what stall_lab() returned")
    from labkit.ui.charts import new_figure

    runs = [result["runs"][v] for v in VARIANTS]
    labels = ["tutorial\n(lock + await put)", "PubSub\ndrop-oldest", "PubSub\nblock"]
    p = result["params"]
    fig = new_figure(8.0, 3.4)
    ax_pub, ax_got = fig.subplots(1, 2)
    xs = range(len(runs))
    fast_by_end = [min(r["fast_received_by_intended_end"], default=0) for r in runs]
    slow_missed = [sum(r["slow_dropped"]) for r in runs]
    panels = ((ax_pub, [r["publish_p50_ms"] for r in runs], [r["publish_max_ms"] for r in runs],
               ("p50", "max"), "publisher time per event (ms)"),
              (ax_got, fast_by_end, slow_missed,
               (f"a fast reader got by {runs[0]['intended_end_s']:g} s", "the slow one missed"),
               f"events (of {p['events']})"))
    for ax, left, right, names, ylabel in panels:
        for dx, values, name in ((-0.2, left, names[0]), (0.2, right, names[1])):
            bars = ax.bar([x + dx for x in xs], values, 0.4, label=name)
            ax.bar_label(bars, fmt="%g", fontsize=7)
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, max([*left, *right, 1]) * 1.15)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8,
                  frameon=False)
    fig.suptitle(f"{p['subscribers']} readers, {p['slow']} slow ({p['slow_every_s'] * 1000:g} ms "
                 f"per event), one event every {p['publish_every_s'] * 1000:g} ms, queues of "
                 f"{p['maxsize']}", fontsize=9, y=0.99)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.8, wspace=0.3)
    return fig
