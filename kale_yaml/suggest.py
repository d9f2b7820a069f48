""" "Did you mean" suggestions, worded the same everywhere a name is looked up."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like `word`, ignoring case (a typo in case is a typo too), or None."""
    options = sorted(set(candidates))
    if word in options:
        return word
    by_folded: dict[str, str] = {}
    for option in options:
        by_folded.setdefault(option.casefold(), option)
    close = difflib.get_close_matches(word.casefold(), list(by_folded), n=1, cutoff=0.6)
    return by_folded[close[0]] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` or an empty string."""
    found = closest(word, candidates)
    return f"; did you mean '{found}'?" if found else ""
