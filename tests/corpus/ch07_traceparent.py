"""Chapter 07, exercise 1 · parse_traceparent: answers a learner writes (see
tests/wrong_answers.py for the format). The first WRONG entry is the notebook's."""

WRONG = [
    ("07.parse_traceparent", "traceparent: string.hexdigits (accepts uppercase)", '''
import string

def parse_traceparent(header):
    if header is None:
        return None
    parts = header.split("-")
    if len(parts) != 4 or [len(p) for p in parts] != [2, 32, 16, 2]:
        return None
    if not all(c in string.hexdigits for c in "".join(parts)):
        return None
    version, trace_id, parent_id, flags = parts
    if version == "ff" or set(trace_id) == {"0"} or set(parent_id) == {"0"}:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: int(x, 16) as the hex test", '''
def parse_traceparent(header):
    try:
        version, trace_id, parent_id, flags = header.split("-")
        int(version, 16), int(trace_id, 16), int(parent_id, 16), int(flags, 16)
    except (AttributeError, ValueError):
        return None
    if (len(version), len(trace_id), len(parent_id), len(flags)) != (2, 32, 16, 2):
        return None
    if header != header.lower():
        return None
    if version == "ff" or int(trace_id, 16) == 0 or int(parent_id, 16) == 0:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: the tutorial's 'None' parent read as no parent", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16}|None)-([0-9a-f]{2})(-.*)?",
                     header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return version, trace_id, None if parent_id == "None" else parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: version ff accepted", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: all-zero trace id accepted", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: only version 00 understood", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", header)
    if m is None:
        return None
    trace_id, parent_id, flags = m.groups()
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return "00", trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: re.match without an end anchor", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.match(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: crashes on a missing header", '''
import re

def parse_traceparent(header):
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: the sampled bit instead of the flags", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return version, trace_id, parent_id, int(flags, 16) & 1 == 1
'''),
    ("07.parse_traceparent", "traceparent: a dict without the version", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return {"trace_id": trace_id, "parent_id": parent_id, "flags": flags}
'''),
    ("07.parse_traceparent", "traceparent: flags only length-checked", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    parts = header.split("-")
    if len(parts) < 4:
        return None
    version, trace_id, parent_id, flags = parts[:4]
    if not re.fullmatch(r"[0-9a-f]{2}", version) or version == "ff":
        return None
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id) or trace_id == "0" * 32:
        return None
    if not re.fullmatch(r"[0-9a-f]{16}", parent_id) or parent_id == "0" * 16:
        return None
    if len(flags) != 2:
        return None
    if version == "00" and len(parts) > 4:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: version tested with int(v, 16)", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    parts = header.split("-")
    if len(parts) < 4:
        return None
    version, trace_id, parent_id, flags = parts[:4]
    try:
        if len(version) != 2 or int(version, 16) == 255:
            return None
    except ValueError:
        return None
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id) or trace_id == "0" * 32:
        return None
    if not re.fullmatch(r"[0-9a-f]{16}", parent_id) or parent_id == "0" * 16:
        return None
    if not re.fullmatch(r"[0-9a-f]{2}", flags):
        return None
    if int(version, 16) == 0 and len(parts) > 4:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: int(x, 16) for version and flags, lowercase tested", '''
import re

def parse_traceparent(header):
    if header is None or header != header.lower():
        return None
    parts = header.split("-")
    if len(parts) < 4:
        return None
    version, trace_id, parent_id, flags = parts[:4]
    try:
        if len(version) != 2 or len(flags) != 2 or int(version, 16) == 255:
            return None
        int(flags, 16)
    except ValueError:
        return None
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id) or trace_id == "0" * 32:
        return None
    if not re.fullmatch(r"[0-9a-f]{16}", parent_id) or parent_id == "0" * 16:
        return None
    if version == "00" and len(parts) > 4:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: re.match with ^...$ (a final newline gets in)", r'''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.match(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: header.strip() before matching", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    header = header.strip()
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", r"traceparent: \d for the digits (matches other scripts)", r'''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})(-.*)?", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: an object with a sampled bool, no flags", '''
import re
from dataclasses import dataclass

@dataclass
class Parent:
    version: str
    trace_id: str
    parent_id: str
    sampled: bool

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header)
    if m is None:
        return None
    v, t, p, f, rest = m.groups()
    if v == "ff" or t == "0" * 32 or p == "0" * 16 or (v == "00" and rest):
        return None
    return Parent(v, t, p, int(f, 16) & 1 == 1)
