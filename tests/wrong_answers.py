"""Answers a learner writes, and what each check must say to them.

WRONG: known-wrong answers; every check must reject each of them, and `WHY[name]` is a fragment
its message must contain (so a check cannot reject an answer for an unrelated, false reason).
RIGHT: unusual right answers; every check must accept them.
BLOCKING: answers that never return or block the event loop; the check must come back after
its limit with `fragment` in its message (tested with short limits).
Each entry holds the source code defining the learner's function, so the notebook tests can
inject it into an exercise cell too. The first WRONG entry of each exercise is the one the
notebook tests use.
"""

WRONG = [
    # Exercise 1 · fetch_user -------------------------------------------------------------
    ("01.fetch_user", "returns the response object (the source tutorial's bug)", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
        return resp
'''),
    ("01.fetch_user", "no timeout", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}") as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "a constant timeout instead of timeout_s", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=1.5)) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "raises on 404", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "swallows 5xx as 'no user'", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
        if resp.status != 200:
            return None
        return await resp.json()
'''),
    ("01.fetch_user", "a hard-coded short timeout", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=0.1)) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "wait_for with a constant instead of timeout_s", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async def get():
        async with session.get(f"{base_url}/users/{user_id}") as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return await resp.json()
    return await asyncio.wait_for(get(), 0.5)
'''),
    ("01.fetch_user", "last parameter named timeout", '''
async def fetch_user(session, base_url, user_id, timeout):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "a custom exception on 503", '''
class ServerError(Exception):
    pass

async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
        if resp.status == 404:
            return None
        if resp.status >= 500:
            raise ServerError("the server is down")
        return await resp.json()
'''),
    ("01.fetch_user", "a blocking requests.get in a plain def", '''
import requests

def fetch_user(session, base_url, user_id, timeout_s):
    resp = requests.get(f"{base_url}/users/{user_id}")
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    return resp.json()
'''),
    ("01.fetch_user", "timeout twice timeout_s", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout_s * 2)) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "timeout_s plus 0.15 s", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout_s + 0.15)) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "at least 0.3 s", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=max(timeout_s, 0.3))) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "at most 0.5 s", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=min(timeout_s, 0.5))) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "half of timeout_s", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout_s / 2)) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return await resp.json()
'''),
    ("01.fetch_user", "retries once after a timeout", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    for attempt in range(2):
        try:
            async with session.get(f"{base_url}/users/{user_id}",
                                   timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if resp.status == 404:
                    return None
                resp.raise_for_status()
                return await resp.json()
        except asyncio.TimeoutError:
            if attempt == 1:
                raise
'''),
    ("01.fetch_user", "its own ClientSession", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with aiohttp.ClientSession() as own:
        async with own.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return await resp.json()
'''),
    ("01.fetch_user", "catches the timeout and returns None", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    try:
        async with session.get(f"{base_url}/users/{user_id}",
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return await resp.json()
    except asyncio.TimeoutError:
        print("timed out")
        return None
'''),
    ("01.fetch_user", "returns resp.json() without await", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with session.get(f"{base_url}/users/{user_id}",
                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return resp.json()
'''),
    # Exercise 2 · load_page --------------------------------------------------------------
    ("01.load_page", "one call after another", '''
async def load_page(fetch, user_ids):
    return [await fetch(uid) for uid in user_ids]
'''),
    ("01.load_page", "results in finishing order", '''
async def load_page(fetch, user_ids):
    return [await done for done in asyncio.as_completed([fetch(uid) for uid in user_ids])]
'''),
    ("01.load_page", "coroutines never awaited", '''
async def load_page(fetch, user_ids):
    return [fetch(uid) for uid in user_ids]
'''),
    ("01.load_page", "at most two calls at a time (semaphore)", '''
async def load_page(fetch, user_ids):
    limit = asyncio.Semaphore(2)

    async def one(uid):
        async with limit:
            return await fetch(uid)
    return await asyncio.gather(*(one(uid) for uid in user_ids))
'''),
    ("01.load_page", "returns asyncio.gather without await", '''
async def load_page(fetch, user_ids):
    return asyncio.gather(*(fetch(uid) for uid in user_ids))
'''),
    # Exercise 3 · p_slow_page ------------------------------------------------------------
    ("01.p_slow_page", "adds the probabilities", '''
def p_slow_page(p, n):
    return p * n
'''),
    ("01.p_slow_page", "all calls slow", '''
def p_slow_page(p, n):
    return p ** n
'''),
    ("01.p_slow_page", "the share of fast pages", '''
def p_slow_page(p, n):
    return (1 - p) ** n
'''),
    ("01.p_slow_page", "a percentage instead of a fraction", '''
def p_slow_page(p, n):
    return 100 * (1 - (1 - p) ** n)
'''),
    ("01.p_slow_page", "parameters in the other order", '''
def p_slow_page(n, p):
    return 1 - (1 - p) ** n
'''),
    ("01.p_slow_page", "p and n swapped in the formula", '''
def p_slow_page(p, n):
    return 1 - (1 - n) ** p
'''),
    ("01.p_slow_page", "1 - p ** n", '''
def p_slow_page(p, n):
    return 1 - p ** n
'''),
    # Chapter 2 · handle_ticket ---------------------------------------------------------------
    ("02.handle_ticket", "nack(requeue=True) on every failure (the source tutorial's loop)", '''
async def handle_ticket(message, cook):
    try:
        await cook(message.body)
        await message.ack()
    except Exception:
        await message.nack(requeue=True)
'''),
    ("02.handle_ticket", "acks before cooking", '''
async def handle_ticket(message, cook):
    await message.ack()
    await cook(message.body)
'''),
    ("02.handle_ticket", "dead-letters at the first failure", '''
async def handle_ticket(message, cook):
    try:
        await cook(message.body)
    except Exception:
        await message.reject(requeue=False)
        return
    await message.ack()
'''),
    ("02.handle_ticket", "never settles when cook fails", '''
async def handle_ticket(message, cook):
    await cook(message.body)
    await message.ack()
'''),
    ("02.handle_ticket", "settles twice (ack in finally)", '''
async def handle_ticket(message, cook):
    try:
        await cook(message.body)
    except Exception:
        await message.nack(requeue=not message.redelivered)
    finally:
        await message.ack()
'''),
    ("02.handle_ticket", "acks without cooking", '''
async def handle_ticket(message, cook):
    await message.ack()
'''),
    ("02.handle_ticket", "cooks again at once when cook fails", '''
async def handle_ticket(message, cook):
    try:
        await cook(message.body)
    except Exception:
        try:
            await cook(message.body)          # one more try, right here
        except Exception:
            if message.redelivered:
                await message.reject(requeue=False)
            else:
                await message.nack(requeue=True)
            return
    await message.ack()
'''),
    ("02.handle_ticket", "calls cook without await", '''
async def handle_ticket(message, cook):
    try:
        cook(message.body)
    except Exception:
        await message.nack(requeue=not message.redelivered)
        return
    await message.ack()
'''),
    ("02.handle_ticket", "message.process() (requeue=False: dead-letters at the first failure)", '''
async def handle_ticket(message, cook):
    async with message.process():
        await cook(message.body)
'''),
    ("02.handle_ticket", "message.process(requeue=True) (the poison loop)", '''
async def handle_ticket(message, cook):
    async with message.process(requeue=True):
        await cook(message.body)
'''),
    # Chapter 2 · charge_once -----------------------------------------------------------------
    ("02.charge_once", "no deduplication (charges again after a crash)", '''
async def charge_once(message, charge, seen):
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)
        return
    await message.ack()
'''),
    ("02.charge_once", "deduplicates by body", '''
async def charge_once(message, charge, seen):
    if message.body in seen:
        await message.ack()
        return
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)
        return
    seen.add(message.body)
    await message.ack()
'''),
    ("02.charge_once", "adds the id to seen before charging", '''
async def charge_once(message, charge, seen):
    if message.message_id in seen:
        await message.ack()
        return
    seen.add(message.message_id)
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)
        return
    await message.ack()
'''),
    ("02.charge_once", "does not ack a duplicate", '''
async def charge_once(message, charge, seen):
    if message.message_id in seen:
        return
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)
        return
    seen.add(message.message_id)
    await message.ack()
