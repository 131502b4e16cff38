"""Fault models: the knobs a learner turns to break a service on purpose.

The vocabulary follows Envoy's fault-injection filter (a *delay* and an *abort* with an HTTP
status) and Toxiproxy's toxics (*latency* with *jitter*, *reset_peer*, *bandwidth*).
A `FaultModel` can change while the service runs; the next request sees the new values.

Knobs (times in milliseconds, rates as fractions 0..1):

==================  ===============================  ==========================================
knob                range                            meaning
==================  ===============================  ==========================================
latency_dist        "fixed", "uniform", "long_tail"  shape of the added delay
latency_ms          0 .. 60000                       fixed delay; median (p50) for long_tail;
                                                     centre for uniform
latency_rate        0 .. 1                           share of requests delayed (Envoy's delay
                                                     percentage); 1 = every request
jitter_ms           0 .. 60000                       uniform: delay in latency_ms +/- jitter_ms
latency_p99_ms      0 .. 60000, >= latency_ms        long_tail: 99th percentile (lognormal)
error_rate          0 .. 1                           share of requests answered with error_status
error_status        429, 500, 502, 503, 504          status of an injected error
retry_after_s       0 .. 3600                        Retry-After sent with injected 429 / 503
outage              True / False                     every request gets 503 at once
reset_rate          0 .. 1                           share of connections reset (TCP RST)
slow_body_ms        0 .. 60000                       body trickles out over this many ms
==================  ===============================  ==========================================

Every decision uses exactly four uniform numbers, whatever the knobs say. A request that carries
an ``X-Request-Id`` header (labkit's clients send a fresh one per call) takes them from a hash of
(seed, service, request id): its fault does not depend on when it arrived, so 400 concurrent
requests get the same faults in every run with the same seed (`decide_keyed`). A request without
the header draws from the service's own stream in arrival order (`decide`), which repeats only
for sequential requests. The same id always gets the same fault: give each attempt its own id.

A copy of a model (``copy.deepcopy``, pickle) has the same knobs and no listeners.
"""
from __future__ import annotations

import hashlib
import math
import random
import struct
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable

from labkit._core import validate

LATENCY_DISTS = ("fixed", "uniform", "long_tail")
ERROR_STATUSES = (429, 500, 502, 503, 504)
MAX_MS = 60_000.0
_Z99 = NormalDist().inv_cdf(0.99)
_FOUR_U64 = struct.Struct(">4Q").unpack
_TWO_TO_MINUS_53 = 2.0 ** -53

# knob -> (kind, low, high, unit) for numbers; kind "choice"/"bool" for the others.
KNOBS: dict[str, tuple] = {
    "latency_dist": ("choice", LATENCY_DISTS),
    "latency_ms": ("number", 0.0, MAX_MS, " ms"),
    "latency_rate": ("number", 0.0, 1.0, ""),
    "jitter_ms": ("number", 0.0, MAX_MS, " ms"),
    "latency_p99_ms": ("number", 0.0, MAX_MS, " ms"),
    "error_rate": ("number", 0.0, 1.0, ""),
    "error_status": ("choice", ERROR_STATUSES),
    "retry_after_s": ("number", 0.0, 3600.0, " s"),
    "outage": ("bool",),
    "reset_rate": ("number", 0.0, 1.0, ""),
    "slow_body_ms": ("number", 0.0, MAX_MS, " ms"),
}
DEFAULTS = {
    "latency_dist": "fixed", "latency_ms": 0.0, "latency_rate": 1.0, "jitter_ms": 0.0, "latency_p99_ms": 0.0,
    "error_rate": 0.0, "error_status": 500, "retry_after_s": 1.0, "outage": False,
    "reset_rate": 0.0, "slow_body_ms": 0.0,
}


@dataclass(frozen=True)
class Fault:
    """What the fault model decided for one request."""
    action: str          # "pass", "error", "outage" or "reset"
    delay_s: float       # added before anything is sent
    status: int | None   # status to send for "error" / "outage"
    retry_after_s: float | None
    slow_body_s: float   # time over which the body trickles out


def _check(knob: str, value):
    spec = KNOBS.get(knob)
    if spec is None:
        raise ValueError(f"unknown fault knob {knob!r}; knobs are: {', '.join(KNOBS)}")
    kind = spec[0]
    if kind == "bool":
        return validate.boolean(knob, value)
    if kind == "choice":
        return validate.choice(knob, value, spec[1])     # 500.0 is stored as the int 500
    return validate.number(knob, value, spec[1], spec[2], unit=spec[3])


def keyed_uniforms(key: str) -> tuple[float, float, float, float]:
    """Four numbers in [0, 1) that depend only on `key`: a stable hash (the same in every
    process and Python version, unlike hash()), cheaper than seeding a generator per request."""
    digest = hashlib.blake2b(key.encode(), digest_size=32).digest()
    # 53 bits each, as random.random() does, so a value is never rounded up to 1.0
    return tuple((x >> 11) * _TWO_TO_MINUS_53 for x in _FOUR_U64(digest))


def _rebuild(values: dict) -> "FaultModel":
    return FaultModel(**values)


