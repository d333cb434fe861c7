"""The log filter of the API and the event stream: plain text (case-insensitive) or a regular
expression, bounded in time. A pattern that backtracks catastrophically (`(x+x+)+y` over a long
line of x) holds Python's `re` for hours with the GIL; patterns run in the `regex` module instead,
which takes a timeout and lets other threads run while it matches, and one pass over the kept
lines gets BUDGET seconds in all. The server runs each pass in a worker thread."""

from __future__ import annotations

import time

import regex

BUDGET = 0.5  # seconds for one pass over the kept lines (a sound pattern takes milliseconds)
LONGEST = 1000  # characters of a filter


class FilterError(ValueError):
    """What is wrong with the filter, and what to do: the API answers 400 with both."""

    def __init__(self, error: str, fix: str):
        super().__init__(error)
        self.error, self.fix = error, fix


class Filter:
    """A predicate over line texts; `begin()` starts a pass (and its time budget)."""

    def __init__(self, query: str | None, use_regex: bool = False, budget: float = BUDGET):
        self.query, self.budget, self.deadline = query or "", budget, None
        self.pattern = self.needle = None
        if len(self.query) > LONGEST:
            raise FilterError(f"the filter is longer than {LONGEST} characters", "shorten it")
        if self.query and use_regex:
            try:
                self.pattern = regex.compile(self.query, regex.IGNORECASE)
            except (regex.error, OverflowError, RecursionError, ValueError) as exc:
                raise FilterError(f"not a regular expression: {exc}",
                                  "correct the pattern, or untick regex to filter by plain text") from None
        elif self.query:
            self.needle = self.query.lower()

    def begin(self) -> "Filter":
        self.deadline = time.monotonic() + self.budget
        return self

    def __call__(self, text: str) -> bool:
        if self.pattern is None:
            return self.needle is None or self.needle in text.lower()
        left = self.budget if self.deadline is None else self.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            return self.pattern.search(text, timeout=left) is not None
        except TimeoutError:
            raise FilterError(f"the regular expression took longer than {self.budget:g} s over the kept lines "
                              "(it backtracks catastrophically, as nested repeats such as (x+)+ do)",
                              "simplify the pattern, or untick regex to filter by plain text") from None


def matcher(query: str | None, regex: bool = False) -> Filter:  # noqa: F811 - the API's parameter name
    """The filter box's predicate. Raises FilterError (a ValueError) for a pattern that is no regex."""
    return Filter(query, regex)
