"""One course seed, many independent generators.

Every random draw in labkit comes from a generator made here, so the same seed and the
same sequence of steps give the same numbers. Two kinds of generator:

- `rng(name)`: the one stream of a named thing (a service, an experiment). It is derived from
  the seed and the name only, so adding a new service does not shift the draws of the others.
- `stream(kind)`: a new stream for each *instance* (each retry policy, each backoff), derived
  from the seed, the kind and how many of that kind were made before. A hundred clients built
  the same way then draw a hundred different jitters (chapter 05: jitter only helps if clients
  are decorrelated), yet re-running a notebook from `set_seed` gives the same numbers. Inside a
  `labkit.sim` run the run's seed is used, with counts of its own, so a run is reproducible
  whatever happened before it.
"""
from __future__ import annotations

import asyncio
import random
import threading
import weakref

from labkit._core.validate import integer

DEFAULT_SEED = 2024
_seed = DEFAULT_SEED
_counts: dict[str, int] = {}                          # kind -> streams made since set_seed
_run_counts: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # sim loop -> its counts
_lock = threading.Lock()                              # sim runs live in a worker thread


def set_seed(seed: int) -> None:
    """Set the course seed used by generators created after this call, and restart the
    per-kind counts of `stream`, so the same cells after it draw the same numbers again."""
    global _seed
    seed = integer("seed", seed)
    with _lock:
        _seed = seed
        _counts.clear()


def course_seed() -> int:
    """The current course seed."""
    return _seed


def rng(name: str, seed: int | None = None) -> random.Random:
    """The generator for `name`, derived from `seed` (default: the course seed).

    Two calls with the same name and seed give identical streams: use it for things that are
    one of a kind (a service, a named experiment), and `stream` for instances.
    String seeding is stable across processes (it does not depend on PYTHONHASHSEED).
    """
    return random.Random(f"labkit:{_seed if seed is None else seed}:{name}")


def _run_seed_and_counts():
    """(seed, counts) of the running labkit.sim loop, or None outside one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    seed = getattr(loop, "seed", None)  # only labkit.sim's VirtualClockLoop has one
    if seed is None:
        return None
    counts = _run_counts.get(loop)
    if counts is None:
        counts = _run_counts[loop] = {}
    return seed, counts


def stream(kind: str) -> random.Random:
    """A new generator for one instance of `kind` (e.g. "retry:payments").

    Derived from (seed, kind, n), where n counts the streams of this kind made before: the
    course seed and counts since `set_seed`, or inside a `labkit.sim` run the run's seed and
    counts since the run began. Kinds do not shift each other.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty str naming what the stream is for, got {kind!r}")
    with _lock:
        run = _run_seed_and_counts()
        seed, counts = run if run is not None else (_seed, _counts)
        n = counts.get(kind, 0)
        counts[kind] = n + 1
    return random.Random(f"labkit.stream:{seed}:{kind}:{n}")
