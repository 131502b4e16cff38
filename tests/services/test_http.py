import asyncio
import gc
import json
import warnings

import aiohttp
import pytest

import labkit
from labkit._core import runtime
from labkit.services.http import DEADLINE_HEADER, SPECS, Service, ServiceSpec, start_service


async def _json(session, method, url, **kw):
    async with session.request(method, url, **kw) as r:
        body = await r.read()
        data = json.loads(body) if body and r.content_type == "application/json" else None
        return r.status, dict(r.headers), data


def test_rest_status_codes(run):
    async def main():
        users = await start_service("users")
        u = users.url + "/users"
        async with aiohttp.ClientSession() as s:
            st, h, ada = await _json(s, "POST", u, json={"name": "Ada", "email": "a@x"})
            assert (st, h["Location"], ada) == (201, "/users/1", {"id": 1, "name": "Ada", "email": "a@x"})
            assert (await _json(s, "GET", f"{u}/1"))[0] == 200
            assert (await _json(s, "GET", u))[2] == [ada]
            assert (await _json(s, "GET", f"{u}/2"))[0] == 404
            assert (await _json(s, "GET", f"{u}/abc"))[0] == 404
            assert (await _json(s, "POST", u, json={"name": "B", "email": "a@x"}))[0] == 409
            assert (await _json(s, "POST", u, json={"name": "B"}))[2]["error"] == "missing fields: email"
            assert (await _json(s, "POST", u, json={"name": 3, "email": "b@x"}))[0] == 400
            assert (await _json(s, "POST", u, json={"name": "B", "email": "b@x", "x": 1}))[0] == 400
            assert (await _json(s, "POST", u, data=b"{not json"))[0] == 400
            assert (await _json(s, "POST", u, json=[1, 2]))[0] == 400
            assert (await _json(s, "PUT", f"{u}/1", json={"name": "Ada K", "email": "a@x"}))[2]["name"] == "Ada K"
            assert (await _json(s, "PUT", f"{u}/9", json={"name": "Z", "email": "z@x"}))[0] == 404
            await _json(s, "POST", u, json={"name": "B", "email": "b@x"})
            assert (await _json(s, "PUT", f"{u}/1", json={"name": "Ada", "email": "b@x"}))[0] == 409
            assert (await _json(s, "DELETE", f"{u}/1"))[0] == 204
            assert (await _json(s, "DELETE", f"{u}/1"))[0] == 404
            assert (await _json(s, "PATCH", f"{u}/2", json={}))[0] == 405
            assert (await _json(s, "GET", users.url + "/nope"))[0] == 404
        statuses = users.summary()["statuses"]          # the log sees what the client saw
        assert statuses["405"] == 1 and statuses["404"] == 5 and "0" not in statuses
        await labkit.shutdown()
    run(main())


def test_idempotency_key_creates_once(run):
    async def main():
        users = await start_service("users")
        body = {"name": "Ada", "email": "a@x"}
        async with aiohttp.ClientSession() as s:
            first = await _json(s, "POST", users.url + "/users", json=body, headers={"Idempotency-Key": "k1"})
            again = await _json(s, "POST", users.url + "/users", json=body, headers={"Idempotency-Key": "k1"})
            other = await _json(s, "POST", users.url + "/users", json={"name": "X", "email": "x@x"},
                                headers={"Idempotency-Key": "k1"})
            plain = await _json(s, "POST", users.url + "/users", json=body)
        assert first[0] == again[0] == 201 and first[2] == again[2]
        assert again[1].get("Idempotent-Replayed") == "true"
        assert other[0] == 422
        assert plain[0] == 409                  # without a key the retry is a new request
        assert len(users.items) == 1
        await labkit.shutdown()
    run(main())


def test_faults_take_effect_on_the_next_request(run):
    async def main():
        users = await start_service("users")
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as s:
            users.faults.latency_ms = 150
            t0 = loop.time()
            assert (await _json(s, "GET", users.url + "/health"))[0] == 200
            assert loop.time() - t0 >= 0.15
            users.faults.set(latency_ms=0, error_rate=1.0, error_status=429, retry_after_s=3)
            st, h, body = await _json(s, "GET", users.url + "/health")
            assert (st, h["Retry-After"]) == (429, "3")
            users.faults.set(error_rate=0, outage=True)
            assert (await _json(s, "GET", users.url + "/health"))[0] == 503
            users.faults.set(outage=False, reset_rate=1.0)
            with pytest.raises(aiohttp.ClientConnectionError):
                await _json(s, "GET", users.url + "/health")
            users.faults.set(reset_rate=0, slow_body_ms=300)
            t0 = loop.time()
            st, _, body = await _json(s, "GET", users.url + "/health")
            assert st == 200 and body["status"] == "ok" and loop.time() - t0 >= 0.27
            # a read timeout shorter than the trickle fails mid-body
            with pytest.raises(asyncio.TimeoutError):
                await _json(s, "GET", users.url + "/health", timeout=aiohttp.ClientTimeout(total=0.1))
            users.faults.reset()
            assert (await _json(s, "GET", users.url + "/health"))[0] == 200
        outcomes = users.summary()["outcomes"]
        assert outcomes["error"] == 1 and outcomes["outage"] == 1 and outcomes["reset"] >= 1
        await labkit.shutdown()
    run(main())


