"""Chapter 06 on the services: the server counts the TCP connections it accepts, and
POST /{collection}/batch-get answers many ids in one request, behind the fault layer."""
import json

import aiohttp
import pytest

import labkit
from labkit.services.http import BATCH_MAX_IDS, start_service


async def _post(session, url, **kw):
    async with session.post(url, timeout=aiohttp.ClientTimeout(total=30), **kw) as r:
        return r.status, json.loads(await r.read())


def test_keep_alive_session_uses_one_connection_new_sessions_use_one_each(run):
    async def main():
        users = await start_service("users")
        try:
            url = users.url + "/health"
            before = users.connections_accepted
            async with aiohttp.ClientSession() as s:
                for _ in range(20):
                    async with s.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
                        assert r.status == 200
                        await r.read()
            shared = users.connections_accepted - before
            before = users.connections_accepted
            for _ in range(20):
                async with aiohttp.ClientSession() as s:
                    async with s.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
                        await r.read()
            fresh = users.connections_accepted - before
            assert (shared, fresh) == (1, 20)
            assert users.summary()["connections_accepted"] == users.connections_accepted == 21
        finally:
            await labkit.shutdown()
    run(main())


def test_connection_close_header_costs_a_connection_per_request(run):
    async def main():
        users = await start_service("users")
        try:
            async with aiohttp.ClientSession() as s:
                for _ in range(5):
                    async with s.get(users.url + "/health", headers={"Connection": "close"},
                                     timeout=aiohttp.ClientTimeout(total=30)) as r:
                        await r.read()
            assert users.connections_accepted == 5
            assert users.requests_seen == 5
        finally:
            await labkit.shutdown()
    run(main())


def test_batch_get_answers_in_request_order_with_null_for_missing(run):
    async def main():
        items = await start_service("inventory")
        try:
            for sku in ("a", "b", "c"):
                items.items[len(items.items) + 1] = {"id": len(items.items) + 1, "sku": sku,
                                                     "stock": 1}
            url = items.url + "/items/batch-get"
            async with aiohttp.ClientSession() as s:
                status, body = await _post(s, url, json={"ids": [3, 99, 1, 3]})
                assert status == 200
                assert [r and r["sku"] for r in body["results"]] == ["c", None, "a", "c"]
                assert await _post(s, url, json={"ids": []}) == (200, {"results": []})
                # msgpack both ways, like every other route
                import msgpack
                async with s.post(url, data=msgpack.packb({"ids": [2]}),
                                  headers={"Content-Type": "application/msgpack",
                                           "Accept": "application/msgpack"}) as r:
                    assert msgpack.unpackb(await r.read())["results"][0]["sku"] == "b"
        finally:
            await labkit.shutdown()
    run(main())


@pytest.mark.parametrize("body, needle", [
    ({"ids": list(range(BATCH_MAX_IDS + 1))}, f"at most {BATCH_MAX_IDS} ids"),
    ({"ids": "1,2"}, '"ids"'),
    ({"id": [1]}, '"ids"'),
    ([1, 2], '"ids"'),
    ({"ids": [1, "2"]}, "ids must be integers, got '2'"),
    ({"ids": [True]}, "ids must be integers"),
    (b"{nope", "not valid JSON"),
])
def test_batch_get_refuses_bad_bodies_with_400(run, body, needle):
    async def main():
        users = await start_service("users")
        try:
            async with aiohttp.ClientSession() as s:
                kw = {"data": body, "headers": {"Content-Type": "application/json"}} \
                    if isinstance(body, bytes) else {"json": body}
                status, answer = await _post(s, users.url + "/users/batch-get", **kw)
            assert status == 400 and needle in answer["error"], answer
        finally:
            await labkit.shutdown()
    run(main())


def test_batch_get_sits_behind_the_fault_layer_one_fault_per_batch(run):
    async def main():
        users = await start_service("users")
        try:
            users.faults.set(error_rate=1.0, error_status=503)
            async with aiohttp.ClientSession() as s:
                status, _ = await _post(s, users.url + "/users/batch-get", json={"ids": [1, 2, 3]})
            assert status == 503
            assert users.counts["error"] == 1 and users.requests_seen == 1
            assert users.log[-1].path == "/users/batch-get"
        finally:
            users.faults.reset()
            await labkit.shutdown()
    run(main())