'''),
    ("02.charge_once", "a global set instead of the given store", '''
CHARGED = set()

async def charge_once(message, charge, seen):
    if message.message_id in CHARGED:
        await message.ack()
        return
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)
        return
    CHARGED.add(message.message_id)
    await message.ack()
'''),
    ("02.charge_once", "remembers the id only after the ack", '''
async def charge_once(message, charge, seen):
    if message.message_id in seen:
        await message.ack()
        return
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)
        return
    await message.ack()
    seen.add(message.message_id)
'''),
    ("02.charge_once", "lets a failed charge escape unsettled", '''
async def charge_once(message, charge, seen):
    if message.message_id in seen:
        await message.ack()
        return
    await charge(message.body)
    seen.add(message.message_id)
    await message.ack()
'''),
    ("02.charge_once", "rejects a duplicate (a paid order to the dead-letter queue)", '''
async def charge_once(message, charge, seen):
    if message.message_id in seen:
        await message.reject(requeue=False)
        return
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)
        return
    seen.add(message.message_id)
    await message.ack()
'''),
    ("02.charge_once", "retries charge in a loop inside one delivery", '''
async def charge_once(message, charge, seen):
    if message.message_id in seen:
        await message.ack()
        return
    for attempt in range(3):
        try:
            await charge(message.body)
            break
        except Exception:
            if attempt == 2:
                await message.nack(requeue=True)
                return
    seen.add(message.message_id)
    await message.ack()
'''),
    ("02.charge_once", "seen.append instead of seen.add", '''
async def charge_once(message, charge, seen):
    if message.message_id in seen:
        await message.ack()
        return
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)
        return
    seen.append(message.message_id)
    await message.ack()
'''),
    ("02.charge_once", "seen[id] = True (seen used as a dict)", '''
async def charge_once(message, charge, seen):
    if message.message_id in seen:
        await message.ack()
        return
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)
        return
    seen[message.message_id] = True
    await message.ack()
'''),
    # Chapter 2 · publish_event ---------------------------------------------------------------
    ("02.publish_event", "the source tutorial's lock held across await queue.put", '''
lock = asyncio.Lock()

async def publish_event(subscribers, event):
    async with lock:
        dropped = 0
        for queue in subscribers.values():
            try:
                await queue.put(event)
            except asyncio.QueueFull:
                dropped += 1
        return dropped
'''),
    ("02.publish_event", "put_nowait without catching QueueFull", '''
def publish_event(subscribers, event):
    for queue in subscribers.values():
        queue.put_nowait(event)
    return 0
'''),
    ("02.publish_event", "drops the newest event", '''
def publish_event(subscribers, event):
    dropped = 0
    for queue in subscribers.values():
        if queue.full():
            dropped += 1
            continue
        queue.put_nowait(event)
    return dropped
'''),
    ("02.publish_event", "stops at the first full queue", '''
def publish_event(subscribers, event):
    dropped = 0
    for queue in subscribers.values():
        if queue.full():
            queue.get_nowait()
            dropped += 1
            queue.put_nowait(event)
            break
        queue.put_nowait(event)
    return dropped
'''),
    ("02.publish_event", "returns how many subscribers got it", '''
def publish_event(subscribers, event):
    delivered = 0
    for queue in subscribers.values():
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(event)
        delivered += 1
    return delivered
'''),
    ("02.publish_event", "always returns 0", '''
def publish_event(subscribers, event):
    for queue in subscribers.values():
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(event)
    return 0
'''),
    ("02.publish_event", "only the first subscriber", '''
def publish_event(subscribers, event):
    for queue in subscribers.values():
        dropped = 0
        if queue.full():
            queue.get_nowait()
            dropped = 1
        queue.put_nowait(event)
        return dropped
'''),
    ("02.publish_event", "writes the subscriber's name into the event", '''
def publish_event(subscribers, event):
    dropped = 0
    for name, queue in subscribers.items():
        event["to"] = name
        if queue.full():
            queue.get_nowait()
            dropped += 1
        queue.put_nowait(event)
    return dropped
'''),
    ("02.publish_event", "drops when one short of full (off by one)", '''
def publish_event(subscribers, event):
    dropped = 0
    for queue in subscribers.values():
        if queue.qsize() >= queue.maxsize - 1:
            queue.get_nowait()
            dropped += 1
        queue.put_nowait(event)
    return dropped
'''),
    # Exercise 1 · full_jitter (chapter 5) --------------------------------------------------
    ("05.full_jitter", "the source tutorial's ±10 % jitter", '''
def full_jitter(attempt, base_s, cap_s, rng):
    delay = min(cap_s, base_s * 2 ** attempt)
    return delay + rng.uniform(-0.1 * delay, 0.1 * delay)
'''),
    ("05.full_jitter", "no jitter at all", '''
def full_jitter(attempt, base_s, cap_s, rng):
    return min(cap_s, base_s * 2 ** attempt)
'''),
    ("05.full_jitter", "equal jitter", '''
def full_jitter(attempt, base_s, cap_s, rng):
    temp = min(cap_s, base_s * 2 ** attempt)
    return temp / 2 + rng.uniform(0, temp / 2)
'''),
    ("05.full_jitter", "caps after drawing", '''
def full_jitter(attempt, base_s, cap_s, rng):
    return min(cap_s, rng.uniform(0, base_s * 2 ** attempt))
'''),
    ("05.full_jitter", "draws from the global random module", '''
def full_jitter(attempt, base_s, cap_s, rng):
    return random.uniform(0, min(cap_s, base_s * 2 ** attempt))
'''),
    ("05.full_jitter", "first retry already doubled", '''
def full_jitter(attempt, base_s, cap_s, rng):
    return rng.uniform(0, min(cap_s, base_s * 2 ** (attempt + 1)))
'''),
    ("05.full_jitter", "counts the first retry as attempt 0 (ceiling halved)", '''
def full_jitter(attempt, base_s, cap_s, rng):
    return rng.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))
'''),
    ("05.full_jitter", "a new generator seeded with the attempt", '''
def full_jitter(attempt, base_s, cap_s, rng):
    return random.Random(attempt).uniform(0, min(cap_s, base_s * 2 ** attempt))
'''),
    # Exercise 2 · half_open_decision ---------------------------------------------------------
    ("05.half_open_decision", "unlimited trial calls in half-open", '''
def half_open_decision(admitted, results, permitted, threshold_pct):
    if len(results) >= permitted:
        return "open" if 100 * results.count(False) / len(results) >= threshold_pct else "closed"
    return "admit"
'''),
    ("05.half_open_decision", "closes on the first success", '''
def half_open_decision(admitted, results, permitted, threshold_pct):
    if True in results:
        return "closed"
    if len(results) >= permitted:
        return "open"
    return "admit" if admitted < permitted else "reject"
'''),
    ("05.half_open_decision", "never opens again", '''
def half_open_decision(admitted, results, permitted, threshold_pct):
    if len(results) >= permitted:
        return "closed"
    return "admit" if admitted < permitted else "reject"
'''),
    ("05.half_open_decision", "compares a fraction with a percent", '''
def half_open_decision(admitted, results, permitted, threshold_pct):
    if len(results) >= permitted:
        return "open" if results.count(False) / len(results) >= threshold_pct else "closed"
    return "admit" if admitted < permitted else "reject"
'''),
    ("05.half_open_decision", "opens only above the threshold", '''
def half_open_decision(admitted, results, permitted, threshold_pct):
    if len(results) >= permitted:
        return "open" if 100 * results.count(False) / len(results) > threshold_pct else "closed"
    return "admit" if admitted < permitted else "reject"
'''),
    ("05.half_open_decision", "opens on the first failure", '''
def half_open_decision(admitted, results, permitted, threshold_pct):
    if False in results:
        return "open"
    if len(results) >= permitted:
        return "closed"
    return "admit" if admitted < permitted else "reject"
'''),
    # Exercise 3 · payment_policy -----------------------------------------------------------
    ("05.payment_policy", "no retries", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=1,
                 attempt_timeout_s=0.25)
'''),
    ("05.payment_policy", "POST without an idempotency key (never retried)", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", max_attempts=4, attempt_timeout_s=0.25,
                 backoff=FullJitter(base=0.05, cap=1.0), budget=budget)
