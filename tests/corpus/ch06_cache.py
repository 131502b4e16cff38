"""Chapter 06, caching: answers a learner writes for exercise 06.single_flight (see
tests/wrong_answers.py for the format). The first WRONG entry is the one the notebook tests
inject."""

WRONG = [
    ("06.single_flight", "no single-flight (check, then load)", '''
async def single_flight(cache, inflight, key, load):
    if key not in cache:
        cache[key] = await load(key)
    return cache[key]
'''),
    ("06.single_flight", "one lock held across the load (the tutorial's PrefetchCache)", '''
lock = asyncio.Lock()

async def single_flight(cache, inflight, key, load):
    async with lock:
        if key in cache:
            return cache[key]
        value = await load(key)
        cache[key] = value
        return value
'''),
    ("06.single_flight", "one in-flight task shared by all keys", '''
pending = None

async def single_flight(cache, inflight, key, load):
    global pending
    if key in cache:
        return cache[key]
    if pending is None:
        pending = asyncio.ensure_future(load(key))
    try:
        value = await pending
    finally:
        pending = None
    cache[key] = value
    return value
'''),
    ("06.single_flight", "caches the exception for ever", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        if isinstance(cache[key], Exception):
            raise cache[key]
        return cache[key]
    if key not in inflight:
        inflight[key] = asyncio.ensure_future(load(key))
    try:
        cache[key] = await inflight[key]
    except Exception as err:
        cache[key] = err          # remember the failure, so we do not hammer the backend
        raise
    finally:
        inflight.pop(key, None)
    return cache[key]
'''),
    ("06.single_flight", "never removes the in-flight entry", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        inflight[key] = asyncio.ensure_future(load(key))
    value = await inflight[key]
    cache[key] = value
    return value
'''),
    ("06.single_flight", "removes the in-flight entry only on success", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        inflight[key] = asyncio.ensure_future(load(key))
    value = await inflight[key]
    inflight.pop(key, None)
    cache[key] = value
    return value
'''),
    ("06.single_flight", "a future the waiters await, never completed on error", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key in inflight:
        return await inflight[key]
    fut = asyncio.get_running_loop().create_future()
    inflight[key] = fut
    value = await load(key)
    cache[key] = value
    fut.set_result(value)
    del inflight[key]
    return value
'''),
    ("06.single_flight", "truthiness test for a hit", '''
async def single_flight(cache, inflight, key, load):
    if cache.get(key):
        return cache[key]
    if key not in inflight:
        task = asyncio.ensure_future(load(key))
        inflight[key] = task
        task.add_done_callback(lambda _: inflight.pop(key, None))
    value = await asyncio.shield(inflight[key])
    cache[key] = value
    return value
'''),
    ("06.single_flight", "returns the task, not its value", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        task = asyncio.ensure_future(load(key))
        inflight[key] = task
        task.add_done_callback(lambda _: inflight.pop(key, None))
    return inflight[key]
'''),
    ("06.single_flight", "awaits the shared task without asyncio.shield", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    task = inflight.get(key)
    if task is None:
        task = inflight[key] = asyncio.ensure_future(load(key))
        task.add_done_callback(lambda t: inflight.pop(key, None))
    value = await task
    cache[key] = value
    return value
'''),
    ("06.single_flight", "a future completed by the first caller, awaited without shield", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key in inflight:
        return await inflight[key]
    fut = asyncio.get_running_loop().create_future()
    inflight[key] = fut
    try:
        value = await load(key)
    except Exception as err:
        fut.set_exception(err)
        fut.exception()
        raise
    else:
        cache[key] = value
        fut.set_result(value)
        return value
    finally:
        del inflight[key]
'''),
    ("06.single_flight", "a plain def that runs the load with asyncio.run", '''
def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    value = asyncio.run(load(key))
    cache[key] = value
    return value
'''),
    ("06.single_flight", "calls load() without the key", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        task = inflight[key] = asyncio.ensure_future(load())
        task.add_done_callback(lambda _: inflight.pop(key, None))
    value = await asyncio.shield(inflight[key])
    cache[key] = value
    return value
'''),
    ("06.single_flight", "keeps the coroutine, not a task, in inflight", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        inflight[key] = load(key)
    try:
        value = await inflight[key]
    finally:
        inflight.pop(key, None)
    cache[key] = value
    return value
'''),
    ("06.single_flight", "stores None for a failed load", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        task = inflight[key] = asyncio.ensure_future(load(key))
        task.add_done_callback(lambda _: inflight.pop(key, None))
    try:
        value = await asyncio.shield(inflight[key])
    except Exception:
        cache[key] = None          # remember that it failed
        raise
    cache[key] = value
    return value
'''),
    ("06.single_flight", "clears the whole cache before storing", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        task = inflight[key] = asyncio.ensure_future(load(key))
        task.add_done_callback(lambda _: inflight.pop(key, None))
    value = await asyncio.shield(inflight[key])
    cache.clear()                  # drop stale entries
    cache[key] = value
    return value
'''),
    ("06.single_flight", "an asyncio.Lock per key, the load run by the first caller", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key in inflight:                      # someone is loading: wait until they finish
        lock, outcome = inflight[key]
        async with lock:
            pass
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]
    lock, outcome = asyncio.Lock(), {}
    inflight[key] = (lock, outcome)
    async with lock:
        try:
            outcome["value"] = cache[key] = await load(key)
        except Exception as err:
            outcome["error"] = err
            raise
        finally:
            del inflight[key]
    return outcome["value"]
'''),
    ("06.single_flight", "an asyncio.Event per key, the load run by the first caller", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key in inflight:
        done, box = inflight[key]
        await done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]
    done, box = asyncio.Event(), {}
    inflight[key] = (done, box)
    try:
        box["value"] = cache[key] = await load(key)
        return box["value"]
    except Exception as err:
        box["error"] = err
        raise
    finally:
        del inflight[key]
        done.set()
'''),
    ("06.single_flight", "a future completed by the first caller, shielded, try/finally", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key in inflight:
        return await asyncio.shield(inflight[key])   # a waiter that gives up
                                                            # leaves the future alone
    fut = asyncio.get_running_loop().create_future()
    inflight[key] = fut
    try:
        value = await load(key)
    except Exception as err:
        fut.set_exception(err)
        fut.exception()           # retrieved: no warning when nobody else waited
        raise
    else:
        cache[key] = value
        fut.set_result(value)
        return value
    finally:
        del inflight[key]
'''),
    ("06.single_flight", "the first caller awaits the task without shield (waiters shielded)", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key in inflight:
        return await asyncio.shield(inflight[key])     # waiters: shielded
    task = inflight[key] = asyncio.ensure_future(load(key))
    try:
        value = await task                             # the first caller awaits it directly
    finally:
        inflight.pop(key, None)
    cache[key] = value
    return value
'''),
    ("06.single_flight", "the first caller runs the load and fails the future if cancelled", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key in inflight:
        return await asyncio.shield(inflight[key])
    fut = asyncio.get_running_loop().create_future()
    inflight[key] = fut
    try:
        value = await load(key)          # the first caller does the work itself
        cache[key] = value
        fut.set_result(value)
        return value
    except BaseException as err:
        if not fut.done():
            fut.set_exception(err if isinstance(err, Exception) else RuntimeError("load cancelled"))
            fut.exception()
        raise
    finally:
        inflight.pop(key, None)
'''),
    ("06.single_flight", "the first caller removes the key from inflight when it stops waiting", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key in inflight:
        return await asyncio.shield(inflight[key])
    task = inflight[key] = asyncio.ensure_future(load(key))
    try:
        value = await asyncio.shield(task)
    finally:
        inflight.pop(key, None)          # even when this caller is cancelled mid-load
    cache[key] = value
    return value
'''),
    ("06.single_flight", "a cached None looks like a miss", '''
async def single_flight(cache, inflight, key, load):
    value = cache.get(key)
    if value is not None:
        return value
    if key not in inflight:
        task = inflight[key] = asyncio.ensure_future(load(key))
        task.add_done_callback(lambda _: inflight.pop(key, None))
    value = await asyncio.shield(inflight[key])
    cache[key] = value
    return value
'''),
    ("06.single_flight", "retries inside the shared task", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    async def load_with_retry():
        for attempt in range(3):
            try:
                return await load(key)
            except Exception:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.01)
    if key not in inflight:
        task = inflight[key] = asyncio.ensure_future(load_with_retry())
        task.add_done_callback(lambda _: inflight.pop(key, None))
    value = await asyncio.shield(inflight[key])
    cache[key] = value
    return value
'''),
    ("06.single_flight", "a lock per key, each waiter loading again after a failure", '''
_locks = {}

async def single_flight(cache, inflight, key, load):
    lock = _locks.setdefault(key, asyncio.Lock())
    async with lock:
        if key in cache:
            return cache[key]
        inflight[key] = lock
        try:
            cache[key] = await load(key)
        finally:
            inflight.pop(key, None)
        return cache[key]
'''),
    ("06.single_flight", "also stores the last value under another key", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        task = inflight[key] = asyncio.ensure_future(load(key))
        task.add_done_callback(lambda _: inflight.pop(key, None))
    value = await asyncio.shield(inflight[key])
    cache.update({key: value, "last": value})
    return value
'''),
]

WHY = {
    "no single-flight (check, then load)": "that is the thundering herd",
    "one lock held across the load (the tutorial's PrefetchCache)":
        "serialises every key behind every other",
    "one in-flight task shared by all keys": "one in-flight load shared by all keys",
    "caches the exception for ever": "caching the exception, for ever",
    "never removes the in-flight entry": "never removing the in-flight entry",
    "removes the in-flight entry only on success": "never removing the in-flight entry",
    "a future the waiters await, never completed on error":
        "were still waiting 2 s after the load failed",
    "truthiness test for a hit": "a falsy value is still a cached value",
    "returns the task, not its value": "instead of the value",
    "awaits the shared task without asyncio.shield": "cancelled the shared load",
    "a future completed by the first caller, awaited without shield":
        "cancelled what the others were awaiting (the load itself was not cancelled)",
    "a plain def that runs the load with asyncio.run":
        "called from inside a running event loop",
    "calls load() without the key": "never ran",
    "keeps the coroutine, not a task, in inflight": "can be awaited only once",
    "stores None for a failed load": "storing anything for a failed load",
    "clears the whole cache before storing": "only touch the key you were asked for",
    "an asyncio.Lock per key, the load run by the first caller":
        "ran inside that caller's own task",
    "an asyncio.Event per key, the load run by the first caller":
        "ran inside that caller's own task",
    "a future completed by the first caller, shielded, try/finally":
        "ran inside that caller's own task",
    "the first caller awaits the task without shield (waiters shielded)":
        "cancelled the load task the others were waiting for",
    "the first caller runs the load and fails the future if cancelled":
        "ran inside that caller's own task",
    "the first caller removes the key from inflight when it stops waiting":
        "started a second load",
    "a cached None looks like a miss": "is None, and two calls loaded it 2 times",
    "retries inside the shared task": "but it retried after the error",
    "a lock per key, each waiter loading again after a failure":
        "called load again themselves instead of getting its error",
    "also stores the last value under another key": "a key the check never asked for",
}

RIGHT = [
    ("06.single_flight", "polls the in-flight dict with short sleeps", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key in inflight:
        task = inflight[key]
    else:
        task = inflight[key] = asyncio.create_task(load(key))
    while not task.done():
        await asyncio.sleep(0.005)
    inflight.pop(key, None)
    value = task.result()
    cache[key] = value
    return value
'''),
    ("06.single_flight", "an asyncio.Event per key, set by a task that runs the load", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        done, box = asyncio.Event(), {}

        async def run():
            try:
                box["value"] = cache[key] = await load(key)
            except Exception as err:
                box["error"] = err
            finally:
                del inflight[key]
                done.set()
        inflight[key] = (done, box, asyncio.ensure_future(run()))
    done, box, _ = inflight[key]
    await done.wait()                # a caller that gives up leaves run() going
    if "error" in box:
        raise box["error"]
    return box["value"]
'''),
    ("06.single_flight", "the task's done callback stores the value", '''
import functools

def _finish(cache, inflight, key, task):
    inflight.pop(key, None)
    if not task.cancelled() and task.exception() is None:
        cache[key] = task.result()

async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    if key not in inflight:
        task = inflight[key] = asyncio.ensure_future(load(key))
        task.add_done_callback(functools.partial(_finish, cache, inflight, key))
    return await asyncio.shield(inflight[key])
'''),
    ("06.single_flight", "waits with asyncio.wait, which never cancels what it waits for", '''
async def single_flight(cache, inflight, key, load):
    if key in cache:
        return cache[key]
    task = inflight.get(key)
    if task is None:
        task = inflight[key] = asyncio.create_task(load(key))
        task.add_done_callback(lambda t: inflight.pop(key, None))
    await asyncio.wait({task})
    value = task.result()
    cache[key] = value
    return value
'''),
]
