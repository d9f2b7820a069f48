""""Did you mean" suggestions, worded the same everywhere a name is looked up."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    options = sorted(set(candidates))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return close[0]
    folded = word.casefold()
    same_case = [c for c in options if c.casefold() == folded]
    return same_case[0] if same_case else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` or an empty string."""
    found = closest(word, candidates)
    return f"; did you mean '{found}'?" if found else ""