'''),
    ("05.payment_policy", "POST marked idempotent without a key (charges twice)", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotent=True, max_attempts=4, attempt_timeout_s=0.25,
                 backoff=FullJitter(base=0.05, cap=1.0), budget=budget)
'''),
    ("05.payment_policy", "immediate retries", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=4,
                 attempt_timeout_s=0.25, backoff=NoBackoff(), budget=budget)
'''),
    ("05.payment_policy", "unbounded retries, no budget", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=10,
                 max_total_s=60, attempt_timeout_s=0.25, backoff=FullJitter(base=0.05, cap=1.0))
'''),
    ("05.payment_policy", "no per-attempt timeout", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=4,
                 backoff=FullJitter(base=0.05, cap=1.0), budget=budget)
'''),
    ("05.payment_policy", "the same idempotency key for every payment", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key="checkout", max_attempts=4,
                 attempt_timeout_s=0.25, max_total_s=1.0,
                 backoff=FullJitter(base=0.05, cap=1.0), budget=budget)
'''),
    ("05.payment_policy", "every attempt times out (20 ms)", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=4,
                 attempt_timeout_s=0.02, max_total_s=1.0,
                 backoff=FullJitter(base=0.05, cap=1.0), budget=budget)
'''),
    ("05.payment_policy", "backoff in milliseconds", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=4,
                 attempt_timeout_s=0.25, max_total_s=1.0,
                 backoff=FullJitter(base=50, cap=1000), budget=budget)
'''),
    ("05.payment_policy", "attempt timeout in milliseconds", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=4,
                 attempt_timeout_s=250, max_total_s=1.0,
                 backoff=FullJitter(base=0.05, cap=1.0), budget=budget)
'''),
    ("05.payment_policy", "backoff too long for max_total_s", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=4,
                 attempt_timeout_s=0.25, max_total_s=1.0,
                 backoff=FullJitter(base=0.3, cap=1.0), budget=budget)
'''),
    ("05.payment_policy", "its own small budget", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=4,
                 attempt_timeout_s=0.25, max_total_s=1.0,
                 backoff=FullJitter(base=0.05, cap=1.0),
                 budget=RetryBudget(max_tokens=5, token_ratio=0.1))
'''),
    ("05.payment_policy", "GET instead of POST", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="GET", idempotency_key=idempotency_key, max_attempts=4,
                 attempt_timeout_s=0.25, max_total_s=1.0,
                 backoff=FullJitter(base=0.05, cap=1.0), budget=budget)
'''),
]

#: A fragment the check's message must contain for each WRONG answer (by its short name).
WHY = {
    # chapter 1
    "returns the response object (the source tutorial's bug)": "returned the response object",
    "no timeout": "did not give up after timeout_s",
    "a constant timeout instead of timeout_s": "did not give up after timeout_s",
    "raises on 404": "does not exist (404)",
    "swallows 5xx as 'no user'": "an error must not look like a result",
    "a hard-coded short timeout": "gave up before timeout_s",
    "wait_for with a constant instead of timeout_s": "with timeout_s=",
    "last parameter named timeout": "must be named `timeout_s`",
    "a custom exception on 503": "when the service answered 503 your `fetch_user` raised ServerError",
    "a blocking requests.get in a plain def": "blocked the event loop",
    "one call after another": "one call at a time",
    "results in finishing order": "in the order they finished",
    "coroutines never awaited": "never awaited",
    "at most two calls at a time (semaphore)": "at most 2 calls at a time",
    "adds the probabilities": "p * n",
    "all calls slow": "p ** n",
    "the share of fast pages": "the chance that the page is fast",
    "a percentage instead of a fraction": "looks like a percentage",
    # chapter 2
    "acks before cooking": "the ticket is gone",
    "nack(requeue=True) on every failure (the source tutorial's loop)": "would come back forever",
    "dead-letters at the first failure": "Requeue it the first time",
    "never settles when cook fails": "neither acked, nacked nor rejected",
    "settles twice (ack in finally)": "exactly one of ack, nack or reject",
    "acks without cooking": "without calling cook",
    "cooks again at once when cook fails": "times for one delivery",
    "calls cook without await": "without `await`",
    "no deduplication (charges again after a crash)": "charged it again",
    "deduplicates by body": "you keep bodies in `seen`",
    "adds the id to seen before charging": "Add the id only after charge succeeded",
    "does not ack a duplicate": "Ack a duplicate",
    "a global set instead of the given store": "did not use the `seen` store",
    "remembers the id only after the ack": "charged it again",
    "lets a failed charge escape unsettled": "nack(requeue=True)` so it is tried again",
    "the source tutorial's lock held across await queue.put": "must not wait",
    "put_nowait without catching QueueFull": "raised QueueFull",
    "drops the newest event": "you dropped the newest event",
    "stops at the first full queue": "stopped at the first full queue",
    "returns how many subscribers got it": "the number of subscribers that got it",
    "always returns 0": "returned 0",
    "only the first subscriber": "only the first subscriber",
    "writes the subscriber's name into the event": "changed the event",
    "message.process() (requeue=False: dead-letters at the first failure)":
        "Requeue it the first time",
    "message.process(requeue=True) (the poison loop)": "would come back forever",
    "rejects a duplicate (a paid order to the dead-letter queue)":
        "moved a paid order to the dead-letter queue",
    "retries charge in a loop inside one delivery": "Retry through the broker instead",
    "seen.append instead of seen.add": "used `seen.append`, but seen supports `id in seen` and "
                                       "`seen.add(id)`",
    "seen[id] = True (seen used as a dict)": "seen supports `id in seen` and `seen.add(id)`",
    "drops when one short of full (off by one)": "only when the queue is full",
    # chapter 5
    "the source tutorial's ±10 % jitter": "±10 % jitter",
    "no jitter at all": "every time",
    "equal jitter": "equal jitter",
    "caps after drawing": "capped after drawing",
    "draws from the global random module": "same seed gave different waits",
    "first retry already doubled": "above the ceiling",
    "counts the first retry as attempt 0 (ceiling halved)": "the first retry is attempt=1",
    "unlimited trial calls in half-open": "permits are in use",
    "closes on the first success": "closing on the first success",
    "never opens again": "must open again",
    "compares a fraction with a percent": "is a percent",
    "opens only above the threshold": "At exactly the threshold",
    "opens on the first failure": "could still",
    "no retries": "no retries",
    "POST without an idempotency key (never retried)": "never retried",
    "POST marked idempotent without a key (charges twice)": "charged twice.",
    "immediate retries": "same 20-ms burst",
    "unbounded retries, no budget": "during the outage",
    "no per-attempt timeout": "p99 latency",
    "the same idempotency key for every payment": "charged 0 times",
    "timeout twice timeout_s": "with timeout_s=",
    "timeout_s plus 0.15 s": "with timeout_s=",
    "at least 0.3 s": "with timeout_s=",
    "at most 0.5 s": "with timeout_s=",
    "half of timeout_s": "gave up before timeout_s",
    "retries once after a timeout": "with timeout_s=",
    "its own ClientSession": "its own aiohttp.ClientSession()",
    "catches the timeout and returns None": "caught the TimeoutError and returned None",
    "returns resp.json() without await": "you returned a coroutine: add `await`",
    "returns asyncio.gather without await": "add `await`",
    "parameters in the other order": "your parameters are in the other order",
    "p and n swapped in the formula": "p and n swapped",
    "1 - p ** n": "p ** n",
    "a new generator seeded with the attempt": "the same value every time",
    "every attempt times out (20 ms)": "every attempt timed out",
    "backoff in milliseconds": "seconds, not milliseconds",
    "attempt timeout in milliseconds": "max_total_s",
    "backoff too long for max_total_s": "backoff",
    "its own small budget": "not one of your own",
    "GET instead of POST": "method='POST'",
}

