"""A fault depends on the seed, the service and the request's X-Request-Id, not on the order
requests arrive in; and what a learner sets (reset_rate) is what labkit's clients see, because
labkit's sessions never re-send a request behind the caller's back."""
import asyncio

import aiohttp
import pytest

import labkit
from labkit._core import runtime
from labkit.services.http import SPECS, Service

REQUEST_ID_HEADER = "X-Request-Id"


def test_labkit_clients_send_a_fresh_request_id_per_call(run):
    async def main():
        users = await labkit.start_service("users")
        a, b = labkit.AsyncClient(users.url), labkit.AsyncClient(users.url)
        for _ in range(3):
            await a.get("/health")
        await b.get("/health")
        await a.get("/health", headers={REQUEST_ID_HEADER: "mine"})   # the caller's own id wins
        sync = labkit.SyncClient(users.url)
        await asyncio.to_thread(sync.get, "/health")
        await asyncio.to_thread(sync.get, "/health")
        ids = [s.request_id for s in users.log]
        await labkit.shutdown()
        return ids, a.client_id, b.client_id

    ids, a_id, b_id = run(main())
    assert ids[:3] == [f"{a_id}-1", f"{a_id}-2", f"{a_id}-3"] and ids[3] == f"{b_id}-1"
    assert ids[4] == "mine"
    assert None not in ids and len(set(ids)) == len(ids) and a_id != b_id


def test_client_ids_differ_per_client_and_repeat_after_set_seed():
    from labkit._core import seeding
    try:
        labkit.set_seed(7)
        first = [labkit.AsyncClient("http://127.0.0.1:1").client_id for _ in range(3)]
        labkit.set_seed(7)
        again = [labkit.AsyncClient("http://127.0.0.1:1").client_id for _ in range(3)]
    finally:
        labkit.set_seed(seeding.DEFAULT_SEED)
    assert first == again and len(set(first)) == 3


async def _faults_by_id(seed, ids):
    svc = await Service(SPECS["users"], seed=seed).start()
    svc.faults.set(error_rate=0.3, error_status=503, latency_dist="uniform", latency_ms=3,
                   jitter_ms=3)
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector) as s:
        async def one(rid):
            async with s.get(svc.url + "/health", headers={REQUEST_ID_HEADER: rid}) as r:
                await r.read()
                return rid, r.status
        statuses = dict(await asyncio.gather(*(one(rid) for rid in ids)))
    served = {x.request_id: (x.fault, round(x.duration_s >= 0.0, 0)) for x in svc.log}
    await svc.stop()
    return statuses, served


def test_concurrent_requests_get_the_same_faults_whatever_their_arrival_order(run):
    ids = [f"req-{i}" for i in range(400)]
    a, served_a = run(_faults_by_id(11, ids))
    b, served_b = run(_faults_by_id(11, list(reversed(ids))))    # other arrival order
    c, _ = run(_faults_by_id(12, ids))
    assert a == b and served_a == served_b
    assert 60 < sum(v == 503 for v in a.values()) < 180           # about 30 % of 400
    assert sum(a[i] != c[i] for i in ids) > 40                     # another seed, other faults


def test_requests_without_an_id_fall_back_to_the_arrival_order_stream(run):
    async def once(seed):
        svc = await Service(SPECS["users"], seed=seed).start()
        svc.faults.set(error_rate=0.5)
        async with aiohttp.ClientSession() as s:
            out = []
            for _ in range(30):
                async with s.get(svc.url + "/health") as r:
                    out.append(r.status)
        await svc.stop()
        return out

    assert run(once(5)) == run(once(5)) and 500 in run(once(5))


def test_reset_rate_is_the_rate_labkit_clients_see_for_gets(run):
    async def main():
        users = await labkit.start_service("users")
        users.faults.reset_rate = 0.3
        client = labkit.AsyncClient(users.url)
        resets = 0
        for _ in range(400):
            try:
                await client.get("/health")
            except aiohttp.ClientConnectionError:
                resets += 1
        seen = users.summary()["requests"]
        await labkit.shutdown()
        return resets, seen

    resets, seen = run(main(), timeout_s=240)
    # binomial(400, 0.3): sd 0.023, so 0.22..0.38 is a 3.5-sd band; aiohttp's hidden re-send
    # would show about 0.09 (0.3 squared) and 400 + ~120 requests on the server.
    assert 0.22 <= resets / 400 <= 0.38
    assert seen == 400


