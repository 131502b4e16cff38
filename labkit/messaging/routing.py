"""Which bindings an exchange routes a routing key to (AMQP 0-9-1, as RabbitMQ does it).

Pure functions, no I/O: direct (key equals binding key), fanout (every binding), topic (words
separated by dots; `*` is exactly one word, `#` is zero or more words). The default exchange
("") routes to the queue named by the routing key; the broker handles that case. Chapter 02.
"""
from __future__ import annotations

from functools import lru_cache

__all__ = ["EXCHANGE_TYPES", "topic_matches", "matches"]

EXCHANGE_TYPES = ("direct", "fanout", "topic")


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, key: str) -> bool:
    """True if the topic binding `pattern` matches routing `key` ("a.*.c", "a.#")."""
    p, k = pattern.split("."), key.split(".")
    # ok[j]: p[:i] matches k[:j]; a dynamic programme over the words (no regex surprises).
    ok = [True] + [False] * len(k)
    for word in p:
        new = [False] * (len(k) + 1)
        if word == "#":
            seen = False
            for j in range(len(k) + 1):
                seen = seen or ok[j]
                new[j] = seen
        else:
            for j in range(1, len(k) + 1):
                new[j] = ok[j - 1] and (word == "*" or word == k[j - 1])
        ok = new
    return ok[len(k)]


def matches(exchange_type: str, binding_key: str, routing_key: str) -> bool:
    """Does a binding with `binding_key` on an exchange of `exchange_type` take `routing_key`?"""
    if exchange_type == "fanout":
        return True
    if exchange_type == "direct":
        return binding_key == routing_key
    return topic_matches(binding_key, routing_key)
