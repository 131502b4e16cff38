"""Structured logs that carry the trace: JSON lines with trace_id and span_id (chapter 07).

A log line says what happened; a trace says where and when. The tracking number printed on
every note about a parcel joins them: each record gets the `trace_id` and `span_id` of the
span that was current when it was logged (OpenTelemetry's context, a contextvar, so
concurrent requests never swap ids), and from a slow span on the waterfall you find its log
lines with ``search(trace_id=...)``.

Plain stdlib `logging`: `TraceContextFilter` adds the ids to each record, `JsonFormatter`
writes one JSON object per line, `StoreHandler` keeps the records in a bounded `LogStore`
(newest kept) the notebook can search by trace id, level, service and text. `install()` wires
them to the "labkit" logger once; every logger named "labkit.*" then lands in the store.

Record times: `ts` is the wall clock stdlib logging stamps; `loop_s` is the running loop's
clock (the spans' clock) when there is a loop, so a record can be placed on a waterfall.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from datetime import datetime, timezone

from labkit._core import validate

__all__ = ["LogStore", "TraceContextFilter", "JsonFormatter", "StoreHandler", "install",
           "default_store", "search", "record_dict"]

# LogRecord attributes that are not "extra" fields a caller added
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "trace_id", "span_id", "service", "loop_s", "taskName"}


def _current_ids() -> tuple[str | None, str | None, str | None]:
    """(trace_id, span_id, service.name attribute) of OpenTelemetry's current span, if any."""
    try:
        from opentelemetry import trace
    except ImportError:                       # OpenTelemetry not installed: no ids
        return None, None, None
    span = trace.get_current_span()
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None, None
    attrs = getattr(span, "attributes", None) or {}
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", attrs.get("service.name")


class TraceContextFilter(logging.Filter):
    """Adds `trace_id`, `span_id` (None outside a span), `service` (the `service=` extra, else
    the current span's service.name, else the logger's last name part) and `loop_s`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            record.trace_id, record.span_id, span_service = _current_ids()
        else:
            span_service = None
        if not getattr(record, "service", None):
            record.service = span_service or record.name.rsplit(".", 1)[-1]
        if not hasattr(record, "loop_s"):
            try:
                record.loop_s = asyncio.get_running_loop().time()
            except RuntimeError:
                record.loop_s = None
        return True


def record_dict(record: logging.LogRecord) -> dict:
    """The record as a flat dict: ts, level, logger, service, message, trace_id, span_id,
    loop_s, then any extra fields (e.g. ``extra={"latency_ms": 12.5}``)."""
    out = {
        "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
            timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "service": getattr(record, "service", None),
        "message": record.getMessage(),
        "trace_id": getattr(record, "trace_id", None),
        "span_id": getattr(record, "span_id", None),
        "loop_s": getattr(record, "loop_s", None),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            out[key] = value
    if record.exc_info and record.exc_info[0] is not None:
        out["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line (values JSON cannot hold are written with str())."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "trace_id"):
            TraceContextFilter().filter(record)
        return json.dumps(record_dict(record), default=str, ensure_ascii=False)


class LogStore:
    """The newest `max_records` structured records, searchable."""

    def __init__(self, max_records: int = 10_000):
        self.max_records = validate.integer("max_records", max_records, 1, 10_000_000)
        self._records: deque = deque(maxlen=self.max_records)
        self._lock = threading.Lock()             # handlers may run in worker threads

    def append(self, rec: dict) -> None:
        with self._lock:
            self._records.append(rec)

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def search(self, *, trace_id: str | None = None, level: str | None = None,
               service: str | None = None, text: str | None = None,
               limit: int = 100) -> list[dict]:
        """Records matching every filter given, oldest first, at most `limit` (the newest).
        `level` is a minimum ("WARNING" also finds ERROR); `text` is a case-insensitive
        substring of the message."""
        limit = validate.integer("limit", limit, 1)
        floor = None
        if level is not None:
            floor = logging.getLevelName(str(level).upper())
            if not isinstance(floor, int):
                raise ValueError(f"level must be a logging level name such as 'INFO', "
                                 f"got {level!r}")
        needle = None if text is None else str(text).lower()
        with self._lock:
            records = list(self._records)
        out = [r for r in records
               if (trace_id is None or r.get("trace_id") == trace_id)
               and (service is None or r.get("service") == service)
               and (floor is None or logging.getLevelName(r.get("level")) >= floor)
               and (needle is None or needle in str(r.get("message", "")).lower())]
        return out[-limit:]

    def lines(self, **filters) -> list[str]:
        """The matching records as JSON lines."""
        return [json.dumps(r, default=str, ensure_ascii=False) for r in self.search(**filters)]


class StoreHandler(logging.Handler):
    """A logging handler that keeps each record, as a dict, in a `LogStore`."""

    def __init__(self, store: LogStore, level: int = logging.NOTSET):
        super().__init__(level)
        self.store = store
        self.addFilter(TraceContextFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.store.append(record_dict(record))
        except Exception:                      # a log call must never break the request
            self.handleError(record)


_store: LogStore | None = None
_install_lock = threading.Lock()


def default_store() -> LogStore:
    """The store `install()` feeds (made on first use)."""
    global _store
    if _store is None:
        with _install_lock:
            if _store is None:
                _store = LogStore()
    return _store


def install(logger: str = "labkit", *, level: int | str = logging.INFO,
            store: LogStore | None = None) -> LogStore:
    """Send `logger` (and its children) to `store` (default: `default_store()`), once: calling
    it again changes nothing but the level. Returns the store."""
    store = default_store() if store is None else store
    target = logging.getLogger(logger)
    target.setLevel(level)
    with _install_lock:
        if not any(isinstance(h, StoreHandler) and h.store is store for h in target.handlers):
            target.addHandler(StoreHandler(store))
    return store


def search(**filters) -> list[dict]:
    """`default_store().search(...)`: by trace_id, level, service, text."""
    return default_store().search(**filters)
