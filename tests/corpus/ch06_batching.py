"""Chapter 06, exercise 06.collect_batch: answers a learner writes (see tests/wrong_answers.py).
The first WRONG entry is the tutorial's bug (a partial batch is never sent)."""

WRONG = [
    ("06.collect_batch", "waits for a full batch: a partial batch is never sent (the tutorial's bug)", '''
async def collect_batch(queue, max_batch, max_wait_s):
    batch = []
    while len(batch) < max_batch:
        batch.append(await queue.get())
    return batch
'''),
    ("06.collect_batch", "max_wait measured from the newest item", '''
async def collect_batch(queue, max_batch, max_wait_s):
    batch = [await queue.get()]
    while len(batch) < max_batch:
        try:
            batch.append(await asyncio.wait_for(queue.get(), max_wait_s))
        except asyncio.TimeoutError:
            break
    return batch
'''),
    ("06.collect_batch", "off by one: flushes at > max_batch", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) <= max_batch:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except asyncio.TimeoutError:
            break
    return batch
'''),
    ("06.collect_batch", "ignores max_batch (a constant 10)", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < 10:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except asyncio.TimeoutError:
            break
    return batch
'''),
    ("06.collect_batch", "sleeps max_wait then drains the queue", '''
async def collect_batch(queue, max_batch, max_wait_s):
    batch = [await queue.get()]
    await asyncio.sleep(max_wait_s)
    while len(batch) < max_batch and not queue.empty():
        batch.append(queue.get_nowait())
    return batch
'''),
    ("06.collect_batch", "timer started before the first item arrives", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    batch = []
    while len(batch) < max_batch:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except asyncio.TimeoutError:
            break
    return batch
'''),
    ("06.collect_batch", "sorts the batch (results go to the wrong callers)", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        try:
            batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
        except asyncio.TimeoutError:
            break
    return sorted(batch)
'''),
    ("06.collect_batch", "de-duplicates with a set", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        try:
            batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
        except asyncio.TimeoutError:
            break
    return list(set(batch))
'''),
    ("06.collect_batch", "lets the TimeoutError escape", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
    return batch
'''),
    ("06.collect_batch", "a deadline on the wall clock (time.monotonic)", '''
async def collect_batch(queue, max_batch, max_wait_s):
    batch = [await queue.get()]
    deadline = time.monotonic() + max_wait_s
    while len(batch) < max_batch:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except asyncio.TimeoutError:
            break
    return batch
'''),
    # from a beginner tester's answers (/work/notes/reports/tb.md, B1-B9)
    ("06.collect_batch", "drains the whole queue, then cuts the list to max_batch", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    while not queue.empty():
        batch.append(queue.get_nowait())
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except asyncio.TimeoutError:
            break
    return batch[:max_batch]
'''),
    ("06.collect_batch", "asyncio.wait on a get() task that is never cancelled", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({getter}, timeout=deadline - loop.time())
        if not done:
            break
        batch.append(getter.result())
    return batch
'''),
    ("06.collect_batch", "returns [batch], a list of lists", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        try:
            batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
        except asyncio.TimeoutError:
            break
    return [batch]
'''),
    ("06.collect_batch", "an async generator (yield batch)", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        try:
            batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
        except asyncio.TimeoutError:
            break
    yield batch
'''),
    ("06.collect_batch", "time.sleep(max_wait_s), then drains the queue", '''
async def collect_batch(queue, max_batch, max_wait_s):
    batch = [await queue.get()]
    time.sleep(max_wait_s)
    while len(batch) < max_batch and not queue.empty():
        batch.append(queue.get_nowait())
    return batch
'''),
    ("06.collect_batch", "spins on get_nowait and asyncio.sleep(0)", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch and loop.time() < deadline:
        try:
            batch.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            await asyncio.sleep(0)
    return batch
'''),
    ("06.collect_batch", "reuses one module-level list", '''
_batch = []

async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    _batch.clear()
    _batch.append(await queue.get())
    deadline = loop.time() + max_wait_s
    while len(_batch) < max_batch:
        if not queue.empty():
            _batch.append(queue.get_nowait())
            continue
        try:
            _batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
        except asyncio.TimeoutError:
            break
    return _batch
'''),
    ("06.collect_batch", "a plain def that takes what is queued", '''
def collect_batch(queue, max_batch, max_wait_s):
    batch = []
    while len(batch) < max_batch:
        try:
            batch.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            break
    return batch
'''),
    ("06.collect_batch", "marks task_done and awaits queue.join() before returning", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    queue.task_done()
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        try:
            batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
            queue.task_done()
        except asyncio.TimeoutError:
            break
    await queue.join()
    return batch
'''),
    ("06.collect_batch", "pauses 0.04 ms after a full batch (late by less than 0.1 ms)", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        try:
            batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
        except asyncio.TimeoutError:
            break
    if len(batch) == max_batch:
        await asyncio.sleep(0.00004)     # a full batch: give the producer a moment to refill
    return batch
'''),
]

WHY = {
    "waits for a full batch: a partial batch is never sent (the tutorial's bug)":
        "a partial batch was never sent",
    "max_wait measured from the newest item": "you measured the wait from the newest item",
    "off by one: flushes at > max_batch": "off by one",
    "ignores max_batch (a constant 10)": "a full batch is max_batch items",
    "sleeps max_wait then drains the queue": "a full batch waited",
    "timer started before the first item arrives": "before the first item arrived",
    "sorts the batch (results go to the wrong callers)": "not in arrival order",
    "de-duplicates with a set": "duplicate item",
    "lets the TimeoutError escape": "raised TimeoutError",
    "a deadline on the wall clock (time.monotonic)": "reads the wall clock (time.monotonic()",
    "drains the whole queue, then cuts the list to max_batch":
        "leave the rest in the queue for the next call",
    "asyncio.wait on a get() task that is never cancelled":
        "did a queue.get() keep running after your timeout?",
    "returns [batch], a list of lists": "returned a list of lists",
    "an async generator (yield batch)": "is an async generator (it uses `yield`)",
    "time.sleep(max_wait_s), then drains the queue":
        "time.sleep blocks the event loop",
    "spins on get_nowait and asyncio.sleep(0)":
        "awaits only asyncio.sleep(0), which lets no time pass",
    "reuses one module-level list": "returned the very same list object twice",
    "a plain def that takes what is queued": "make it an `async def`",
    "marks task_done and awaits queue.join() before returning":
        "it was waiting in queue.join()",
    "pauses 0.04 ms after a full batch (late by less than 0.1 ms)":
        "0.04 ms late",
}

RIGHT = [
    # at max_wait_s = 0 both one item and every item already waiting are right (Python 3.11's
    # wait_for(queue.get(), 0) times out even with an item waiting; 3.12 returns it)
    ("06.collect_batch", "checks the deadline before taking queued items (one item at max_wait_s 0)", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except asyncio.TimeoutError:
            break
    return batch
'''),
    ("06.collect_batch", "wait_for on the time left, nothing taken without waiting", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        try:
            batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
        except asyncio.TimeoutError:
            break
    return batch
'''),
    ("06.collect_batch", "asyncio.timeout around the filling loop", '''
async def collect_batch(queue, max_batch, max_wait_s):
    batch = [await queue.get()]
    try:
        async with asyncio.timeout(max_wait_s):
            while len(batch) < max_batch:
                batch.append(await queue.get())
    except TimeoutError:
        pass
    return batch
'''),
    ("06.collect_batch", "takes what is queued first, then waits on a task", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_event_loop()
    first = await queue.get()
    deadline = loop.time() + max_wait_s
    batch = [first]
    while len(batch) < max_batch:
        if not queue.empty():
            batch.append(queue.get_nowait())
            continue
        left = deadline - loop.time()
        if left <= 0:
            break
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({getter}, timeout=left)
        if not done:
            getter.cancel()
            try:
                await getter
            except asyncio.CancelledError:
                pass
            else:
                batch.append(getter.result())
            break
        batch.append(getter.result())
    return tuple(batch)
'''),
    ("06.collect_batch", "asyncio.timeout_at with a for loop", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    try:
        async with asyncio.timeout_at(loop.time() + max_wait_s):
            for _ in range(max_batch - 1):
                batch.append(await queue.get())
    except asyncio.TimeoutError:
        pass
    return batch
'''),
]

_BODY = '''
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        if not queue.empty():
            batch.append(queue.get_nowait())
            continue
        try:
            batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
        except asyncio.TimeoutError:
            break
    return batch
'''

RIGHT += [
    ("06.collect_batch", "an async def behind a functools.wraps decorator", '''
import functools

def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper

@logged
async def collect_batch(queue, max_batch, max_wait_s):''' + _BODY),
    ("06.collect_batch", "a plain def that returns a coroutine", '''
async def _collect(queue, max_batch, max_wait_s):''' + _BODY + '''
def collect_batch(queue, max_batch, max_wait_s):
    return _collect(queue, max_batch, max_wait_s)
'''),
    ("06.collect_batch", "an object with an async __call__", '''
class _Collector:
    async def __call__(self, queue, max_batch, max_wait_s):''' + _BODY.replace("\n    ", "\n        ") + '''
collect_batch = _Collector()
'''),
    ("06.collect_batch", "a functools.partial with a keyword default", '''
import functools

async def _collect(queue, max_batch, max_wait_s, *, clock_name="time"):''' + _BODY + '''
collect_batch = functools.partial(_collect, clock_name="time")
'''),
]

BLOCKING = [
    # (exercise id, short name, source, fragment of the message)
    ("06.collect_batch", "busy-waits on loop.time() without awaiting", '''
async def collect_batch(queue, max_batch, max_wait_s):
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch and loop.time() < deadline:
        if not queue.empty():
            batch.append(queue.get_nowait())
    return batch
''', "blocked the event loop"),
    ("06.collect_batch", "time.sleep(100)", '''
async def collect_batch(queue, max_batch, max_wait_s):
    batch = [await queue.get()]
    time.sleep(100)
    return batch
''', "blocked the event loop"),
]
