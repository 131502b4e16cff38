"""What labkit starts, `labkit.shutdown()` stops: every service (same names included), task
and session; and a service used after shutdown says so in one line."""
import asyncio
import socket
import traceback

import pytest

import labkit
from labkit._core import runtime
from labkit.services.http import SPECS, Service


def _refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_services_with_the_same_name_are_all_stopped(run):
    async def main():
        a = await Service(SPECS["users"]).start()
        b = await Service(SPECS["users"]).start()       # same name, second instance
        ports = (a.port, b.port)
        assert not _refused(ports[0]) and not _refused(ports[1])
        assert runtime.services()["users"] is a         # start_service returns the first
        assert await labkit.start_service("users") is a
        stopped = await labkit.shutdown()
        return a, b, ports, stopped

    a, b, ports, stopped = run(main())
    assert stopped["services"] == 2 and not a.running and not b.running
    assert _refused(ports[0]) and _refused(ports[1])


def test_shutdown_leaves_no_task_running(run):
    async def main():
        before = asyncio.all_tasks()                  # the test runner's own tasks
        users = await labkit.start_service("users")
        users.faults.latency_ms = 5000
        client = labkit.AsyncClient(users.url, timeout_s=30)
        pending = asyncio.ensure_future(client.get("/health"))      # in flight at shutdown
        runtime.spawn(asyncio.sleep(3600), name="labkit-test-sleeper")
        await asyncio.sleep(0.2)
        await labkit.shutdown()
        with pytest.raises(Exception):
            await pending
        await asyncio.sleep(0)
        return asyncio.all_tasks() - before

    assert run(main()) == set()


def test_a_client_used_after_shutdown_says_so_in_one_line(run):
    async def main():
        users = await labkit.start_service("users")
        client = labkit.AsyncClient(users.url)
        sync = labkit.SyncClient(users.url)
        assert (await client.get("/health")).status == 200
        await labkit.shutdown()
        from labkit.services.clients import ServicesShutDown
        with pytest.raises(ServicesShutDown) as info:
            await client.get("/health")
        with pytest.raises(ServicesShutDown) as sync_info:
            await asyncio.to_thread(sync.get, "/health")
        await client.close()
        return info.value, sync_info.value

    err, sync_err = run(main())
    for e in (err, sync_err):
        assert "the services were shut down; run the start cell again" in str(e)
        assert isinstance(e, RuntimeError) and e.__suppress_context__
        frames = traceback.extract_tb(e.__traceback__)
        # not a 20-frame traceback through aiohttp / requests / urllib3: the caller's frames,
        # the client's, and for the thread the stdlib's hand-over
        assert len(frames) <= 6 and not [f for f in frames if "site-packages" in f.filename]


def test_a_refused_port_labkit_never_used_is_a_plain_connection_error(run):
    async def main():
        import aiohttp
        with socket.socket() as s:                  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        client = labkit.AsyncClient(f"http://127.0.0.1:{port}")
        with pytest.raises(aiohttp.ClientConnectorError):
            await client.get("/health")
        await client.close()
    run(main())


def test_a_restarted_service_is_reachable_again(run):
    async def main():
        await labkit.start_service("users")
        await labkit.shutdown()
        again = await labkit.start_service("users")
        client = labkit.AsyncClient(again.url)
        status = (await client.get("/health")).status
        await labkit.shutdown()
        return status
    assert run(main()) == 200


def test_a_stopped_service_says_so_when_its_url_is_used(run):
    async def main():
        users = await labkit.start_service("users")
        await labkit.shutdown()
        from labkit.services.http import ServicesShutDown
        with pytest.raises(ServicesShutDown, match="run the start cell again"):
            users.url  # noqa: B018
        never = Service(SPECS["orders"])
        with pytest.raises(RuntimeError, match=r"is not running: await start_service\('orders'\)"):
            never.url  # noqa: B018
    run(main())


def test_a_client_dropped_by_a_rerun_cell_is_closed_by_shutdown_not_by_the_gc(run):
    """Re-running `client = labkit.AsyncClient(...)` drops the old client: its session must
    not be garbage-collected while open ("Unclosed client session" in the notebook); shutdown
    closes it."""
    import gc
    import warnings

    async def main():
        users = await labkit.start_service("users")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            for _ in range(3):                       # the cell, run three times
                client = labkit.AsyncClient(users.url)
                await client.get("/health")
            del client
            gc.collect()
        stopped = await labkit.shutdown()
        return [str(w.message) for w in caught], stopped

    leaks, stopped = run(main())
    assert not [m for m in leaks if "nclosed" in m], leaks
    assert stopped["sessions"] == 3