RIGHT = [
    # Exercise 1 · fetch_user ---------------------------------------------------------------
    ("01.fetch_user", "asyncio.timeout instead of ClientTimeout", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async with asyncio.timeout(timeout_s):
        async with session.get(f"{base_url}/users/{user_id}") as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return await resp.json()
'''),
    ("01.fetch_user", "asyncio.wait_for with timeout_s", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    async def get():
        async with session.get(f"{base_url}/users/{user_id}") as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return await resp.json()
    return await asyncio.wait_for(get(), timeout=timeout_s)
'''),
    ("01.fetch_user", "raises ClientResponseError by hand, timeout_s has a default", '''
async def fetch_user(session, base_url, user_id, timeout_s=5.0):
    url = base_url + "/users/" + str(user_id)
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
        if resp.status == 404:
            return None
        if resp.status >= 400:
            raise aiohttp.ClientResponseError(resp.request_info, resp.history,
                                              status=resp.status, message=resp.reason)
        data = await resp.json()
    return data
'''),
    # Exercise 2 · load_page ----------------------------------------------------------------
    ("01.load_page", "asyncio.TaskGroup", '''
async def load_page(fetch, user_ids):
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(fetch(uid)) for uid in user_ids]
    return [t.result() for t in tasks]
'''),
    ("01.load_page", "create every task, then await each", '''
async def load_page(fetch, user_ids):
    tasks = [asyncio.create_task(fetch(uid)) for uid in user_ids]
    results = []
    for task in tasks:
        results.append(await task)
    return results
'''),
    # Exercise 3 · p_slow_page --------------------------------------------------------------
    ("01.p_slow_page", "math.pow", '''
import math

def p_slow_page(p, n):
    return 1 - math.pow(1 - p, n)
'''),
    ("01.p_slow_page", "1 - a product in a loop", '''
def p_slow_page(p, n):
    all_fast = 1.0
    for _ in range(n):
        all_fast *= 1 - p
    return 1 - all_fast
'''),
    ("01.p_slow_page", "1 - math.prod", '''
import math

def p_slow_page(p, n):
    return 1 - math.prod([1 - p] * n)
'''),
    ("01.p_slow_page", "a Fraction", '''
from fractions import Fraction

def p_slow_page(p, n):
    return 1 - (1 - Fraction(p)) ** n
'''),
    ("01.p_slow_page", "a Decimal", '''
from decimal import Decimal

def p_slow_page(p, n):
    return 1 - (1 - Decimal(p)) ** n
'''),
    ("01.p_slow_page", "a numpy float32", '''
import numpy as np

def p_slow_page(p, n):
    return 1 - np.float32(1 - p) ** n
'''),
    ("01.fetch_user", "a plain def returning the coroutine", '''
def fetch_user(session, base_url, user_id, timeout_s):
    async def get():
        async with session.get(f"{base_url}/users/{user_id}",
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return await resp.json()
    return get()
'''),
    ("01.load_page", "a plain def returning gather", '''
def load_page(fetch, user_ids):
    return asyncio.gather(*(fetch(uid) for uid in user_ids))
'''),
    # Chapter 2 -------------------------------------------------------------------------------
    ("02.handle_ticket", "try/except/else, nack(requeue=False) to dead-letter", '''
async def handle_ticket(message, cook):
    try:
        await cook(message.body)
    except Exception:
        await message.nack(requeue=not message.redelivered)
    else:
        await message.ack()
'''),
    ("02.handle_ticket", "reject with requeue, then re-raise", '''
async def handle_ticket(message, cook):
    try:
        await cook(message.body)
    except Exception:
        await message.reject(requeue=not message.redelivered)
        raise
    await message.ack()
'''),
    ("02.handle_ticket", "a flag and finally", '''
async def handle_ticket(message, cook):
    cooked = False
    try:
        await cook(message.body)
        cooked = True
    finally:
        if cooked:
            await message.ack()
        elif message.redelivered:
            await message.nack(requeue=False)
        else:
            await message.nack(requeue=True)
'''),
    ("02.handle_ticket", "message.process(requeue=not message.redelivered)", '''
async def handle_ticket(message, cook):
    async with message.process(requeue=not message.redelivered):
        await cook(message.body)
'''),
    ("02.handle_ticket", "message.process(requeue=True, reject_on_redelivered=True)", '''
async def handle_ticket(message, cook):
    async with message.process(requeue=True, reject_on_redelivered=True):
        await cook(message.body)
'''),
    ("02.handle_ticket", "message.process inside try, the error swallowed", '''
async def handle_ticket(message, cook):
    try:
        async with message.process(requeue=not message.redelivered):
            await cook(message.body)
    except Exception as err:
        print("ticket failed:", err)
'''),
    ("02.charge_once", "one ack for both paths, re-raises a failed charge", '''
async def charge_once(message, charge, seen):
    key = message.message_id
    if key not in seen:
        try:
            await charge(message.body)
        except Exception:
            await message.nack(requeue=True)
            raise
        seen.add(key)
    await message.ack()
'''),
    ("02.charge_once", "message.process(requeue=True) around charge and seen.add", '''
async def charge_once(message, charge, seen):
    if message.message_id in seen:
        await message.ack()
        return
    async with message.process(requeue=True):
        await charge(message.body)
        seen.add(message.message_id)
'''),
    ("02.publish_event", "a while loop drops until there is room", '''
def publish_event(subscribers, event):
    dropped = 0
    for queue in subscribers.values():
        while queue.full():
            queue.get_nowait()
            dropped += 1
        queue.put_nowait(event)
    return dropped
'''),
    ("02.publish_event", "try put_nowait, on QueueFull drop the oldest", '''
def publish_event(subscribers, event):
    dropped = 0
    for name, queue in subscribers.items():
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            queue.get_nowait()
            dropped += 1
            queue.put_nowait(event)
    return dropped
'''),
    ("02.publish_event", "a copy of the event per subscriber", '''
def publish_event(subscribers, event):
    dropped = 0
    for queue in subscribers.values():
        if queue.full():
            queue.get_nowait()
            dropped += 1
        queue.put_nowait(dict(event))
    return dropped
'''),
    # Chapter 5 -------------------------------------------------------------------------------
    ("05.full_jitter", "scales rng.random() by the capped ceiling", '''
def full_jitter(attempt, base_s, cap_s, rng):
    ceiling = base_s * 2 ** attempt
    if ceiling > cap_s:
        ceiling = cap_s
    return ceiling * rng.random()
'''),
    ("05.half_open_decision", "opens early once the outstanding trials cannot save it", '''
def half_open_decision(admitted, results, permitted, threshold_pct):
    failures = results.count(False)
    if 100 * failures / permitted >= threshold_pct:
        return "open"
    if len(results) >= permitted:
        return "open" if 100 * failures / len(results) >= threshold_pct else "closed"
    return "admit" if admitted < permitted else "reject"
'''),
    ("05.half_open_decision", "closes early once the outstanding trials cannot fail it", '''
def half_open_decision(admitted, results, permitted, threshold_pct):
    failures = results.count(False)
    worst = failures + permitted - len(results)
    if 100 * worst / permitted < threshold_pct:
        return "closed"
    if len(results) >= permitted:
        return "open" if 100 * failures / len(results) >= threshold_pct else "closed"
    return "admit" if admitted < permitted else "reject"
'''),
    ("05.payment_policy", "five shorter attempts", '''
def payment_policy(idempotency_key, budget):
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=5,
                 attempt_timeout_s=0.2, max_total_s=1.0,
                 backoff=FullJitter(base=0.04, cap=0.5), budget=budget)
'''),
]

BLOCKING = [
    # (exercise id, short name, source, fragment of the message)
    ("01.p_slow_page", "sleeps for 100 s", '''
import time

def p_slow_page(p, n):
    time.sleep(100)
    return 1 - (1 - p) ** n
''', "did not return within"),
    ("01.p_slow_page", "loops forever", '''
def p_slow_page(p, n):
    while True:
        pass
''', "did not return within"),
    ("05.half_open_decision", "loops forever", '''
def half_open_decision(admitted, results, permitted, threshold_pct):
    while len(results) < permitted:
        pass
    return "closed"
''', "did not return within"),
    ("05.payment_policy", "sleeps for 100 s", '''
import time

def payment_policy(idempotency_key, budget):
    time.sleep(100)
''', "did not return within"),
    ("01.load_page", "time.sleep in an async def", '''
import time

async def load_page(fetch, user_ids):
    time.sleep(100)
    return [await fetch(uid) for uid in user_ids]
''', "blocked the event loop"),
    ("01.fetch_user", "a loop that never awaits", '''
async def fetch_user(session, base_url, user_id, timeout_s):
    while True:
        pass
''', "blocked the event loop"),
    ("01.fetch_user", "requests.get without a timeout in an async def", '''
import requests

async def fetch_user(session, base_url, user_id, timeout_s):
    resp = requests.get(f"{base_url}/users/{user_id}")
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    return resp.json()
''', "blocked the event loop"),
    ("02.publish_event", "waits in a loop for room", '''
def publish_event(subscribers, event):
    for queue in subscribers.values():
        while queue.full():
            pass                    # nobody can take an event while this runs
        queue.put_nowait(event)
    return 0
''', "did not return within"),
    ("02.handle_ticket", "time.sleep in the handler", '''
import time

async def handle_ticket(message, cook):
    time.sleep(100)
    await cook(message.body)
    await message.ack()
''', "blocked the event loop"),
]


