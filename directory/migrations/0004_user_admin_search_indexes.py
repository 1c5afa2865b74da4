"""Indexes for the user changelist at a million rows: status and disabled filters in list
order, and (PostgreSQL only) a case-insensitive name-prefix index."""

from django.db import migrations, models

# Django's `name__istartswith` is `UPPER("name"::text) LIKE UPPER('term%')` on PostgreSQL;
# only an expression index with text_pattern_ops serves it, whatever the collation.
# OpClass expressions are not portable to SQLite, hence raw SQL guarded by vendor.
NAME_PREFIX = "directory_user_name_prefix"


def create_name_prefix_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {NAME_PREFIX} "
        'ON directory_cognitouser (UPPER("name"::text) text_pattern_ops)'
    )


def drop_name_prefix_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {NAME_PREFIX}")


class Migration(migrations.Migration):
    dependencies = [
        ("directory", "0003_testusers_templateversion_schedules"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="cognitouser", name="directory_user_status"),
        migrations.AddIndex(
            model_name="cognitouser",
            index=models.Index(fields=["status", "pool", "username"], name="directory_user_status_list"),
        ),
        migrations.RemoveIndex(model_name="cognitouser", name="directory_user_disabled"),
        migrations.AddIndex(
            model_name="cognitouser",
            index=models.Index(
                condition=models.Q(("enabled", False)),
                fields=["pool", "username"],
                name="directory_user_disabled_list",
            ),
        ),
        migrations.RunPython(create_name_prefix_index, drop_name_prefix_index, elidable=False),
    ]
