"""PostgreSQL COPY text format, written by hand for the pull's bulk paths.

psycopg's `Copy.write_row` looks up a dumper and escapes each value on its own (about a
microsecond each, holding the GIL); a pull writes some thirty values per user. Here rows
become lines of tab-separated text, built with plain string operations on the pull's
thread, and travel in one `Copy.write` per batch from the writer thread. Same rules as
psycopg: `\\N` for NULL, `t`/`f`, ISO 8601 datetimes, and backslash, tab, newline and
carriage return escaped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text(value: str) -> str:
    """A string as a COPY text field."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


def field(value: Any) -> str:
    """Any value the pull writes (str, bool, int, datetime, None) as a COPY text field."""
    kind = type(value)
    if kind is str:
        return text(value)
    if value is None:
        return NULL
    if kind is bool:
        return "t" if value else "f"
    if kind is int:
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a COPY row")
        return value.isoformat()
    raise TypeError(f"{kind.__name__} is not a COPY text value here")