# ---- Chapter 3, exercises 1-2 (03.score_protocol, 03.grpc_code_for): appended by G3 ---------
WRONG += [
    ("03.score_protocol", "key in requirements (the source tutorial's bug)", '''
def score_protocol(requirements, grades):
    score = 0
    for key in grades:
        if key in requirements:
            score += grades[key]
    return score
'''),
    ("03.score_protocol", "adds every grade", '''
def score_protocol(requirements, grades):
    return sum(grades.values())
'''),
    ("03.score_protocol", "grades[key] without a default", '''
def score_protocol(requirements, grades):
    score = 0
    for key, wanted in requirements.items():
        if wanted:
            score += grades[key]
    return score
'''),
    ("03.score_protocol", "counts requirements instead of adding grades", '''
def score_protocol(requirements, grades):
    score = 0
    for key, wanted in requirements.items():
        if wanted and key in grades:
            score += 1
    return score
'''),
    ("03.score_protocol", "return inside the loop", '''
def score_protocol(requirements, grades):
    for key, wanted in requirements.items():
        if wanted:
            return grades.get(key, 0)
    return 0
'''),
    ("03.score_protocol", "removes what it counted", '''
def score_protocol(requirements, grades):
    score = 0
    for key in list(requirements):
        if requirements.pop(key):
            score += grades.get(key, 0)
    return score
'''),
    ("03.score_protocol", "returns the score as a str", '''
def score_protocol(requirements, grades):
    score = sum(grades.get(k, 0) for k, v in requirements.items() if v)
    return f"{score}"
'''),
    ("03.score_protocol", "async def score_protocol", '''
async def score_protocol(requirements, grades):
    return sum(grades.get(k, 0) for k, v in requirements.items() if v)
'''),
    ("03.grpc_code_for", "404 -> NOT_FOUND", '''
def grpc_code_for(http_status):
    table = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "NOT_FOUND", 429: "UNAVAILABLE", 502: "UNAVAILABLE",
             503: "UNAVAILABLE", 504: "UNAVAILABLE"}
    return table.get(http_status, "UNKNOWN")
'''),
    ("03.grpc_code_for", "500 -> INTERNAL", '''
def grpc_code_for(http_status):
    table = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 500: "INTERNAL", 502: "UNAVAILABLE",
             503: "UNAVAILABLE", 504: "UNAVAILABLE"}
    return table.get(http_status, "UNKNOWN")
'''),
    ("03.grpc_code_for", "429 -> RESOURCE_EXHAUSTED", '''
def grpc_code_for(http_status):
    table = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "UNIMPLEMENTED", 429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE",
             503: "UNAVAILABLE", 504: "UNAVAILABLE"}
    return table.get(http_status, "UNKNOWN")
'''),
    ("03.grpc_code_for", "every 5xx -> UNAVAILABLE", '''
def grpc_code_for(http_status):
    table = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "UNIMPLEMENTED", 429: "UNAVAILABLE"}
    if 500 <= http_status <= 599:
        return "UNAVAILABLE"
    return table.get(http_status, "UNKNOWN")
'''),
    ("03.grpc_code_for", "400 -> INVALID_ARGUMENT", '''
def grpc_code_for(http_status):
    table = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 502: "UNAVAILABLE",
             503: "UNAVAILABLE", 504: "UNAVAILABLE"}
    return table.get(http_status, "UNKNOWN")
'''),
    ("03.grpc_code_for", "504 -> DEADLINE_EXCEEDED", '''
def grpc_code_for(http_status):
    table = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 502: "UNAVAILABLE",
             503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
    return table.get(http_status, "UNKNOWN")
'''),
    ("03.grpc_code_for", "returns the code number", '''
def grpc_code_for(http_status):
    table = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}
    return table.get(http_status, 2)
'''),
    ("03.grpc_code_for", "every 4xx -> INTERNAL", '''
def grpc_code_for(http_status):
    if http_status in (429, 502, 503, 504):
        return "UNAVAILABLE"
    if 400 <= http_status < 500:
        return "INTERNAL"
    return "UNKNOWN"
'''),
    ("03.grpc_code_for", "lower-case names", '''
def grpc_code_for(http_status):
    table = {400: "internal", 401: "unauthenticated", 403: "permission_denied",
             404: "unimplemented", 429: "unavailable", 502: "unavailable",
             503: "unavailable", 504: "unavailable"}
    return table.get(http_status, "unknown")
'''),
]

WHY.update({
    "key in requirements (the source tutorial's bug)": "`key in requirements` is True for a key "
                                                       "whose value is False",
    "adds every grade": "you added every grade the protocol has",
    "grades[key] without a default": "raised KeyError",
    "counts requirements instead of adding grades": "you counted the wanted requirements",
    "return inside the loop": "only one requirement was counted",
    "removes what it counted": "score_protocol changed its arguments",
    "returns the score as a str": "return the score as a number",
    "async def score_protocol": "make it a plain `def`",
    "404 -> NOT_FOUND": "the call reached no gRPC method there",
    "500 -> INTERNAL": "500 is not in gRPC's table, so it is UNKNOWN",
    "429 -> RESOURCE_EXHAUSTED": "gRPC maps them all to UNAVAILABLE",
    "every 5xx -> UNAVAILABLE": "only 502, 503 and 504 (and 429) map to UNAVAILABLE",
    "400 -> INVALID_ARGUMENT": "only a gRPC server says INVALID_ARGUMENT",
    "504 -> DEADLINE_EXCEEDED": "DEADLINE_EXCEEDED is the code for the call's own gRPC",
    "returns the code number": "return the code's name as a str",
    "every 4xx -> INTERNAL": "gRPC's documented mapping gives 'UNAUTHENTICATED'",
    "lower-case names": "upper case, no spaces",
})

RIGHT += [
    ("03.score_protocol", "a generator over the grades with .get(key) is True", '''
def score_protocol(requirements, grades):
    return sum(g for key, g in grades.items() if requirements.get(key) is True)
'''),
    ("03.score_protocol", "a float total", '''
def score_protocol(requirements, grades):
    total = 0.0
    for key in requirements:
        if requirements[key] == True:
            total += grades.get(key, 0)
    return total
'''),
    ("03.grpc_code_for", "if/elif chain", '''
def grpc_code_for(http_status):
    if http_status == 400:
        return "INTERNAL"
    elif http_status == 401:
        return "UNAUTHENTICATED"
    elif http_status == 403:
        return "PERMISSION_DENIED"
    elif http_status == 404:
        return "UNIMPLEMENTED"
    elif http_status in (429, 502, 503, 504):
        return "UNAVAILABLE"
    return "UNKNOWN"
'''),
    ("03.grpc_code_for", "match statement", '''
def grpc_code_for(http_status):
    match http_status:
        case 400:
            return "INTERNAL"
        case 401:
            return "UNAUTHENTICATED"
        case 403:
            return "PERMISSION_DENIED"
        case 404:
            return "UNIMPLEMENTED"
        case 429 | 502 | 503 | 504:
            return "UNAVAILABLE"
        case _:
            return "UNKNOWN"
'''),
]

