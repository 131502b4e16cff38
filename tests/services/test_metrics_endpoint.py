"""labkit/services/metrics_layer.py (chapter 07): GET /metrics on a real service parses with
prometheus_client's own parser, its counts match the service's (fault-layer answers included),
and the scrape itself is neither counted nor touched by the faults."""
import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

import labkit
from labkit._core import runtime
from labkit.services import metrics_layer

TIMEOUT = aiohttp.ClientTimeout(total=20)


async def scrape(session, service) -> dict:
    async with session.get(service.url + "/metrics") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {f.name: f for f in text_string_to_metric_families(text)}


def by_status(families) -> dict:
    out = {}
    for s in families["labkit_http_requests"].samples:
        if s.name == "labkit_http_requests_total":
            out[int(s.labels["status"])] = out.get(int(s.labels["status"]), 0) + s.value
    return out


async def get(session, url):
    try:
        async with session.get(url) as resp:
            await resp.read()
            return resp.status
    except aiohttp.ClientError:
        return 0                                   # reset: no answer


def test_metrics_parse_and_match_the_service_counts_including_faults(run):
    async def main():
        users = await labkit.start_service("users", seed=11)
        session = runtime.session(timeout=TIMEOUT)
        try:
            for i in range(6):
                await get(session, f"{users.url}/users/{i}")          # 404s on one template
            await get(session, f"{users.url}/health")
            await get(session, f"{users.url}/no/such/path")
            users.faults.set(outage=True)
            await get(session, f"{users.url}/health")                  # 503 from the fault layer
            outage_scrape = await scrape(session, users)               # answered during outage
            users.faults.reset()
            users.faults.set(error_rate=1.0, error_status=502)
            await get(session, f"{users.url}/users")
            users.faults.reset()
            users.faults.set(reset_rate=1.0)
            assert await get(session, f"{users.url}/health") == 0
            users.faults.reset()
            families = await scrape(session, users)
            return users, outage_scrape, families
        finally:
            users.faults.reset()
            await session.close()
            await labkit.shutdown()

    users, outage_scrape, families = run(main())
    statuses = by_status(families)
    assert statuses == {k: float(v) for k, v in users.status_counts.items()}
    assert statuses == {404: 7.0, 200: 1.0, 503: 1.0, 502: 1.0, 0: 1.0}
    assert sum(statuses.values()) == users.requests_seen == 11
    routes = {s.labels["route"] for s in families["labkit_http_requests"].samples}
    assert routes == {"/users/{id}", "/health", "/users", "(unmatched)"}      # templated
    errors = {s.labels["route"]: s.value for s in families["labkit_http_request_errors"].samples
              if s.name.endswith("_total")}
    assert errors == {"/users/{id}": 0, "/health": 2, "/users": 1, "(unmatched)": 0}
    hist = families["labkit_http_request_duration_seconds"]
    counts = {s.labels["route"]: s.value for s in hist.samples if s.name.endswith("_count")}
    assert counts == {"/users/{id}": 6, "/health": 3, "/users": 1, "(unmatched)": 1}
    inf = {s.labels["route"]: s.value for s in hist.samples
           if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"}
    assert inf == counts
    assert by_status(outage_scrape) == {404: 7.0, 200: 1.0, 503: 1.0}
    red = metrics_layer.red_of(users)
    assert red.status_counts() == dict(users.status_counts)


def test_scrapes_are_not_counted_and_not_delayed_by_faults(run):
    async def main():
        users = await labkit.start_service("users", seed=12)
        session = runtime.session(timeout=TIMEOUT)
        try:
            await get(session, f"{users.url}/health")
            users.faults.set(latency_ms=5000, error_rate=1.0)
            loop = asyncio.get_running_loop()
            start = loop.time()
            first = await scrape(session, users)
            second = await scrape(session, users)
            took = loop.time() - start
            seen = users.requests_seen
            return first, second, took, seen
        finally:
            users.faults.reset()
            await session.close()
            await labkit.shutdown()

    first, second, took, seen = run(main())
    assert by_status(first) == by_status(second) == {200: 1.0}
    assert seen == 1                               # the fault layer never saw the scrapes
    assert took < 4.0                              # not the injected 5 s (generous: busy CI)


def test_each_service_has_its_own_registry(run):
    async def main():
        users = await labkit.start_service("users", seed=13)
        orders = await labkit.start_service("orders", seed=13)
        session = runtime.session(timeout=TIMEOUT)
        try:
            await get(session, f"{users.url}/health")
            return await scrape(session, orders), users, orders
        finally:
            await session.close()
            await labkit.shutdown()

    orders_families, users, orders = run(main())
    assert by_status(orders_families) == {}
    assert metrics_layer.registry_of(users) is not metrics_layer.registry_of(orders)
