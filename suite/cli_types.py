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


def int_list(low: int | None = None):
    """Comma-separated integers, each ≥ ``low`` when given."""
    def parse(text: str) -> list[int]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r}: give one or more comma-separated numbers")
        return [int_at_least(low)(t) if low is not None else int(t) for t in items]
    parse.__name__ = "list of integers"
    return parse
