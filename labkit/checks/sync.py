"""Chapter 1 exercises (notebooks/01_sync.ipynb): a client call with a timeout and a concurrent
fan-out (the fan-out tail probability is in `labkit.checks.tail`). The fetch_user check
measures *when* a call gave up, against the `timeout_s` it was given, on a real service."""
from __future__ import annotations

import asyncio
import functools
import inspect

import aiohttp

from labkit.services.http import SPECS, Service, ServiceSpec
from . import Wrong, exercise, run_rng

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

#: The timeout part of the check. Every run draws timeouts for a service slower than all of
#: them (the call must give up, at timeout_s: a tight one, a short one, and one above 0.5 s) and
#: long timeouts for a service that answers in time (the call must succeed), so an answer that
#: ignores, scales, shifts, clamps or repeats `timeout_s` gives up at the wrong time somewhere.
SLOW_SERVICE_S = 1.2        # the service's latency when the call must give up
QUICK_SERVICE_S = 0.3       # ... and when a long timeout must let the answer through
_TIGHT_S = (0.15, 0.17)     # give-up timeouts: one tight (a 0.3-s floor shows),
_SHORT_S = (0.2, 0.35)      # one short,
_MEDIUM_S = (0.7, 0.9)      # and one above 0.5 s (a 0.5-s ceiling shows)
_LONG_S = (0.75, 1.1)       # timeouts the service answers within
#: A call that must give up may do so between EARLY × timeout_s (no timer fires early: this
#: only catches a shorter timeout) and timeout_s + LATE_S. A late call is measured again, up
#: to MEASURES times, so a busy machine does not fail a right answer: a systematic delay
#: (2 × timeout_s, + 0.15 s, a retry) is late every time.
EARLY, LATE_S, MEASURES = 0.8, 0.1, 3
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


