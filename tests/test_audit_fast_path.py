"""The pull's bulk audit writer (`audit.copy_many`): the rows `audit.build` would make, secrets dropped,
the log still append-only. On PostgreSQL (CI) it writes by COPY; elsewhere through `record_many`."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DatabaseError, connection, transaction

from directory import audit
from directory.models import AuditEvent

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's; CI runs the suite on PostgreSQL"
)

SHARED = {"source": audit.Source.WORKER, "actor": "bob", "pool_id": "us-east-1_fast", "correlation_id": "corr-1"}

ROWS = [
    {
        "action": "created",
        "object_type": "user",
        "object_id": "alice",
        "object_repr": "alice@example.com",
        "changes": {
            "email": [None, "alice@example.com"],
            "attributes.custom:team": [None, "Zoë"],
            "enabled": [None, True],
            "remote_created_at": [None, dt.datetime(2024, 1, 1, 12, 30, tzinfo=dt.UTC)],
            "mfa_options": [None, [{"DeliveryMedium": "SMS", "AttributeName": "phone_number"}]],
        },
        "detail": {"sub": "sub-1"},
    },
    {
        "action": "updated",
        "object_type": "app_client",
        "object_id": "client-1",
        "changes": {
            "ClientSecret": ["old-secret-value", "new-secret-value"],
            "config": [{"TemporaryPassword": "hunter2", "keep": 1}, {"Session": "session-token", "keep": 2}],
            "token_validity_units": [None, {"AccessToken": "hours"}],
        },
        "detail": {"nested": [{"Password": "pa55word", "ok": True}]},
        "outcome": audit.Outcome.CONFLICT,
    },
]

COMPARED = (
    "actor", "source", "action", "object_type", "object_id", "object_repr", "pool_id", "changes", "detail",
    "outcome", "correlation_id",
)


def _stored(event: AuditEvent) -> dict:
    return {name: getattr(event, name) for name in COMPARED}


def test_copy_many_writes_what_build_makes_without_secrets():
    assert audit.copy_many(ROWS, **SHARED) == 2

    events = list(AuditEvent.objects.order_by("id"))
    assert [_stored(e) for e in events] == [_stored(audit.build(**SHARED, **row)) for row in ROWS]
    user, client = events
    assert user.changes["remote_created_at"] == [None, "2024-01-01T12:30:00+00:00"]
    assert user.changes["attributes.custom:team"] == [None, "Zoë"]
    assert user.created_at is not None
    # Secret keys are gone at any depth; a container that only shares a secret's name is kept.
    assert "ClientSecret" not in client.changes
    assert client.changes["config"] == [{"keep": 1}, {"keep": 2}]
    assert client.changes["token_validity_units"] == [None, {"AccessToken": "hours"}]
    assert client.detail == {"nested": [{"ok": True}]}
    assert client.outcome == audit.Outcome.CONFLICT
    text = repr([(e.changes, e.detail) for e in events])
    for secret in ("old-secret-value", "new-secret-value", "hunter2", "session-token", "pa55word"):
        assert secret not in text


def test_copy_many_of_nothing_writes_nothing():
    assert audit.copy_many([], **SHARED) == 0
    assert not AuditEvent.objects.exists()


def test_copy_many_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError):
        audit.copy_many([{**ROWS[0], "detail": {"when": object()}}], **SHARED)


@on_postgresql
def test_copy_many_on_postgresql_keeps_the_log_append_only():
    audit.copy_many(ROWS, **SHARED)
    event = AuditEvent.objects.get(object_id="alice")
    assert event.changes["email"] == [None, "alice@example.com"]
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "created"
    assert AuditEvent.objects.count() == 2
