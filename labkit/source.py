"""Show labkit's code in a notebook, so a chapter can teach a pattern without pasting it."""
from __future__ import annotations

import inspect
import textwrap


def show(obj) -> None:
    """Display the source of a labkit function or class, highlighted."""
    try:
        src = textwrap.dedent(inspect.getsource(obj))
    except (TypeError, OSError) as err:
        raise ValueError(f"cannot show the source of {obj!r}: {err}") from None
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
        if get_ipython() is not None:
            display(Markdown(f"```python\n{src}```"))
            return
    except ImportError:  # pragma: no cover
        pass
    print(src)
