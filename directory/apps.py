"""App config for the mirror."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _register_sqlite_functions(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        # Imported here: the app registry is not ready when this module is imported.
        from .audit import sqlite_audit_locked  # noqa: PLC0415 - models must not load before the registry

        connection.connection.create_function("directory_audit_locked", 0, sqlite_audit_locked)


class DirectoryConfig(AppConfig):
    name = "directory"
    verbose_name = "Cognito directory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .log_redaction import install_log_redaction  # noqa: PLC0415 - wired once the app is ready

        connection_created.connect(_register_sqlite_functions, dispatch_uid="directory_sqlite_functions")
        # botocore logs request bodies at DEBUG; AdminCreateUser's carries a temporary password.
        install_log_redaction()
