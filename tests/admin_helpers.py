"""What the admin-wide tests share: one row of every registered model, and every admin URL."""

from __future__ import annotations

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from directory.models import AuditVerification, BulkJob, PendingChange, TemplateVersion
from tests.factories import (
    AppClientFactory,
    AuditEventFactory,
    CognitoGroupFactory,
    CognitoUserFactory,
    SyncRunFactory,
    UserPoolFactory,
)


def one_of_each(django_user_model) -> dict:
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
        "directory.AuditVerification": AuditVerification.objects.create(source="command", ok=True, events=1),
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


def form_data(form, **overrides) -> dict:
    """What a browser would post for an unbound form as rendered (its initial values), with overrides
    (None or False: the field left out, as an unticked box or an empty multiple choice; True: ticked)."""
    data: dict = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        value = field.prepare_value(value) if value is not None else None
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = list(value)
        elif value is not None:
            data[name] = value
    for name, value in overrides.items():
        if value is None or value is False:
            data.pop(name, None)
        elif value is True:
            data[name] = "on"
        else:
            data[name] = value
    return data
