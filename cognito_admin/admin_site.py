"""The admin site: its index is the directory home (cognito_admin/home.py), and the app list keeps
the mirror apart from the site's own administration.

Django's accounts (its users and groups: the admin's logins and permissions), beat's schedules and
the record of login attempts are gathered under one "Administration" section after the directory;
it shows only the models the operator may view, so it is absent for those with no such permission."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse

from .home import home_context

ADMINISTRATION_APPS = ("auth", "django_celery_beat", "axes")
# Django's own users and groups, named apart from Cognito's.
RENAMED = {("auth", "user"): "Admin users (logins)", ("auth", "group"): "Admin groups (permissions)"}


class DirectoryAdminSite(admin.AdminSite):
    site_header = "Cognito directory"
    site_title = "Cognito directory"
    index_title = "Directory home"

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        directory, administration = [], []
        for app in apps:
            if app["app_label"] in ADMINISTRATION_APPS:
                for model in app["models"]:
                    name = RENAMED.get((app["app_label"], model["object_name"].lower()))
                    administration.append({**model, "name": name or model["name"], "app": app["name"]})
            else:
                directory.append(app)
        if administration:
            directory.append({
                "name": "Administration",
                "app_label": "administration",
                # The section has no page of its own; its link leads to its place on the home.
                "app_url": reverse("admin:index", current_app=self.name) + "#administration",
                "has_module_perms": True,
                "models": administration,
            })
        return directory

    def index(self, request, extra_context=None):
        # Each section on its own, so that the home can anchor and explain the Administration one.
        sections = [(app["app_label"], [app]) for app in self.get_app_list(request)]
        return super().index(request, {**home_context(request), "sections": sections, **(extra_context or {})})
