"""The gRPC Shop service: round trips, deadlines, metadata, the fault interceptor, shutdown."""
import asyncio
import pathlib

import pytest

import labkit
from labkit.patterns.errors import ErrorKind, GrpcError, is_service_failure
from labkit.protocols.grpc_service import (GrpcService, GrpcServiceShutDown, ShopClient,
                                           start_grpc_service)
from labkit.services.faults import FaultModel
from async_tools import until


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on `port` (Linux /proc/net/tcp{,6}, state 0A = LISTEN)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                found.add(addr)
    return found


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}   # 127.0.0.1, ::ffff:127.0.0.1


def test_round_trips_unary_stream_and_bidi(run):
    async def main():
        svc = await start_grpc_service("users")
        assert svc.running and svc.target == f"127.0.0.1:{svc.port}"
        assert _listening_addresses(svc.port) and _listening_addresses(svc.port) <= LOOPBACK
        async with ShopClient(svc.target) as c:
            assert await c.create_user("Ada", "a@x") == {"id": 1, "name": "Ada", "email": "a@x"}
            await c.create_user("Bo", "b@x")
            assert await c.get_user(2) == {"id": 2, "name": "Bo", "email": "b@x"}
            assert [u["name"] for u in await c.list_users()] == ["Ada", "Bo"]
            stock = [i async for i in c.update_stock([("apple", 5), ("apple", -2), ("pear", 1),
                                                      ("apple", -9)])]
            assert stock == [{"sku": "apple", "stock": 5}, {"sku": "apple", "stock": 3},
                             {"sku": "pear", "stock": 1}, {"sku": "apple", "stock": 0}]

            async def more():
                for change in (("fig", 2), ("fig", 3)):
                    yield change
            assert [i["stock"] async for i in c.update_stock(more())] == [2, 5]
            assert await c.get_item("fig") == {"sku": "fig", "stock": 5}
            order = await c.place_order(1, "fig", 2)
            assert order == {"id": 1, "user_id": 1, "sku": "fig", "quantity": 2, "status": "placed"}
            updates = [u async for u in c.watch_order(1)]
            assert [(u["seq"], u["status"]) for u in updates] == [
                (1, "placed"), (2, "paid"), (3, "packed"), (4, "shipped"), (5, "delivered")]
        assert svc.summary()["codes"] == {"OK": 9}
        assert await start_grpc_service("users") is svc          # a re-run cell: same server
        other = await start_grpc_service("inventory")
        assert other is not svc and other.port != svc.port
        with pytest.raises(ValueError, match="downstream"):
            await start_grpc_service("users", downstream=other.target)
        await labkit.shutdown()
        assert not svc.running and not other.running
    run(main())


@pytest.mark.parametrize("call,code,kind", [
    (lambda c: c.get_user(7), "NOT_FOUND", ErrorKind.NOT_FOUND),
    (lambda c: c.create_user("", "z@x"), "INVALID_ARGUMENT", ErrorKind.VALIDATION),
    (lambda c: c.create_user("Ada again", "a@x"), "ALREADY_EXISTS", ErrorKind.CONFLICT),
    (lambda c: c.place_order(1, "none", 1), "NOT_FOUND", ErrorKind.NOT_FOUND),   # unknown sku
    (lambda c: c.place_order(1, "empty", 1), "FAILED_PRECONDITION", ErrorKind.VALIDATION),
])
def test_service_errors_arrive_as_the_taxonomy(run, call, code, kind):
    async def main():
        svc = await start_grpc_service("users")
        c = ShopClient(svc.target)
        await c.create_user("Ada", "a@x")
        await _drain(c.update_stock([("empty", 0)]))          # known, none in stock
        with pytest.raises(GrpcError) as err:
            await call(c)
        assert (err.value.code, err.value.kind) == (code, kind)
        assert is_service_failure(err.value) and err.value.details
        await labkit.shutdown()
    run(main())


