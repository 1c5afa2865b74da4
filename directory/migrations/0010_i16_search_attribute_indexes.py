"""PostgreSQL: indexes for finding users by any attribute (selectors.users_matching_attributes).

- `directory_user_attrs_path`: GIN over `attributes jsonb_path_ops`, which serves equality
  (`attributes @> '{"custom:tier": "gold"}'`) on any attribute, standard or custom.
- `directory_user_attrs_trgm`: pg_trgm's GIN over the attributes' JSON text without `sub` (a random
  UUID: its trigrams would cost every write the most and serve nothing, the `sub` column has its
  own index), which serves the ILIKE that narrows starts-with and contains to a few rows before the
  one attribute is checked. (Migration 0015 moved this index to a table of its own.)

pg_trgm is a trusted extension (PostgreSQL 13+): the database owner, who migrates, may create it;
the app's own role only uses it. SQLite has neither, and searches there without an index.
"""

from django.db import migrations

PATH_INDEX = "directory_user_attrs_path"
TRGM_INDEX = "directory_user_attrs_trgm"
CREATE_SQL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    f"CREATE INDEX IF NOT EXISTS {PATH_INDEX} ON directory_cognitouser USING gin (attributes jsonb_path_ops)",
    f"CREATE INDEX IF NOT EXISTS {TRGM_INDEX} ON directory_cognitouser "
    "USING gin (((attributes - 'sub')::text) gin_trgm_ops)",
)


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in CREATE_SQL:
        schema_editor.execute(statement)


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # The extension stays: other objects may have come to use it.
    schema_editor.execute(f"DROP INDEX IF EXISTS {TRGM_INDEX}")
    schema_editor.execute(f"DROP INDEX IF EXISTS {PATH_INDEX}")


class Migration(migrations.Migration):
    dependencies = [("directory", "0009_merge_audit_chain_and_sync_partitions")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