# Chapter 3 · exercise 3 · follow_events (labkit/checks/protocols_push.py) ------------------------
WRONG += [
    ("03.follow_events", "keeps the repeats after a reconnect", '''
def follow_events(events, last_id):
    new = sorted(events, key=lambda e: e["id"])
    return new, (new[-1]["id"] if new else last_id)
'''),
    ("03.follow_events", "skips id < last_id instead of <=", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    fresh = []
    for event in sorted(events, key=lambda e: e["id"]):
        if event["id"] < last_id:
            continue
        fresh.append(event)
    return fresh, (fresh[-1]["id"] if fresh else last_id)
'''),
    ("03.follow_events", "ignores gaps", '''
def follow_events(events, last_id):
    fresh = []
    for event in sorted(events, key=lambda e: e["id"]):
        if event["id"] > last_id:
            fresh.append(event)
            last_id = event["id"]
    return fresh, last_id
'''),
    ("03.follow_events", "checks only the first new id for a gap", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    fresh = []
    for event in sorted(events, key=lambda e: e["id"]):
        if event["id"] > last_id:
            if not fresh and event["id"] != last_id + 1:
                raise EventGap(last_id, event["id"])
            fresh.append(event)
            last_id = event["id"]
    return fresh, last_id
'''),
    ("03.follow_events", "keeps arrival order", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    fresh = []
    for event in events:
        if event["id"] <= last_id:
            continue
        if event["id"] != last_id + 1:
            raise EventGap(last_id, event["id"])
        fresh.append(event)
        last_id = event["id"]
    return fresh, last_id
'''),
    ("03.follow_events", "keeps an id that comes twice in the batch", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    fresh = sorted([e for e in events if e["id"] > last_id], key=lambda e: e["id"])
    if fresh and fresh[0]["id"] != last_id + 1:
        raise EventGap(last_id, fresh[0]["id"])
    return fresh, (fresh[-1]["id"] if fresh else last_id)
'''),
    ("03.follow_events", "sorts the caller's list in place", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    events.sort(key=lambda e: e["id"])
    fresh = []
    for event in events:
        if event["id"] <= last_id:
            continue
        if event["id"] != last_id + 1:
            raise EventGap(last_id, event["id"])
        fresh.append(event)
        last_id = event["id"]
    return fresh, last_id
'''),
    ("03.follow_events", "last_id 0 when nothing is new", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    fresh = []
    for event in sorted(events, key=lambda e: e["id"]):
        if event["id"] <= last_id:
            continue
        if event["id"] != last_id + 1:
            raise EventGap(last_id, event["id"])
        fresh.append(event)
        last_id = event["id"]
    return fresh, (fresh[-1]["id"] if fresh else 0)
'''),
    ("03.follow_events", "raises ValueError for a gap", '''
def follow_events(events, last_id):
    fresh = []
    for event in sorted(events, key=lambda e: e["id"]):
        if event["id"] <= last_id:
            continue
        if event["id"] != last_id + 1:
            raise ValueError("gap")
        fresh.append(event)
        last_id = event["id"]
    return fresh, last_id
'''),
]

WHY.update({
    "keeps the repeats after a reconnect": "kept events you had already seen",
    "skips id < last_id instead of <=": "kept the event with id == last_id",
    "ignores gaps": "returned normally although ids are missing",
    "checks only the first new id for a gap": "the hole is in the middle",
    "keeps arrival order": "not in id order",
    "keeps an id that comes twice in the batch": "twice in one batch",
    "sorts the caller's list in place": "changed the list it was given",
    "last_id 0 when nothing is new": "with nothing new, last_id stays",
    "raises ValueError for a gap": "raise EventGap(last_id, id)",
})

RIGHT += [
    ("03.follow_events", "a dict by id, then a range comparison", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    by_id = {e["id"]: e for e in events if e["id"] > last_id}
    ids = sorted(by_id)
    for want, got in zip(range(last_id + 1, last_id + 1 + len(ids)), ids):
        if got != want:
            raise EventGap(want - 1, got)
    return [by_id[i] for i in ids], (ids[-1] if ids else last_id)
'''),
    ("03.follow_events", "a while loop over a sorted copy, copies of the events", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    pending = sorted(events, key=lambda e: e["id"], reverse=True)
    out = []
    while pending:
        event = pending.pop()
        if event["id"] <= last_id:
            continue
        if event["id"] > last_id + 1:
            raise EventGap(last_id, event["id"])
        out.append(dict(event))
        last_id += 1
    return (out, last_id)
'''),
]

BLOCKING += [
    ("03.follow_events", "waits in a loop for a fuller batch", '''
def follow_events(events, last_id):
    while len(events) < 100:
        pass                        # nothing can add to the list while this runs
    return [e for e in events if e["id"] > last_id], last_id
''', "did not return within"),
]

