"""Idempotency keys as in the IETF draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header). Used by chapter 05 (retries).

A client that retries a POST sends the same ``Idempotency-Key`` each time; the server
remembers the key with a fingerprint of the payload and the response it gave:

- first time: processed normally, and the response is remembered;
- again, after it completed, with the same payload: the remembered response is replayed
  (``Idempotent-Replayed: true``), success or error; nothing is done a second time;
- again with a different payload: 422 (a key must not be reused for another request);
- again while the first is still being processed: 409 (retry later, no correction needed);
- a key is forgotten `ttl_s` after it was first seen (the draft asks a server to publish its
  expiry: labkit's services default to 24 h, ``Service(idempotency_ttl_s=...)``).

The store is bounded: at most `max_keys` keys (default 10 000); when full, the oldest key is
evicted (it then counts as new), and counters say how many were evicted and expired. Keys
are scoped by path, so the same key on two endpoints names two requests. When the work never
ran (an injected error, a reset, a client that hung up, a passed deadline) the key is
released, so the retry is processed. Time is read from `clock` (default: the running loop's
clock), so a test can use a short `ttl_s`. No I/O here: the service (http.py) calls it.
"""
from __future__ import annotations

import asyncio
import collections
import hashlib
from dataclasses import dataclass
from typing import Callable

from labkit._core import validate

HEADER = "Idempotency-Key"
DEFAULT_TTL_S = 24 * 3600.0
DEFAULT_MAX_KEYS = 10_000


@dataclass(frozen=True)
class Record:
    """What was answered to the first request with a key."""
    status: int
    body: object
    headers: dict


@dataclass(frozen=True)
class Verdict:
    """The store's answer for one request: kind is "claimed" (process it, then `finish` with
    `token`), "replay" (answer `record`), "mismatch" (422) or "in_progress" (409)."""
    kind: str
    token: object = None
    record: Record | None = None


class _Entry:
    __slots__ = ("where", "fingerprint", "seen_at", "record")

    def __init__(self, where: tuple[str, str], fingerprint: str, seen_at: float):
        self.where, self.fingerprint, self.seen_at = where, fingerprint, seen_at
        self.record: Record | None = None


def _loop_clock() -> float:
    return asyncio.get_running_loop().time()


def normalize_key(value: str) -> str:
    """The key itself: the draft sends it as a structured-field string (``"abc"``); a bare
    ``abc`` names the same key."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


class IdempotencyStore:
    """Keys seen, their payload fingerprints and responses; see the module docstring."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S, max_keys: int = DEFAULT_MAX_KEYS,
                 clock: Callable[[], float] | None = None):
        self.ttl_s = ttl_s
        self.max_keys = validate.integer("max_keys", max_keys, 1)
        self._clock = clock or _loop_clock
        self._entries: collections.OrderedDict[tuple[str, str], _Entry] = collections.OrderedDict()
        self.counts = collections.Counter()      # running totals: claimed, replayed, ...

    @property
    def ttl_s(self) -> float:
        """Seconds after which a key is forgotten (changeable while the service runs)."""
        return self._ttl_s

    @ttl_s.setter
    def ttl_s(self, value: float) -> None:
        self._ttl_s = validate.number("ttl_s", value, 0, lo_open=True, unit=" seconds")

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def in_progress(self) -> int:
        """Keys whose first request is still being processed."""
        return sum(e.record is None for e in self._entries.values())

    def begin(self, scope: str, key: str, payload: bytes) -> Verdict:
        """Look up `key` (on endpoint `scope`) for a request with body `payload`."""
        now = self._clock()
        self._expire(now)
        fingerprint = hashlib.sha256(payload).hexdigest()
        entry = self._entries.get((scope, key))
        if entry is not None:
            if entry.fingerprint != fingerprint:
                self.counts["mismatch"] += 1
                return Verdict("mismatch")
            if entry.record is None:
                self.counts["conflict"] += 1
                return Verdict("in_progress")
            self.counts["replayed"] += 1
            return Verdict("replay", record=entry.record)
        while len(self._entries) >= self.max_keys:
            self._entries.popitem(last=False)
            self.counts["evicted"] += 1
        entry = self._entries[(scope, key)] = _Entry((scope, key), fingerprint, now)
        self.counts["claimed"] += 1
        return Verdict("claimed", token=entry)

    def finish(self, token: object, status: int, body: object, headers: dict) -> None:
        """The claimed request was processed: remember its answer for retries (unless its key
        was evicted or expired meanwhile)."""
        if self._entries.get(token.where) is token:
            token.record = Record(status, body, dict(headers))

    def release(self, token: object) -> None:
        """The claimed request did no work (fault, reset, hang-up): forget the key."""
        if self._entries.get(token.where) is token and token.record is None:
            del self._entries[token.where]
            self.counts["released"] += 1

    def summary(self) -> dict:
        return {"keys": len(self._entries), "in_progress": self.in_progress,
                "ttl_s": self.ttl_s, "max_keys": self.max_keys,
                **{k: self.counts[k] for k in ("claimed", "replayed", "mismatch", "conflict",
                                               "released", "expired", "evicted")}}

    def _expire(self, now: float) -> None:
        # Entries are in the order first seen, so the expired ones are at the front.
        while self._entries:
            entry = next(iter(self._entries.values()))
            if now - entry.seen_at < self._ttl_s:
                break
            self._entries.popitem(last=False)
            self.counts["expired"] += 1