def test_metadata_arrives_and_each_call_has_its_own_request_id(run):
    async def main():
        svc = await start_grpc_service("users")
        c = ShopClient(svc.target, metadata={"X-Course": "labkit"})
        await c.list_users(metadata={"x-trace": "abc"})
        first = dict(svc.metadata_seen)
        assert first["x-course"] == "labkit" and first["x-trace"] == "abc"
        await c.list_users()
        second = svc.metadata_seen
        assert "x-trace" not in second and second["x-course"] == "labkit"
        assert first["x-request-id"] != second["x-request-id"]
        assert first["x-request-id"].startswith(c.client_id)
        await c.list_users(metadata={"x-request-id": "mine"})
        assert svc.metadata_seen["x-request-id"] == "mine"             # yours wins
        assert [e.request_id for e in svc.log][-1] == "mine"
        await labkit.shutdown()
    run(main())


def test_a_missed_deadline_is_deadline_exceeded_and_indefinite(run):
    async def main():
        svc = await start_grpc_service("users")
        svc.faults.latency_ms = 2000
        c = ShopClient(svc.target)
        with pytest.raises(GrpcError) as err:
            await c.list_users(timeout_s=0.2)
        assert err.value.code == "DEADLINE_EXCEEDED"
        assert err.value.kind is ErrorKind.TIMEOUT and not err.value.definite
        assert await until(lambda: len(svc.log) == 1)
        # the server abandoned the work: its own deadline check ("deadline"), or grpc cancelled
        # the handler when the deadline passed ("cancelled") -- on a busy machine either is first
        assert svc.log[-1].fault in ("deadline", "cancelled")
        await labkit.shutdown()
    run(main())


def test_the_deadline_propagates_to_the_downstream_call(run):
    async def main():
        inventory = await start_grpc_service("inventory")
        orders = await start_grpc_service("orders", downstream=inventory.target)
        async for _ in ShopClient(inventory.target).update_stock([("fig", 9)]):
            pass
        c = ShopClient(orders.target)
        assert (await c.place_order(1, "fig", 2, timeout_s=5.0))["status"] == "placed"
        # grpc-timeout travels in whole units (rounded up), hence the few ms of slack
        assert 0 < inventory.deadline_seen_s <= orders.deadline_seen_s + 0.02
        assert orders.deadline_seen_s <= 5.02
        inventory.faults.latency_ms = 20_000             # the stock check is slow...
        with pytest.raises(GrpcError) as err:
            await c.place_order(1, "fig", 1, timeout_s=0.3)
        assert err.value.code == "DEADLINE_EXCEEDED"
        assert inventory.deadline_seen_s <= 0.32      # what the caller had left (+ rounding up)
        # ... and inventory gave up at the caller's deadline, not after its 20 s of work.
        assert await until(lambda: inventory.log[-1].method.endswith("GetItem")
                           and inventory.log[-1].fault == "deadline", timeout_s=10)
        await labkit.shutdown()
    run(main())


@pytest.mark.parametrize("status,code,retry_after_s", [
    (429, "RESOURCE_EXHAUSTED", 2.5), (500, "INTERNAL", None), (502, "UNAVAILABLE", None),
    (503, "UNAVAILABLE", 2.5), (504, "DEADLINE_EXCEEDED", None)])
def test_error_faults_map_to_grpc_codes_on_unary_and_streams(run, status, code, retry_after_s):
    async def main():
        svc = await start_grpc_service("users")
        c = ShopClient(svc.target)
        await c.create_user("Ada", "a@x")
        svc.faults.set(error_rate=1.0, error_status=status, retry_after_s=2.5)
        calls = {"unary": lambda: c.get_user(1),
                 "server stream": lambda: _drain(c.watch_order(1)),
                 "bidi": lambda: _drain(c.update_stock([("fig", 1)]))}
        for what, call in calls.items():
            with pytest.raises(GrpcError) as err:
                await call()
            assert (err.value.code, err.value.retry_after_s) == (code, retry_after_s), what
            assert f"injected fault {status}" in err.value.details
        assert svc.counts["error"] == 3 and svc.code_counts[code] == 3
        await labkit.shutdown()
    run(main())


async def _drain(stream):
    return [m async for m in stream]


@pytest.mark.parametrize("knobs,details", [({"outage": True}, "outage"),
                                           ({"reset_rate": 1.0}, "connection reset")])
