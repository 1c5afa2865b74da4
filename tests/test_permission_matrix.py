"""The permission matrix, generated from the admin registry: every admin URL of every registered
model, requested as anonymous, as staff without permissions, as staff holding exactly one
permission (each of the directory's, the schedules', Django's accounts' and the login record's), and as a
superuser;
and every admin action, offered only to those holding the permissions it declares.

No wrong grant: a page answers 200 only to someone holding a permission of the model it belongs
to (or the one other permission a view is documented to need), and nobody ever gets a 500."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from directory.admin.checks import unguarded_actions
from tests.admin_helpers import admin_urls, one_of_each

pytestmark = pytest.mark.django_db

APPS = ("directory", "django_celery_beat", "auth", "axes")
# Pool pages whose permission belongs to another model: creating test users is a user permission.
OTHER_MODEL_PERMISSIONS = {
    "directory_userpool_create_test_user": {"create_test_user_cognitouser"},
    "directory_userpool_create_test_users": {"create_test_user_cognitouser"},
    # Backup and restore pages live under the bulk jobs (and the pool), guarded by the users' permissions.
    "directory_bulkjob_backup": {"backup_cognitouser"},
    "directory_bulkjob_restore": {"restore_cognitouser"},
    "directory_userpool_backup": {"backup_cognitouser"},
    "directory_userpool_restore": {"restore_cognitouser"},
}


@pytest.fixture
def objects(django_user_model):
    return one_of_each(django_user_model)


def permissions() -> list[Permission]:
    return list(Permission.objects.filter(content_type__app_label__in=APPS).select_related("content_type"))


def test_every_action_declares_a_permission():
    assert unguarded_actions() == []


def test_the_check_finds_an_unguarded_action():
    site = admin.AdminSite(name="probe")

    class Careless(admin.ModelAdmin):
        actions = ["stop_everything"]

        @admin.action(description="Stop everything")
        def stop_everything(self, request, queryset):
            pass

    site.register(PeriodicTask, Careless)
    assert unguarded_actions(site) == ["django_celery_beat.PeriodicTask.stop_everything"]


def test_anonymous_and_staff_without_permission_get_nothing(client, django_user_model, objects):
    urls = admin_urls(objects)
    assert len(urls) > 90
    for _, name, url in urls:
        response = client.get(url)
        assert response.status_code == HTTPStatus.FOUND, name
        assert response["Location"].startswith(reverse("admin:login")), name
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    for _, name, url in urls:
        assert client.get(url).status_code != HTTPStatus.OK, name


def test_one_permission_opens_only_its_own_models_pages(client, django_user_model, objects):
    urls = admin_urls(objects)
    probes = wrong = 0
    for permission in permissions():
        staff = django_user_model.objects.create_user(f"p-{permission.pk}", password="pw", is_staff=True)
        staff.user_permissions.add(permission)
        client.force_login(staff)
        own = f"{permission.content_type.app_label}.{permission.content_type.model_class()._meta.object_name}"
        for label, name, url in urls:
            status = client.get(url).status_code
            probes += 1
            assert status != HTTPStatus.INTERNAL_SERVER_ERROR, (permission.codename, name)
            if status == HTTPStatus.OK and label != own:
                if permission.codename not in OTHER_MODEL_PERMISSIONS.get(name, set()):
                    wrong += 1
                    print("wrong grant:", permission.codename, name)
        client.logout()
    assert probes > 5000 and wrong == 0


def test_superuser_gets_no_server_error(admin_client, objects):
    for _, name, url in admin_urls(objects):
        assert admin_client.get(url).status_code != HTTPStatus.INTERNAL_SERVER_ERROR, name


def test_actions_are_offered_only_with_their_permissions(client, django_user_model, objects):
    checked = 0
    for model in apps.get_models():
        if not admin.site.is_registered(model):
            continue
        model_admin = admin.site.get_model_admin(model)
        if not model_admin.actions:
            continue
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        view = Permission.objects.get(
            content_type__app_label=model._meta.app_label, codename=f"view_{model._meta.model_name}"
        )
        for permission in permissions():
            if permission.content_type.model_class() is not model:
                continue
            staff = django_user_model.objects.create_user(f"a-{permission.pk}", password="pw", is_staff=True)
            staff.user_permissions.add(view, permission)
            client.force_login(staff)
            response = client.get(changelist)
            assert response.status_code == HTTPStatus.OK
            form = response.context.get("action_form")
            offered = {value for value, _ in form.fields["action"].choices if value} if form else set()
            # `has_<need>_permission` checks the codename `<need>_<model>`.
            held = {"view", permission.codename.rsplit("_", 1)[0]}
            for name in _action_names(model_admin):
                needed = set(model_admin.get_action(name)[0].allowed_permissions)
                if name in offered:
                    assert needed <= held, (model._meta.label, name, permission.codename)
                elif name != "delete_selected":  # read-only admins refuse deletion whatever the user holds
                    assert not needed <= held, (model._meta.label, name, permission.codename)
                checked += 1
            client.logout()
    assert checked > 20


def _action_names(model_admin) -> list[str]:
    names = [name for name, _ in admin.site.actions]
    names += [a if isinstance(a, str) else a.__name__ for a in model_admin.actions or ()]
    return [n for n in dict.fromkeys(names) if model_admin.get_action(n) is not None]

