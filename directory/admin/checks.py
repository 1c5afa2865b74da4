"""System checks for the admin: every action on every registered ModelAdmin declares a permission.

Django shows an action to anyone who may see the changelist unless the action names the
permissions it needs (`@admin.action(permissions=[...])`); a third-party admin that forgets
(django-celery-beat's did) would let view-only staff act. `manage.py check` (and the tests)
refuse such an action."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.core import checks


def unguarded_actions(site: admin.AdminSite | None = None) -> list[str]:
    """`app_label.Model.action` for each action that declares no permission."""
    site = site or admin.site
    found = []
    for model in apps.get_models():
        if not site.is_registered(model):
            continue
        model_admin = site.get_model_admin(model)
        names = [name for name, _ in site.actions] + [
            action if isinstance(action, str) else action.__name__ for action in model_admin.actions or ()
        ]
        for name in dict.fromkeys(names):
            found_action = model_admin.get_action(name)
            if found_action is None:
                continue
            func = found_action[0]
            if not getattr(func, "allowed_permissions", None):
                found.append(f"{model._meta.label}.{name}")
    return found


@checks.register(checks.Tags.admin)
def check_actions_declare_permissions(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"Admin action {label} declares no permission.",
            hint="Decorate it with @admin.action(permissions=[...]) (or override it in a subclass that does).",
            id="directory.E001",
        )
        for label in unguarded_actions()
    ]
