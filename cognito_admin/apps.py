"""The admin's app config: Django's own, with the project's AdminSite as the default site."""

from django.contrib.admin.apps import AdminConfig


class DirectoryAdminConfig(AdminConfig):
    default_site = "cognito_admin.admin_site.DirectoryAdminSite"
