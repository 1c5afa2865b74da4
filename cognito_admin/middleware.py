"""Request parameters no view can use, refused at the door with a 400 that names the parameter.

PostgreSQL refuses NUL characters in text, and Python's dates end at year 9999: a list filter,
a search or a date-hierarchy link carrying either would otherwise reach the database or
`datetime` and end as a 500. Forms refuse NUL characters themselves (Django's CharField does);
this covers the query string and every posted field alike, for the whole site."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.html import escape

_DATE_PARTS = {"__year": (1, 9999), "__month": (1, 12), "__day": (1, 31)}
# Longer than any search or filter value has a use for (Cognito's longest attribute value is
# 2048 characters); SQLite refuses LIKE patterns past 50,000 bytes.
MAX_QUERY_VALUE = 2048
# A filter on an id or a count past a 64-bit integer fails in the database driver itself.
BIGINT_MAX = 2**63 - 1


def _integer_out_of_range(value: str) -> bool:
    text = value.strip()
    return text.lstrip("+-").isdigit() and len(text) < 400 and abs(int(text)) > BIGINT_MAX


def _problem(name: str, values: list[str], *, query: bool) -> str | None:
    if "\x00" in name or any("\x00" in value for value in values):
        return f"{name.replace(chr(0), '')!r} contains a NUL character, which no field accepts."
    if query and any(len(value) > MAX_QUERY_VALUE for value in values):
        return f"{name!r} is longer than {MAX_QUERY_VALUE} characters."
    if any(_integer_out_of_range(value) for value in values):
        return f"{name!r} is a number beyond what a database column holds (±{BIGINT_MAX})."
    for suffix, (low, high) in _DATE_PARTS.items():
        if name.endswith(suffix):
            for value in values:
                if value.strip().lstrip("-").isdigit() and not low <= int(value) <= high:
                    return f"{name!r} must be between {low} and {high} (got {value[:20]})."
    return None


class RefuseUnusableParameters:
    """Answers 400, naming the parameter and the rule, for a NUL character in any parameter, a query
    value over MAX_QUERY_VALUE characters, or an out-of-range date-hierarchy part (`<field>__year`
    1-9999, `__month` 1-12, `__day` 1-31)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sources = [(request.GET, True)]
        if request.method == "POST" and request.content_type in {
            "application/x-www-form-urlencoded", "multipart/form-data"
        }:
            sources.append((request.POST, False))  # forms check their own lengths
        for source, query in sources:
            for name, values in source.lists():
                problem = _problem(name, values, query=query)
                if problem is not None:
                    return HttpResponseBadRequest(
                        f"<h1>Bad request</h1><p>{escape(problem)}</p>", content_type="text/html; charset=utf-8"
                    )
        return self.get_response(request)