# ---- Chapter 3 · after a beginner's run (F1): KeyError from `requirements`, numbers that are
# not int/float, a KeyError for one status, the arguments of EventGap ---------------------------
WRONG += [
    ("03.score_protocol", "requirements[key] while looping over the grades", '''
def score_protocol(requirements, grades):
    score = 0
    for key, g in grades.items():
        if requirements[key]:
            score += g
    return score
'''),
    ("03.grpc_code_for", "table[http_status] without a default", '''
def grpc_code_for(http_status):
    table = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 502: "UNAVAILABLE",
             503: "UNAVAILABLE", 504: "UNAVAILABLE"}
    return table[http_status]
'''),
    ("03.follow_events", "EventGap with its arguments swapped", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    fresh = []
    for e in sorted(events, key=lambda e: e["id"]):
        if e["id"] <= last_id:
            continue
        if e["id"] != last_id + 1:
            raise EventGap(e["id"], last_id)
        fresh.append(e)
        last_id = e["id"]
    return fresh, last_id
'''),
    ("03.follow_events", "EventGap(last_id + 1, got)", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    fresh = []
    for e in sorted(events, key=lambda e: e["id"]):
        if e["id"] <= last_id:
            continue
        if e["id"] != last_id + 1:
            raise EventGap(last_id + 1, e["id"])
        fresh.append(e)
        last_id = e["id"]
    return fresh, last_id
'''),
    ("03.follow_events", "EventGap(last_id, the batch's last id)", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    ids = sorted({e["id"] for e in events if e["id"] > last_id})
    if ids and ids != list(range(last_id + 1, last_id + 1 + len(ids))):
        raise EventGap(last_id, ids[-1])
    by_id = {e["id"]: e for e in events}
    return [by_id[i] for i in ids], (ids[-1] if ids else last_id)
'''),
    ("03.follow_events", "EventGap with the last_id it was given", '''
from labkit.protocols.push_client import EventGap

def follow_events(events, last_id):
    fresh = []
    for e in sorted(events, key=lambda e: e["id"]):
        if e["id"] <= (fresh[-1]["id"] if fresh else last_id):
            continue
        if e["id"] != last_id + len(fresh) + 1:
            raise EventGap(last_id, e["id"])
        fresh.append(e)
    return fresh, (fresh[-1]["id"] if fresh else last_id)
'''),
]

WHY.update({
    "requirements[key] while looping over the grades": "is not in `requirements`",
    "table[http_status] without a default": "for HTTP 500 your grpc_code_for raised KeyError",
    "EventGap with its arguments swapped": "the arguments are swapped",
    "EventGap(last_id + 1, got)": "not the first missing id",
    "EventGap(last_id, the batch's last id)": "the id that came instead of",
    "EventGap with the last_id it was given": "update last_id as you keep each event",
})

RIGHT += [
    ("03.score_protocol", "a numpy integer", '''
import numpy as np

def score_protocol(requirements, grades):
    wanted = [grades.get(k, 0) for k, v in requirements.items() if v is True]
    return np.sum(np.array(wanted, dtype=np.int64))
'''),
    ("03.score_protocol", "a Fraction", '''
from fractions import Fraction

def score_protocol(requirements, grades):
    return sum((Fraction(grades.get(k, 0)) for k, v in requirements.items() if v is True),
               Fraction(0))
'''),
]


# ---- Chapter 4 (04.migration_path, 04.to_json_default, 04.choose_format): appended by K4 ------
WRONG += [
    ("04.migration_path", "the source tutorial's walk (first registered migration)", '''
def migration_path(migrations, start, target):
    rules = {}
    for old, new in migrations:
        rules.setdefault(old, {})[new] = True
    path = [start]
    current = start
    while current != target:
        if current not in rules:
            raise ValueError(f"No migration rule from version {current}")
        current = next(iter(rules[current]))
        path.append(current)
    return path
'''),
    ("04.migration_path", "depth-first search (the first path found)", '''
def migration_path(migrations, start, target):
    def search(version, seen):
        if version == target:
            return [version]
        for old, new in migrations:
            if old == version and new not in seen:
                rest = search(new, seen | {new})
                if rest:
                    return [version] + rest
        return None
    path = search(start, {start})
    if path is None:
        raise ValueError(f"no path from {start} to {target}")
    return path
'''),
    ("04.migration_path", "treats migrations as undirected", '''
from collections import deque

def migration_path(migrations, start, target):
    near = {}
    for a, b in migrations:
        near.setdefault(a, []).append(b)
        near.setdefault(b, []).append(a)
    paths, seen = deque([[start]]), {start}
    while paths:
        path = paths.popleft()
        if path[-1] == target:
            return path
        for nxt in near.get(path[-1], []):
            if nxt not in seen:
                seen.add(nxt)
                paths.append(path + [nxt])
    raise ValueError("no path")
'''),
    ("04.migration_path", "leaves out the start version", '''
from collections import deque

def migration_path(migrations, start, target):
    paths, seen = deque([[start]]), {start}
    while paths:
        path = paths.popleft()
        if path[-1] == target:
            return path[1:] or [start]
        for a, b in migrations:
            if a == path[-1] and b not in seen:
                seen.add(b)
                paths.append(path + [b])
    raise ValueError("no path")
'''),
    ("04.migration_path", "stops one step before the target", '''
from collections import deque

def migration_path(migrations, start, target):
    if start == target:
        return [start]
    paths, seen = deque([[start]]), {start}
    while paths:
        path = paths.popleft()
        for a, b in migrations:
            if a == path[-1] and b not in seen:
                if b == target:
                    return path
                seen.add(b)
                paths.append(path + [b])
    raise ValueError("no path")
'''),
    ("04.migration_path", "returns None when there is no path", '''
from collections import deque

def migration_path(migrations, start, target):
    paths, seen = deque([[start]]), {start}
    while paths:
        path = paths.popleft()
        if path[-1] == target:
            return path
        for a, b in migrations:
            if a == path[-1] and b not in seen:
                seen.add(b)
                paths.append(path + [b])
    return None
'''),
    ("04.migration_path", "sorts the caller's migrations", '''
from collections import deque

def migration_path(migrations, start, target):
    migrations.sort()
    paths, seen = deque([[start]]), {start}
    while paths:
        path = paths.popleft()
        if path[-1] == target:
            return path
        for a, b in migrations:
            if a == path[-1] and b not in seen:
                seen.add(b)
                paths.append(path + [b])
    raise ValueError("no path")
'''),
    ("04.migration_path", "a dict lookup that raises KeyError", '''
from collections import deque

def migration_path(migrations, start, target):
    onward = {}
    for a, b in migrations:
        onward.setdefault(a, []).append(b)
    paths, seen = deque([[start]]), {start}
    while paths:
        path = paths.popleft()
        if path[-1] == target:
            return path
        for b in onward[path[-1]]:
            if b not in seen:
                seen.add(b)
                paths.append(path + [b])
    raise ValueError("no path")
'''),
    ("04.migration_path", "returns the migrations instead of the versions", '''
from collections import deque

def migration_path(migrations, start, target):
    if start == target:
        return [start]
    paths, seen = deque([(start, [])]), {start}
    while paths:
        version, steps = paths.popleft()
        if version == target:
            return steps
        for a, b in migrations:
            if a == version and b not in seen:
                seen.add(b)
                paths.append((b, steps + [(a, b)]))
    raise ValueError("no path")
'''),
    ("04.migration_path", "recursion without a visited set", '''
def migration_path(migrations, start, target):
    if start == target:
        return [start]
    best = None
    for a, b in migrations:
        if a == start:
            try:
                rest = migration_path(migrations, b, target)
            except ValueError:
                continue
            if best is None or len(rest) + 1 < len(best):
                best = [start] + rest
    if best is None:
        raise ValueError("no path")
    return best
'''),
    ("04.to_json_default", "Decimal as float", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "datetime via str(dt)", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "drops the UTC offset (strftime)", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "converts every datetime to UTC", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(datetime.timezone.utc).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "encodes a naive datetime anyway", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "checks tzinfo on a date too", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.date):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "bytes via str(b)", '''
import datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "bytes via .decode()", '''
import datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "b64encode without .decode", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "list(set), in iteration order", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "uuid.hex", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return value.hex
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
'''),
    ("04.to_json_default", "returns None for other types", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
'''),
    ("04.to_json_default", "str(value) for other types", '''
import base64, datetime, decimal, uuid

def to_json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)
'''),
    ("04.choose_format", "`key in needs` (presence, not truth)", '''
def choose_format(needs):
    if "browser_readable" in needs:
        return "json"
    if "human_edited" in needs:
        return "json" if "untrusted_input" in needs else "yaml"
    if "schema_required" in needs:
        return "avro" if "stored_files" in needs else "protobuf"
    if "smallest" in needs:
        return "msgpack"
    return "json"
'''),
    ("04.choose_format", "yaml for human_edited even from untrusted senders", '''
def choose_format(needs):
    if needs.get("browser_readable"):
        return "json"
    if needs.get("human_edited"):
        return "yaml"
    if needs.get("schema_required"):
        return "avro" if needs.get("stored_files") else "protobuf"
    if needs.get("smallest"):
        return "msgpack"
    return "json"
'''),
    ("04.choose_format", "pickle when nothing special is needed (it is fast)", '''
def choose_format(needs):
    if needs.get("browser_readable"):
        return "json"
    if needs.get("human_edited"):
        return "json" if needs.get("untrusted_input") else "yaml"
    if needs.get("schema_required"):
        return "avro" if needs.get("stored_files") else "protobuf"
    if needs.get("smallest"):
        return "msgpack"
    return "pickle"
'''),
    ("04.choose_format", "smallest before browser_readable", '''
def choose_format(needs):
    if needs.get("smallest") and not needs.get("schema_required"):
        return "msgpack"
    if needs.get("browser_readable"):
        return "json"
    if needs.get("human_edited"):
        return "json" if needs.get("untrusted_input") else "yaml"
    if needs.get("schema_required"):
        return "avro" if needs.get("stored_files") else "protobuf"
    return "json"
'''),
    ("04.choose_format", "protobuf for every schema (never avro)", '''
def choose_format(needs):
    if needs.get("browser_readable"):
        return "json"
    if needs.get("human_edited"):
        return "json" if needs.get("untrusted_input") else "yaml"
    if needs.get("schema_required"):
        return "protobuf"
    if needs.get("smallest"):
        return "msgpack"
    return "json"
'''),
    ("04.choose_format", "needs[key] (KeyError for a missing key)", '''
def choose_format(needs):
    if needs["browser_readable"]:
        return "json"
    if needs["human_edited"]:
        return "json" if needs["untrusted_input"] else "yaml"
    if needs["schema_required"]:
        return "avro" if needs["stored_files"] else "protobuf"
    if needs["smallest"]:
        return "msgpack"
    return "json"
'''),
    ("04.choose_format", "upper-case names", '''
def choose_format(needs):
    if needs.get("browser_readable"):
        return "JSON"
    if needs.get("human_edited"):
        return "JSON" if needs.get("untrusted_input") else "YAML"
    if needs.get("schema_required"):
        return "AVRO" if needs.get("stored_files") else "PROTOBUF"
    if needs.get("smallest"):
        return "MSGPACK"
    return "JSON"
'''),
    ("04.choose_format", "human_edited before browser_readable", '''
def choose_format(needs):
    if needs.get("human_edited"):
        return "json" if needs.get("untrusted_input") else "yaml"
    if needs.get("browser_readable"):
        return "json"
    if needs.get("schema_required"):
        return "avro" if needs.get("stored_files") else "protobuf"
    if needs.get("smallest"):
        return "msgpack"
    return "json"
'''),
]

WHY.update({
    "the source tutorial's walk (first registered migration)": "the source tutorial's loop",
    "depth-first search (the first path found)": "A depth-first search returns the first path",
    "treats migrations as undirected": "A migration only goes from its first version",
    "leaves out the start version": "the path does not start with start",
    "stops one step before the target": "the path does not end with target",
    "returns None when there is no path": "instead of raising ValueError",
    "sorts the caller's migrations": "changed the list of migrations it was given",
    "a dict lookup that raises KeyError": "has no migration registered from it",
    "returns the migrations instead of the versions": "those are migrations",
    "recursion without a visited set": "goes round a cycle of migrations for ever",
    "Decimal as float": "the digits a float cannot hold are gone",
    "datetime via str(dt)": "separates date and time with a space",
    "drops the UTC offset (strftime)": "the UTC offset is missing",
    "converts every datetime to UTC": "the same instant, written with another offset",
    "encodes a naive datetime anyway": "Raise ValueError for it",
    "checks tzinfo on a date too": "datetime is a subclass of date",
    "bytes via str(b)": "the Python literal",
    "bytes via .decode()": "not valid UTF-8",
    "b64encode without .decode": "add .decode('ascii')",
    "list(set), in iteration order": "iteration order, which depends on hashing",
    "uuid.hex": "value.hex has no hyphens",
    "returns None for other types": "json.dumps then writes null",
    "str(value) for other types": "Raise TypeError for it",
    "`key in needs` (presence, not truth)": "`key in needs` is True for a key set to False",
    "yaml for human_edited even from untrusted senders": "YAML from senders you do not control",
    "pickle when nothing special is needed (it is fast)": "unpickling runs whatever code",
    "smallest before browser_readable": "a browser parses JSON natively",
    "protobuf for every schema (never avro)": "an Avro file carries the writer's schema",
    "needs[key] (KeyError for a missing key)": "a missing key means False",
    "upper-case names": "in lower case",
    "human_edited before browser_readable": "rule 1 (browser_readable) is the first",
})

RIGHT += [
    ("04.migration_path", "a deque of paths, migrations tried newest first", '''
from collections import deque

def migration_path(migrations, start, target):
    queue, seen = deque([[start]]), {start}
    while queue:
        path = queue.popleft()
        if path[-1] == target:
            return path
        for old, new in reversed(migrations):
            if old == path[-1] and new not in seen:
                seen.add(new)
                queue.append(path + [new])
    raise ValueError(f"cannot migrate {start} to {target}")
'''),
    ("04.migration_path", "backwards from the target, raising a ValueError subclass", '''
class NoMigrationPath(ValueError):
    pass

def migration_path(migrations, start, target):
    back = {}
    for old, new in migrations:
        back.setdefault(new, set()).add(old)
    to_target = {target: None}
    layer = [target]
    while layer and start not in to_target:
        nxt = []
        for version in layer:
            for old in sorted(back.get(version, ())):
                if old not in to_target:
                    to_target[old] = version
                    nxt.append(old)
        layer = nxt
    if start not in to_target:
        raise NoMigrationPath(f"{start} -> {target}")
    path = [start]
    while path[-1] != target:
        path.append(to_target[path[-1]])
    return path
'''),
    ("04.to_json_default", "functools.singledispatch", '''
import base64, datetime, decimal, functools, uuid

@functools.singledispatch
def to_json_default(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

@to_json_default.register
def _(value: datetime.date):
    return value.isoformat()

@to_json_default.register
def _(value: datetime.datetime):
    if value.utcoffset() is None:
        raise ValueError("a naive datetime has no offset")
    return value.isoformat()

@to_json_default.register(decimal.Decimal)
@to_json_default.register(uuid.UUID)
def _(value):
    return str(value)

@to_json_default.register
def _(value: bytes):
    return base64.b64encode(value).decode()

@to_json_default.register(set)
@to_json_default.register(frozenset)
def _(value):
    return tuple(sorted(value))
'''),
    ("04.to_json_default", "a match statement with class patterns", '''
from base64 import b64encode
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

def to_json_default(value):
    match value:
        case datetime(tzinfo=None):
            raise ValueError(f"{value!r} is naive")
        case date():
            return value.isoformat()
        case Decimal() | UUID():
            return f"{value}"
        case bytes():
            return b64encode(value).decode("ascii")
        case set() | frozenset():
            return sorted(value)
        case _:
            raise TypeError(f"cannot encode {type(value).__name__}")
'''),
    ("04.choose_format", "a rule table walked in order", '''
RULES = [(("browser_readable",), "json"), (("human_edited", "untrusted_input"), "json"),
         (("human_edited",), "yaml"), (("schema_required", "stored_files"), "avro"),
         (("schema_required",), "protobuf"), (("smallest",), "msgpack"), ((), "json")]

def choose_format(needs):
    for keys, fmt in RULES:
        if all(needs.get(k, False) for k in keys):
            return fmt
'''),
    ("04.choose_format", "a set of the keys set to True", '''
def choose_format(needs):
    on = {k for k, v in needs.items() if v == True}
    if "browser_readable" in on or {"human_edited", "untrusted_input"} <= on:
        return "json"
    if "human_edited" in on:
        return "yaml"
    if "schema_required" in on:
        return "avro" if "stored_files" in on else "protobuf"
    return "msgpack" if "smallest" in on else "json"
'''),
]

BLOCKING += [
    ("04.migration_path", "a dict of next versions, breadth-first, never marks one seen", '''
def migration_path(migrations, start, target):
    onward = {}
    for a, b in migrations:
        onward.setdefault(a, []).append(b)
    queue, seen = [[start]], set()
    while queue:
        path = queue.pop(0)
        if path[-1] == target:
            return path
        for b in onward.get(path[-1], []):
            if b not in seen:
                queue.append(path + [b])
    raise ValueError("no path")
''', "did not return within"),
]

# ---- Chapter 4 · after a beginner's run (L2): a search that goes round a cycle is named at once
# (not after the guard's limit); untrusted_input alone is not rule 2 ----------------------------
WRONG += [
    ("04.migration_path", "breadth-first without a visited set (no path, a cycle)", '''
def migration_path(migrations, start, target):
    queue = [[start]]
    while queue:
        path = queue.pop(0)
        if path[-1] == target:
            return path
        for a, b in migrations:
            if a == path[-1]:
                queue.append(path + [b])
    raise ValueError("no path")
'''),
    ("04.migration_path", "the tutorial's walk, skipping dead ends (loops on a downgrade)", '''
def migration_path(migrations, start, target):
    path = [start]
    while path[-1] != target:
        onward = [b for a, b in migrations if a == path[-1]]
        alive = [b for b in onward if b == target or any(a == b for a, _ in migrations)]
        if not alive:
            raise ValueError(f"no migration from {path[-1]}")
        path.append(alive[0])
    return path
'''),
    ("04.choose_format", "json whenever untrusted_input", '''
def choose_format(needs):
    if needs.get("browser_readable") or needs.get("untrusted_input"):
        return "json"
    if needs.get("human_edited"):
        return "yaml"
    if needs.get("schema_required"):
        return "avro" if needs.get("stored_files") else "protobuf"
    if needs.get("smallest"):
        return "msgpack"
    return "json"
'''),
]

WHY.update({
    "breadth-first without a visited set (no path, a cycle)":
        "with no path: remember the versions you have visited",
    "the tutorial's walk, skipping dead ends (loops on a downgrade)":
        "it went round the cycle of migrations",
    "json whenever untrusted_input": "untrusted_input alone decides nothing",
})

RIGHT += [
    ("04.migration_path", "every simple path by index, keeping the shortest", '''
def migration_path(migrations, start, target):
    best = None

    def walk(path):
        nonlocal best
        if path[-1] == target:
            if best is None or len(path) < len(best):
                best = list(path)
            return
        for i in range(len(migrations)):
            old, new = migrations[i]
            if old == path[-1] and new not in path:
                walk(path + [new])
    walk([start])
    if best is None:
        raise ValueError(f"no path from {start} to {target}")
    return best
'''),
]


# Chapters 06 on keep their answers in tests/corpus/chNN_<name>.py (one file per exercise group).
def _merge_corpus():
    import importlib
    import pathlib
    for path in sorted((pathlib.Path(__file__).parent / "corpus").glob("ch[0-9][0-9]_*.py")):
        mod = importlib.import_module(f"corpus.{path.stem}")
        WRONG.extend(mod.WRONG)
        WHY.update(mod.WHY)
        RIGHT.extend(mod.RIGHT)
        BLOCKING.extend(getattr(mod, "BLOCKING", []))


_merge_corpus()
