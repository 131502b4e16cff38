"""Idempotency keys as in the IETF draft "The Idempotency-Key HTTP Header Field": replay on a
retry, 422 for a reused key with another payload, 409 while the first is still processing,
keys forgotten after the stated expiry, and a store that never grows past its limit."""
import asyncio

import aiohttp
import pytest

import labkit
from labkit.services.http import SPECS, Service

KEY = "Idempotency-Key"


async def _post(session, url, body, key, **kw):
    async with session.post(url, json=body, headers={KEY: key}, **kw) as r:
        return r.status, dict(r.headers), await r.json()


def test_a_key_still_being_processed_gets_409_then_the_result_is_replayed(run):
    async def main():
        pay = await Service(SPECS["payments"]).start()
        pay.faults.latency_ms = 3000                  # the first request is processed for 3 s
        body = {"order_id": "o1", "amount_cents": 500}
        url = pay.url + "/payments"
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as s:
            first = asyncio.ensure_future(_post(s, url, body, "k1"))
            deadline = loop.time() + 20
            while not pay.idempotency.in_progress and loop.time() < deadline:
                await asyncio.sleep(0.01)
            t0 = loop.time()
            concurrent = await _post(s, url, body, "k1")
            answered_after = loop.time() - t0
            done = await first
            pay.faults.latency_ms = 0
            retry = await _post(s, url, body, "k1")
        items = dict(pay.items)
        await labkit.shutdown()
        return concurrent, answered_after, done, retry, items

    concurrent, answered_after, done, retry, items = run(main())
    assert concurrent[0] == 409 and "being processed" in concurrent[2]["error"]
    assert answered_after < 2.5                      # answered at once, not after the 3 s of work
    assert done[0] == 201 and retry[0] == 201 and retry[2] == done[2]
    assert retry[1]["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in done[1]
    assert len(items) == 1


def test_a_reused_key_with_another_payload_gets_422(run):
    async def main():
        orders = await Service(SPECS["orders"]).start()
        url = orders.url + "/orders"
        async with aiohttp.ClientSession() as s:
            a = await _post(s, url, {"user_id": 1, "sku": "a", "quantity": 1}, "k")
            b = await _post(s, url, {"user_id": 1, "sku": "a", "quantity": 2}, "k")
        n = len(orders.items)
        await labkit.shutdown()
        return a, b, n

    a, b, n = run(main())
    assert a[0] == 201 and b[0] == 422 and "different payload" in b[2]["error"] and n == 1


def test_keys_are_forgotten_after_the_stated_expiry(run):
    async def main():
        orders = await Service(SPECS["orders"], idempotency_ttl_s=0.3).start()
        body, url = {"user_id": 1, "sku": "a", "quantity": 1}, orders.url + "/orders"
        async with aiohttp.ClientSession() as s:
            first = await _post(s, url, body, "k")
            replay = await _post(s, url, body, "k")
            await asyncio.sleep(0.5)                 # loop clock: past the 0.3 s expiry
            later = await _post(s, url, body, "k")
        summary = orders.idempotency.summary()
        await labkit.shutdown()
        return first, replay, later, summary

    first, replay, later, summary = run(main())
    assert first[2]["id"] == replay[2]["id"] == 1 and replay[1].get("Idempotent-Replayed") == "true"
    assert later[0] == 201 and later[2]["id"] == 2 and "Idempotent-Replayed" not in later[1]
    assert summary["expired"] == 1 and summary["ttl_s"] == 0.3


def test_the_default_expiry_is_a_day_and_is_documented():
    svc = Service(SPECS["orders"])
    assert svc.idempotency.ttl_s == 24 * 3600
    import labkit.services.http as http
    assert "24 h" in http.__doc__ and "idempotency_ttl_s" in http.__doc__


def test_the_store_is_bounded_and_evicts_the_oldest_key(run):
    async def main():
        orders = await Service(SPECS["orders"], idempotency_max_keys=3).start()
        body, url = {"user_id": 1, "sku": "a", "quantity": 1}, orders.url + "/orders"
        async with aiohttp.ClientSession() as s:
            ids = [(await _post(s, url, body, f"k{i}"))[2]["id"] for i in range(1, 5)]
            k1_again = await _post(s, url, body, "k1")       # evicted: processed again
            k4_again = await _post(s, url, body, "k4")       # still remembered: replayed
        summary = orders.idempotency.summary()
        await labkit.shutdown()
        return ids, k1_again, k4_again, summary

    ids, k1_again, k4_again, summary = run(main())
    assert ids == [1, 2, 3, 4]
    assert k1_again[2]["id"] == 5 and "Idempotent-Replayed" not in k1_again[1]
    assert k4_again[2]["id"] == 4 and k4_again[1]["Idempotent-Replayed"] == "true"
    assert summary["keys"] == 3 and summary["max_keys"] == 3 and summary["evicted"] == 2


def test_a_key_is_released_when_the_work_never_ran(run):
    """An injected error or a client that hung up mid-processing did not do the work: the
    retry with the same key is processed, not answered with the failure or with 409."""
    async def main():
        orders = await Service(SPECS["orders"]).start()
        body, url = {"user_id": 1, "sku": "a", "quantity": 1}, orders.url + "/orders"
        async with aiohttp.ClientSession() as s:
            orders.faults.set(error_rate=1.0, error_status=503)
            failed = await _post(s, url, body, "k")
            orders.faults.set(error_rate=0.0, latency_ms=2000)
            with pytest.raises(asyncio.TimeoutError):
                await _post(s, url, body, "k2", timeout=aiohttp.ClientTimeout(total=0.2))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while orders.idempotency.in_progress and loop.time() < deadline:
                await asyncio.sleep(0.01)            # the server notices the hang-up
            orders.faults.reset()
            retried = await _post(s, url, body, "k")
            retried2 = await _post(s, url, body, "k2")
        await labkit.shutdown()
        return failed, retried, retried2

    failed, retried, retried2 = run(main())
    assert failed[0] == 503
    assert retried[0] == 201 and "Idempotent-Replayed" not in retried[1]
    assert retried2[0] == 201


def test_store_unit_with_an_injected_clock():
    from labkit.services.idempotency import IdempotencyStore
    t = [0.0]
    store = IdempotencyStore(ttl_s=10, max_keys=2, clock=lambda: t[0])
    claim = store.begin("/o", "k", b"body")
    assert claim.kind == "claimed" and store.in_progress == 1
    assert store.begin("/o", "k", b"body").kind == "in_progress"
    assert store.begin("/o", "k", b"other").kind == "mismatch"
    store.finish(claim.token, 201, {"id": 1}, {"Location": "/o/1"})
    again = store.begin("/o", "k", b"body")
    assert again.kind == "replay" and again.record.status == 201 and again.record.body == {"id": 1}
    assert store.begin("/other", "k", b"body").kind == "claimed"    # keys are scoped by path
    t[0] = 10.0
    assert store.begin("/o", "k", b"body").kind == "claimed"        # expired at exactly ttl
    # the draft sends the key as a structured-field string: "k" and k name the same key
    from labkit.services.idempotency import normalize_key
    assert normalize_key('"k"') == normalize_key(" k ") == "k"
    with pytest.raises(ValueError, match="ttl_s must be a finite number"):
        IdempotencyStore(ttl_s=-1)
    with pytest.raises(ValueError, match="max_keys must be a whole number"):
        IdempotencyStore(max_keys=1.5)
