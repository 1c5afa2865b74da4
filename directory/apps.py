"""App config for the mirror."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _register_sqlite_functions(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        from .audit import sqlite_audit_locked

        connection.connection.create_function("directory_audit_locked", 0, sqlite_audit_locked)


class DirectoryConfig(AppConfig):
    name = "directory"
    verbose_name = "Cognito directory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        connection_created.connect(_register_sqlite_functions, dispatch_uid="directory_sqlite_functions")