def test_outage_and_reset_are_unavailable_on_unary_and_streams(run, knobs, details):
    async def main():
        svc = await start_grpc_service("users")
        c = ShopClient(svc.target)
        svc.faults.set(**knobs)
        for call in (lambda: c.list_users(), lambda: _drain(c.update_stock([("fig", 1)]))):
            with pytest.raises(GrpcError) as err:
                await call()
            assert err.value.code == "UNAVAILABLE" and details in err.value.details
            assert err.value.kind.retryable
        svc.faults.reset()
        assert await c.list_users() == []                # the service itself is fine
        assert not svc.items                             # the bidi handler never ran
        await labkit.shutdown()
    run(main())


def test_latency_follows_the_seeded_fault_model_per_request_id(run):
    """Each call's injected delay is FaultModel.decide_keyed(seed, name, request id): the
    same ids give the same delays, whatever the order or protocol (unary and streaming)."""
    async def main():
        svc = await start_grpc_service("users", seed=7)
        knobs = dict(latency_dist="uniform", latency_ms=10, jitter_ms=10, latency_rate=0.5)
        svc.faults.set(**knobs)
        c = ShopClient(svc.target)
        await c.create_user("Ada", "a@x")
        for i in range(12):
            md = {"x-request-id": f"r{i}"}
            await (c.list_users(metadata=md) if i % 2 else
                   _drain(c.update_stock([("fig", 1)], metadata=md)))
        model = FaultModel(**knobs)
        expected = [model.decide_keyed(f"labkit:7:service:users:request:r{i}").delay_s
                    for i in range(12)]
        seen = [e.delay_s for e in svc.log][1:]
        assert seen == expected
        assert 0 < sum(1 for d in seen if d) < 12           # latency_rate 0.5: some, not all
        await labkit.shutdown()
    run(main())


def test_shutdown_stops_the_server_and_later_calls_fail_fast(run):
    async def main():
        svc = await start_grpc_service("users")
        c = ShopClient(svc.target, timeout_s=30)
        await c.list_users()
        port = svc.port
        await labkit.shutdown()
        assert not svc.running and _listening_addresses(port) == set()
        for call in (lambda: c.list_users(), lambda: _drain(c.watch_order(1)),
                     lambda: ShopClient(f"127.0.0.1:{port}").get_user(1)):
            with pytest.raises(GrpcServiceShutDown, match="the service was shut down"):
                await call()
        with pytest.raises(GrpcServiceShutDown, match="shut down"):
            svc.target
        assert isinstance(GrpcServiceShutDown("x"), labkit.ServicesShutDown)
        await svc.stop()                                 # twice is harmless
        await labkit.shutdown()
    run(main())


def test_a_stream_in_flight_ends_at_shutdown(run):
    async def main():
        svc = await start_grpc_service("users")
        c = ShopClient(svc.target, timeout_s=60)
        await c.create_user("Ada", "a@x")
        svc.orders[1] = {"id": 1, "user_id": 1, "sku": "fig", "quantity": 1, "status": "placed"}
        stream = c.watch_order(1, interval_ms=30_000)
        assert (await stream.__anext__())["seq"] == 1
        pending = asyncio.ensure_future(stream.__anext__())
        await labkit.shutdown()
        with pytest.raises((GrpcError, GrpcServiceShutDown)):
            await asyncio.wait_for(pending, 10)
    run(main())


