"""The chapter's traced checkout: orders -> inventory -> payments -> (broker) -> notifications;
a retried charge as a span event; one order over gRPC."""
import pytest

import labkit
from labkit.labs.trace_demo import format_tree, grpc_demo, trace_demo
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


def test_a_flaky_payments_is_retried_and_the_retry_is_an_event_on_orders_span(run):
    async def main():
        try:
            flaky = await trace_demo(flaky_payments=1)
            calm = await trace_demo()                        # the flakiness was for one run
            return flaky, calm
        finally:
            await labkit.shutdown()
    spans, calm = run(main())
    assert len({s.trace_id for s in spans}) == 1
    charges = [s for s in spans if s.service == "payments"]
    assert [s.status for s in charges] == ["error", "ok"]
    assert charges[0].attributes["http.response.status_code"] == 503
    server = next(s for s in spans if s.service == "orders" and s.kind == "server")
    assert server.status == "ok"
    retries = [(name, t, a) for name, t, a in server.events if name == "retry.retry"]
    assert len(retries) == 1 and retries[0][2]["attempt"] == 1
    assert charges[0].end_s <= retries[0][1] <= charges[1].start_s   # between the attempts
    tree = format_tree(spans).splitlines()
    at = [i for i, line in enumerate(tree) if "POST /charge" in line or "retry.retry" in line]
    assert ["retry.retry" in tree[i] for i in at] == [False, False, True, False, False]
    assert tree[at[2]].endswith("(on orders: server POST /checkout)")   # not on a charge span
    assert not any(s.events for s in calm) and not any(s.status == "error" for s in calm)


def test_one_order_over_grpc_is_one_tree(run):
    async def main():
        try:
            return await grpc_demo(), await grpc_demo()      # re-runnable
        finally:
            await labkit.shutdown()
    spans, again = run(main())
    by_id = {s.span_id: s for s in spans}
    tree = {f"{s.name} @{s.service}": (f"{by_id[s.parent_id].name} @{by_id[s.parent_id].service}"
                                       if s.parent_id else None) for s in spans}
    assert tree == {
        "checkout @client": None,
        "shop.Shop/PlaceOrder @client": "checkout @client",
        "shop.Shop/PlaceOrder @orders": "shop.Shop/PlaceOrder @client",
        "shop.Shop/GetItem @orders": "shop.Shop/PlaceOrder @orders",
        "shop.Shop/GetItem @inventory": "shop.Shop/GetItem @orders",
    }
    assert all(s.status == "ok" for s in spans) and len({s.trace_id for s in spans}) == 1
    assert len(again) == 5 and again[0].trace_id != spans[0].trace_id


def test_bad_arguments_are_named():
    import asyncio
    with pytest.raises(ValueError, match="faults/work_ms"):
        asyncio.run(trace_demo(faults={"billing": {}}))
    with pytest.raises(ValueError, match="flaky_payments"):
        asyncio.run(trace_demo(flaky_payments=9))
    tracing.clear()
