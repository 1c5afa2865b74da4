"""HTML renderings of the mirror's JSON fields for read-only admin pages; everything is escaped."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

EMPTY = "–"
# Keys that must never reach a page, even if a raw record still carried them.
SECRET_KEYS = frozenset({"ClientSecret", "TemporaryPassword", "Password", "SecretHash"})


def scrub(value: Any) -> Any:
    """Drop secret-bearing keys at any depth."""
    if isinstance(value, Mapping):
        return {k: scrub(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def pretty_json(value: Any) -> SafeString:
    """Pretty-printed JSON in a <pre>, escaped."""
    if value in (None, {}, []):
        return mark_safe(EMPTY)  # noqa: S308 - constant
    text = json.dumps(scrub(value), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="directory-json">{}</pre>', text)


def scalar(value: Any) -> SafeString:
    """One value as escaped text: booleans as yes/no, lists comma-joined, dicts as nested tables."""
    if value is None or value == "" or value == [] or value == {}:
        return mark_safe(EMPTY)  # noqa: S308 - constant
    if isinstance(value, bool):
        return format_html("{}", "yes" if value else "no")
    if isinstance(value, Mapping):
        return mapping_table(value)
    if isinstance(value, list | tuple):
        if all(not isinstance(v, Mapping | list | tuple) for v in value):
            return format_html("{}", ", ".join(str(v) for v in value))
        return format_html_join(mark_safe(""), "<div>{}</div>", ((scalar(v),) for v in value))
    text = str(value)
    if "\n" in text or "<" in text:
        # Templates (often HTML e-mails) are shown as source, never rendered.
        return format_html('<pre class="directory-text">{}</pre>', text)
    return format_html("{}", text)


def mapping_table(value: Mapping | None, *, headers: tuple[str, str] | None = None) -> SafeString:
    """A two-column key/value table."""
    if not value:
        return mark_safe(EMPTY)  # noqa: S308 - constant
    value = scrub(value)
    head = format_html("<thead><tr><th>{}</th><th>{}</th></tr></thead>", *headers) if headers else ""
    rows = format_html_join(
        "\n", "<tr><th scope=\"row\">{}</th><td>{}</td></tr>", ((k, scalar(v)) for k, v in value.items())
    )
    return format_html('<table class="directory-table">{}<tbody>{}</tbody></table>', head, rows)


def rows_table(headers: Iterable[str], rows: Iterable[Iterable[Any]], *, empty: str = EMPTY) -> SafeString:
    """A table with a header row; cells that are SafeString pass through, the rest is escaped."""
    rows = list(rows)
    if not rows:
        return format_html("{}", empty)
    head = format_html_join("", "<th scope=\"col\">{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "\n",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((c if isinstance(c, SafeString) else scalar(c),) for c in row)),)
         for row in rows),
    )
    return format_html(
        '<table class="directory-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body
    )


def bullet_list(items: Iterable[Any]) -> SafeString:
    items = list(items)
    if not items:
        return mark_safe(EMPTY)  # noqa: S308 - constant
    return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((scalar(i),) for i in items)))


def changes_table(changes: Mapping | None) -> SafeString:
    """An audit event's `field -> [before, after]` as field | before | after."""
    if not changes:
        return mark_safe(EMPTY)  # noqa: S308 - constant
    rows = []
    for field, change in scrub(changes).items():
        if isinstance(change, list | tuple) and len(change) == 2:
            before, after = change
        elif isinstance(change, Mapping) and {"before", "after"} <= set(change):
            before, after = change["before"], change["after"]
        else:
            before, after = None, change
        rows.append((field, _change_cell(before), _change_cell(after)))
    return rows_table(("field", "before", "after"), rows)


def _change_cell(value: Any) -> SafeString:
    if isinstance(value, Mapping | list | tuple) and value:
        return pretty_json(value)
    return scalar(value)


class LinesField(forms.CharField):
    """A list of strings edited one per line."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 80})

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [line.strip() for line in text.splitlines() if line.strip()]


def copy_value(value: str, element_id: str = "") -> SafeString:
    """A value in <code> with a button that copies it (directory/copy_buttons.js copies the element
    the button's data-copy names); without JS it is plain text to select."""
    if not value:
        return mark_safe(EMPTY)  # noqa: S308 - constant
    element_id = element_id or "copy-" + hashlib.sha1(value.encode(), usedforsecurity=False).hexdigest()[:12]
    return format_html(
        '<span class="directory-copy"><code id="{}">{}</code> '
        '<button type="button" class="copy-button" data-copy="{}" title="Copy to the clipboard">Copy</button>'
        "</span>",
        element_id, value, element_id,
    )
