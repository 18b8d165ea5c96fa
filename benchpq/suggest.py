"""Suggestions for misspelt names (options, config choices, report columns): "did you mean"."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio a choice needs to be suggested (its own default is 0.6);
# low enough for one wrong letter in a short name ("m" for "M", "thread" for "threads")
CUTOFF = 0.6


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the choice closest to ``name``, or ``""`` if none is close.

    Matching ignores case first (``m`` finds ``M``), so a wrong capital always finds its
    name; otherwise the closest spelling by :func:`difflib.get_close_matches`. ``name``
    itself is never suggested. Append the result to an error message::

        raise InputError(f"unknown option {key!r}{did_you_mean(key, options)}")
    """
    name = str(name)
    choices = [str(c) for c in choices if str(c) != name]
    same_but_case = [c for c in choices if c.lower() == name.lower()]
    if same_but_case:
        return f" (did you mean {same_but_case[0]!r}?)"
    by_lower = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=CUTOFF)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