@pytest.mark.parametrize("make,arg", [
    (lambda: ShopClient("nowhere"), "target"), (lambda: ShopClient("127.0.0.1:0"), "target"),
    (lambda: ShopClient("127.0.0.1:1", timeout_s=0), "timeout_s"),
    (lambda: ShopClient("127.0.0.1:1", metadata=5), "metadata"),
    (lambda: GrpcService("two words"), "name"), (lambda: GrpcService(seed=1.5), "seed"),
    (lambda: GrpcService(downstream="x"), "downstream"),
    (lambda: GrpcService(log_size=0), "log_size"),
])
def test_bad_arguments_name_the_argument(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_bad_call_arguments_name_the_argument(run):
    async def main():
        svc = await start_grpc_service("users")
        c = ShopClient(svc.target)
        with pytest.raises(ValueError, match="timeout_s"):
            await c.list_users(timeout_s=-1)
        with pytest.raises(ValueError, match="interval_ms"):
            c.watch_order(1, interval_ms=-5)
        with pytest.raises(ValueError, match="changes"):
            c.update_stock(5)
        await labkit.shutdown()
    run(main())


def test_an_unknown_sku_is_not_found_with_a_downstream_inventory_too(run):
    async def main():
        try:
            inventory = await start_grpc_service("inventory")
            shop = await start_grpc_service("users", downstream=inventory.target)
            with pytest.raises(GrpcError) as err:
                await ShopClient(shop).place_order(1, "unicorn", 1)
            assert err.value.code == "NOT_FOUND" and "no item 'unicorn'" in err.value.details
        finally:
            await labkit.shutdown()               # a failed assert must not leave a server
    run(main())


@pytest.mark.parametrize("call,arg", [
    (lambda c: c.get_user("1"), "user_id"), (lambda c: c.get_user(1.5), "user_id"),
    (lambda c: c.get_user(True), "user_id"), (lambda c: c.get_user(None), "user_id"),
    (lambda c: c.get_user(0), "user_id"), (lambda c: c.get_user(2**63), "user_id"),
    (lambda c: c.create_user(None, "a@x"), "name"), (lambda c: c.create_user("A", 5), "email"),
    (lambda c: c.get_item(7), "sku"), (lambda c: c.place_order("1", "fig", 1), "user_id"),
    (lambda c: c.place_order(1, None, 1), "sku"), (lambda c: c.place_order(1, "fig", 0), "quantity"),
    (lambda c: c.place_order(1, "fig", 2.0), "quantity"),
    (lambda c: c.place_order(1, "fig", 2**31), "quantity"),
    (lambda c: c.get_user(1, timeout_s=1e-5), r"timeout_s.*\[0.001, 300\].*1 ms"),
])
def test_every_call_argument_is_checked_and_named(run, call, arg):
    async def main():
        c = ShopClient("127.0.0.1:1")             # refused before any network traffic
        with pytest.raises(ValueError, match=arg):
            await call(c)
        await c.close()
    run(main())


def test_stream_arguments_are_checked_and_named(run):
    async def main():
        try:
            await _check_stream_arguments(await start_grpc_service("users"))
        finally:
            await labkit.shutdown()
    run(main())


async def _check_stream_arguments(svc):
    c = ShopClient(svc)
    with pytest.raises(ValueError, match="order_id"):
        c.watch_order(None)
    with pytest.raises(ValueError, match="changes"):
        c.update_stock("ab")
    with pytest.raises(ValueError, match=r"changes\[1\] must be a \(sku, delta\) pair"):
        c.update_stock([("fig", 1), ("fig",)])
    with pytest.raises(ValueError, match=r"changes\[0\] delta"):
        c.update_stock([("fig", "3")])
    assert svc.counts == {}                   # nothing was sent

    def changes():                            # a generator: checked as it is read
        yield "fig", 2
        yield "pear", None
    seen = []
    with pytest.raises(ValueError, match="delta.*None"):
        async for item in c.update_stock(changes()):
            seen.append(item)
    assert seen == [{"sku": "fig", "stock": 2}] and await c.get_item("fig") == seen[0]
    with pytest.raises(GrpcError, match="NOT_FOUND"):
        await c.get_item("pear")              # the bad change was never sent


def test_a_url_or_a_rest_service_as_target_is_refused_clearly(run):
    with pytest.raises(ValueError, match=r"no scheme: pass the gRPC service or its \.target"):
        ShopClient("http://127.0.0.1:5000")

    async def main():
        users = await labkit.start_service("users")
        with pytest.raises(ValueError, match="that is a REST service .start_grpc_service"):
            ShopClient(users)
        await labkit.shutdown()
    run(main())


def test_timeout_s_has_a_documented_lower_bound():
    from labkit.protocols.grpc_service import MIN_TIMEOUT_S
    assert MIN_TIMEOUT_S == 0.001
    assert ShopClient("127.0.0.1:1", timeout_s=MIN_TIMEOUT_S).timeout_s == MIN_TIMEOUT_S
    with pytest.raises(ValueError, match=r"timeout_s .*got 0.0009.*does not enforce"):
        ShopClient("127.0.0.1:1", timeout_s=0.0009)


def test_the_service_declares_the_knobs_grpc_ignores():
    assert GrpcService.unsupported_knobs == {"slow_body_ms"}
