"""labkit.obs.critical_path on hand-built traces: sequential, parallel, nested, an async
consumer after its producer returned, orphans; self time counts overlapping children once."""
import random

import pytest

from labkit.obs.critical_path import (build_tree, critical_path, self_times,
                                      slowest_on_critical_path)
from labkit.obs.tracing import SpanRecord

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def sp(name, parent, start_ms, end_ms, *, status="ok", kind="internal", service="svc"):
    """A span whose id is its name padded to 16 hex-ish characters (readable in asserts)."""
    return SpanRecord(TRACE, name, parent, name, service, kind, start_ms / 1000, end_ms / 1000,
                      status, {}, ())


def ms(d):
    return {k: round(v * 1000, 6) for k, v in d.items()}


def path_ids(spans):
    return [sid for sid, _, _ in critical_path(spans).segments]


def test_sequential_children_are_all_on_the_path_in_order():
    spans = [sp("root", None, 0, 100), sp("a", "root", 10, 30), sp("b", "root", 30, 60),
             sp("c", "root", 70, 90)]
    assert path_ids(spans) == ["root", "a", "b", "root", "c", "root"]
    assert ms(critical_path(spans).critical_s) == {"root": 30, "a": 20, "b": 30, "c": 20}
    assert ms(self_times(spans)) == {"root": 30, "a": 20, "b": 30, "c": 20}


def test_only_the_last_finishing_of_parallel_children_is_on_the_path():
    spans = [sp("root", None, 0, 100), sp("fast", "root", 10, 40), sp("slow", "root", 10, 90),
             sp("mid", "root", 20, 60)]
    path = critical_path(spans)
    assert path_ids(spans) == ["root", "slow", "root"]
    assert "fast" not in path and "mid" not in path
    assert ms(self_times(spans))["root"] == 20          # the union [10, 90], not the sum


def test_a_parallel_child_that_ended_before_the_next_began_is_on_the_path():
    # a and b overlap; c starts after a ended but while b runs: the path goes c, then a
    spans = [sp("root", None, 0, 100), sp("a", "root", 5, 40), sp("b", "root", 5, 60),
             sp("c", "root", 45, 95)]
    assert path_ids(spans) == ["root", "a", "root", "c", "root"]


def test_nested_spans_and_the_slowest_on_the_path_by_self_time():
    spans = [sp("root", None, 0, 200), sp("orders", "root", 5, 195),
             sp("inventory", "orders", 10, 60), sp("db", "inventory", 15, 55),
             sp("payments", "orders", 70, 190), sp("bank", "payments", 75, 100),
             sp("audit", "orders", 70, 150)]
    path = critical_path(spans)
    assert set(path.critical_s) == {"root", "orders", "inventory", "db", "payments", "bank"}
    st = ms(self_times(spans))
    assert st["payments"] == 95 and st["audit"] == 80 and st["orders"] == 20
    assert slowest_on_critical_path(spans).span_id == "payments"
    # the segments cover the root's window exactly, without gaps or overlaps
    segs = path.segments
    assert segs[0][1] == 0 and segs[-1][2] == pytest.approx(0.2)
    assert all(a[2] == pytest.approx(b[1]) for a, b in zip(segs, segs[1:]))
    assert sum(path.critical_s.values()) == pytest.approx(0.2)


def test_an_async_consumer_after_the_producer_returned_is_detached():
    spans = [sp("root", None, 0, 50, kind="server"), sp("publish", "root", 10, 15, kind="producer"),
             sp("consume", "publish", 30, 120, kind="consumer"), sp("reply", "root", 20, 45)]
    tree = build_tree(spans)
    assert tree.nodes["consume"].after_parent
    assert not tree.nodes["reply"].after_parent
    assert tree.end_s == pytest.approx(0.12)            # the trace ran on after the root
    path = critical_path(spans)
    assert "consume" not in path
    assert path_ids(spans) == ["root", "publish", "root", "reply", "root"]
    assert ms(self_times(spans))["publish"] == 5         # the consumer's time is not its child's


def test_a_child_that_overflows_its_parent_is_clipped_to_it():
    spans = [sp("root", None, 0, 100), sp("call", "root", 20, 130)]
    path = critical_path(spans)
    assert ms(path.critical_s) == {"root": 20, "call": 80}
    assert build_tree(spans).nodes["call"].end_s == pytest.approx(0.1)


def test_self_time_is_measured_in_the_clipped_windows():
    # B runs 10-80, its child C 75-130 outlives it: C covers B only up to 80
    spans = [sp("root", None, 0, 100), sp("B", "root", 10, 80), sp("C", "B", 75, 130)]
    assert ms(self_times(spans)) == {"root": 30, "B": 65, "C": 5}
    assert slowest_on_critical_path(spans).span_id == "B"
    # a consumer still running when its producer returned: 1 ms of it counts, on the path
    spans = [sp("root", None, 0, 60), sp("A", "root", 5, 50), sp("pub", "root", 50, 52),
             sp("consumer", "pub", 51, 200)]
    assert ms(self_times(spans)) == {"root": 13, "A": 45, "pub": 1, "consumer": 1}
    assert ms(critical_path(spans).critical_s)["consumer"] == 1
    assert slowest_on_critical_path(spans).span_id == "A"
    # one that started after its producer returned: detached, no self time, off the path
    spans = [sp("root", None, 0, 60), sp("pub", "root", 50, 52), sp("late", "pub", 53, 200)]
    assert ms(self_times(spans))["late"] == 0 and "late" not in critical_path(spans)


def test_orphans_are_attached_to_the_root_and_flagged():
    spans = [sp("root", None, 0, 100), sp("lost", "gone", 20, 90), sp("kid", "lost", 30, 40)]
    tree = build_tree(spans)
    assert tree.root.span_id == "root"
    assert tree.nodes["lost"].orphan and not tree.nodes["kid"].orphan
    assert [n.span_id for n in tree.rows()] == ["root", "lost", "kid"]
    assert [n.depth for n in tree.rows()] == [0, 1, 2]
    assert "lost" in critical_path(spans)


def test_a_missing_root_makes_the_earliest_parentless_span_the_root():
    spans = [sp("b", "gone", 20, 50), sp("a", "gone", 10, 60), sp("c", "a", 15, 55)]
    tree = build_tree(spans)
    assert tree.root.span_id == "a" and tree.nodes["b"].orphan
    assert len(tree.rows()) == 3


def test_a_parent_cycle_does_not_lose_spans():
    spans = [sp("root", None, 0, 100), sp("x", "y", 10, 20), sp("y", "x", 30, 40)]
    tree = build_tree(spans)
    assert len(tree.rows()) == 3


def test_input_order_does_not_matter():
    spans = [sp("root", None, 0, 200), sp("a", "root", 5, 80), sp("b", "a", 10, 70),
             sp("c", "root", 85, 190), sp("d", "c", 90, 100), sp("e", "c", 95, 180)]
    want = critical_path(spans)
    rng = random.Random(5)
    for _ in range(5):
        rng.shuffle(spans)
        assert critical_path(spans) == want


def test_bad_input_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="at least one span"):
        build_tree([])
    other = SpanRecord("0" * 31 + "1", "x", None, "x", "s", "internal", 0, 1, "ok", {}, ())
    with pytest.raises(ValueError, match="one trace"):
        build_tree([sp("root", None, 0, 1), other])
    with pytest.raises(ValueError, match="twice"):
        build_tree([sp("root", None, 0, 1), sp("root", None, 0, 1)])
    with pytest.raises(ValueError, match="ends before it starts"):
        build_tree([sp("root", None, 5, 1)])
