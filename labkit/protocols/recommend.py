"""Choosing a protocol from a requirement dict: the source tutorial's recommender and a fixed one.

Chapter 03. `TutorialProtocolComparison` is the tutorial's class, kept as the lesson with its
two bugs: it counts a requirement as wanted when its *key is present* (``'low_latency': False``
scores as wanting low latency), and it compares the list ``specs['ideal_for']`` with the string
``'async processing'`` (never equal, so ``async_processing`` never scores). On its own first
scenario (internal high-throughput calls, ``'browser_client': False``) it answers websocket,
not the gRPC its comment promises.

`recommend(requirements)` is the fixed version: True means wanted, False means "does not
matter here" (it never scores), unknown keys and non-bool values are a ValueError, a browser
client rules out what a browser cannot speak, and the answer says which requirements decided
it. Ties go to the simpler protocol (`PREFERENCE`): less to run and to debug. It is a table
lookup, not a measurement; the chapter measures the same call over each protocol.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

__all__ = ["PREFERENCE", "PROTOCOLS", "REQUIREMENTS", "Recommendation",
           "TutorialProtocolComparison", "recommend"]


class TutorialProtocolComparison:
    """The source tutorial's recommender, unchanged (bugs included): see the module docstring."""

    def __init__(self):
        self.protocols = {
            'http_rest': {
                'latency': 'low', 'throughput': 'medium', 'reliability': 'high',
                'complexity': 'low', 'caching': 'excellent', 'documentation': 'excellent',
                'browser_support': 'yes',
                'ideal_for': ['CRUD operations', 'public APIs', 'simple integrations']
            },
            'grpc': {
                'latency': 'very_low', 'throughput': 'very_high', 'reliability': 'high',
                'complexity': 'medium', 'caching': 'none', 'documentation': 'good',
                'browser_support': 'no',
                'ideal_for': ['microservices', 'high performance', 'real-time']
            },
            'websocket': {
                'latency': 'very_low', 'throughput': 'high', 'reliability': 'medium',
                'complexity': 'medium', 'caching': 'none', 'documentation': 'good',
                'browser_support': 'yes',
                'ideal_for': ['real-time communication', 'chat', 'live updates']
            },
            'message_queue': {
                'latency': 'high', 'throughput': 'very_high', 'reliability': 'very_high',
                'complexity': 'high', 'caching': 'built_in', 'documentation': 'good',
                'browser_support': 'no',
                'ideal_for': ['async processing', 'event driven', 'reliable delivery']
            }
        }

    def recommend_protocol(self, requirements: Dict[str, Any]) -> str:
        scores = {}
        for protocol, specs in self.protocols.items():
            score = 0
            # Bug 1: `key in requirements` is True for 'low_latency': False too.
            if 'low_latency' in requirements and specs['latency'] in ['very_low', 'low']:
                score += 3
            if 'high_throughput' in requirements and specs['throughput'] in ['very_high', 'high']:
                score += 3
            if 'high_reliability' in requirements and specs['reliability'] == 'very_high':
                score += 3
            if 'needs_caching' in requirements and specs['caching'] != 'none':
                score += 2
            if 'browser_client' in requirements and specs['browser_support'] == 'yes':
                score += 2
            # Bug 2: a list is never equal to a string, so this never scores.
            if 'async_processing' in requirements and specs['ideal_for'] == 'async processing':
                score += 2
            scores[protocol] = score
        return max(scores, key=scores.get)