'''),
]

WHY = {
    "traceparent: string.hexdigits (accepts uppercase)": "an uppercase hex digit",
    "traceparent: int(x, 16) as the hex test": "int(x, 16) accepts a sign",
    "traceparent: the tutorial's 'None' parent read as no parent": "'None' is not a parent-id",
    "traceparent: version ff accepted": "version ff is forbidden",
    "traceparent: all-zero trace id accepted": "a trace-id of 32 zeros is invalid",
    "traceparent: only version 00 understood": "is a future version: a receiver reads",
    "traceparent: re.match without an end anchor": "version 00 is exactly 55 characters",
    "traceparent: crashes on a missing header": "None means the request carried no traceparent",
    "traceparent: the sampled bit instead of the flags": "not only the sampled bit",
    "traceparent: a dict without the version": "this dict has no 'version'",
    "traceparent: flags only length-checked": "the flags are '",
    "traceparent: version tested with int(v, 16)": "the version is '",
    "traceparent: int(x, 16) for version and flags, lowercase tested":
        "in the version is not a hex digit (int(x, 16) accepts a sign",
    "traceparent: re.match with ^...$ (a final newline gets in)": "ends in a newline",
    "traceparent: header.strip() before matching": "ends in a newline",
    r"traceparent: \d for the digits (matches other scripts)": "a digit of another script",
    "traceparent: an object with a sampled bool, no flags": "this Parent has no 'flags' (or "
                                                            "'trace_flags')",
}

RIGHT = [
    ("07.parse_traceparent", "traceparent: a dict with int version and flags", '''
import re

def parse_traceparent(header):
    if not isinstance(header, str):
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})((-.*)?)", header)
    if not m or m[1] == "ff" or not m[2].strip("0") or not m[3].strip("0"):
        return None
    if m[1] == "00" and m[5]:
        return None
    return {"version": int(m[1], 16), "trace_id": m[2], "parent_id": m[3],
            "flags": int(m[4], 16)}
'''),
    ("07.parse_traceparent", "traceparent: labkit's own parser", '''
from labkit.obs.traceparent import parse_traceparent as labkit_parse

def parse_traceparent(header):
    tp = labkit_parse(header)
    if tp is None:
        return None
    return f"{tp.version:02x}", tp.trace_id, tp.parent_id, f"{tp.flags:02x}"
'''),
    ("07.parse_traceparent", "traceparent: character by character, no regex", '''
def parse_traceparent(header):
    if header is None or len(header) < 55:
        return None
    hexdigits = set("0123456789abcdef")
    version, trace_id, parent_id, flags = header[:2], header[3:35], header[36:52], header[53:55]
    if header[2] != "-" or header[35] != "-" or header[52] != "-":
        return None
    for field in (version, trace_id, parent_id, flags):
        if any(c not in hexdigits for c in field):
            return None
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    rest = header[55:]
    if rest and (version == "00" or rest[0] != "-"):
        return None
    return [version, trace_id, parent_id, flags]
'''),
    ("07.parse_traceparent", "traceparent: a dict named like OpenTelemetry", '''
import re

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None
    return {"version": version, "trace_id": trace_id, "span_id": parent_id,
            "trace_flags": flags}
'''),
    ("07.parse_traceparent", "traceparent: bytes.fromhex, round-tripped", '''
def _hex_field(text, n_bytes):
    if len(text) != 2 * n_bytes:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return raw if raw.hex() == text else None      # fromhex skips spaces, reads uppercase

def parse_traceparent(header):
    if header is None:
        return None
    parts = header.split("-")
    if len(parts) < 4:
        return None
    version, trace_id, parent_id, flags = parts[:4]
    fields = [_hex_field(version, 1), _hex_field(trace_id, 16), _hex_field(parent_id, 8),
              _hex_field(flags, 1)]
    if None in fields:
        return None
    if version == "ff" or not any(fields[1]) or not any(fields[2]):
        return None
    if version == "00" and len(parts) > 4:
        return None
    return version, trace_id, parent_id, flags
'''),
    ("07.parse_traceparent", "traceparent: a dataclass with OTel's span_id", '''
import re
from dataclasses import dataclass

@dataclass
class TraceParent:
    version: str
    trace_id: str
    span_id: str
    flags: str

def parse_traceparent(header):
    if header is None:
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header)
    if m is None:
        return None
    v, t, p, f, rest = m.groups()
    if v == "ff" or t == "0" * 32 or p == "0" * 16 or (v == "00" and rest):
        return None
    return TraceParent(v, t, p, f)
'''),
]
