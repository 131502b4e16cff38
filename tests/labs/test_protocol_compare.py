"""Chapter 03's side-by-side measurements: the same operation over REST/JSON, REST/MessagePack,
gRPC and WebSocket on real sockets. Only what physics or bookkeeping guarantees is asserted
(byte counts, connection counts, which calls failed, floors set by injected latency), never a
timing that a busy machine could break."""
import json

import aiohttp
import pytest

import labkit
from labkit.labs import protocol_compare as pc
from labkit.ui.protocol_charts import protocol_chart


async def _then_shutdown(coro):
    try:
        return await coro
    finally:
        await labkit.shutdown()


def test_latency_and_bytes_per_protocol(run):
    async def main():
        return (await pc.compare_latency(calls=20, payload="small", byte_calls=5),
                await pc.compare_latency(calls=20, payload="large", byte_calls=5))
    small, large = run(_then_shutdown(main()), timeout_s=120)
    assert list(small) == list(pc.PROTOCOLS)
    for p in pc.PROTOCOLS:
        for r in (small, large):
            assert r[p]["ok"] == 20, (p, r[p])
            assert 0 < r[p]["p50_ms"] <= r[p]["p99_ms"]
            assert r[p]["bytes_per_call"] == pytest.approx(r[p]["request_bytes"]
                                                           + r[p]["response_bytes"])
        # 100 users take more bytes than one, whatever the encoding
        assert large[p]["response_bytes"] > 10 * small[p]["response_bytes"], p
    resp = {p: large[p]["response_bytes"] for p in pc.PROTOCOLS}
    # The encodings really differ: MessagePack and Protobuf are smaller than JSON for the same
    # 100 records (field names once per record in msgpack, numbered fields in protobuf).
    assert resp["REST/MessagePack"] < 0.9 * resp["REST/JSON"], resp
    assert resp["gRPC/Protobuf"] < resp["REST/MessagePack"], resp
    # Per-message WebSocket framing carries no HTTP headers: its request is the smallest.
    req = {p: small[p]["request_bytes"] for p in pc.PROTOCOLS}
    assert req["WebSocket/JSON"] < req["REST/JSON"] and req["WebSocket/JSON"] < req["gRPC/Protobuf"]


def test_messagepack_is_what_the_server_sends(run):
    async def main():
        rest, _ = await pc.servers()
        async with aiohttp.ClientSession() as s:
            async with s.get(rest.url + "/users/2", headers={"Accept": pc.MSGPACK}) as r:
                body, ctype = await r.read(), r.content_type
            async with s.get(rest.url + "/users/2") as r:
                plain = await r.json()
        return body, ctype, plain
    body, ctype, plain = run(_then_shutdown(main()))
    import msgpack
    assert ctype == pc.MSGPACK and msgpack.unpackb(body) == plain == pc._user(2)


def test_one_http2_channel_multiplexes_one_http11_connection_does_not(run):
    async def main():
        rest, grpc_svc = await pc.servers()
        rest.faults.set(latency_ms=3.0)                     # the learner's own setting
        r = await pc.multiplexing(calls=30, latency_ms=50)
        return r, rest.faults.latency_ms, grpc_svc.faults.latency_ms
    r, rest_after, grpc_after = run(_then_shutdown(main()), timeout_s=120)
    grpc, one, many = (r["gRPC, one HTTP/2 channel"], r["HTTP/1.1, pool of 1"],
                       r["HTTP/1.1, pool of 30"])
    assert r["serial_floor_ms"] == 30 * 50
    assert grpc["ok"] == one["ok"] == many["ok"] == 30
    # Connections the server accepted: one channel, one pooled connection, many.
    assert grpc["connections"] == 1 and one["connections"] == 1
    assert 1 < many["connections"] <= 30
    # One HTTP/1.1 connection answers one request at a time: 30 x 50 ms at least.
    assert one["elapsed_ms"] >= r["serial_floor_ms"]
    # HTTP/2 interleaves all 30 on one connection: far below that floor (wide margin).
    assert grpc["elapsed_ms"] < r["serial_floor_ms"] / 2
    assert (rest_after, grpc_after) == (3.0, 0.0)           # knobs restored