class FaultModel:
    """Live fault knobs for one service; see the module docstring for each knob.

    >>> f = FaultModel()
    >>> f.latency_ms = 200          # every later request waits 200 ms
    >>> f.set(error_rate=0.1, error_status=503)
    >>> f.reset()                   # all faults off

    Which fault a request gets depends on the seed, the service and the request's
    ``X-Request-Id`` (`decide_keyed`), not on its arrival order; requests without the header
    draw in arrival order (`decide`). `on_change` returns an unsubscribe function.
    """

    def __init__(self, **knobs):
        object.__setattr__(self, "_values", dict(DEFAULTS))
        object.__setattr__(self, "_listeners", [])
        if knobs:
            self.set(**knobs)

    def __getattr__(self, knob):
        if knob.startswith("_"):        # copy/pickle probe __setstate__ etc. before __init__ ran
            raise AttributeError(knob)
        try:
            return self._values[knob]
        except KeyError:
            raise AttributeError(f"FaultModel has no knob {knob!r}; knobs are: {', '.join(KNOBS)}") from None

    def __setattr__(self, knob, value):
        self.set(**{knob: value})

    def set(self, **knobs) -> None:
        """Change several knobs at once; all are checked before any changes."""
        new = dict(self._values)
        for knob, value in knobs.items():
            new[knob] = _check(knob, value)
        if new["latency_dist"] == "long_tail" and new["latency_p99_ms"] < new["latency_ms"]:
            raise ValueError(
                f"latency_p99_ms must be >= latency_ms (the p50) for a long tail, "
                f"got p50={new['latency_ms']:g} ms, p99={new['latency_p99_ms']:g} ms")
        changed = {k: v for k, v in new.items() if v != self._values[k]}
        object.__setattr__(self, "_values", new)
        if changed:
            for (listener,) in list(self._listeners):
                listener(changed)

    def reset(self) -> None:
        """Turn every fault off."""
        self.set(**DEFAULTS)

    def on_change(self, listener: Callable[[dict], None]) -> Callable[[], None]:
        """Call `listener(changed_knobs)` after every change (widgets use this).

        Returns `unsubscribe()`: call it when the widget goes away (a re-run cell replaces its
        panel), or every re-run leaves one more listener behind. Calling it twice is harmless.
        """
        if not callable(listener):
            raise ValueError(f"listener must be callable, got {listener!r}")
        entry = (listener,)                  # its own entry: a function may subscribe twice

        def unsubscribe() -> None:
            # by identity, so a second call never removes another subscription of the same function
            self._listeners[:] = [e for e in self._listeners if e is not entry]
        self._listeners.append(entry)
        return unsubscribe

    @property
    def listener_count(self) -> int:
        """How many listeners are subscribed (a panel re-run must not add one more)."""
        return len(self._listeners)

    def __reduce__(self):
        # copy.copy, copy.deepcopy and pickle: the knobs only; listeners stay with the original.
        return _rebuild, (dict(self._values),)

    @property
    def all_off(self) -> bool:
        v = self._values
        return not (v["latency_ms"] or v["jitter_ms"] or v["error_rate"] or v["outage"]
                    or v["reset_rate"] or v["slow_body_ms"])

    def summary(self) -> dict:
        """The knob values as a plain dict."""
        return dict(self._values)

    def describe(self) -> str:
        """One line a learner can read: what this service will do to the next request."""
        v = self._values
        if v["outage"]:
            return "OUTAGE: every request gets 503"
        if v["latency_dist"] == "long_tail":
            lat = f"latency long tail p50 {v['latency_ms']:g} ms / p99 {v['latency_p99_ms']:g} ms"
        elif v["latency_dist"] == "uniform":
            lat = f"latency {v['latency_ms']:g} ± {v['jitter_ms']:g} ms"
        else:
            lat = f"latency {v['latency_ms']:g} ms"
        if v["latency_rate"] < 1:
            lat += f" on {v['latency_rate']:.0%} of requests"
        parts = [lat, f"errors {v['error_rate']:.0%} → {v['error_status']}"]
        if v["reset_rate"]:
            parts.append(f"resets {v['reset_rate']:.0%}")
        if v["slow_body_ms"]:
            parts.append(f"slow body {v['slow_body_ms']:g} ms")
        return ", ".join(parts)

    def __repr__(self):
        return f"FaultModel({self.describe()})"

    def decide(self, rng: random.Random) -> Fault:
        """Draw the fault for one request (exactly four draws from `rng`, in arrival order)."""
        return self._decide(rng.random(), rng.random(), rng.random(), rng.random())

    def decide_keyed(self, key: str) -> Fault:
        """The fault for the request named by `key` (seed, service and X-Request-Id): the same
        key always gets the same fault, whatever else arrives before it."""
        return self._decide(*keyed_uniforms(key))

    def _decide(self, u_reset: float, u_error: float, u_delayed: float, u_latency: float) -> Fault:
        v = self._values
        if v["outage"]:
            return Fault("outage", 0.0, 503, None, 0.0)
        delay_s = self._latency_ms(u_latency) / 1000.0 if u_delayed < v["latency_rate"] else 0.0
        slow_s = v["slow_body_ms"] / 1000.0
        if u_reset < v["reset_rate"]:
            return Fault("reset", delay_s, None, None, 0.0)
        if u_error < v["error_rate"]:
            status = v["error_status"]
            retry_after = v["retry_after_s"] if status in (429, 503) else None
            return Fault("error", delay_s, status, retry_after, 0.0)
        return Fault("pass", delay_s, None, None, slow_s)

    def _latency_ms(self, u: float) -> float:
        v = self._values
        base = v["latency_ms"]
        if v["latency_dist"] == "uniform":
            return max(0.0, base - v["jitter_ms"] + 2 * v["jitter_ms"] * u)
        if v["latency_dist"] == "long_tail" and base > 0:
            sigma = math.log(max(v["latency_p99_ms"], base) / base) / _Z99
            u = min(max(u, 1e-12), 1 - 1e-12)
            return min(MAX_MS, base * math.exp(sigma * NormalDist().inv_cdf(u)))
        return base
