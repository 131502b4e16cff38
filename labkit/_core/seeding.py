"""One course seed, many independent generators.

Every random draw in labkit comes from a generator made here, so the same seed and the
same sequence of requests give the same numbers. A generator is derived from the course
seed and a name (a service's name, an experiment's name), so adding a new service does not
shift the draws of the others.
"""
from __future__ import annotations

import random

DEFAULT_SEED = 2024
_seed = DEFAULT_SEED


def set_seed(seed: int) -> None:
    """Set the course seed used by generators created after this call."""
    global _seed
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    _seed = seed


def course_seed() -> int:
    """The current course seed."""
    return _seed


def rng(name: str, seed: int | None = None) -> random.Random:
    """A generator for `name`, derived from `seed` (default: the course seed).

    String seeding is stable across processes (it does not depend on PYTHONHASHSEED).
    """
    return random.Random(f"labkit:{_seed if seed is None else seed}:{name}")
