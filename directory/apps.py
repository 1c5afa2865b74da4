"""App config for the mirror."""

from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "directory"
    verbose_name = "Cognito directory"
    default_auto_field = "django.db.models.BigAutoField"
