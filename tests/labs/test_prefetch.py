"""Competing consumers and prefetch (chapter 02): with one slow consumer, prefetch 100 lets it
hoard messages, so the backlog takes far longer and its tail waits far longer than with
prefetch 1. Virtual time: counts and virtual durations, never wall-clock timings."""
import pytest

from labkit.labs.prefetch import prefetch_chart, prefetch_lab


@pytest.fixture(scope="module")
def pair():
    return prefetch_lab(prefetch=1), prefetch_lab(prefetch=100)


def test_large_prefetch_hoards_messages_on_the_slow_consumer(pair):
    small, large = pair
    for r in pair:
        assert sum(r["per_consumer"]) == r["messages"] == 2000
        assert r["checker"]["ok"] and r["checker"]["lost"] == 0
    assert small["max_hoard"] == [1, 1, 1, 1] and large["max_hoard"][0] == 100
    assert large["per_consumer"][0] > 2 * small["per_consumer"][0]   # the slow one took more
    assert large["makespan_s"] > 1.8 * small["makespan_s"]
    assert large["time_in_queue_p99_ms"] > 1.5 * small["time_in_queue_p99_ms"]


def test_prefetch_1_is_close_to_the_ideal_makespan(pair):
    small, _ = pair
    ideal = 2000 / (3 / 0.010 + 1 / 0.100)            # 3 fast + 1 slow consumer, msgs/s
    assert small["makespan_s"] < 1.05 * ideal


def test_even_work_makes_prefetch_irrelevant():
    a, b = (prefetch_lab(prefetch=p, work="even", messages=400) for p in (1, 100))
    assert a["per_consumer"] == b["per_consumer"] == [100] * 4
    assert a["makespan_s"] == pytest.approx(b["makespan_s"], rel=0.02)


def test_same_seed_same_numbers():
    a, b = (prefetch_lab(prefetch=10, work="lognormal", messages=300, seed=7) for _ in range(2))
    assert a == b
    c = prefetch_lab(prefetch=10, work="lognormal", messages=300, seed=8)
    assert c["makespan_s"] != a["makespan_s"]


def test_chart_draws_both_runs(pair):
    fig = prefetch_chart(list(pair))
    left, right = fig.axes
    assert len(left.patches) == 8 and len(right.patches) == 4
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["prefetch 1", "prefetch 100"]
    with pytest.raises(ValueError, match="results"):
        prefetch_chart([{"nope": 1}])


@pytest.mark.parametrize("kw, match", [
    ({"prefetch": 0}, "prefetch"), ({"prefetch": 1, "consumers": 1}, "consumers"),
    ({"prefetch": 1, "work": "heavy"}, "work"), ({"prefetch": 1, "messages": 2.5}, "messages"),
])
def test_bad_arguments_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        prefetch_lab(**kw)
