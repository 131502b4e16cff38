"""Chapter 1 exercises (notebooks/01_sync.ipynb): a client call with a timeout, a concurrent
fan-out, and the fan-out tail probability."""
from __future__ import annotations

import asyncio
import inspect
import math

import aiohttp

from labkit.services.http import SPECS, Service, ServiceSpec
from . import Wrong, exercise, plain

# ---------------------------------------------------------------------------------------------
# Exercise 1: fetch one user with a correct timeout


async def fetch_user(session: aiohttp.ClientSession, base_url: str, user_id: int,
                     timeout_s: float):
    """GET {base_url}/users/{user_id}: the user as a dict, None if 404, raise on other errors,
    and give up (TimeoutError) after timeout_s seconds."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with session.get(f"{base_url}/users/{user_id}", timeout=timeout) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()      # read the body while the response is still open


_CHECK_USERS = ServiceSpec("users (check)", SPECS["users"].fields, collection="users",
                           unique=SPECS["users"].unique)


@exercise("01.fetch_user", reference=fetch_user, title="Exercise 1 · fetch_user",
          hint="Use `async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s))`, "
               "return None when resp.status == 404, call resp.raise_for_status(), and "
               "`return await resp.json()` inside the `async with` block.")
async def check_fetch_user(impl) -> None:
    if not inspect.iscoroutinefunction(impl):
        raise Wrong("`fetch_user` must be an `async def` function (it awaits the network).",
                    "Start with `async def fetch_user(session, base_url, user_id, timeout_s):`")
    service = await Service(_CHECK_USERS, seed=1).start()
    try:
        async with aiohttp.ClientSession() as session:
            await _check_fetch_user(impl, service, session)
    finally:
        await service.stop()


async def _check_fetch_user(impl, service: Service, session) -> None:
    async with session.post(service.url + "/users", json={"name": "Ada", "email": "ada@example.com"}) as r:
        ada = await r.json()
    got = await impl(session, service.url, ada["id"], 2.0)
    if isinstance(got, aiohttp.ClientResponse):
        raise Wrong("you returned the response object. Its connection is released when "
                    "`async with` ends, so the caller cannot read the body any more.",
                    "Read the body inside the block: `return await resp.json()`.")
    if got != ada:
        raise Wrong(f"for an existing user you returned {got!r}, expected the JSON body {ada!r}.",
                    "Return `await resp.json()`.")
    missing = await impl(session, service.url, 999, 2.0)
    if missing is not None:
        raise Wrong(f"for a user that does not exist (404) you returned {missing!r}, expected None.",
                    "Check `resp.status == 404` before anything else and return None.")
    service.faults.set(error_rate=1.0, error_status=503)
    try:
        got = await impl(session, service.url, ada["id"], 2.0)
    except aiohttp.ClientResponseError as err:
        if err.status != 503:
            raise Wrong(f"a 503 was reported as status {err.status}.") from None
    except (asyncio.TimeoutError, aiohttp.ClientError):
        pass
    else:
        raise Wrong(f"when the service answered 503 you returned {got!r}: an error must not look "
                    "like a result (or like 'no such user').",
                    "Call `resp.raise_for_status()` after handling 404.")
    finally:
        service.faults.reset()
    service.faults.latency_ms = 3000
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        await asyncio.wait_for(impl(session, service.url, ada["id"], 0.2), 2.0)
    except asyncio.TimeoutError:
        waited = loop.time() - start
        if waited >= 1.9:
            raise Wrong("with timeout_s=0.2 and a service that takes 3 s, your call was still "
                        "waiting after 2 s: it has no timeout (aiohttp's default is 5 minutes).",
                        "Pass `timeout=aiohttp.ClientTimeout(total=timeout_s)` to session.get.") from None
        if waited > 0.8:
            raise Wrong(f"with timeout_s=0.2 your call gave up only after {waited:.1f} s: "
                        "use the timeout_s you are given, not a constant.") from None
    else:
        raise Wrong("with timeout_s=0.2 and a service that takes 3 s, your call returned "
                    "instead of raising a timeout.")
    finally:
        service.faults.reset()


# ---------------------------------------------------------------------------------------------
# Exercise 2: a page that needs N backend calls, made concurrently


async def load_page(fetch, user_ids):
    """Call `await fetch(user_id)` for every id concurrently; results in the order of user_ids."""
    return list(await asyncio.gather(*(fetch(uid) for uid in user_ids)))


@exercise("01.load_page", reference=load_page, title="Exercise 2 · load_page",
          hint="`await asyncio.gather(*(fetch(uid) for uid in user_ids))` starts every call "
               "before waiting and keeps the results in order.")
async def check_load_page(impl) -> None:
    if not inspect.iscoroutinefunction(impl):
        raise Wrong("`load_page` must be an `async def` function.")
    ids = [5, 1, 4, 2, 3]
    in_flight, most = 0, 0

    async def fetch(uid):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.01 * uid)       # different delays: finishing order != ids order
            return {"id": uid}
        finally:
            in_flight -= 1

    got = await impl(fetch, ids)
    if not isinstance(got, list):
        raise Wrong(f"return a list of results, got {type(got).__name__}.")
    if any(inspect.isawaitable(x) for x in got):
        for x in got:
            if inspect.iscoroutine(x):
                x.close()
        raise Wrong("your list holds coroutines that were never awaited.",
                    "`asyncio.gather(...)` must itself be awaited.")
    if sorted(got, key=lambda d: d["id"]) == sorted([{"id": i} for i in ids], key=lambda d: d["id"]) \
            and got != [{"id": i} for i in ids]:
        raise Wrong("the results are not in the order of user_ids (you collected them as they "
                    "finished).", "asyncio.gather keeps the order of its arguments.")
    if got != [{"id": i} for i in ids]:
        raise Wrong(f"for ids {ids} you returned {got!r}.")
    if most < len(ids):
        raise Wrong(f"at most {most} call(s) were in flight at once, out of {len(ids)}: the page "
                    "waits for each call before starting the next, so its latency is the *sum*.",
                    "Start all calls, then wait: `await asyncio.gather(*(fetch(u) for u in user_ids))`.")
    if await impl(fetch, []) != []:
        raise Wrong("a page with no ids should return an empty list.")


# ---------------------------------------------------------------------------------------------
# Exercise 3: the fan-out tail probability


def p_slow_page(p: float, n: int) -> float:
    """Chance that a page making n independent calls, each slow with probability p, is slow."""
    return 1 - (1 - p) ** n


@exercise("01.p_slow_page", reference=p_slow_page, title="Exercise 3 · p_slow_page",
          hint="A page is fast only if all n calls are fast: (1 - p) ** n. It is slow otherwise.")
async def check_p_slow_page(impl) -> None:
    cases = [(0.01, 1), (0.05, 30), (0.01, 100), (0.5, 3), (0.0, 10), (1.0, 4), (0.2, 0)]
    for p, n in cases:
        got = plain(impl(p, n), "`p_slow_page` is plain arithmetic: make it a normal `def`.")
        want = p_slow_page(p, n)
        if not isinstance(got, (int, float)) or isinstance(got, bool) or math.isnan(got):
            raise Wrong(f"p_slow_page({p}, {n}) returned {got!r}, expected a number.")
        if not 0 <= got <= 1:
            raise Wrong(f"p_slow_page({p}, {n}) = {got:g} is not a probability (outside 0..1).",
                        "Adding p n times double-counts pages with several slow calls.")
        if abs(got - want) > 1e-9:
            raise Wrong(f"p_slow_page({p}, {n}) = {got:.6g}, expected {want:.6g}.")
