"""The attribute search's trigram index moves off the user table (PostgreSQL).

Migration 0010's pg_trgm GIN index on the user table's attribute text cost every user a pull wrote
more than the rest of its write together. Its job moves to `directory_usersearch`: one row a user,
its attribute values (not `sub`, not the keys) one a line, under a trigram GIN index
(`directory_usersearch_trgm`). On PostgreSQL:

- `directory_user_search_text(jsonb)` makes that text;
- row triggers on the user table write the text of each user an INSERT writes or an UPDATE
  changes the attributes of, in the same transaction, after taking the search lock in shared
  mode; not in a transaction that set `directory.defer_search` to `on` (a pull's batches), which
  queues its users in `directory_searchbacklog` itself, for `directory.search_index.catch_up` to
  write after the pull under the lock in exclusive mode;
- the search row goes with its user (a foreign key with ON DELETE CASCADE);
- every existing user is queued, so the first catch-up (after the next pull, or beat's) fills
  the table; until then the search checks queued users directly.

The jsonb_path_ops index of migration 0010 (equality) stays on the user table: it costs a write
little. SQLite keeps the two tables empty and searches without an index.
"""


import django.db.models.deletion
from django.db import migrations, models

# Keep in step with directory.search_index (LOCK_KEY, DEFER_SETTING).
LOCK_KEY = 0x7365617263687478  # "searchtx"
# The trigger runs unless the writing transaction set directory.defer_search (a pull's batch).
NOT_DEFERRED = "current_setting('directory.defer_search', true) IS DISTINCT FROM 'on'"
CREATE_SQL = (
    "DROP INDEX IF EXISTS directory_user_attrs_trgm",
    """
    CREATE FUNCTION directory_user_search_text(attributes jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT coalesce(E'\\n' || string_agg(value, E'\\n') || E'\\n', '')
        FROM jsonb_each_text(attributes - 'sub')
    $$
    """,
    f"""
    CREATE FUNCTION directory_user_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock_shared({LOCK_KEY});
        INSERT INTO directory_usersearch (user_id, text)
        VALUES (NEW.id, directory_user_search_text(NEW.attributes))
        ON CONFLICT (user_id) DO UPDATE SET text = EXCLUDED.text
        WHERE directory_usersearch.text IS DISTINCT FROM EXCLUDED.text;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER directory_user_search_insert AFTER INSERT ON directory_cognitouser "
    f"FOR EACH ROW WHEN ({NOT_DEFERRED}) EXECUTE FUNCTION directory_user_search_sync()",
    "CREATE TRIGGER directory_user_search_update AFTER UPDATE OF attributes ON directory_cognitouser "
    f"FOR EACH ROW WHEN (OLD.attributes IS DISTINCT FROM NEW.attributes AND {NOT_DEFERRED}) "
    "EXECUTE FUNCTION directory_user_search_sync()",
    "ALTER TABLE directory_usersearch ADD CONSTRAINT directory_usersearch_user_cascade "
    "FOREIGN KEY (user_id) REFERENCES directory_cognitouser (id) ON DELETE CASCADE",
    "CREATE INDEX directory_usersearch_trgm ON directory_usersearch USING gin (text gin_trgm_ops)",
    # Every user there is, in batches of up to 500 (a pull's batch).
    "INSERT INTO directory_searchbacklog (pool_id, usernames) SELECT pool_id, jsonb_agg(username) "
    "FROM directory_cognitouser GROUP BY pool_id, id / 500",
)
DROP_SQL = (
    "DROP TRIGGER IF EXISTS directory_user_search_insert ON directory_cognitouser",
    "DROP TRIGGER IF EXISTS directory_user_search_update ON directory_cognitouser",
    "DROP FUNCTION IF EXISTS directory_user_search_sync()",
    "DROP FUNCTION IF EXISTS directory_user_search_text(jsonb)",
    "CREATE INDEX IF NOT EXISTS directory_user_attrs_trgm ON directory_cognitouser "
    "USING gin (((attributes - 'sub')::text) gin_trgm_ops)",
)


def create_search(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in CREATE_SQL:
        schema_editor.execute(statement)


def drop_search(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in DROP_SQL:
        schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('directory', '0014_merge_settings_and_main'),
    ]

    operations = [
        migrations.CreateModel(
            name='SearchBacklog',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('pool_id', models.BigIntegerField()),
                ('usernames', models.JSONField(default=list)),
            ],
            options={
                'verbose_name': 'search backlog entry',
                'verbose_name_plural': 'search backlog',
            },
        ),
        migrations.CreateModel(
            name='UserSearchText',
            fields=[
                ('user', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to='directory.cognitouser')),
                ('text', models.TextField()),
            ],
            options={
                'verbose_name': 'user search text',
                'db_table': 'directory_usersearch',
            },
        ),
        migrations.RunPython(create_search, drop_search, elidable=False),
    ]
