"""The Chinese–English term glossary of the course (labkit/course/glossary.csv, shipped as package data).

Defined in chapter 0 (notebooks/00_start_here.ipynb). Each row has ``en``, ``zh``,
``pinyin`` and a one-sentence ``definition``::

    from labkit.course import glossary
    glossary.lookup("熔断")           # by Chinese ...
    glossary.lookup("Retry")          # ... or English, any case
    glossary.lookup("CQRS")           # an abbreviation in brackets works too
    glossary.show("queue")            # the rows that mention "queue", as a table
"""
from __future__ import annotations

import csv
import difflib
import html
import pathlib
import re
import unicodedata

from labkit.course.source import show_rich

PATH = pathlib.Path(__file__).resolve().parent / "glossary.csv"
FIELDS = ("en", "zh", "pinyin", "definition")


def load(path: pathlib.Path | str | None = None) -> list[dict]:
    """Read the glossary: one dict per term with the keys en, zh, pinyin, definition."""
    path = pathlib.Path(path) if path is not None else PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"glossary not found at {path}. It ships inside labkit (labkit/course/glossary.csv): "
            f"reinstall labkit from the course folder with `make lab`, or run `git pull` if the "
            f"file is missing from your checkout.")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise ValueError(f"{path}: columns must be {','.join(FIELDS)}, got {reader.fieldnames}")
        return [{k: (row[k] or "").strip() for k in FIELDS} for row in reader]


def _norm(text: str) -> str:
    """Case-, width- and space-insensitive form: "API 网关" and "api网关" are the same term."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).casefold())


def keys(row: dict) -> set[str]:
    """The normalised names a row answers to: en, zh, and en with / without its (abbreviation)."""
    names = {row["en"], row["zh"]}
    match = re.fullmatch(r"(.+?)\s*\((.+)\)", row["en"])
    if match:
        names |= {match.group(1), match.group(2)}
    return {_norm(n) for n in names}


def lookup(term: str, rows: list[dict] | None = None) -> dict:
    """The row for `term` (English or Chinese, any case). Unknown terms raise KeyError with
    the closest matches."""
    rows = load() if rows is None else rows
    want = _norm(term)
    for row in rows:
        if want in keys(row):
            return row
    names = [n for row in rows for n in (row["en"], row["zh"])]
    close = difflib.get_close_matches(term, names, n=3, cutoff=0.5)
    close += [n for n in names if want and want in _norm(n) and n not in close][:3]
    hint = f"did you mean: {', '.join(close)}?" if close else "see glossary.show() for every term"
    raise KeyError(f"{term!r} is not in the glossary; {hint}")


def search(text: str | None = None, rows: list[dict] | None = None) -> list[dict]:
    """The rows where `text` occurs in any field (case-insensitive); all rows when None."""
    rows = load() if rows is None else rows
    if not text:
        return list(rows)
    want = _norm(text)
    return [row for row in rows if any(want in _norm(row[k]) for k in FIELDS)]


def _width(text: str) -> int:
    """Columns `text` takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def to_text(rows: list[dict]) -> str:
    """A plain-text table (aligned also for Chinese characters)."""
    widths = {k: max([_width(k)] + [_width(r[k]) for r in rows]) for k in FIELDS[:3]}

    def line(r: dict) -> str:
        cells = [r[k] + " " * (widths[k] - _width(r[k])) for k in FIELDS[:3]]
        return "  ".join(cells + [r["definition"]])
    header = {k: k for k in FIELDS}
    rule = {k: "-" * widths.get(k, 10) for k in FIELDS}
    return "\n".join(line(r).rstrip() for r in [header, rule, *rows])


def to_html(rows: list[dict]) -> str:
    """An HTML table."""
    head = "".join(f"<th style='text-align:left'>{k}</th>" for k in FIELDS)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(r[k])}</td>"
                                    for k in FIELDS) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def show(filter: str | None = None) -> None:
    """Show the glossary (only rows mentioning `filter`, if given): an HTML table in a
    notebook, a plain-text table elsewhere."""
    rows = search(filter)
    caption = f"{len(rows)} term{'s' * (len(rows) != 1)}" + (f" matching {filter!r}" if filter else "")
    show_rich(f"{caption}\n{to_text(rows)}",
              html=f"<p><b>{html.escape(caption)}</b></p>{to_html(rows)}")
