"""Helpers for the audit chain and database role tests: raw connections to the test database as
the owner (or another role), and tampering the way an owner or any SQLite client can."""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Iterable

import psycopg
from django.db import connection
from psycopg.conninfo import make_conninfo

from tests.conftest import owner_settings

AUDIT_TABLE = "directory_auditevent"
APPEND_ONLY = importlib.import_module("directory.migrations.0002_auditevent_append_only")


def conninfo(*, user: str | None = None, password: str | None = None) -> str:
    """libpq connection string for the test database, as the owner unless a user is given."""
    settings = connection.settings_dict
    owner = owner_settings() or settings
    return make_conninfo(
        host=settings.get("HOST") or "127.0.0.1",
        port=str(settings.get("PORT") or 5432),
        dbname=settings["NAME"],
        user=user if user is not None else owner["USER"],
        password=password if user is not None else (owner.get("PASSWORD") or ""),
    )


def owner_connect() -> psycopg.Connection:
    """A psycopg connection to the test database as its owner (autocommit)."""
    return psycopg.connect(conninfo(), autocommit=True)


def tamper(statements: Iterable[str]) -> None:
    """Run SQL on committed audit rows with the append-only guard out of the way, as an attacker
    with the owner's rights does on PostgreSQL (the triggers disabled for one transaction) and as
    any client can on SQLite (the triggers dropped, then put back)."""
    statements = list(statements)
    if connection.vendor == "postgresql":
        trigger = f"{AUDIT_TABLE}_no_update_delete"
        with owner_connect() as conn, conn.transaction():
            conn.execute(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {trigger}")
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {trigger}")
        return
    client = sqlite3.connect(connection.settings_dict["NAME"])
    try:
        client.executescript(
            "".join(f"{statement};" for statement in APPEND_ONLY.SQLITE_DOWN)
            + "".join(f"{statement};" for statement in statements)
            + "".join(APPEND_ONLY.SQLITE_UP)
        )
    finally:
        client.close()
