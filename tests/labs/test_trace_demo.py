"""The chapter's traced checkout: orders -> inventory -> payments -> (broker) -> notifications."""
import pytest

import labkit
from labkit.labs.trace_demo import trace_demo
from labkit.obs import tracing


def _by_name(spans):
    return {(s.service, s.kind, s.name): s for s in spans}


def test_one_checkout_is_one_tree_across_four_services_and_the_broker(run):
    async def main():
        try:
            first = await trace_demo()
            again = await trace_demo()                       # re-runnable: same setup
            return first, again
        finally:
            await labkit.shutdown()
    spans, again = run(main())
    assert len({s.trace_id for s in spans}) == 1 and again[0].trace_id != spans[0].trace_id
    named = _by_name(spans)
    by_id = {s.span_id: s for s in spans}
    parent = {k: (by_id[s.parent_id].service, by_id[s.parent_id].kind, by_id[s.parent_id].name)
              if s.parent_id else None for k, s in named.items()}
    assert parent == {
        ("client", "internal", "checkout"): None,
        ("client", "client", "POST /checkout"): ("client", "internal", "checkout"),
        ("orders", "server", "POST /checkout"): ("client", "client", "POST /checkout"),
        ("orders", "client", "POST /reserve"): ("orders", "server", "POST /checkout"),
        ("inventory", "server", "POST /reserve"): ("orders", "client", "POST /reserve"),
        ("orders", "client", "POST /charge"): ("orders", "server", "POST /checkout"),
        ("payments", "server", "POST /charge"): ("orders", "client", "POST /charge"),
        ("orders", "producer", "publish notifications"): ("orders", "server", "POST /checkout"),
        ("notifications", "consumer", "consume notifications"):
            ("orders", "producer", "publish notifications"),
        ("notifications", "client", "POST /notifications"):
            ("notifications", "consumer", "consume notifications"),
        ("notifications", "server", "POST /notifications"):
            ("notifications", "client", "POST /notifications"),
    }
    assert all(s.status == "ok" for s in spans)
    assert [s.start_s for s in spans] == sorted(s.start_s for s in spans)
    assert {s.name for s in again} == {s.name for s in spans}


def test_a_slow_hop_shows_in_its_span_and_faults_are_restored(run):
    async def main():
        try:
            spans = await trace_demo(faults={"payments": {"latency_ms": 300}})
            from labkit._core import runtime
            return spans, runtime.services()["payments"].faults.summary()["latency_ms"]
        finally:
            await labkit.shutdown()
    spans, latency_after = run(main())
    named = _by_name(spans)
    pay = named[("payments", "server", "POST /charge")]
    inv = named[("inventory", "server", "POST /reserve")]
    assert pay.duration_s >= 0.3 and pay.duration_s > inv.duration_s
    assert latency_after == 0


def test_an_outage_ends_the_trace_at_the_failing_hop(run):
    async def main():
        try:
            return await trace_demo(faults={"inventory": {"outage": True}})
        finally:
            await labkit.shutdown()
    spans = run(main())
    named = _by_name(spans)
    assert named[("inventory", "server", "POST /reserve")].status == "error"
    assert named[("orders", "server", "POST /checkout")].status == "error"      # answered 502
    assert not any(s.service == "notifications" or s.service == "payments" for s in spans)


def test_bad_arguments_are_named():
    import asyncio
    with pytest.raises(ValueError, match="faults/work_ms"):
        asyncio.run(trace_demo(faults={"billing": {}}))
    tracing.clear()