#: How well each protocol does on each requirement, 0 (not at all) to 3 (its strength).
#: From the tutorial's table, graded instead of yes/no; caching means HTTP caching
#: (Cache-Control, ETag, CDNs), which only REST has (a queue stores messages, it does not cache
#: answers); live_updates is server push (gRPC server streaming, AMQP consumers, WebSocket).
PROTOCOLS: dict[str, dict[str, int]] = {
    "http_rest": {"low_latency": 2, "high_throughput": 1, "high_reliability": 2,
                  "needs_caching": 3, "async_processing": 0, "live_updates": 0},
    "grpc": {"low_latency": 3, "high_throughput": 3, "high_reliability": 2,
             "needs_caching": 0, "async_processing": 0, "live_updates": 2},
    "websocket": {"low_latency": 3, "high_throughput": 2, "high_reliability": 1,
                  "needs_caching": 0, "async_processing": 0, "live_updates": 3},
    "message_queue": {"low_latency": 0, "high_throughput": 3, "high_reliability": 3,
                      "needs_caching": 0, "async_processing": 3, "live_updates": 2},
}
#: What a browser can speak without a proxy (gRPC needs grpc-web, AMQP a gateway).
BROWSER_OK = ("http_rest", "websocket")
#: Tie-break order: the simpler protocol first.
PREFERENCE = ("http_rest", "grpc", "websocket", "message_queue")
#: The keys `recommend` understands (the tutorial's six, plus live_updates).
REQUIREMENTS = ("low_latency", "high_throughput", "high_reliability", "needs_caching",
                "browser_client", "async_processing", "live_updates")


@dataclass(frozen=True)
class Recommendation:
    """The answer of `recommend`: the protocol, every protocol's score (None: ruled out),
    the requirements that decided it over the runner-up, and the reasons in words."""
    protocol: str
    scores: dict
    runner_up: str | None
    decided_by: tuple
    reasons: tuple

    def __str__(self) -> str:
        return f"{self.protocol}: " + "; ".join(self.reasons)


def _checked(requirements) -> dict:
    if not isinstance(requirements, dict):
        raise ValueError(f"requirements must be a dict of requirement -> True/False, "
                         f"got {type(requirements).__name__}")
    unknown = sorted(map(repr, set(requirements) - set(REQUIREMENTS)))
    if unknown:
        raise ValueError(f"requirements has unknown keys {', '.join(unknown)}; known: "
                         f"{', '.join(REQUIREMENTS)}")
    for key, value in requirements.items():
        if not isinstance(value, bool):
            raise ValueError(f"requirements[{key!r}] must be True or False, got {value!r}")
    return requirements


def recommend(requirements: dict) -> Recommendation:
    """Recommend a protocol for `requirements` (keys from `REQUIREMENTS`, values True/False).

    Each wanted (True) requirement adds the protocol's grade from `PROTOCOLS`; False adds
    nothing; ``browser_client=True`` rules out gRPC and message queues. The highest total
    wins; a tie goes to the earlier protocol in `PREFERENCE` (the simpler one).
    """
    wanted = [k for k in REQUIREMENTS if _checked(requirements).get(k) is True]
    scores: dict = {}
    for protocol in PREFERENCE:
        if "browser_client" in wanted and protocol not in BROWSER_OK:
            scores[protocol] = None
        else:
            scores[protocol] = sum(PROTOCOLS[protocol].get(k, 0) for k in wanted)
    ranked = sorted((p for p in PREFERENCE if scores[p] is not None),
                    key=lambda p: (-scores[p], PREFERENCE.index(p)))
    best, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    decided = tuple(k for k in wanted if k in PROTOCOLS[best] and runner_up is not None
                    and PROTOCOLS[best][k] > PROTOCOLS[runner_up][k])
    reasons = []
    if "browser_client" in wanted:
        decided = ("browser_client",) + decided
        reasons.append("browser_client: a browser speaks HTTP and WebSocket, not gRPC or AMQP "
                       "without a proxy")
    for k in decided:
        if k != "browser_client":
            reasons.append(f"{k}: {best} {PROTOCOLS[best][k]}/3 vs {runner_up} "
                           f"{PROTOCOLS[runner_up][k]}/3")
    if wanted and runner_up is not None and scores[best] == scores[runner_up]:
        reasons.append(f"tie with {runner_up} at {scores[best]}: the simpler protocol wins")
    if not wanted:
        reasons.append("nothing was asked for: the simplest protocol")
    return Recommendation(best, scores, runner_up, decided, tuple(reasons))