def _discard(awaitable) -> None:
    """Drop an awaitable the answer returned instead of awaiting (no never-awaited warning)."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    elif isinstance(awaitable, asyncio.Future):
        awaitable.cancel()
        awaitable.add_done_callback(lambda f: f.cancelled() or f.exception())


def awaiting(impl, name: str):
    """`impl` as an async function. A plain `def` that returns an awaitable (a coroutine,
    asyncio.gather) is a right answer too: the caller awaits what it returns."""
    if inspect.iscoroutinefunction(impl):
        return impl

    @functools.wraps(impl)
    async def call(*args, **kwargs):
        got = impl(*args, **kwargs)
        if not inspect.isawaitable(got):
            raise Wrong(f"`{name}` must be an `async def` function: yours is a plain def "
                        f"that returned {type(got).__name__}, and it runs on the event loop.",
                        f"Start with `async def {name}(...):` and `await` inside it.")
        return await got
    return call


@exercise("01.fetch_user", reference=fetch_user, title="Exercise 1 · fetch_user",
          hint="Use `async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s))`, "
               "return None when resp.status == 404, call resp.raise_for_status(), and "
               "`return await resp.json()` inside the `async with` block.")
async def check_fetch_user(impl) -> None:
    _check_signature(impl)
    impl = awaiting(impl, "fetch_user")
    service = await Service(_CHECK_USERS, seed=1).start()
    sent = [0]                           # requests made through the session the check gives

    async def count(session, ctx, params):
        sent[0] += 1
    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(count)
    try:
        async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
            await _check_fetch_user(impl, service, session, run_rng("01.fetch_user"), sent)
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
    except (NotImplementedError, Wrong):
        raise                                      # the skeleton, or a check's own verdict
    except (Exception, asyncio.CancelledError) as err:
        if isinstance(err, asyncio.CancelledError) and asyncio.current_task().cancelling():
            raise                                  # the check itself is being cancelled
        return None, err, loop.time() - start
    if inspect.isawaitable(got):
        _discard(got)
        raise Wrong("you returned a coroutine: add `await` (`return await resp.json()`), "
                    "inside the `async with` block.", "`return await resp.json()`")
    return got, None, loop.time() - start


def _raised(err, waited) -> str:
    return f"raised {type(err).__name__}{f' ({err})' if str(err) else ''} after {waited:.2f} s"


async def _check_fetch_user(impl, service: Service, session, rng, sent) -> None:
    async with session.post(service.url + "/users", json={"name": "Ada", "email": "ada@example.com"}) as r:
        ada = await r.json()
    long_s = round(rng.uniform(*_LONG_S), 2)
    before = sent[0]
    got, err, waited = await _timed(impl, session, service.url, ada["id"], long_s, keyword=False)
    if sent[0] == before:
        raise Wrong("no request went through the `session` your `fetch_user` is given: it "
                    "opened its own aiohttp.ClientSession() (or another client). A session "
                    "per call opens a new connection every time and is not the one the "
                    "chapter configures and closes.",
                    "Use the session parameter: `async with session.get(url, timeout=...)`.")
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
    # Timeouts: (timeout_s, service latency) pairs, drawn per run, in a shuffled order.
    cases = [(round(rng.uniform(*r), 2), SLOW_SERVICE_S) for r in (_TIGHT_S, _SHORT_S, _MEDIUM_S)]
    cases += [(long_s, QUICK_SERVICE_S), (round(rng.uniform(*_LONG_S), 2), QUICK_SERVICE_S)]
    rng.shuffle(cases)
    try:
        for timeout_s, latency_s in cases:
            service.faults.latency_ms = latency_s * 1000
            for measure in range(MEASURES):
                got, err, waited = await _timed(impl, session, service.url, ada["id"], timeout_s)
                if not _judge_timeout(timeout_s, latency_s, got, err, waited, ada,
                                      last=measure == MEASURES - 1):
                    break
    finally:
        service.faults.reset()


_EXACTLY = "Pass `timeout=aiohttp.ClientTimeout(total=timeout_s)` to session.get, once, and " \
           "let the TimeoutError propagate."


def _judge_timeout(timeout_s, latency_s, got, err, waited, ada, *, last: bool) -> bool:
    """Raise `Wrong` if this call ended wrongly; True if it gave up late and may be measured
    again (a busy machine), False if it was right."""
    slow = f"with a service that answers after {latency_s:g} s"
    gave_up = f"{slow}, your call gave up after {waited:.2f} s with timeout_s={timeout_s:g}"
    if latency_s > timeout_s:
        lo, hi = EARLY * timeout_s, timeout_s + LATE_S
        if err is None and got == ada:
            raise Wrong(f"{slow}, your call returned the user after {waited:.2f} s with "
                        f"timeout_s={timeout_s:g}: it did not give up after timeout_s (no "
                        "timeout, or not the one you were given).", _EXACTLY)
        if err is None:
            if lo <= waited <= hi + LATE_S:
                raise Wrong(f"{slow}, after {waited:.2f} s with timeout_s={timeout_s:g} your "
                            f"fetch_user caught the TimeoutError and returned {got!r}: let it "
                            "propagate (the caller decides what to do).",
                            "Do not wrap the call in try/except: a timeout is an error, not 'no "
                            "such user'.")
            raise Wrong(f"{slow}, your call returned {got!r} after {waited:.2f} s with "
                        f"timeout_s={timeout_s:g}; expected a TimeoutError after timeout_s.",
                        _EXACTLY)
        if not isinstance(err, asyncio.TimeoutError):
            raise Wrong(f"{slow} and timeout_s={timeout_s:g}, your call {_raised(err, waited)}; "
                        "expected a TimeoutError.")
        if waited < lo:
            raise Wrong(f"{gave_up}: it gave up before timeout_s. Use exactly the timeout_s you "
                        "are given.", _EXACTLY)
        if waited > hi:
            if not last:
                return True
            times = f" ({waited / timeout_s:.1f} × timeout_s)"
            raise Wrong(f"{gave_up}{times}: it did not give up after timeout_s but later "
                        f"(measured {MEASURES} times; allowed: up to {hi:.2f} s).", _EXACTLY)
        return False
    if isinstance(err, asyncio.TimeoutError):
        raise Wrong(f"{gave_up}: it gave up before timeout_s. Use exactly the timeout_s you are "
                    "given, not a constant.", "`timeout=aiohttp.ClientTimeout(total=timeout_s)`")
    if err is not None:
        raise Wrong(f"{slow} and timeout_s={timeout_s:g}, your call {_raised(err, waited)}; "
                    "expected the user.")
    if got != ada:
        raise Wrong(f"{slow} and timeout_s={timeout_s:g}, you returned {got!r}, expected the "
                    f"JSON body {ada!r}.")
    return False


# ---------------------------------------------------------------------------------------------
# Exercise 2: a page that needs N backend calls, made concurrently


async def load_page(fetch, user_ids):
    """Call `await fetch(user_id)` for every id concurrently; results in the order of user_ids."""
    return list(await asyncio.gather(*(fetch(uid) for uid in user_ids)))


@exercise("01.load_page", reference=load_page, title="Exercise 2 · load_page",
          hint="`await asyncio.gather(*(fetch(uid) for uid in user_ids))` starts every call "
               "before waiting and keeps the results in order.")
async def check_load_page(impl) -> None:
    impl = awaiting(impl, "load_page")
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
    if inspect.isawaitable(got):
        _discard(got)
        raise Wrong(f"you returned {type(got).__name__}, an awaitable, not the results: add "
                    "`await` (`return await asyncio.gather(...)`).",
                    "`return await asyncio.gather(*(fetch(u) for u in user_ids))`")
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


# Exercise 3 lives in its own module; importing it here registers it after the two above.
from .tail import p_slow_page  # noqa: E402,F401
