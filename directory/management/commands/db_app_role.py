"""`manage.py db_app_role`: create or update the app's PostgreSQL role and its grants, as the owner.

The app (web, worker, beat) connects with DATABASE_URL's role; migrations run as the owner
(DATABASE_OWNER_URL, the `owner` alias). This command, run by the owner after `migrate`, makes
the app's role able to use every table of the project and nothing more: SELECT and INSERT on
the audit log and the verification results (no UPDATE, DELETE, TRUNCATE or TRIGGER), SELECT,
INSERT and UPDATE on the chain head, the usual four on the rest, SELECT on django_migrations.
The role is made a plain login role (not a superuser, member of no other role, unable to
create roles, databases or objects in the schema), then its effective rights are checked.
Idempotent: run it after every `migrate`.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from psycopg import sql

from directory.models import AuditChainHead, AuditEvent, AuditVerification

ANALYZE_FUNCTION = "directory_analyze_users()"
APPEND_ONLY = (AuditEvent._meta.db_table, AuditVerification._meta.db_table)
NO_DELETE = (AuditChainHead._meta.db_table,)
READ_ONLY = ("django_migrations",)


def project_tables() -> list[str]:
    """Every table the project's models use (many-to-many tables included), and django_migrations."""
    tables = {
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy
    }
    return sorted(tables | set(READ_ONLY))


def _privileges(table: str) -> str:
    if table in APPEND_ONLY:
        return "SELECT, INSERT"
    if table in NO_DELETE:
        return "SELECT, INSERT, UPDATE"
    if table in READ_ONLY:
        return "SELECT"
    return "SELECT, INSERT, UPDATE, DELETE"


def grant_app_role(cursor: Any, *, role: str, password: str | None) -> list[str]:
    """Create or update `role` and grant it what the app needs, on the connection's database.

    `cursor` is a DB-API cursor connected as the owner (a Django cursor or a psycopg one).
    Returns the statements run (passwords masked), for the command's output.
    """
    done: list[str] = []
    raw = getattr(cursor, "cursor", cursor)  # the psycopg cursor under Django's wrapper

    def run(statement: sql.Composable, shown: str | None = None) -> None:
        cursor.execute(statement.as_string(raw.connection))
        done.append(shown or statement.as_string(raw.connection))

    ident = sql.Identifier(role)
    cursor.execute("SELECT current_user, current_database(), current_schema()")
    owner, database, schema = cursor.fetchone()
    if role == owner:
        raise CommandError(f"the app's role and the owner are both {role!r}: DATABASE_URL must name another role")
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    if cursor.fetchone() is None:
        run(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
    attributes = sql.SQL("ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
    run(attributes.format(ident))
    if password:
        run(sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(ident, sql.Literal(password)),
            f"ALTER ROLE {role} WITH PASSWORD '…'")
    cursor.execute(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s",
        [role],
    )
    for (member_of,) in cursor.fetchall():
        run(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(member_of), ident))
    run(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(database), ident))
    # Before PostgreSQL 15 every role may create objects in `public`: a function or table of the
    # app's own would outlive any grant. The project's database is the project's alone.
    run(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
    run(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), ident))
    cursor.execute("SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace = %s::regnamespace "
                   "AND relname = ANY(%s)", [schema, project_tables()])
    for (table,) in cursor.fetchall():
        target = sql.Identifier(schema, table)
        run(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(target, ident))
        run(sql.SQL("GRANT {} ON TABLE {} TO {}").format(sql.SQL(_privileges(table)), target, ident))
    # Tables made before Django used identity columns take their ids from a serial's sequence.
    cursor.execute(
        "SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid AND d.deptype = 'a' "
        "JOIN pg_class t ON t.oid = d.refobjid WHERE s.relkind = 'S' AND t.relname = ANY(%s) "
        "AND s.relnamespace = %s::regnamespace",
        [project_tables(), schema],
    )
    for (sequence,) in cursor.fetchall():
        run(sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(sql.Identifier(schema, sequence), ident))
    cursor.execute(f"SELECT to_regprocedure('{ANALYZE_FUNCTION}') IS NOT NULL")
    if cursor.fetchone()[0]:
        run(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(ANALYZE_FUNCTION), ident))
    return done


def app_role_problems(cursor: Any, *, role: str) -> list[str]:
    """What `role` can do that the app's role must not (empty: nothing)."""
    problems = []
    cursor.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = %s",
        [role],
    )
    row = cursor.fetchone()
    if row is None:
        return [f"role {role} does not exist"]
    for flag, name in zip(row, ("SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS"), strict=True):
        if flag:
            problems.append(f"{role} has {name}")
    for table in APPEND_ONLY:
        for privilege in ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"):
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, %s, %s)",
                           [table, role, table, privilege])
            if cursor.fetchone()[0]:
                problems.append(f"{role} can {privilege} {table}")
    cursor.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = %s "
        "AND c.relnamespace = current_schema()::regnamespace", [role]
    )
    problems += [f"{role} owns {name}" for (name,) in cursor.fetchall()]
    cursor.execute("SELECT has_schema_privilege(%s, current_schema(), 'CREATE')", [role])
    if cursor.fetchone()[0]:
        problems.append(f"{role} can create objects in the schema")
    cursor.execute("SELECT current_setting('server_version_num')::int >= 150000")
    if cursor.fetchone()[0]:  # GRANT SET ON PARAMETER is PostgreSQL 15's; before it, superusers only
        cursor.execute("SELECT has_parameter_privilege(%s, 'session_replication_role', 'SET')", [role])
        if cursor.fetchone()[0]:
            problems.append(f"{role} can SET session_replication_role")
    return problems


class Command(BaseCommand):
    help = (
        "Create or update the app's PostgreSQL role (DATABASE_URL's user and password) and grant it what the app "
        "needs and nothing more, connected as the owner (DATABASE_OWNER_URL). Run it after `migrate --database "
        "owner`; idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default="owner", help="alias connected as the owner (default: owner)")
        parser.add_argument("--app-database", default="default", help="alias whose role is the app's (default)")

    def handle(self, *args, **options):
        if options["database"] not in connections:
            raise CommandError("no owner database: set DATABASE_OWNER_URL (see README, Configuration)")
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            raise CommandError("database roles are PostgreSQL's; SQLite has none")
        app = connections[options["app_database"]].settings_dict
        role, password = app.get("USER") or "", app.get("PASSWORD") or None
        if not role:
            raise CommandError("DATABASE_URL names no user: it must name the app's role")
        with connection.cursor() as cursor:
            statements = grant_app_role(cursor, role=role, password=password)
            problems = app_role_problems(cursor, role=role)
        if options["verbosity"] > 1:
            for statement in statements:
                self.stdout.write(statement)
        if problems:
            raise CommandError("the app's role can still do too much: " + "; ".join(problems))
        self.stdout.write(f"role {role}: the app's grants on {connection.settings_dict['NAME']} are in place")