def test_same_fault_fails_the_same_calls_on_every_protocol(run):
    async def main():
        rest, grpc_svc = await pc.servers()
        r = await pc.fault_chart_data(latency_ms=30, error_rate=0.3, calls=40, concurrency=10,
                                      seed=1)
        return r, rest.faults.all_off and grpc_svc.faults.all_off
    r, restored = run(_then_shutdown(main()), timeout_s=120)
    assert restored
    assert 0 < r["injected_errors"] < 40
    for p in pc.PROTOCOLS:
        assert r[p]["errors"] == r["injected_errors"], (p, r[p])
        assert r[p]["error_share"] == r["injected_errors"] / 40
        assert r[p]["p50_ms"] >= 30                        # every call waited the injected 30 ms
    fig = protocol_chart(r)
    assert len(fig.axes) == 2 and len(fig.axes[1].patches) == 4
    assert [round(b.get_height(), 3) for b in fig.axes[1].patches] == [r[p]["error_share"]
                                                                      for p in pc.PROTOCOLS]


def test_push_delivers_every_update_once_polling_costs_requests(run):
    r = run(_then_shutdown(pc.push_vs_poll(updates=2000, poll_every_ms=200, emit_s=0.5,
                                           batches=50)), timeout_s=120)
    push, poll = r["push"], r["poll"]
    for way in (push, poll):
        assert way["delivered"] == 2000 and way["in_order"], way
        assert way["bytes"] > 2000 * 20                   # at least the events themselves
    assert push["requests"] == 1 and push["connections"] == 1
    assert poll["requests"] >= 2 and poll["connections"] >= 1
    # An update emitted just after a poll waits for the next one, 200 ms later (wide margin).
    assert poll["delay_max_ms"] >= 100


def _recording_clients(seen: list, on_first_window_call):
    """_Clients that log each change of (protocol, window) among the measured calls; the window
    is read from the rid, "tput-{seed}-{round}-{callers}-{n}" (warm-up rids hold "-warm-")."""
    class Recording(pc._Clients):
        async def call(self, protocol, op, rid):
            if "-warm-" not in rid:
                on_first_window_call()
                key = (protocol, rid.rsplit("-", 1)[0])
                if not seen or seen[-1] != key:
                    seen.append(key)
            return await super().call(protocol, op, rid)
    return Recording


def test_throughput_measures_every_protocol_in_every_round_in_shuffled_order(run, monkeypatch):
    seen: list = []
    monkeypatch.setattr(pc, "_Clients", _recording_clients(seen, lambda: None))

    async def main():
        r = await pc.compare_throughput(concurrency=(1, 8), seconds=0.2, rounds=4, seed=3)
        again = await pc.compare_throughput(concurrency=(1, 8), seconds=0.02, rounds=4, seed=3)
        other = await pc.compare_throughput(concurrency=(1, 8), seconds=0.02, rounds=4, seed=4)
        return r, again["orders"], other["orders"]
    r, again, other = run(_then_shutdown(main()), timeout_s=120)
    assert list(r)[:4] == list(pc.PROTOCOLS) and r["rounds"] == 4
    assert r["window_s"] == pytest.approx(0.05)
    pairs = {(p, c) for p in pc.PROTOCOLS for c in (1, 8)}
    for p in pc.PROTOCOLS:
        assert set(r[p]) == {1, 8}, (p, r[p])
        for c, v in r[p].items():
            assert v["calls"] > 0 and v["errors"] == 0, (p, c, v)
            assert 0 < v["low_per_s"] <= v["per_s"] <= v["high_per_s"], (p, c, v)
    # Every (protocol, callers) once per round, in an order that changes from round to round
    # and repeats with the seed.
    assert len(r["orders"]) == 4
    assert all(len(o) == len(pairs) and set(o) == pairs for o in r["orders"])
    assert len({tuple(o) for o in r["orders"]}) > 1
    assert again == r["orders"] and other != r["orders"]
    # ... and the calls really ran in that order (the first of the three runs).
    ran = [(p, f"tput-3-{i}-{c}") for i, o in enumerate(r["orders"]) for p, c in o]
    assert seen[:len(ran)] == ran


