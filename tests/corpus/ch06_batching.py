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
}

RIGHT = [
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