def test_deadline_header_abandons_work(run):
    async def main():
        users = await start_service("users")
        users.faults.latency_ms = 2000
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as s:
            t0 = loop.time()
            st, _, body = await _json(s, "POST", users.url + "/users", json={"name": "A", "email": "a@x"},
                                      headers={DEADLINE_HEADER: "100"})
        assert st == 504 and "deadline" in body["error"]
        assert loop.time() - t0 < 1.9                # abandoned at 0.1 s, not after the 2 s
        assert users.items == {}                 # the work was not done
        await labkit.shutdown()
    run(main())


def test_same_seed_same_request_sequence_same_faults(run):
    async def once(seed):
        svc = await Service(SPECS["users"], seed=seed).start()
        svc.faults.set(error_rate=0.3, error_status=503, latency_dist="uniform", latency_ms=2, jitter_ms=2)
        async with aiohttp.ClientSession() as s:
            statuses = [(await _json(s, "GET", svc.url + "/health"))[0] for _ in range(40)]
        await svc.stop()
        return statuses

    a = run(once(11))
    b = run(once(11))
    c = run(once(12))
    assert a == b and 503 in a and 200 in a
    assert a != c


def test_start_is_idempotent_binds_loopback_and_shutdown_cleans_everything(run):
    async def main():
        a = await start_service("users")
        b = await start_service("users")
        inv = await start_service("inventory")
        assert a is b and a.port != inv.port
        for svc in (a, inv):
            host, port = svc._runner.addresses[0][:2]
            assert host == "127.0.0.1" and port > 0
        s = runtime.session()
        client = labkit.AsyncClient(a.url)
        assert (await client.get("/health")).status == 200
        view = labkit.watch(a, rate_per_s=50, refresh_s=0.1)
        await asyncio.sleep(0.3)
        assert view.summary()["total"] > 0
        stopped = await labkit.shutdown()
        assert stopped["services"] == 2 and stopped["sessions"] >= 2
        assert s.closed and not a.running and not view.running
        assert runtime.services() == {}
        # start again after shutdown: a fresh service on a fresh port
        c = await start_service("users")
        assert c is not a and c.running
        await labkit.shutdown()
    run(main())


def test_a_fresh_loop_does_not_see_services_of_a_dead_one():
    async def first():
        await start_service("users")          # deliberately not shut down

    async def second():
        assert runtime.services() == {}
        svc = await start_service("users")
        assert svc.loop is asyncio.get_running_loop()
        await labkit.shutdown()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)   # the dead loop's sockets, by design
        asyncio.run(first())
        asyncio.run(second())
        gc.collect()


def test_unknown_service_and_custom_spec(run):
    async def main():
        with pytest.raises(ValueError, match="unknown service 'userz'"):
            await start_service("userz")
        spec = ServiceSpec("shipping", {"order_id": str, "carrier": str})
        svc = await start_service(spec)
        async with aiohttp.ClientSession() as s:
            st, _, body = await _json(s, "POST", svc.url + "/shipping", json={"order_id": "o1", "carrier": "DHL"})
        assert st == 201 and body["id"] == 1
        await labkit.shutdown()
    run(main())


def test_every_declared_service_serves_its_collection(run):
    async def main():
        async with aiohttp.ClientSession() as s:
            for name, spec in SPECS.items():
                svc = await start_service(name)
                sample = {f: (1 if t is int else "x") for f, t in spec.fields.items()}
                st, _, body = await _json(s, "POST", svc.url + spec.path, json=sample)
                assert st == 201, (name, body)
        await labkit.shutdown()
    run(main())


def test_blackhole_makes_connect_time_out(run):
    async def main():
        with labkit.Blackhole() as hole:
            async with aiohttp.ClientSession() as s:
                with pytest.raises(aiohttp.ConnectionTimeoutError):
                    async with s.get(hole.url, timeout=aiohttp.ClientTimeout(total=5, connect=0.3)):
                        pass
    run(main())


