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
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from directory.admin.checks import unguarded_actions
from directory.models import BulkJob, PendingChange, TemplateVersion
from tests.factories import (
    AppClientFactory,
    AuditEventFactory,
    CognitoGroupFactory,
    CognitoUserFactory,
    SyncRunFactory,
    UserPoolFactory,
)

pytestmark = pytest.mark.django_db

APPS = ("directory", "django_celery_beat", "auth", "axes")
# Pool pages whose permission belongs to another model: creating test users is a user permission.
OTHER_MODEL_PERMISSIONS = {
    "directory_userpool_create_test_user": {"create_test_user_cognitouser"},
    "directory_userpool_create_test_users": {"create_test_user_cognitouser"},
}


@pytest.fixture
def objects(django_user_model):
    """One row of every registered model, keyed by its label."""
    pool = UserPoolFactory()
    user = CognitoUserFactory(pool=pool)
    change = PendingChange.objects.create(
        pool=pool, object_type="user", object_key=user.username, operation="user.set_enabled",
        payload={"after": {"enabled": False}}, before={"enabled": True}, fields=["enabled"],
        status=PendingChange.Status.FAILED,
    )
    interval = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    return {
        "directory.UserPool": pool,
        "directory.AppClient": AppClientFactory(pool=pool),
        "directory.CognitoGroup": CognitoGroupFactory(pool=pool),
        "directory.CognitoUser": user,
        "directory.SyncRun": SyncRunFactory(pool=pool),
        "directory.AuditEvent": AuditEventFactory(pool_id=pool.pool_id),
        "directory.BulkJob": BulkJob.objects.create(pool=pool, operation="enable", user_ids=[user.pk], total=1),
        "directory.PendingChange": change,
        "directory.TemplateVersion": TemplateVersion.objects.create(pool=pool, number=1, templates={}),
        "django_celery_beat.IntervalSchedule": interval,
        "django_celery_beat.CrontabSchedule": CrontabSchedule.objects.create(minute="0"),
        "django_celery_beat.SolarSchedule": SolarSchedule.objects.create(event="sunrise", latitude=1, longitude=1),
        "django_celery_beat.ClockedSchedule": ClockedSchedule.objects.create(clocked_time="2030-01-01T00:00Z"),
        "django_celery_beat.PeriodicTask": PeriodicTask.objects.create(
            name="probe", task="directory.tasks.sweep_outbox", interval=interval
        ),
        "auth.User": django_user_model.objects.create_user("someone", password="pw"),
        "auth.Group": Group.objects.create(name="operators"),
        "axes.AccessAttempt": AccessAttempt.objects.create(
            username="mallory", ip_address="192.0.2.1", user_agent="probe", failures_since_start=1
        ),
        "axes.AccessLog": AccessLog.objects.create(username="ops", ip_address="192.0.2.2", user_agent="probe"),
        "axes.AccessFailureLog": AccessFailureLog.objects.create(
            username="mallory", ip_address="192.0.2.1", user_agent="probe"
        ),
    }


def admin_urls(objects) -> list[tuple[str, str, str]]:
    """(model label, url name, url) for every named admin URL of every registered model."""
    urls = []
    for model in apps.get_models():
        if not admin.site.is_registered(model):
            continue
        label = model._meta.label
        for pattern in admin.site.get_model_admin(model).get_urls():
            if not pattern.name:
                continue
            route = str(pattern.pattern)
            kwargs: dict[str, object] = {}
            if "object_id" in route:
                kwargs["object_id"] = objects[label].pk
            if "<id>" in route:
                kwargs["id"] = objects[label].pk
            if "<int:number>" in route:
                kwargs["number"] = 1
            urls.append((label, pattern.name, reverse(f"admin:{pattern.name}", kwargs=kwargs)))
    return urls


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
    assert len(urls) > 100
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

