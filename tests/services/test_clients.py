import asyncio

import pytest

import labkit


def test_sync_client_refuses_the_loop_thread_and_works_from_a_thread(run):
    async def main():
        users = await labkit.start_service("users")
        client = labkit.SyncClient(users.url, timeout_s=2)
        with pytest.raises(RuntimeError, match="asyncio.to_thread"):
            client.get("/health")
        reply = await asyncio.to_thread(client.post, "/users", json={"name": "A", "email": "a@x"})
        assert reply.status == 201 and reply.data["id"] == 1
        assert (await asyncio.to_thread(client.get, "/users/1")).data["name"] == "A"
        assert (await asyncio.to_thread(client.delete, "/users/1")).status == 204
        await labkit.shutdown()
    run(main())


def test_sync_client_times_out_on_a_hung_service(run):
    async def main():
        import requests
        users = await labkit.start_service("users")
        users.faults.latency_ms = 3000
        client = labkit.SyncClient(users.url, timeout_s=0.3)
        with pytest.raises(requests.exceptions.Timeout):
            await asyncio.to_thread(client.get, "/health")
        await labkit.shutdown()
    run(main())


def test_async_client_reads_the_body_and_times_out(run):
    async def main():
        users = await labkit.start_service("users")
        async with labkit.AsyncClient(users.url, timeout_s=0.3) as client:
            created = await client.post("/users", json={"name": "A", "email": "a@x"})
            assert created.ok and created.data == {"id": 1, "name": "A", "email": "a@x"}
            assert (await client.get("/users/1")).data == created.data
            missing = await client.get("/users/2")
            assert not missing.ok and missing.status == 404
            users.faults.latency_ms = 2000
            with pytest.raises(asyncio.TimeoutError):
                await client.get("/users/1")
        await labkit.shutdown()
    run(main())


@pytest.mark.parametrize("kw", [{"timeout_s": 0}, {"timeout_s": -1}, {"connect_timeout_s": 1000},
                                {"timeout_s": "5"}, {"timeout_s": 10**400}])
def test_clients_reject_bad_timeouts(kw):
    name = next(iter(kw))
    for cls in (labkit.SyncClient, labkit.AsyncClient):
        with pytest.raises(ValueError, match=rf"{name} must be a finite number in \(0, 300\] seconds"):
            cls("http://127.0.0.1:1", **kw)


@pytest.mark.parametrize("url", [123, None, "", "127.0.0.1:8080", "ftp://127.0.0.1:21",
                                 "http://127.0.0.1:99999", "http://127.0.0.1:-1", "http://:80"])
def test_clients_reject_bad_base_urls(url):
    for cls in (labkit.SyncClient, labkit.AsyncClient):
        with pytest.raises(ValueError, match="base_url must be an http:// URL"):
            cls(url)


def test_clients_reject_bad_headers():
    for cls in (labkit.SyncClient, labkit.AsyncClient):
        with pytest.raises(ValueError, match="headers must be a dict"):
            cls("http://127.0.0.1:1", headers=["Accept"])


def test_require_explains_how_to_fix_a_mismatch():
    assert labkit.require("0.2") == labkit.__version__
    with pytest.raises(labkit.VersionMismatch, match="make lab"):
        labkit.require("0.9")
    with pytest.raises(labkit.VersionMismatch, match="restart"):
        labkit.require("0.0")


def test_a_call_takes_its_own_timeout_s(run):
    async def main():
        users = await labkit.start_service("users")
        users.faults.latency_ms = 2000
        async with labkit.AsyncClient(users.url, timeout_s=30) as client:
            with pytest.raises(asyncio.TimeoutError):
                await client.get("/health", timeout_s=0.3)
            users.faults.latency_ms = 0
            assert (await client.get("/health", timeout_s=5)).ok
            for bad in (0, -1, "0.5", None):
                with pytest.raises(ValueError, match="timeout_s must be a finite number"):
                    await client.get("/health", timeout_s=bad)
            with pytest.raises(ValueError, match="either timeout_s"):
                await client.get("/health", timeout_s=1, timeout=None)
        sync = labkit.SyncClient(users.url, timeout_s=30)
        users.faults.latency_ms = 2000
        import requests
        with pytest.raises(requests.exceptions.Timeout):
            await asyncio.to_thread(sync.get, "/health", timeout_s=0.3)
        with pytest.raises(ValueError, match="timeout_s must be a finite number"):
            await asyncio.to_thread(sync.get, "/health", timeout_s=0)
        sync.close()
        await labkit.shutdown()
    run(main())


def test_a_messagepack_reply_is_decoded_and_its_bytes_kept(run):
    """Chapter 04's content negotiation: a reply in MessagePack reaches `data` like JSON does
    (before, `data` was None for anything but JSON, with no way to get the bytes)."""
    import msgpack

    async def main():
        users = await labkit.start_service("users")
        client = labkit.AsyncClient(users.url, timeout_s=2)
        created = await client.post("/users", json={"name": "Ada", "email": "ada@example.com"})
        uid = created.data["id"]
        packed = await client.get(f"/users/{uid}", headers={"Accept": "application/msgpack"})
        plain = await client.get(f"/users/{uid}")
        sync = labkit.SyncClient(users.url, timeout_s=2)
        from_thread = await asyncio.to_thread(sync.get, f"/users/{uid}",
                                              headers={"Accept": "application/msgpack"})
        await labkit.shutdown()
        return packed, plain, from_thread

    packed, plain, from_thread = run(main())
    assert packed.headers["Content-Type"].startswith("application/msgpack")
    assert packed.data == plain.data == from_thread.data
    assert packed.data["name"] == "Ada" and msgpack.unpackb(packed.body) == packed.data
    assert plain.body.startswith(b"{")
