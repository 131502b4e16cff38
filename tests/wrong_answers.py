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
]
