"""Chapter 1 exercises (notebooks/01_sync.ipynb): a client call with a timeout, a concurrent
fan-out, and the fan-out tail probability."""
from __future__ import annotations

import asyncio
import inspect
import math

import aiohttp

from labkit.services.http import SPECS, Service, ServiceSpec
from . import Wrong, exercise, plain, run_rng

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

#: The slow service's latency in the timeout part of the check: every run draws timeouts well
#: below it (the call must give up) and well above it (the call must succeed), so an answer
#: that ignores `timeout_s` fails one side or the other, whatever constant it uses.
SLOW_SERVICE_S = 0.4
_SHORT_S = (0.08, 0.2)      # timeouts drawn below the service's latency
_LONG_S = (0.75, 1.1)       # ... and above it
_CALL = "fetch_user(session, base_url, user_id, timeout_s=...)"


def _check_signature(impl) -> None:
    """The chapter calls fetch_user(session, url, user_id, timeout_s=0.5) and with 4 positional
    arguments: an answer must accept both, or a later cell crashes."""
    try:
        sig = inspect.signature(impl)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(None, "", 1, timeout_s=1.0)
        sig.bind(None, "", 1, 1.0)
    except TypeError:
        params = ", ".join(sig.parameters)
        raise Wrong(f"your `fetch_user` takes ({params}), but the chapter calls it as "
                    f"{_CALL} and as fetch_user(session, base_url, user_id, 0.5): its last "
                    "parameter must be named `timeout_s` (a keyword call with another name "
                    "crashes the cells that use it).",
                    "`async def fetch_user(session, base_url, user_id, timeout_s):`") from None


@exercise("01.fetch_user", reference=fetch_user, title="Exercise 1 · fetch_user",
          hint="Use `async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s))`, "
               "return None when resp.status == 404, call resp.raise_for_status(), and "
               "`return await resp.json()` inside the `async with` block.")
async def check_fetch_user(impl) -> None:
    if not inspect.iscoroutinefunction(impl):
        raise Wrong("`fetch_user` must be an `async def` function (it awaits the network).",
                    "Start with `async def fetch_user(session, base_url, user_id, timeout_s):`")
    _check_signature(impl)
    service = await Service(_CHECK_USERS, seed=1).start()
    try:
        async with aiohttp.ClientSession() as session:
            await _check_fetch_user(impl, service, session, run_rng("01.fetch_user"))
    finally:
        service.faults.reset()
        await service.stop()


