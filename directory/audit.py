"""The only writer of AuditEvent: builds rows (secrets scrubbed) and saves them one by one or in bulk."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .mapping import jsonable, without_secrets
from .models import AuditEvent

Source = AuditEvent.Source
Outcome = AuditEvent.Outcome


def build(
    *,
    action: str,
    object_type: str,
    object_id: str,
    source: str,
    actor: str = "",
    object_repr: str = "",
    pool_id: str = "",
    changes: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
    outcome: str = Outcome.OK,
    correlation_id: str = "",
) -> AuditEvent:
    """An unsaved AuditEvent; `changes` is {field: [before, after]}."""
    return AuditEvent(
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:256],
        object_repr=str(object_repr)[:256],
        source=source,
        actor=actor or "",
        pool_id=pool_id or "",
        changes=jsonable(without_secrets(dict(changes or {}))),
        detail=jsonable(without_secrets(dict(detail or {}))),
        outcome=outcome,
        correlation_id=str(correlation_id or ""),
    )


def record(**kwargs: Any) -> AuditEvent:
    """Write one audit event (inside the caller's transaction)."""
    event = build(**kwargs)
    event.save(force_insert=True)
    return event


def record_many(events: Sequence[AuditEvent], *, batch_size: int = 1000) -> int:
    """Write many audit events with one INSERT per batch."""
    if not events:
        return 0
    AuditEvent.objects.bulk_create(events, batch_size=batch_size)
    return len(events)


_maintenance = threading.local()


def sqlite_audit_locked() -> int:
    """Called by the SQLite triggers: 1 (refuse) unless this thread is in `test_flush()`."""
    return 0 if getattr(_maintenance, "active", False) else 1


@contextmanager
def test_flush() -> Iterator[None]:
    """Lets Django's test flush empty the table on SQLite (PostgreSQL's flush is a TRUNCATE,
    which the row triggers do not see). For the test suite only."""
    _maintenance.active = True
    try:
        yield
    finally:
        _maintenance.active = False
