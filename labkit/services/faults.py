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

Every request draws exactly four numbers from the service's generator, whatever the knobs
say, so two runs with the same seed and the same requests see the same faults.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable

LATENCY_DISTS = ("fixed", "uniform", "long_tail")
ERROR_STATUSES = (429, 500, 502, 503, 504)
MAX_MS = 60_000.0
_Z99 = NormalDist().inv_cdf(0.99)

# knob -> (kind, low, high) for numbers; kind "choice"/"bool" for the others.
KNOBS: dict[str, tuple] = {
    "latency_dist": ("choice", LATENCY_DISTS),
    "latency_ms": ("number", 0.0, MAX_MS),
    "latency_rate": ("number", 0.0, 1.0),
    "jitter_ms": ("number", 0.0, MAX_MS),
    "latency_p99_ms": ("number", 0.0, MAX_MS),
    "error_rate": ("number", 0.0, 1.0),
    "error_status": ("choice", ERROR_STATUSES),
    "retry_after_s": ("number", 0.0, 3600.0),
    "outage": ("bool",),
    "reset_rate": ("number", 0.0, 1.0),
    "slow_body_ms": ("number", 0.0, MAX_MS),
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
        if not isinstance(value, bool):
            raise ValueError(f"{knob} must be True or False, got {value!r}")
        return value
    if kind == "choice":
        if value not in spec[1] or isinstance(value, bool):
            raise ValueError(f"{knob} must be one of {list(spec[1])}, got {value!r}")
        return value
    low, high = spec[1], spec[2]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or not low <= value <= high:
        raise ValueError(f"{knob} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


class FaultModel:
    """Live fault knobs for one service; see the module docstring for each knob.

    >>> f = FaultModel()
    >>> f.latency_ms = 200          # every later request waits 200 ms
    >>> f.set(error_rate=0.1, error_status=503)
    >>> f.reset()                   # all faults off
    """

    def __init__(self, **knobs):
        object.__setattr__(self, "_values", dict(DEFAULTS))
        object.__setattr__(self, "_listeners", [])
        if knobs:
            self.set(**knobs)

    def __getattr__(self, knob):
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
            for listener in list(self._listeners):
                listener(changed)

    def reset(self) -> None:
        """Turn every fault off."""
        self.set(**DEFAULTS)

    def on_change(self, listener: Callable[[dict], None]) -> None:
        """Call `listener(changed_knobs)` after every change (widgets use this)."""
        self._listeners.append(listener)

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
        """Draw the fault for one request (exactly four draws from `rng`)."""
        u_reset, u_error, u_delayed, u_latency = rng.random(), rng.random(), rng.random(), rng.random()
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
