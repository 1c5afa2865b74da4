"""Make the audit log append-only in the database itself: UPDATE and DELETE are refused."""

from django.db import migrations

TABLE = "directory_auditevent"
MESSAGE = "directory_auditevent is append-only"

# directory_audit_locked() is registered on every Django SQLite connection (apps.py) and
# answers 1; any other client has no such function, so its UPDATE/DELETE fails as well.
SQLITE_UP = [
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
        WHEN directory_audit_locked() BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
        WHEN directory_audit_locked() BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
]
SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {TABLE}_no_update;", f"DROP TRIGGER IF EXISTS {TABLE}_no_delete;"]

POSTGRES_UP = [
    f"""CREATE OR REPLACE FUNCTION {TABLE}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END; $$;""",
    f"""CREATE TRIGGER {TABLE}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION {TABLE}_refuse();""",
]
POSTGRES_DOWN = [
    f"DROP TRIGGER IF EXISTS {TABLE}_no_update_delete ON {TABLE};",
    f"DROP FUNCTION IF EXISTS {TABLE}_refuse();",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("directory", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}),
            _run({"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN}),
        )
    ]
