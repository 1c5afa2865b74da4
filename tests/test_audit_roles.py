"""The app's own PostgreSQL role (`manage.py db_app_role`): connected as it, the app writes and reads
the audit log through every writer path, and nothing can rewrite the log: TRUNCATE, UPDATE,
DELETE, disabling or dropping the triggers, replacing the guard function and
`session_replication_role = replica` all fail. The role is made for the test database (its name
carries the database's, so parallel runs do not share one) and dropped afterwards."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from psycopg import errors

from directory import audit, audit_chain
from directory.management.commands.db_app_role import app_role_problems, grant_app_role
from directory.models import AuditEvent
from tests.audit_helpers import AUDIT_TABLE, conninfo, owner_connect
from tests.conftest import require_service

# With DATABASE_OWNER_URL set (CI), the `owner` alias is the test database's owner connection.
OWNER_ALIAS = ["owner"] if "owner" in settings.DATABASES else []
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", *OWNER_ALIAS])

PASSWORD = "role-test-password"


@pytest.fixture
def app_role():
    """A fresh app role on the test database, granted as `db_app_role` does; dropped afterwards."""
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "database roles are PostgreSQL's: run the suite with a postgres:// DATABASE_URL")
    role = f"{connection.settings_dict['NAME']}_roletest"[:63]
    with owner_connect() as owner, owner.cursor() as cursor:
        grant_app_role(cursor, role=role, password=PASSWORD)
        assert app_role_problems(cursor, role=role) == []
    try:
        yield role
    finally:
        with owner_connect() as owner:
            owner.execute(f'DROP OWNED BY "{role}"')
            owner.execute(f'DROP ROLE "{role}"')


def _as(role: str) -> psycopg.Connection:
    return psycopg.connect(conninfo(user=role, password=PASSWORD), autocommit=True)


def _write_through_every_path() -> None:
    audit.record(action="requested", object_type="user", object_id="alice", source="admin", actor="ann",
                 changes={"enabled": [True, False]})
    audit.record_many([audit.build(action="created", object_type="group", object_id="g", source="sync")])
    audit.copy_many([{"action": "updated", "object_type": "user", "object_id": "bob", "changes": {"n": [1, 2]}}],
                    source="worker", pool_id="us-east-1_roles")


def test_the_app_role_writes_and_verifies_the_log_through_every_writer(app_role):
    default = connections["default"]
    app = default.settings_dict["USER"], default.settings_dict["PASSWORD"]
    default.close()
    default.settings_dict["USER"], default.settings_dict["PASSWORD"] = app_role, PASSWORD
    try:
        with default.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] == app_role
        _write_through_every_path()
        assert AuditEvent.objects.count() == 3
        result = audit_chain.verify_and_record(source="command")
        assert result.ok and result.events == 3
        with default.cursor() as cursor:
            cursor.execute("SELECT directory_analyze_users()")  # the pull's planner statistics, as the owner
    finally:
        default.close()
        default.settings_dict["USER"], default.settings_dict["PASSWORD"] = app


REFUSED = {
    "truncate": f"TRUNCATE {AUDIT_TABLE}",
    "update": f"UPDATE {AUDIT_TABLE} SET actor = 'mallory'",
    "delete": f"DELETE FROM {AUDIT_TABLE}",
    "disable one trigger": f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {AUDIT_TABLE}_no_update_delete",
    "disable all triggers": f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER ALL",
    "drop the trigger": f"DROP TRIGGER {AUDIT_TABLE}_no_update_delete ON {AUDIT_TABLE}",
    "replace the guard": f"CREATE OR REPLACE FUNCTION {AUDIT_TABLE}_refuse() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN RETURN OLD; END; $$",
    "replica mode": "SET session_replication_role = replica",
    "become the owner": "SET ROLE {owner}",
    "rewrite a verification": "UPDATE directory_auditverification SET ok = true",
    "delete the verifications": "DELETE FROM directory_auditverification",
    "empty the chain head": "DELETE FROM directory_auditchainhead",
    "truncate the chain head": "TRUNCATE directory_auditchainhead",
    "create a table": "CREATE TABLE mallory (id int)",
}


@pytest.mark.parametrize("attack", list(REFUSED))
def test_the_app_role_cannot_rewrite_the_log(app_role, attack):
    _write_through_every_path()  # committed, as the suite's own role (the owner, or the CI's app role)
    with owner_connect() as owner:
        owner_name = owner.execute("SELECT current_user").fetchone()[0]
    with _as(app_role) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(REFUSED[attack].format(owner=f'"{owner_name}"'))
        assert conn.execute("SHOW session_replication_role").fetchone()[0] == "origin"
        # What it may do: read the log and append to it.
        assert conn.execute(f"SELECT count(*) FROM {AUDIT_TABLE}").fetchone()[0] == 3
        conn.execute(
            f"INSERT INTO {AUDIT_TABLE} (created_at, actor, source, action, object_type, object_id, object_repr, "
            "pool_id, changes, detail, outcome, correlation_id, prev_hash, hash) "
            "VALUES (now(), '', 'admin', 'x', 'user', 'u', '', '', '{}', '{}', 'ok', '', '', '')"
        )
    assert AuditEvent.objects.filter(actor="mallory").count() == 0
    assert AuditEvent.objects.count() == 4


def test_db_app_role_reports_a_role_that_can_do_too_much(app_role):
    with owner_connect() as owner, owner.cursor() as cursor:
        cursor.execute(f'GRANT UPDATE, TRUNCATE ON {AUDIT_TABLE} TO "{app_role}"')
        assert app_role_problems(cursor, role=app_role) == [
            f"{app_role} can UPDATE {AUDIT_TABLE}",
            f"{app_role} can TRUNCATE {AUDIT_TABLE}",
        ]
        grant_app_role(cursor, role=app_role, password=PASSWORD)  # idempotent: puts the grants back
        assert app_role_problems(cursor, role=app_role) == []


def test_db_app_role_refuses_to_treat_the_owner_as_the_app():
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "database roles are PostgreSQL's: run the suite with a postgres:// DATABASE_URL")
    with owner_connect() as owner, owner.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (name,) = cursor.fetchone()
        with pytest.raises(CommandError, match="must name another role"):
            grant_app_role(cursor, role=name, password=None)


def test_db_app_role_command(capsys):
    if not OWNER_ALIAS:
        # The single-user setup: DATABASE_URL's role owns everything and there is no app role to grant.
        with pytest.raises(CommandError, match="set DATABASE_OWNER_URL"):
            call_command("db_app_role")
        return
    call_command("db_app_role")  # CI: grants the suite's own role again, as the owner (idempotent)
    assert f"role {connection.settings_dict['USER']}: the app's grants on" in capsys.readouterr().out
