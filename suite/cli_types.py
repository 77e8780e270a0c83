"""Argument types shared by every front door: a value out of range is refused at parse time.

``argparse`` turns the ``ArgumentTypeError`` these raise into one ``error:`` line naming
the option, with exit status 2, before any work starts.
"""

from __future__ import annotations

import argparse
import math


def int_at_least(low: int):
    """An integer ≥ ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small (must be ≥ {low})")
        return value
    parse.__name__ = f"integer ≥ {low}"
    return parse


def int_in(low: int, high: int):
    """An integer in [``low``, ``high``]."""
    def parse(text: str) -> int:
        value = int_at_least(low)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"{value} is too large (must be ≤ {high})")
        return value
    parse.__name__ = f"integer in [{low}, {high}]"
    return parse


def float_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """A finite float in the interval given (closed unless said open)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(f"{value:g} is out of range (must be in {lo}{low:g}, "
                                             f"{high:g}{hi})")
        return value
    parse.__name__ = "number"
    return parse


#: What a list option says to a value written the old way, with commas (docs/commands.md).
COMMA_HINT = "give several values separated by spaces, not commas"


def list_item(item_type=str):
    """One value of a list option (``nargs="+"``): ``item_type`` of it, refusing a comma.

    Lists are given as space-separated values after their option (``--model a b``); a
    comma where a list is expected means the old habit (``--model a,b``), so it is one
    clear error at parse time, never a value silently misread.
    """
    def parse(text: str):
        if "," in text:
            raise argparse.ArgumentTypeError(f"{text!r}: {COMMA_HINT} "
                                             f"({' '.join(t for t in text.split(',') if t)})")
        return item_type(text)
    parse.__name__ = getattr(item_type, "__name__", "value")
    parse.refuses_commas = True
    return parse


def exactly(*counts: int):
    """``action=`` for a list option that takes one of ``counts`` values (``nargs="+"``).

    Used instead of a fixed ``nargs`` so that each value goes through its ``list_item``
    type first: ``--keys f,j`` is then refused with the comma hint, not with argparse's
    "expected 2 arguments".
    """
    wanted = " or ".join(str(c) for c in counts)

    class Exactly(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            if len(values) not in counts:
                parser.error(f"argument {option_string or self.metavar or self.dest}: give "
                             f"{wanted} values separated by spaces, got {len(values)}")
            setattr(namespace, self.dest, values)

    Exactly.counts = counts
    return Exactly