def test_sessions_labkit_makes_never_resend_behind_the_callers_back(run):
    async def main():
        s = runtime.session()
        try:
            return runtime.resends_disabled(s)
        finally:
            await s.close()
    assert run(main()) is True


def test_count_hidden_resends_shows_plain_aiohttp_retrying(run):
    from labkit.services.clients import count_hidden_resends

    async def main():
        users = await labkit.start_service("users")
        users.faults.latency_ms = 1
        result = await count_hidden_resends(users, n=200, reset_rate=0.3)
        knobs_after = users.faults.summary()
        await labkit.shutdown()
        return result, knobs_after

    result, knobs = run(main(), timeout_s=240)
    plain, mine = result["plain aiohttp"], result["labkit"]
    assert plain["calls"] == mine["calls"] == 200
    assert plain["server_saw"] > plain["calls"] + 20       # ~60 hidden re-sends expected
    assert plain["failed"] < 0.2 * 200                     # ~0.09: the rate looks squared
    assert mine["server_saw"] == 200 and 0.18 * 200 <= mine["failed"] <= 0.42 * 200
    assert knobs["reset_rate"] == 0.0 and knobs["latency_ms"] == 1.0   # knobs restored


def test_count_hidden_resends_checks_its_arguments(run):
    from labkit.services.clients import count_hidden_resends

    async def main():
        users = await labkit.start_service("users")
        try:
            with pytest.raises(ValueError, match="n must be a whole number"):
                await count_hidden_resends(users, n=0)
            with pytest.raises(ValueError, match="reset_rate must be a finite number"):
                await count_hidden_resends(users, reset_rate=2)
            with pytest.raises(ValueError, match="service must be a running labkit service"):
                await count_hidden_resends("http://127.0.0.1:1")
        finally:
            await labkit.shutdown()
    run(main())


def test_resend_switch_is_feature_detected_on_other_aiohttp_versions(monkeypatch):
    """aiohttp 3.11+ has the switch; 3.9 and 3.10 re-send with no switch (warn once); before
    3.9 aiohttp never re-sent. Nothing breaks on any of them."""
    class OldSession:                        # a session without `_retry_connection`
        pass

    monkeypatch.setattr(runtime, "_warned_resends", False)
    monkeypatch.setattr(runtime, "_aiohttp_version", lambda: (3, 10))
    with pytest.warns(RuntimeWarning, match=r'pip install "aiohttp>=3.11"'):
        assert runtime.no_hidden_resends(OldSession()) is False
    assert runtime.no_hidden_resends(OldSession()) is False          # warned once only
    assert runtime.resends_disabled(OldSession()) is False
    monkeypatch.setattr(runtime, "_aiohttp_version", lambda: (3, 8))
    assert runtime.no_hidden_resends(OldSession()) is True
    assert runtime.resends_disabled(OldSession()) is True


def test_the_server_log_records_the_delay_it_injected(run):
    """`Served.delay_s` is the ground truth the fan-out lab classifies pages by (chapter 1)."""
    async def main():
        svc = await Service(SPECS["users"], seed=5).start()
        svc.faults.set(latency_dist="fixed", latency_ms=20, latency_rate=0.5)
        client = labkit.AsyncClient(svc.url)
        for _ in range(40):
            await client.get("/health")
        log = list(svc.log)
        await labkit.shutdown()
        await svc.stop()
        return log

    log = run(main())
    delays = [s.delay_s for s in log]
    assert set(delays) == {0.0, 0.02}, delays                   # about half delayed, exactly 20 ms
    assert 8 <= sum(d > 0 for d in delays) <= 32
    assert all(s.duration_s >= s.delay_s for s in log)
