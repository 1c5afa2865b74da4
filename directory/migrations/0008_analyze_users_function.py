"""PostgreSQL: `directory_analyze_users()`, with which a pull refreshes the user table's planner
statistics (directory/sync/writer.py) when the app connects as a role of its own, which does
not own the table: ANALYZE is the owner's. SECURITY DEFINER runs it as the owner (the role that
migrates); it analyzes that one table's lookup columns and nothing else, and only roles granted
EXECUTE (`manage.py db_app_role`) may call it.
"""

from django.db import migrations

FUNCTION = "directory_analyze_users"


def create_function(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = quote(cursor.fetchone()[0])
    schema_editor.execute(
        f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS void LANGUAGE plpgsql
            SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            BEGIN ANALYZE {schema}.directory_cognitouser (pool_id, username); END; $$"""
    )
    schema_editor.execute(f"REVOKE ALL ON FUNCTION {FUNCTION}() FROM PUBLIC")


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):
    dependencies = [("directory", "0007_audit_hash_chain")]

    operations = [migrations.RunPython(create_function, drop_function)]
