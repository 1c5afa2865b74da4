"""The app's own PostgreSQL role (`manage.py db_app_role`): connected as it, a separate process writes
and reads the audit log through every writer path and verifies the chain, and nothing can rewrite
the log: TRUNCATE, UPDATE, DELETE, disabling or dropping the triggers, replacing the guard function
and `session_replication_role = replica` all fail.

The database is the test database when the suite runs on PostgreSQL; when it runs on SQLite, a
scratch database on the PostgreSQL at 127.0.0.1:5432 (user postgres), migrated for these tests
and dropped after them. The role is made for that database (its name carries the database's, so
parallel runs do not share one) and dropped afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from directory.management.commands.db_app_role import app_role_problems, grant_app_role
from tests.audit_helpers import AUDIT_TABLE
from tests.audit_helpers import conninfo as suite_database_conninfo
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parent.parent
# With DATABASE_OWNER_URL set (CI), the `owner` alias is the test database's owner connection.
OWNER_ALIAS = ["owner"] if "owner" in settings.DATABASES else []
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", *OWNER_ALIAS])

SCRATCH_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
PASSWORD = "role-test-password"


@dataclass
class Target:
    owner: str  # libpq connection string, as the database's owner

    def as_user(self, user: str, password: str) -> str:
        return make_conninfo(self.owner, user=user, password=password)

    def url(self, user: str, password: str) -> str:
        parts = conninfo_to_dict(self.owner)
        return f"postgres://{user}:{password}@{parts['host']}:{parts.get('port') or 5432}/{parts['dbname']}"


def _run_manage(*args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PYTEST_"))}
    env.update(DATABASE_URL=database_url, DJANGO_DEBUG="true", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


@pytest.fixture(scope="module")
def scratch_database():
    """On a SQLite suite: a migrated scratch database on the local PostgreSQL, dropped afterwards."""
    if connection.vendor == "postgresql":
        yield None
        return
    try:
        server = psycopg.connect(SCRATCH_SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        require_service("PostgreSQL", f"database roles are PostgreSQL's and nothing answers at {SCRATCH_SERVER}: {exc}")
    name = f"test_roles_{os.getpid()}"
    server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.execute(f'CREATE DATABASE "{name}"')
    try:
        target = Target(owner=make_conninfo(SCRATCH_SERVER, dbname=name))
        migrated = _run_manage("migrate", "--noinput", "-v", "0", database_url=target.url("postgres", ""))
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        yield target
    finally:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.close()


@pytest.fixture
def target(scratch_database) -> Target:
    return scratch_database or Target(owner=suite_database_conninfo())


@pytest.fixture
def app_role(target):
    """A fresh app role on the target database, granted as `db_app_role` does; dropped afterwards."""
    role = f"{conninfo_to_dict(target.owner)['dbname']}_roletest"[:63]
    with psycopg.connect(target.owner, autocommit=True) as owner, owner.cursor() as cursor:
        grant_app_role(cursor, role=role, password=PASSWORD)
        assert app_role_problems(cursor, role=role) == []
    try:
        yield role
    finally:
        with psycopg.connect(target.owner, autocommit=True) as owner:
            owner.execute(f'DROP OWNED BY "{role}"')
            owner.execute(f'DROP ROLE "{role}"')


WRITE_AND_VERIFY = """
import json
from django.db import connection
from directory import audit, audit_chain
audit.record(action="requested", object_type="user", object_id="alice", source="admin", actor="ann",
             changes={"enabled": [True, False]})
audit.record_many([audit.build(action="created", object_type="group", object_id=f"g{i}", source="sync")
                   for i in range(2)])
audit.copy_many([{"action": "updated", "object_type": "user", "object_id": "bob", "changes": {"n": [1, 2]}}],
                source="worker", pool_id="us-east-1_roles")
with connection.cursor() as cursor:
    cursor.execute("SELECT current_user")
    user = cursor.fetchone()[0]
    cursor.execute("SELECT directory_analyze_users()")  # the pull's planner statistics, as the owner
result = audit_chain.verify_and_record(source="command")
print(json.dumps({"user": user, "vendor": connection.vendor, "ok": result.ok, "events": result.events}))
"""


def test_the_app_role_writes_and_verifies_the_log_through_every_writer(target, app_role):
    done = _run_manage("shell", "-v", "0", "-c", WRITE_AND_VERIFY, database_url=target.url(app_role, PASSWORD))
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"user": app_role, "vendor": "postgresql", "ok": True, "events": 4}
    with psycopg.connect(target.owner) as owner:
        assert owner.execute(f"SELECT count(*) FROM {AUDIT_TABLE}").fetchone()[0] == 4
        owner.execute(f"TRUNCATE {AUDIT_TABLE}, directory_auditchainhead, directory_auditverification")


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
def test_the_app_role_cannot_rewrite_the_log(target, app_role, attack):
    with psycopg.connect(target.owner, autocommit=True) as owner:
        owner_name = owner.execute("SELECT current_user").fetchone()[0]
    with psycopg.connect(target.as_user(app_role, PASSWORD), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(REFUSED[attack].format(owner=f'"{owner_name}"'))
        assert conn.execute("SHOW session_replication_role").fetchone()[0] == "origin"
        # What it may do: read the log and append to it.
        before = conn.execute(f"SELECT count(*) FROM {AUDIT_TABLE}").fetchone()[0]
        with conn.transaction(force_rollback=True):
            conn.execute(
                f"INSERT INTO {AUDIT_TABLE} (created_at, actor, source, action, object_type, object_id, object_repr, "
                "pool_id, changes, detail, outcome, correlation_id, prev_hash, hash) "
                "VALUES (now(), '', 'admin', 'x', 'user', 'u', '', '', '{}', '{}', 'ok', '', '', '')"
            )
            assert conn.execute(f"SELECT count(*) FROM {AUDIT_TABLE}").fetchone()[0] == before + 1


def test_db_app_role_reports_a_role_that_can_do_too_much(target, app_role):
    with psycopg.connect(target.owner, autocommit=True) as owner, owner.cursor() as cursor:
        cursor.execute(f'GRANT UPDATE, TRUNCATE ON {AUDIT_TABLE} TO "{app_role}"')
        assert app_role_problems(cursor, role=app_role) == [
            f"{app_role} can UPDATE {AUDIT_TABLE}",
            f"{app_role} can TRUNCATE {AUDIT_TABLE}",
        ]
        grant_app_role(cursor, role=app_role, password=PASSWORD)  # idempotent: puts the grants back
        assert app_role_problems(cursor, role=app_role) == []


def test_db_app_role_refuses_to_treat_the_owner_as_the_app(target):
    with psycopg.connect(target.owner, autocommit=True) as owner, owner.cursor() as cursor:
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
