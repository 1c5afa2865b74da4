"""Drop PostgreSQL indexes no query uses, which every pulled user and audit event paid for.

- The `varchar_pattern_ops` twins Django adds to indexed CharFields of the audit log: the
  log is only ever filtered and searched by exact value (directory/admin/audit.py does
  exact `object_id` / `actor` / `correlation_id` matches), never with LIKE.
- The audit log's single `object_type` index: the leading column of `directory_audit_object`.
- The user table's single `pool_id` (foreign key) index: the leading column of the
  `(pool_id, username)` unique constraint, which serves every pool filter and the cascade.

SQLite has none of the pattern twins and keeps its indexes; the reverse re-creates them all.
"""

from django.db import migrations

INDEXES = {
    "directory_auditevent_action_fab2d1e2_like": 'directory_auditevent ("action" varchar_pattern_ops)',
    "directory_auditevent_correlation_id_ddea416a_like": 'directory_auditevent ("correlation_id" varchar_pattern_ops)',
    "directory_auditevent_object_id_2e036d97_like": 'directory_auditevent ("object_id" varchar_pattern_ops)',
    "directory_auditevent_object_type_65fdf7d0_like": 'directory_auditevent ("object_type" varchar_pattern_ops)',
    "directory_auditevent_pool_id_eb6f7229_like": 'directory_auditevent ("pool_id" varchar_pattern_ops)',
    "directory_auditevent_object_type_65fdf7d0": 'directory_auditevent ("object_type")',
    "directory_cognitouser_pool_id_d4af8ab7": 'directory_cognitouser ("pool_id")',
}


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, target in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


class Migration(migrations.Migration):
    dependencies = [
        ("directory", "0004_user_admin_search_indexes"),
    ]

    operations = [
        migrations.RunPython(drop_indexes, create_indexes),
    ]
