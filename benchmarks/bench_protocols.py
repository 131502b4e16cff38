"""gRPC unary vs aiohttp JSON: median latency on loopback by payload size (chapter 03).

Both servers run on 127.0.0.1 in this process's loop, as in the notebook (labkit's users
service with its fault layer, all faults off; the gRPC Shop server with its fault interceptor),
and hold the same records. Two payload shapes, each at about 100 B, 1 KB, 10 KB, 100 KB and
1 MB of JSON:

- "records": a list of N users (GET /users vs ListUsers): structure, where encodings differ;
- "one string": one user whose name is N bytes (GET /users/1 vs GetUser): mostly bytes.

Three clients, called in interleaved rounds so machine noise hits all alike: aiohttp (body
decoded with json.loads), the raw gRPC stub (protobuf messages), and labkit's ShopClient
(messages turned into dicts, as the notebook uses it). Prints medians, the ratios gRPC / JSON,
and the smallest size (if any) from which gRPC is faster than JSON over HTTP/1.1 at every
larger size measured.

    .venv/bin/python benchmarks/bench_protocols.py [--quick]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
from grpc import aio

from labkit._core import runtime
from labkit.labs import protocol_compare as pc
from labkit.protocols import proto
from labkit.protocols.grpc_service import ShopClient

SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
CLIENTS = ("aiohttp JSON", "gRPC stub", "gRPC ShopClient")


def _records(size: int) -> dict:
    n = max(1, round(size / len(json.dumps(pc._user(1)))))
    return {i: pc._user(i) for i in range(1, n + 1)}


def _one_string(size: int) -> dict:
    user = pc._user(1)
    user["name"] = "x" * max(1, size - len(json.dumps(user)) + len(user["name"]))
    return {1: user}


async def _median_ms(call, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def measure(quick: bool = False) -> dict:
    rest, grpc_svc = await pc.servers()
    shop = proto.load("shop.proto")
    channel = aio.insecure_channel(grpc_svc.target)
    stub = shop.ShopStub(channel)
    client = ShopClient(grpc_svc.target, timeout_s=30)
    results = {}
    async with aiohttp.ClientSession() as session:
        for shape, make in (("records", _records), ("one string", _one_string)):
            path = "/users" if shape == "records" else "/users/1"

            async def rest_call():
                async with session.get(rest.url + path) as r:
                    json.loads(await r.read())

            async def stub_call():
                if shape == "records":
                    await stub.ListUsers(shop.ListUsersRequest(), timeout=30)
                else:
                    await stub.GetUser(shop.GetUserRequest(id=1), timeout=30)

            async def client_call():
                await (client.list_users() if shape == "records" else client.get_user(1))
            calls = dict(zip(CLIENTS, (rest_call, stub_call, client_call)))
            for size in SIZES:
                records = make(size)
                rest.items = records
                grpc_svc.users.clear()
                grpc_svc.users.update(records)
                async with session.get(rest.url + path) as r:
                    wire = len(await r.read())
                reps = max(10, min(300, 3_000_000 // size) // (3 if quick else 1))
                times = {c: [] for c in CLIENTS}
                for c in CLIENTS:                            # warm up
                    await calls[c]()
                for _ in range(5):                           # interleaved rounds
                    for c in CLIENTS:
                        times[c] += await _median_ms(calls[c], max(1, reps // 5))
                results[(shape, size)] = {"json_bytes": wire, "reps": len(times[CLIENTS[0]]),
                                          **{c: statistics.median(t) for c, t in times.items()}}
    await client.close()
    await channel.close()
    await runtime.shutdown()
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.quick))
    for shape in ("records", "one string"):
        print(f"  payload shape: {shape}")
        print(f"    {'JSON size':>10} {'aiohttp JSON':>13} {'gRPC stub':>10} {'ShopClient':>11}"
              f" {'stub/JSON':>10} {'client/JSON':>12}")
        faster = {c: [] for c in CLIENTS[1:]}
        for size in SIZES:
            r = results[(shape, size)]
            j = r["aiohttp JSON"]
            print(f"    {r['json_bytes']:>9} B {j:>10.3f} ms {r['gRPC stub']:>7.3f} ms "
                  f"{r['gRPC ShopClient']:>8.3f} ms {r['gRPC stub'] / j:>10.2f} "
                  f"{r['gRPC ShopClient'] / j:>12.2f}   (medians of {r['reps']})")
            for c in faster:
                faster[c].append((r["json_bytes"], r[c] < j))
        for c, seen in faster.items():
            # overtakes: faster at that size and at every larger size measured
            from_ = [b for k, (b, _) in enumerate(seen) if all(f for _, f in seen[k:])]
            print(f"    {c} overtakes aiohttp JSON from: "
                  + (f"{from_[0]} B of JSON" if from_ else "never, at the sizes measured"))
    return results


if __name__ == "__main__":
    main()
