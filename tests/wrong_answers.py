"""Known-wrong answers to the exercises: every check must reject each of them.

Each entry is (exercise id, short name, source code defining the learner's function). The
source form lets the notebook tests inject them into exercise cells too.
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
]
