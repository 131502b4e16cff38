"""Showing things in a notebook: labkit's own code, and rich output with a text fallback.

`show` lets a chapter teach a pattern without pasting it; `show_rich` is how every labkit
display (feedback, tables) reaches the learner: HTML in a notebook, plain text elsewhere.
"""
from __future__ import annotations

import inspect
import textwrap


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    return get_ipython() is not None


def show_rich(text: str, *, html: str | None = None, markdown: str | None = None) -> None:
    """Display `html` or `markdown` in a notebook (with `text` as fallback); print `text` elsewhere."""
    if not _in_notebook():
        print(text)
        return
    from IPython.display import display
    bundle = {"text/plain": text}
    if html is not None:
        bundle["text/html"] = html
    if markdown is not None:
        bundle["text/markdown"] = markdown
    display(bundle, raw=True)


def show(obj) -> None:
    """Display the source of a labkit function or class, highlighted."""
    try:
        src = textwrap.dedent(inspect.getsource(obj))
    except (TypeError, OSError) as err:
        raise ValueError(f"cannot show the source of {obj!r}: {err}") from None
    show_rich(src, markdown=f"```python\n{src}```")
