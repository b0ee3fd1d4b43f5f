"""Numbers from participant forms: bounded, finite, never an exception other than None for "not a number".

Forms are untrusted text. `float("1e400")` is infinite, `round(inf)` raises OverflowError, `int("9" * 5000)` raises
ValueError past Python's digit limit, and a NaN compares false with everything; these helpers turn all of that into
None before any arithmetic, so callers decide between "missing" and "bad request" in one place.
"""

from __future__ import annotations

import math
import re

# Plain decimal notation in ASCII: Python's float() would also take "inf", "1_000" and non-ASCII digits ("٣").
DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Longer than any honest value ("1234.5678", "-0", "100"); longer text is refused before it is parsed.
MAX_NUMBER_CHARS = 32


def finite_number(raw: object) -> float | None:
    """A finite float from a form value, or None (absent, not a number, infinite, NaN, absurdly long)."""
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    if len(text) > MAX_NUMBER_CHARS or not DECIMAL.fullmatch(text):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def whole_number(raw: object) -> int | None:
    """An integer written as digits (optionally signed), or None; "3.0", "1e3" and "0x10" are not indices."""
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    if not text or len(text) > MAX_NUMBER_CHARS:
        return None
    body = text[1:] if text[0] in "+-" else text
    if not body.isascii() or not body.isdigit():
        return None
    return int(text)