async def _timed(impl, session, url, user_id, timeout_s, *, keyword=True):
    """(result or None, exception or None, seconds the call took)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        if keyword:
            got = await impl(session, url, user_id, timeout_s=timeout_s)
        else:
            got = await impl(session, url, user_id, timeout_s)
    except NotImplementedError:
        raise                                      # the untouched skeleton: said as such
    except (Exception, asyncio.CancelledError) as err:
        if isinstance(err, asyncio.CancelledError) and asyncio.current_task().cancelling():
            raise                                  # the check itself is being cancelled
        return None, err, loop.time() - start
    return got, None, loop.time() - start


def _raised(err, waited) -> str:
    return f"raised {type(err).__name__}{f' ({err})' if str(err) else ''} after {waited:.2f} s"


async def _check_fetch_user(impl, service: Service, session, rng) -> None:
    async with session.post(service.url + "/users", json={"name": "Ada", "email": "ada@example.com"}) as r:
        ada = await r.json()
    long_s = round(rng.uniform(*_LONG_S), 2)
    got, err, waited = await _timed(impl, session, service.url, ada["id"], long_s, keyword=False)
    if err is not None:
        raise Wrong(f"for an existing user (the service answering at once, timeout_s={long_s:g}) "
                    f"your `fetch_user` {_raised(err, waited)}.")
    if isinstance(got, aiohttp.ClientResponse):
        raise Wrong("you returned the response object. Its connection is released when "
                    "`async with` ends, so the caller cannot read the body any more.",
                    "Read the body inside the block: `return await resp.json()`.")
    if got != ada:
        raise Wrong(f"for an existing user you returned {got!r}, expected the JSON body {ada!r}.",
                    "Return `await resp.json()`.")
    missing, err, waited = await _timed(impl, session, service.url, 999, long_s)
    if err is not None:
        raise Wrong(f"for a user that does not exist (404) your `fetch_user` {_raised(err, waited)}; "
                    "expected None.", "Check `resp.status == 404` before raise_for_status and return None.")
    if missing is not None:
        raise Wrong(f"for a user that does not exist (404) you returned {missing!r}, expected None.",
                    "Check `resp.status == 404` before anything else and return None.")
    service.faults.set(error_rate=1.0, error_status=503)
    try:
        got, err, waited = await _timed(impl, session, service.url, ada["id"], long_s)
    finally:
        service.faults.reset()
    if err is None:
        raise Wrong(f"when the service answered 503 you returned {got!r}: an error must not look "
                    "like a result (or like 'no such user').",
                    "Call `resp.raise_for_status()` after handling 404.")
    if not isinstance(err, aiohttp.ClientResponseError):
        raise Wrong(f"when the service answered 503 your `fetch_user` {_raised(err, waited)}. "
                    "Raising is right, but the exercise expects the aiohttp.ClientResponseError "
                    "that `resp.raise_for_status()` raises: it carries the status (503), so a "
                    "caller can tell 'try again later' (503) from 'your request is wrong' (400), "
                    "as chapter 5's retries do.",
                    "Call `resp.raise_for_status()` after handling 404 instead of raising your own.")
    if err.status != 503:
        raise Wrong(f"a 503 was reported as status {err.status}.")
    # Timeouts: the service now takes SLOW_SERVICE_S; timeouts are drawn on both sides of it.
    timeouts = [round(rng.uniform(*_SHORT_S), 2) for _ in range(2)] + \
        [long_s, round(rng.uniform(*_LONG_S), 2)]
    rng.shuffle(timeouts)
    service.faults.latency_ms = SLOW_SERVICE_S * 1000
    try:
        for timeout_s in timeouts:
            got, err, waited = await _timed(impl, session, service.url, ada["id"], timeout_s)
            _judge_timeout(timeout_s, got, err, waited, ada)
    finally:
        service.faults.reset()


def _judge_timeout(timeout_s, got, err, waited, ada) -> None:
    slow = f"with timeout_s={timeout_s:g} and a service that answers after {SLOW_SERVICE_S:g} s"
    if timeout_s < SLOW_SERVICE_S:
        if err is None:
            raise Wrong(f"{slow}, your call returned after {waited:.2f} s instead of giving up "
                        f"with a TimeoutError after {timeout_s:g} s: it did not give up after "
                        "timeout_s (the timeout you set, if any, is not `timeout_s`).",
                        "Pass `timeout=aiohttp.ClientTimeout(total=timeout_s)` to session.get; "
                        "aiohttp's default is 5 minutes.")
        if not isinstance(err, asyncio.TimeoutError):
            raise Wrong(f"{slow}, your call {_raised(err, waited)}; expected a TimeoutError.")
        return
    if isinstance(err, asyncio.TimeoutError):
        raise Wrong(f"{slow}, your call {_raised(err, waited)}: it gave up before timeout_s. "
                    "Use the timeout_s you are given, not a constant.",
                    "`timeout=aiohttp.ClientTimeout(total=timeout_s)`")
    if err is not None:
        raise Wrong(f"{slow}, your call {_raised(err, waited)}; expected the user.")
    if got != ada:
        raise Wrong(f"{slow}, you returned {got!r}, expected the JSON body {ada!r}.")


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
    rng = run_rng("01.load_page")
    for n in (rng.randint(5, 7), rng.randint(3, 4)):
        await _check_page(impl, rng.sample(range(1, 100), n))
    got = await impl(_Backend().fetch, [])
    if got != []:
        raise Wrong(f"a page with no ids should return an empty list, got {got!r}.")


class _Backend:
    """A fake `fetch` that counts the calls in flight; later ids answer sooner, so the
    finishing order is the reverse of the order of the ids."""

    def __init__(self, ids=()):
        self.delay_s = {uid: 0.01 * (len(ids) - i) for i, uid in enumerate(ids)}
        self.in_flight = self.most = 0
        self.finished: list = []

    async def fetch(self, uid):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s.get(uid, 0.01))
            self.finished.append(uid)
            return {"id": uid, "name": f"user {uid}"}
        finally:
            self.in_flight -= 1


async def _check_page(impl, ids) -> None:
    backend = _Backend(ids)
    got = await impl(backend.fetch, list(ids))
    if isinstance(got, tuple):
        got = list(got)
    if not isinstance(got, list):
        raise Wrong(f"return a list of results, got {type(got).__name__}.")
    if any(inspect.isawaitable(x) for x in got):
        for x in got:
            if inspect.iscoroutine(x):
                x.close()
        raise Wrong("your list holds coroutines that were never awaited.",
                    "`asyncio.gather(...)` must itself be awaited.")
    want = [{"id": i, "name": f"user {i}"} for i in ids]
    if got != want:
        if got == [{"id": i, "name": f"user {i}"} for i in backend.finished] and len(ids) > 1:
            raise Wrong("the results are in the order they finished, not in the order of "
                        f"user_ids {ids}.", "asyncio.gather keeps the order of its arguments.")
        raise Wrong(f"for ids {ids} you returned {got!r}; expected the results of fetch(id) "
                    "for each id, in the order of user_ids.")
    n = len(ids)
    if backend.most == 1:
        raise Wrong(f"your page made one call at a time ({n} calls, each started after the "
                    "previous one finished), so its latency is the *sum* of the calls.",
                    "Start all calls, then wait: `await asyncio.gather(*(fetch(u) for u in user_ids))`.")
    if backend.most < n:
        raise Wrong(f"at most {backend.most} calls at a time were in flight, out of {n}: your "
                    f"page is concurrent but limited, so it waits for several rounds of calls. "
                    "The exercise asks for every call at once, so that the page takes as long as "
                    "its slowest call.",
                    "Start every call before waiting: `await asyncio.gather(*(fetch(u) for u in "
                    "user_ids))` (limiting concurrency is chapter 6's bulkhead, not this page).")


# ---------------------------------------------------------------------------------------------
# Exercise 3: the fan-out tail probability


def p_slow_page(p: float, n: int) -> float:
    """Chance that a page making n independent calls, each slow with probability p, is slow."""
    return 1 - (1 - p) ** n


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 + 1e-9 * abs(b)


def _p_slow_cases(rng):
    fixed = [(0.01, 1), (0.05, 30), (0.01, 100), (0.5, 3), (0.0, 10), (1.0, 4), (0.2, 0)]
    drawn = [(round(rng.uniform(0.002, 0.3), 4), rng.randint(2, 150)) for _ in range(3)]
    return fixed[:4] + drawn + fixed[4:]


@exercise("01.p_slow_page", reference=p_slow_page, title="Exercise 3 · p_slow_page",
          hint="A page is fast only if all n calls are fast: (1 - p) ** n. It is slow otherwise.",
          timeout_s=10.0)
def check_p_slow_page(impl) -> None:
    for p, n in _p_slow_cases(run_rng("01.p_slow_page")):
        got = plain(impl(p, n), "`p_slow_page` is plain arithmetic: make it a normal `def`.")
        want = p_slow_page(p, n)
        call = f"p_slow_page({p}, {n})"
        if not isinstance(got, (int, float)) or isinstance(got, bool) or math.isnan(got):
            raise Wrong(f"{call} returned {got!r}, expected a number.")
        if _near(got, want):
            continue
        if want > 0 and _near(got, 100 * want):
            raise Wrong(f"{call} = {got:.6g}: that looks like a percentage; return a fraction "
                        f"in [0, 1] ({want:.6g}, not {100 * want:.6g}).",
                        "Drop the `100 *`: a probability is a number between 0 and 1.")
        if _near(got, p * n):
            raise Wrong(f"{call} = {got:.6g}, expected {want:.6g}: that is p * n. Adding p n "
                        "times counts pages with several slow calls more than once (and goes "
                        "above 1 for large n).", "Count the pages where *every* call is fast.")
        if _near(got, p ** n):
            raise Wrong(f"{call} = {got:.6g}, expected {want:.6g}: that is p ** n, the chance "
                        "that *all* n calls are slow. One slow call is enough to make the page slow.")
        if _near(got, 1 - want):
            raise Wrong(f"{call} = {got:.6g}, expected {want:.6g}: that is (1 - p) ** n, the "
                        "chance that the page is fast (all n calls fast). The page is slow otherwise.")
        if not 0 <= got <= 1:
            raise Wrong(f"{call} = {got:.6g} is not a probability (outside 0..1); expected {want:.6g}.")
        raise Wrong(f"{call} = {got:.6g}, expected {want:.6g}.")