def test_throughput_opens_every_connection_before_measuring(run, monkeypatch):
    """A relay in front of each server counts the connections accepted: all of them exist
    when the first measured call starts (a pool of 12 per REST protocol, the WebSocket, one
    gRPC channel), and no window opens another."""
    before: list = []
    real_servers = pc.servers

    async def main():
        rest, grpc_svc = await real_servers()
        async with pc._Tap(rest.port) as rest_tap, pc._Tap(grpc_svc.port) as grpc_tap:
            def snapshot():
                if not before:
                    before.append((rest_tap.connections, grpc_tap.connections))
            monkeypatch.setattr(pc, "_Clients", _recording_clients([], snapshot))

            async def tapped():
                return rest_tap, grpc_tap
            monkeypatch.setattr(pc, "servers", tapped)
            r = await pc.compare_throughput(concurrency=(1, 12), seconds=0.1, rounds=2)
            return r, (rest_tap.connections, grpc_tap.connections)
    r, after = run(_then_shutdown(main()), timeout_s=120)
    assert all(r[p][c]["calls"] > 0 for p in pc.PROTOCOLS for c in (1, 12))
    assert before == [(2 * 12 + 1, 1)]
    assert after == before[0]


def test_websocket_endpoint_answers_calls_and_rejects_bad_messages(run):
    async def main():
        rest, _ = await pc.servers()
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(rest.url + "/ws") as ws:
                await ws.send_str("not json")
                bad = json.loads((await ws.receive()).data)
                await ws.send_str(json.dumps({"rid": "a", "op": "get", "id": 7}))
                good = json.loads((await ws.receive()).data)
        return bad, good
    bad, good = run(_then_shutdown(main()))
    assert bad["status"] == 400
    assert good == {"rid": "a", "status": 200, "data": pc._user(7)}


def test_servers_are_reused_and_stop_at_shutdown(run):
    async def main():
        a = await pc.servers()
        b = await pc.servers()
        await labkit.shutdown()
        return a, b
    (rest, grpc_svc), again = run(main())
    assert again[0] is rest and again[1] is grpc_svc
    assert not rest.running and not grpc_svc.running


@pytest.mark.parametrize("call,match", [
    (lambda: pc.compare_latency(payload="huge"), "payload"),
    (lambda: pc.compare_latency(calls=0), "calls"),
    (lambda: pc.compare_throughput(concurrency=(0,)), "concurrency"),
    (lambda: pc.compare_throughput(seconds=0), "seconds"),
    (lambda: pc.compare_throughput(rounds=0), "rounds"),
    (lambda: pc.compare_throughput(concurrency=()), "concurrency"),
    (lambda: pc.multiplexing(latency_ms=-1), "latency_ms"),
    (lambda: pc.push_vs_poll(poll_every_ms=0), "poll_every_ms"),
    (lambda: pc.fault_chart_data(error_rate=2), "error_rate"),
])
def test_bad_arguments_name_the_argument(run, call, match):
    with pytest.raises(ValueError, match=match):
        run(call())


def test_chart_of_latency_results_and_bad_input():
    r = {p: {"p50_ms": 1.0, "p99_ms": 2.0, "bytes_per_call": 100.0 * (i + 1)}
         for i, p in enumerate(pc.PROTOCOLS)}
    fig = protocol_chart(r)
    assert [b.get_height() for b in fig.axes[1].patches] == [100, 200, 300, 400]
    with pytest.raises(ValueError, match="results"):
        protocol_chart({"x": 1})
