"""labkit.labs.jitter: chapter 5's waits and busiest-window counting (moved out of the chapter)."""
import random

import pytest

from labkit.labs import jitter
from labkit.patterns import backoff
from labkit.patterns.backoff import Backoff


def test_waits_draw_like_retry_does_one_stream_per_client():
    strategy = backoff.FullJitter(0.1, 5.0)
    got = jitter.waits(strategy, 3, 4, seed=7)
    for i, mine in enumerate(got):
        b = Backoff(strategy, random.Random(f"7:{i}"))
        assert mine == [b.next_delay() for _ in range(4)]
    assert len({tuple(w) for w in got}) == 3              # clients differ


def test_waits_are_repeatable_and_seed_dependent():
    s = backoff.EqualJitter(0.1, 5.0)
    assert jitter.waits(s, 5, 3, seed=1) == jitter.waits(s, 5, 3, seed=1)
    assert jitter.waits(s, 5, 3, seed=1) != jitter.waits(s, 5, 3, seed=2)


def test_send_times_are_running_sums():
    assert jitter.send_times([0.1, 0.2, 0.4]) == pytest.approx([0.1, 0.3, 0.7])


@pytest.mark.parametrize("times,window,want", [
    ([], 0.01, 0), ([1.0], 0.01, 1), ([0.0, 0.005, 0.010, 0.0101], 0.01, 3),
    ([3.0, 1.0, 2.0, 1.0], 0.0, 2), ([0.0, 0.02, 0.04], 0.01, 1)])
def test_busiest_window_counts_the_most_crowded_window(times, window, want):
    assert jitter.busiest_window(times, window) == want


def test_without_jitter_the_whole_herd_lands_together_and_full_jitter_spreads_it():
    none = jitter.herd(backoff.Exponential(0.1, 5.0), clients=200, retries=3)
    full = jitter.herd(backoff.FullJitter(0.1, 5.0), clients=200, retries=3)
    assert none == {"retries": 600, "busiest": 200, "window_s": 0.010}
    assert full["retries"] == 600 and full["busiest"] < 40


@pytest.mark.parametrize("kwargs,name", [({"clients": 0}, "clients"), ({"clients": 2.0}, "clients"),
                                         ({"retries": 0}, "retries"), ({"seed": "x"}, "seed")])
def test_bad_arguments_name_themselves(kwargs, name):
    args = {"clients": 2, "retries": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        jitter.waits(backoff.FullJitter(), args.pop("clients"), args.pop("retries"), **args)


def test_a_plain_function_is_not_a_strategy():
    with pytest.raises(ValueError, match="strategy"):
        jitter.waits(lambda a, r, p: 0.1, 2, 2)
    with pytest.raises(ValueError, match="window_s"):
        jitter.busiest_window([1.0], -1)