def test_extra_routes_run_behind_the_fault_layer(run):
    from aiohttp import web

    async def hello(service, request):
        return web.json_response({"from": service.name})

    async def main():
        svc = await start_service(ServiceSpec("greeter", routes=(("GET", "/hello", hello),)))
        async with aiohttp.ClientSession() as s:
            assert (await _json(s, "GET", svc.url + "/hello"))[2] == {"from": "greeter"}
            svc.faults.outage = True
            assert (await _json(s, "GET", svc.url + "/hello"))[0] == 503
        await labkit.shutdown()
    run(main())


# ---- deadlines: refused before any work (issue 7) ---------------------------------------------

def test_expired_deadline_gets_504_before_any_work_even_without_faults(run):
    async def main():
        users = await start_service("users")
        async with aiohttp.ClientSession() as s:
            answers = [await _json(s, "POST", users.url + "/users", json={"name": "A", "email": "a@x"},
                                   headers={DEADLINE_HEADER: value}) for value in ("0", "-5", "+0")]
        items, log = dict(users.items), list(users.log)
        await labkit.shutdown()
        return answers, items, log

    answers, items, log = run(main())
    assert [a[0] for a in answers] == [504, 504, 504]
    assert all("deadline" in a[2]["error"] for a in answers)
    assert items == {}                               # the POST did not create the item
    assert [s.fault for s in log] == ["deadline"] * 3


@pytest.mark.parametrize("value", ["abc", "", "1e3", "nan", "1.5"])
def test_malformed_deadline_gets_400_naming_the_header_before_any_work(run, value):
    async def main():
        users = await start_service("users")
        users.faults.latency_ms = 5000               # a 400 must not wait for the delay either
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as s:
            t0 = loop.time()
            answer = await _json(s, "POST", users.url + "/users", json={"name": "A", "email": "a@x"},
                                 headers={DEADLINE_HEADER: value})
            waited = loop.time() - t0
        items = dict(users.items)
        await labkit.shutdown()
        return answer, waited, items

    (status, _, body), waited, items = run(main())
    assert status == 400 and DEADLINE_HEADER in body["error"]
    assert items == {} and waited < 4.0              # generous: the delay was 5 s


# ---- bad input gets a clear ValueError ------------------------------------------------------

@pytest.mark.parametrize("name", [123, None, 1.5, b"users", ["users"]])
def test_start_service_refuses_names_that_are_not_a_name_or_spec(run, name):
    async def main():
        with pytest.raises(ValueError, match=r"name must be a service name \(str\) or a ServiceSpec"):
            await start_service(name)
        assert runtime.services() == {}
    run(main())


@pytest.mark.parametrize("kw, message", [
    ({"seed": "7"}, "seed must be a whole number"),
    ({"seed": 1.0}, "seed must be a whole number"),
    ({"log_size": 0}, "log_size must be a whole number"),
    ({"backlog": 0}, "backlog must be a whole number"),
    ({"backlog": 70_000}, "backlog must be a whole number"),
    ({"backlog": 10**400}, "backlog must be a whole number"),
    ({"idempotency_ttl_s": 0}, "idempotency_ttl_s must be a finite number"),
    ({"idempotency_ttl_s": 10**400}, "idempotency_ttl_s must be a finite number"),
    ({"idempotency_max_keys": 0}, "idempotency_max_keys must be a whole number"),
])
def test_service_options_are_checked(kw, message):
    with pytest.raises(ValueError, match=message):
        Service(SPECS["users"], **kw)


def test_spec_name_must_be_a_non_empty_string():
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        ServiceSpec(123)
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        ServiceSpec("")


# ---- the listen backlog ---------------------------------------------------------------------

def test_the_listen_backlog_is_raised_and_passed_to_the_socket(run):
    from labkit.services import http

    async def main():
        loop = asyncio.get_running_loop()
        seen = []
        create_server = loop.create_server

        async def spy(*args, **kwargs):
            seen.append(kwargs.get("backlog"))
            return await create_server(*args, **kwargs)

        loop.create_server = spy
        try:
            default = await start_service("users")
            small = await Service(SPECS["inventory"], backlog=64).start()
        finally:
            del loop.create_server
        await labkit.shutdown()
        return seen, default, small

    seen, default, small = run(main())
    assert default.backlog == http.DEFAULT_BACKLOG == 4096 and small.backlog == 64
    assert seen == [4096, 64]                        # aiohttp's own default would be 128
    cap = http.somaxconn()
    assert cap is None or cap >= 1
    assert "somaxconn" in Service.__doc__ and "backlog" in Service.__doc__
