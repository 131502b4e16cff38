"""labkit/obs/rates.py (chapter 02's live kitchen): windowed rates, totals, duplicates, in
virtual time (labkit.sim), bounded, and bad input refused with the argument named."""
import asyncio

import pytest

from labkit import sim
from labkit.obs.rates import DuplicateCounter, WindowedRates


def test_rate_counts_only_the_events_inside_the_window():
    r = WindowedRates(["acked", "published"], window_s=2.0)
    for t in (0.5, 1.0, 2.9, 3.0, 3.5, 4.0):
        r.record("acked", t)
    # window (2.0, 4.0]: 2.9, 3.0, 3.5, 4.0 -> 4 events / 2 s; 1.0 and 0.5 are too old
    assert r.rate_per_s("acked", now_s=4.0) == 2.0
    # an event exactly at the window's start is out: (3.0, 5.0] holds 3.5, 4.0
    assert r.rate_per_s("acked", now_s=5.0) == 1.0
    assert r.rate_per_s("acked", now_s=10.0) == 0.0
    assert r.total("acked") == 6 and r.total("published") == 0


def test_summary_has_a_rate_and_a_total_per_kind_in_order():
    r = WindowedRates(["published", "acked"], window_s=1.0)
    r.record("published", 0.2)
    r.record("published", 0.9)
    r.record("acked", 0.1)
    assert r.summary(now_s=1.0) == {"published_per_s": 2.0, "published": 2,
                                    "acked_per_s": 1.0, "acked": 1}
    assert list(r.summary(now_s=1.0)) == ["published_per_s", "published", "acked_per_s", "acked"]


def test_unknown_kinds_are_ignored_when_recording_but_refused_when_asked():
    r = WindowedRates(["acked"])
    assert r.record("acked", 1.0) is True
    assert r.record("confirmed", 1.0) is False
    assert r.kinds == ("acked",) and r.total("acked") == 1
    with pytest.raises(ValueError, match="kind must be one of .*'confirmed'"):
        r.total("confirmed")
    with pytest.raises(ValueError, match="kind must be one of"):
        r.rate_per_s("nacked", now_s=1.0)


def test_time_comes_from_the_running_loop_so_it_works_in_virtual_time():
    async def main():
        r = WindowedRates(["delivered"], window_s=2.0)
        loop = asyncio.get_running_loop()
        for _ in range(10):                      # one event every 0.5 s for 5 virtual seconds
            await asyncio.sleep(0.5)
            r.record("delivered", loop.time())
        start = loop.time()
        early = r.rate_per_s("delivered"), r.summary()["delivered_per_s"]
        await asyncio.sleep(1.2)                 # the window slides past 2 more events
        return loop.time() - start, early, r.rate_per_s("delivered"), r.total("delivered")

    waited, early, later, total = sim.run(main)
    assert waited == pytest.approx(1.2)          # virtual time: no real waiting
    assert early == (2.0, 2.0) and later == 1.0 and total == 10


def test_rates_keep_at_most_max_events_per_kind_but_exact_totals():
    r = WindowedRates(["acked"], window_s=10.0, max_events=3)
    for i in range(8):
        r.record("acked", 1.0 + i * 0.001)
    assert r.total("acked") == 8
    assert r.rate_per_s("acked", now_s=2.0) == 3 / 10.0     # capped by the bound
    assert len(r._times["acked"]) == 3


def test_duplicates_count_ids_seen_again():
    d = DuplicateCounter(max_ids=10)
    assert [d.add(k) for k in ("a", "b", "a", "c", "a", "b")] == \
        [False, False, True, False, True, True]
    assert d.duplicates == 3 and len(d) == 3 and "c" in d and "z" not in d
    assert d.summary() == {"duplicates": 3, "remembered": 3, "max_ids": 10}


def test_duplicates_remember_only_the_latest_max_ids():
    d = DuplicateCounter(max_ids=2)
    for k in ("a", "b", "c"):                    # "a" is dropped when "c" arrives
        d.add(k)
    assert len(d) == 2 and "a" not in d and list(d._ids) == ["b", "c"]
    assert d.add("a") is False                   # forgotten: not counted (the bound's price)
    assert d.add("c") is True and d.duplicates == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"kinds": []}, "kinds must be distinct non-empty names"),
    ({"kinds": "acked"}, "kinds must be a list"),
    ({"kinds": ["a", "a"]}, "kinds must be distinct"),
    ({"kinds": ["a", ""]}, "kinds must be distinct"),
    ({"kinds": 5}, "kinds must be a list"),
    ({"kinds": ["a"], "window_s": 0}, "window_s must be a finite number > 0|window_s must be"),
    ({"kinds": ["a"], "window_s": float("nan")}, "window_s must be"),
    ({"kinds": ["a"], "max_events": 0}, "max_events must be a whole number"),
    ({"kinds": ["a"], "max_events": 2.0}, "max_events must be a whole number"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WindowedRates(**kwargs)


def test_bad_now_and_max_ids_are_refused():
    r = WindowedRates(["a"])
    with pytest.raises(ValueError, match="now_s must be a finite number"):
        r.rate_per_s("a", now_s=float("inf"))
    with pytest.raises(ValueError, match="now_s must be"):
        r.summary(now_s="soon")
    with pytest.raises(ValueError, match="max_ids must be a whole number"):
        DuplicateCounter(max_ids=0)
