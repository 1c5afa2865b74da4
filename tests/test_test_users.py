"""Test users through the admin, against the moto server: one created in the request (password shown
once, never resting anywhere), many from a pattern or a CSV as a bulk job, and expiry."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import timedelta
from http import HTTPStatus

import pytest
from celery.app.task import Task
from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from directory import gateway, log_redaction, passwords, tasks
from directory.gateway import CognitoGateway, CognitoThrottled
from directory.models import AuditEvent, BulkJob, CognitoGroup, CognitoUser, PendingChange, UserPool
from directory.services import test_users_bulk
from directory.sync.pull import pull_pool
from tests.cognito_helpers import create_pool, create_user, error_response, inject, list_all_users

pytestmark = pytest.mark.django_db

POLICY = {"MinimumLength": 10, "RequireUppercase": True, "RequireNumbers": True}
PLAIN_SCHEMA = [
    {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
    {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
    {"Name": "phone_number", "AttributeDataType": "String", "Required": False, "Mutable": True},
    {"Name": "department", "AttributeDataType": "String", "Mutable": True},
]
SENTINEL = "Zq9!SENTINEL-7f3a-Kx"


def _mirror(pool_id: str) -> UserPool:
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    pool.refresh_from_db()
    return pool


@pytest.fixture
def email_pool(cognito):
    """Seed shape (a): e-mail is the username, `email` and `name` required; two groups."""
    pool_id = create_pool(cognito, name="shop", email_username=True)
    for name, precedence in (("testers", 1), ("admins", 2)):
        cognito.create_group(UserPoolId=pool_id, GroupName=name, Precedence=precedence)
    create_user(cognito, pool_id, "taken@example.com", email="taken@example.com", name="Taken")
    return _mirror(pool_id)


@pytest.fixture
def plain_pool(cognito):
    """Seed shape (b): sign-in by username, `email` and `name` required, a custom attribute, phone."""
    pool_id = create_pool(cognito, name="staff", Schema=PLAIN_SCHEMA)
    for name in ("testers", "admins"):
        cognito.create_group(UserPoolId=pool_id, GroupName=name)
    create_user(cognito, pool_id, "alice", email="alice@example.com", name="Alice")
    return _mirror(pool_id)


@pytest.fixture
def alias_pool(cognito):
    """Sign-in by username or by e-mail (an alias): e-mails must be unique."""
    pool_id = create_pool(cognito, name="alias", Schema=PLAIN_SCHEMA, AliasAttributes=["email"])
    create_user(cognito, pool_id, "alice", email="alice@example.com", name="Alice")
    return _mirror(pool_id)


def create_url(pool, bulk=False):
    return reverse(f"admin:directory_userpool_create_test_user{'s' if bulk else ''}", args=[pool.pk])


def post_create(client, pool, **data):
    payload = {"delivery": "SUPPRESS", "expires_in_days": "7", **data}
    return client.post(create_url(pool), payload)


def remote_user(cognito, pool, username):
    user = cognito.admin_get_user(UserPoolId=pool.pool_id, Username=username)
    return user, {a["Name"]: a["Value"] for a in user["UserAttributes"]}


def remote_groups(cognito, pool, username):
    groups = cognito.admin_list_groups_for_user(UserPoolId=pool.pool_id, Username=username)["Groups"]
    return sorted(g["GroupName"] for g in groups)


def shown_password(response) -> str:
    match = re.search(r'<code id="temporary-password"[^>]*>([^<]+)</code>', response.content.decode())
    assert match, response.content.decode()[:3000]
    from html import unescape

    return unescape(match.group(1))


def signs_in_with(cognito, pool, username, password) -> str:
    """Cognito's answer to the password: the challenge a FORCE_CHANGE_PASSWORD user gets."""
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool.pool_id, ClientName="check", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    answer = cognito.admin_initiate_auth(
        UserPoolId=pool.pool_id, ClientId=client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return answer.get("ChallengeName", "")


def snapshot(cognito, pool):
    return (len(list_all_users(cognito, pool.pool_id)), CognitoUser.objects.count(), AuditEvent.objects.count(),
            PendingChange.objects.count())


# --- One test user, in each seed pool's shape -------------------------------------------------------------


def test_create_in_email_username_pool(admin_client, cognito, email_pool):
    testers = CognitoGroup.objects.get(pool=email_pool, name="testers")
    form_page = admin_client.get(create_url(email_pool))
    assert form_page.status_code == HTTPStatus.OK
    fields = form_page.context["form"].fields
    assert {"username", "email", "name", "phone_number", "temporary_password", "delivery", "email_verified",
            "groups", "expires_in_days"} <= set(fields)
    assert "custom:department" in fields  # the pool's custom attribute
    assert "signs in by e-mail address" in fields["username"].help_text
    assert "at least 10 characters" in fields["temporary_password"].help_text

    response = post_create(admin_client, email_pool, email="qa1@example.com", name="QA Üser",
                           email_verified="on", groups=[testers.pk], expires_in_days="3")
    assert response.status_code == HTTPStatus.OK, response.context["form"].errors
    assert "no-store" in response["Cache-Control"]
    password = shown_password(response)
    assert passwords.password_problems(password, POLICY) == []
    assert response.content.decode().count(escape(password)) == 1  # shown once (HTML-escaped)

    [record] = [u for u in list_all_users(cognito, email_pool.pool_id)
                if {"Name": "email", "Value": "qa1@example.com"} in u["Attributes"]]
    username = record["Username"]  # e-mail pools: Cognito's username is the sub
    remote, attributes = remote_user(cognito, email_pool, username)
    assert remote["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert attributes["email"] == "qa1@example.com" and attributes["name"] == "QA Üser"
    assert attributes["email_verified"] == "true"
    assert remote_groups(cognito, email_pool, username) == ["testers"]
    assert signs_in_with(cognito, email_pool, "qa1@example.com", password) == "NEW_PASSWORD_REQUIRED"

    user = CognitoUser.objects.get(pool=email_pool, username=username)
    assert user.is_test_user and user.email == "qa1@example.com" and user.status == "FORCE_CHANGE_PASSWORD"
    assert timedelta(days=2, hours=23) < user.test_user_expires_at - timezone.now() <= timedelta(days=3)
    assert list(user.groups.values_list("name", flat=True)) == ["testers"]
    created = AuditEvent.objects.get(action="created", object_id=username, source="admin")
    assert created.actor == "admin" and created.detail["test_user"] is True
    assert created.changes["attributes.email"] == [None, "qa1@example.com"]
    assert AuditEvent.objects.filter(action="group_added", object_id=username, detail__group="testers").exists()
    user_url = reverse("admin:directory_cognitouser_change", args=[user.pk])
    assert f'href="{user_url}"' in response.content.decode()
    # The user's page opens (the link works) and says nothing of the password.
    page = admin_client.get(user_url)
    assert page.status_code == HTTPStatus.OK and password not in page.content.decode()


def test_create_in_plain_username_pool(admin_client, cognito, plain_pool):
    groups = list(CognitoGroup.objects.filter(pool=plain_pool).order_by("name"))
    response = post_create(
        admin_client, plain_pool, username="tester.one", email="tester1@example.com", name="Tester One",
        phone_number="+14155550100", **{"custom:department": "QA"}, temporary_password="Chosen-Pass123",
        delivery="EMAIL", groups=[g.pk for g in groups], expires_in_days="",
    )
    assert response.status_code == HTTPStatus.OK, response.context["form"].errors
    assert shown_password(response) == "Chosen-Pass123"
    remote, attributes = remote_user(cognito, plain_pool, "tester.one")
    assert remote["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert attributes["phone_number"] == "+14155550100" and attributes["custom:department"] == "QA"
    assert attributes.get("email_verified") != "true"
    assert remote_groups(cognito, plain_pool, "tester.one") == ["admins", "testers"]
    assert signs_in_with(cognito, plain_pool, "tester.one", "Chosen-Pass123") == "NEW_PASSWORD_REQUIRED"
    user = CognitoUser.objects.get(pool=plain_pool, username="tester.one")
    assert user.is_test_user and user.test_user_expires_at is None
    assert AuditEvent.objects.filter(action="created", object_id="tester.one").count() == 1
    assert AuditEvent.objects.filter(action="group_added", object_id="tester.one").count() == 2
    assert "Never expires" in response.content.decode()


def test_delivery_mediums_always_sent(admin_client, cognito, plain_pool):
    """DesiredDeliveryMediums defaults to SMS in Cognito, so it is always in the request."""
    sent = []
    client = gateway.get_client("us-east-1")

    def capture(params, **kwargs):
        sent.append({k: v for k, v in params.items() if k != "TemporaryPassword"})

    client.meta.events.register("provide-client-params.cognito-identity-provider.AdminCreateUser", capture)
    try:
        for n, delivery in enumerate(("EMAIL", "SUPPRESS", "SMS")):
            response = post_create(admin_client, plain_pool, username=f"m{n}", email=f"m{n}@example.com",
                                   name="M", phone_number="+14155550111", delivery=delivery)
            assert response.status_code == HTTPStatus.OK and "result" in response.context
    finally:
        client.meta.events.unregister("provide-client-params.cognito-identity-provider.AdminCreateUser", capture)
    assert [s["DesiredDeliveryMediums"] for s in sent] == [["EMAIL"], ["EMAIL"], ["SMS"]]
    assert [s.get("MessageAction") for s in sent] == [None, "SUPPRESS", None]


def test_pool_page_button_and_permission(client, admin_client, django_user_model, cognito, plain_pool):
    page = admin_client.get(reverse("admin:directory_userpool_change", args=[plain_pool.pk])).content.decode()
    assert f'href="{create_url(plain_pool)}"' in page and "Create test user" in page
    staff = django_user_model.objects.create_user("staffer", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_userpool", "view_cognitouser"]))
    client.force_login(staff)
    page = client.get(reverse("admin:directory_userpool_change", args=[plain_pool.pk])).content.decode()
    assert "Create test user" not in page
    before = snapshot(cognito, plain_pool)
    assert client.get(create_url(plain_pool)).status_code == HTTPStatus.FORBIDDEN
    response = post_create(client, plain_pool, username="nope", email="nope@example.com", name="N")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert client.get(create_url(plain_pool, bulk=True)).status_code == HTTPStatus.FORBIDDEN
    assert snapshot(cognito, plain_pool) == before
    staff.user_permissions.add(Permission.objects.get(codename="create_test_user_cognitouser"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert client.get(create_url(plain_pool)).status_code == HTTPStatus.OK
    assert client.get(reverse("admin:directory_userpool_create_test_user", args=[99999])).status_code == 404


# --- The password rests nowhere ---------------------------------------------------------------------------------


def test_sentinel_password_is_nowhere(admin_client, cognito, plain_pool, caplog, monkeypatch,
                                      django_capture_on_commit_callbacks):
    sent_tasks = []
    original = Task.apply_async

    def recording(self, args=None, kwargs=None, **options):
        sent_tasks.append((self.name, repr(args), repr(kwargs), repr(options)))
        return original(self, args, kwargs, **options)

    monkeypatch.setattr(Task, "apply_async", recording)
    caplog.set_level(logging.DEBUG)
    # The project's LOGGING keeps botocore at WARNING; open it up so its request logging is tested too.
    for name in ("botocore", "botocore.endpoint", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_create(admin_client, plain_pool, username="sentinel", email="s@example.com", name="S",
                               temporary_password=SENTINEL, delivery="EMAIL", expires_in_days="1")
    assert response.status_code == HTTPStatus.OK, response.context["form"].errors
    assert shown_password(response) == SENTINEL
    # botocore did log the request (with the password removed).
    marker = "Making request for OperationModel(name=AdminCreateUser)"
    requests = [r for r in caplog.records if marker in r.getMessage()]
    assert requests, "botocore's DEBUG request log was not captured"

    # Every table, dumped whole (audit log, outbox, bulk jobs, beat's tables, sessions).
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    assert SENTINEL not in out.getvalue()
    for model in apps.get_models():
        for row in model.objects.all().values():
            assert SENTINEL not in json.dumps(row, default=str), model
    for session in Session.objects.all():
        assert SENTINEL not in json.dumps(session.get_decoded(), default=str)
    assert {m._meta.db_table for m in apps.get_models()} >= {
        "directory_auditevent", "directory_pendingchange", "directory_bulkjob", "django_celery_beat_periodictask",
    }
    # The log lines, formatted, and every task message.
    assert SENTINEL not in caplog.text
    assert all(SENTINEL not in r.getMessage() for r in caplog.records)
    assert all(SENTINEL not in "".join(t) for t in sent_tasks)
    # Not in a message for the next page, nor a cookie.
    assert all(SENTINEL not in str(m) for m in response.wsgi_request._messages)
    assert all(SENTINEL not in c.value for c in response.cookies.values())
    # And it did reach Cognito (checked last: this sign-in's own request carries the password).
    assert signs_in_with(cognito, plain_pool, "sentinel", SENTINEL) == "NEW_PASSWORD_REQUIRED"


def test_sentinel_redaction_filter_scrubs_request_bodies():
    record = logging.LogRecord(
        "botocore.endpoint", logging.DEBUG, __file__, 1, "Making request for %s with params: %s",
        ("op", {"body": json.dumps({"Username": "u", "TemporaryPassword": SENTINEL}).encode(), "url": "/"}), None,
    )
    assert log_redaction.RedactRequestSecrets().filter(record)
    message = record.getMessage()
    assert SENTINEL not in message and "Username" in message


# --- Bad input: a field error naming the field and the rule; nothing created anywhere -----------------------------


@pytest.mark.parametrize(
    ("pool_name", "data", "field", "text"),
    [
        ("plain", {"username": "alice", "email": "new@example.com", "name": "N"}, "username", "already exists"),
        ("plain", {"username": "Alice", "email": "new@example.com", "name": "N"}, "username", "already exists"),
        ("alias", {"username": "bob", "email": "alice@example.com", "name": "N"}, "email", "already used"),
        ("alias", {"username": "bob@example.com", "email": "bob@example.com", "name": "N"}, "username",
         "cannot be an e-mail"),
        ("email", {"email": "taken@example.com", "name": "N"}, "email", "already used"),
        ("email", {"email": "TAKEN@example.com", "name": "N"}, "email", "already used"),
        ("plain", {"username": "weak", "email": "w@example.com", "name": "N", "temporary_password": "short1"},
         "temporary_password", "at least 10 characters (it has 6)"),
        ("plain", {"username": "weak", "email": "w@example.com", "name": "N", "temporary_password": "longenough1"},
         "temporary_password", "an uppercase letter"),
        ("plain", {"username": "weak", "email": "w@example.com", "name": "N", "temporary_password": "Longenough"},
         "temporary_password", "a number (0-9)"),
        ("plain", {"username": "nomail", "name": "N"}, "email", "email is required by this pool"),
        ("email", {"name": "N"}, "email", "uses the e-mail address as the username"),
        ("email", {"email": "n@example.com"}, "name", "name is required by this pool"),
        ("email", {"email": "not-an-email", "name": "N"}, "email", "not a valid e-mail address"),
        ("plain", {"username": "p", "email": "p@example.com", "name": "N", "phone_number": "0415 555 0100"},
         "phone_number", "E.164"),
        ("plain", {"username": "p", "email": "p@example.com", "name": "N", "delivery": "SMS"}, "phone_number",
         "delivered by SMS"),
        ("plain", {"username": "two words", "email": "p@example.com", "name": "N"}, "username", "no spaces"),
        ("email", {"username": "bob", "email": "b@example.com", "name": "N"}, "username", "signs in by e-mail"),
        ("plain", {"username": "p", "email": "p@example.com", "name": "N", "expires_in_days": "400"},
         "expires_in_days", "between 1 and 365"),
        ("plain", {"username": "p", "email": "p@example.com", "name": "N", "expires_in_days": "soon"},
         "expires_in_days", "whole number"),
        ("plain", {"username": "p", "email": "p@example.com", "name": "N", "delivery": "FAX"},
         "delivery", "EMAIL, SMS or SUPPRESS"),
    ],
)
def test_bad_input_is_a_field_error(admin_client, cognito, request, pool_name, data, field, text):
    pool = request.getfixturevalue(f"{pool_name}_pool")
    before = snapshot(cognito, pool)
    response = post_create(admin_client, pool, **data)
    assert response.status_code == HTTPStatus.OK
    assert "result" not in response.context
    errors = response.context["form"].errors
    assert field in errors, errors
    assert any(text in e for e in errors[field]), errors[field]
    assert any(e.startswith(field) for e in errors[field]), errors[field]  # names the field
    assert snapshot(cognito, pool) == before
    password = data.get("temporary_password")
    if password:
        assert password not in response.content.decode()  # the form does not echo it back


def test_other_pools_group_refused(admin_client, cognito, plain_pool, email_pool):
    theirs = CognitoGroup.objects.get(pool=email_pool, name="testers")
    before = snapshot(cognito, plain_pool)
    response = post_create(admin_client, plain_pool, username="g", email="g@example.com", name="G",
                           groups=[theirs.pk])
    errors = response.context["form"].errors["groups"]
    assert errors[0].startswith("groups:") and "not a group of this pool" in errors[0]
    assert snapshot(cognito, plain_pool) == before


def test_existing_only_in_cognito_is_found_before_creating(admin_client, cognito, alias_pool):
    """moto does not enforce unique aliases (Cognito does): the directory checks Cognito itself."""
    create_user(cognito, alias_pool.pool_id, "bob", email="bob@example.com", name="Bob")  # not mirrored
    before = snapshot(cognito, alias_pool)
    response = post_create(admin_client, alias_pool, username="bobby", email="bob@example.com", name="B")
    errors = response.context["form"].errors
    assert "in Cognito, not yet in the mirror" in errors["email"][0] and "bob" in errors["email"][0]
    response = post_create(admin_client, alias_pool, username="bob", email="bob2@example.com", name="B")
    assert "already exists" in response.context["form"].errors["username"][0]
    assert snapshot(cognito, alias_pool) == before


@pytest.mark.parametrize(
    ("code", "message", "field"),
    [
        ("InvalidPasswordException", "Password did not conform with policy: Password not long enough",
         "temporary_password"),
        ("UsernameExistsException", "User account already exists", "username"),
        ("AliasExistsException", "An account with the email already exists.", "email"),
        ("InvalidParameterException", "Invalid phone number format.", "phone_number"),
        ("InvalidParameterException", "Attributes did not conform to the schema: name: The attribute is required",
         "name"),
        ("LimitExceededException", "Exceeded daily email limit for the operation or the account.", "__all__"),
    ],
)
def test_cognito_refusals_become_field_errors(admin_client, cognito, plain_pool, code, message, field):
    """What moto never answers (but Cognito does) comes back as a form error on the right field, not a 500."""
    before = snapshot(cognito, plain_pool)
    client = gateway.get_client("us-east-1")
    event = "before-send.cognito-identity-provider.AdminCreateUser"

    def refuse(request, **kwargs):
        return error_response(code, message)

    client.meta.events.register_first(event, refuse)
    try:
        response = post_create(admin_client, plain_pool, username="racer", email="r@example.com", name="R",
                               phone_number="+14155550199", temporary_password="Long-enough-1")
    finally:
        client.meta.events.unregister(event, refuse)
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors
    assert field in errors, errors
    text = " ".join(errors[field])
    assert message in text or code in text, text
    if field != "__all__":
        assert text.startswith(field)
    else:
        assert "Nothing was created" in text
    assert "Long-enough-1" not in response.content.decode()
    assert snapshot(cognito, plain_pool) == before


def test_group_gone_in_cognito_is_refused_first(admin_client, cognito, plain_pool):
    testers = CognitoGroup.objects.get(pool=plain_pool, name="testers")
    cognito.delete_group(UserPoolId=plain_pool.pool_id, GroupName="testers")
    before = snapshot(cognito, plain_pool)
    response = post_create(admin_client, plain_pool, username="g", email="g@example.com", name="G",
                           groups=[testers.pk])
    assert "no longer exists in Cognito" in response.context["form"].errors["groups"][0]
    assert snapshot(cognito, plain_pool) == before


def test_failed_group_add_is_reported(admin_client, cognito, plain_pool):
    """If a group add fails after the user was created, the page says so (the user exists)."""
    admins = CognitoGroup.objects.get(pool=plain_pool, name="admins")
    client = gateway.get_client("us-east-1")
    with inject(client, "AdminAddUserToGroup", lambda n: True, code="InternalErrorException"):
        response = post_create(admin_client, plain_pool, username="half", email="h@example.com", name="H",
                               groups=[admins.pk])
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'id="groups-failed"' in html and "admins" in html and "The user exists" in html
    assert remote_user(cognito, plain_pool, "half")[0]["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert remote_groups(cognito, plain_pool, "half") == []
    failed = AuditEvent.objects.get(action="group_add_failed", object_id="half")
    assert failed.outcome == "failed" and failed.detail["group"] == "admins"


# --- Expiry ----------------------------------------------------------------------------------------------------------


def test_expired_test_users_are_deleted(admin_client, cognito, plain_pool, django_capture_on_commit_callbacks):
    for name in ("old", "fresh"):
        response = post_create(admin_client, plain_pool, username=name, email=f"{name}@example.com", name=name)
        assert "result" in response.context
    CognitoUser.objects.filter(username="old").update(test_user_expires_at=timezone.now() - timedelta(minutes=1))
    # A real user whose (meaningless) expiry passed is not a test user: untouched.
    CognitoUser.objects.filter(username="alice").update(test_user_expires_at=timezone.now() - timedelta(days=1))

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_test_users.delay().get() == 1
    remaining = {u["Username"] for u in list_all_users(cognito, plain_pool.pool_id)}
    assert remaining == {"alice", "fresh"}
    assert set(CognitoUser.objects.values_list("username", flat=True)) == {"alice", "fresh"}
    expired = AuditEvent.objects.get(action="expired", object_id="old")
    assert expired.source == "worker" and expired.actor == ""
    applied = AuditEvent.objects.get(action="applied", correlation_id=expired.correlation_id)
    assert applied.changes["exists"] == [True, False] and applied.detail["operation"] == "user.delete"
    # Run again: nothing left to expire, nothing requested twice.
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_test_users.delay().get() == 0
    assert AuditEvent.objects.filter(action="expired").count() == 1


def test_expiry_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["expire-test-users"]
    assert entry["task"] == "directory.tasks.expire_test_users"
    assert entry["schedule"] <= timedelta(minutes=10)


# --- Bulk -------------------------------------------------------------------------------------------------------------


def test_bulk_pattern_creates_users(admin_client, cognito, email_pool, django_capture_on_commit_callbacks):
    testers = CognitoGroup.objects.get(pool=email_pool, name="testers")
    single = admin_client.get(create_url(email_pool)).content.decode()
    assert f'href="{create_url(email_pool, bulk=True)}"' in single
    sent = []
    client = gateway.get_client("us-east-1")

    def capture(params, **kwargs):
        sent.append(dict(params))

    client.meta.events.register("provide-client-params.cognito-identity-provider.AdminCreateUser", capture)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(create_url(email_pool, bulk=True), {
                "email_pattern": "qa+{n}@example.com", "name_pattern": "QA {n}", "count": "5", "start": "1",
                "delivery": "SUPPRESS", "groups": [testers.pk], "expires_in_days": "2",
            })
    finally:
        client.meta.events.unregister("provide-client-params.cognito-identity-provider.AdminCreateUser", capture)
    assert response.status_code == HTTPStatus.FOUND, response.context["form"].errors
    job = BulkJob.objects.get(operation="create_test_users")
    assert response["Location"] == reverse("admin:directory_bulkjob_change", args=[job.pk])
    assert job.status == "done" and job.processed == 5 and job.total == 5
    assert job.results["created"] == 5 and job.results["failed"] == 0
    # Cognito generated the passwords: none was sent, and none is in the job.
    assert len(sent) == 5 and all("TemporaryPassword" not in p for p in sent)
    assert all(p["MessageAction"] == "SUPPRESS" and p["DesiredDeliveryMediums"] == ["EMAIL"] for p in sent)
    remote = {a["Value"]: u for u in list_all_users(cognito, email_pool.pool_id)
              for a in u["Attributes"] if a["Name"] == "email"}
    for n in range(1, 6):
        user = remote[f"qa+{n}@example.com"]
        assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
        assert remote_groups(cognito, email_pool, user["Username"]) == ["testers"]
    mirrored = CognitoUser.objects.filter(pool=email_pool, is_test_user=True)
    assert mirrored.count() == 5 and all(u.test_user_expires_at for u in mirrored)
    assert AuditEvent.objects.filter(action="created", source="worker", detail__bulk_job=job.pk).count() == 5
    page = admin_client.get(response["Location"]).content.decode()
    assert "created 5" in page and "qa+3@example.com" in page

    # Redelivered (a worker died after its last row): every row is skipped, nothing is created twice.
    BulkJob.objects.filter(pk=job.pk).update(status="queued", processed=0, results={})
    tasks.run_bulk_job(job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.results["skipped"] == 5 and job.results["created"] == 0
    assert len(list_all_users(cognito, email_pool.pool_id)) == 6  # the 5 and "taken"


def test_bulk_csv_with_a_bad_row(admin_client, cognito, plain_pool, django_capture_on_commit_callbacks):
    content = (
        b"username,email,name,custom:department\n"
        b"csv1,csv1@example.com,CSV One,QA\n"
        b"csv2,not-an-email,CSV Two,QA\n"
        b"alice,alice2@example.com,Not A Test User,QA\n"
        b"csv3,csv3@example.com,CSV Three,\n"
    )
    upload = SimpleUploadedFile("users.csv", content, content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(create_url(plain_pool, bulk=True), {
            "username_pattern": "", "email_pattern": "", "name_pattern": "", "csv_file": upload,
            "delivery": "EMAIL",
        })
    assert response.status_code == HTTPStatus.FOUND, response.context["form"].errors
    job = BulkJob.objects.get(operation="create_test_users")
    assert job.status == "done" and job.total == 4
    rows = job.results["rows"]
    assert [rows[str(n)]["status"] for n in range(1, 5)] == ["created", "failed", "failed", "created"]
    assert "not a valid e-mail address" in rows["2"]["error"]
    assert "already exists" in rows["3"]["error"]
    assert "row 2" in job.error
    usernames = {u["Username"] for u in list_all_users(cognito, plain_pool.pool_id)}
    assert usernames == {"alice", "csv1", "csv3"}
    assert remote_user(cognito, plain_pool, "csv1")[1]["custom:department"] == "QA"
    assert not CognitoUser.objects.get(username="alice").is_test_user
    page = admin_client.get(reverse("admin:directory_bulkjob_change", args=[job.pk])).content.decode()
    assert "not a valid e-mail address" in page


def test_bulk_csv_password_column_refused(admin_client, cognito, plain_pool):
    upload = SimpleUploadedFile("users.csv", b"username,email,name,temporary_password\nx,x@example.com,X,Secret-123\n")
    response = admin_client.post(create_url(plain_pool, bulk=True), {"csv_file": upload, "delivery": "SUPPRESS"})
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors["csv_file"]
    assert "temporary_password" in errors[0] and "refused" in errors[0]
    assert not BulkJob.objects.exists()
    assert b"Secret-123" not in response.content


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"email_pattern": "qa+{n}@example.com", "name_pattern": "QA", "count": "1001"}, "count", "between 1 and 1000"),
        ({"email_pattern": "qa@example.com", "name_pattern": "QA", "count": "3"}, "email_pattern", "{n}"),
        ({"email_pattern": "qa+{n}", "name_pattern": "QA", "count": "3"}, "email_pattern", "not a valid e-mail"),
        ({"email_pattern": "qa+{n}@example.com", "name_pattern": "", "count": "3"}, "name_pattern", "required"),
    ],
)
def test_bulk_pattern_bad_input(admin_client, cognito, email_pool, data, field, text):
    response = admin_client.post(create_url(email_pool, bulk=True), {"delivery": "SUPPRESS", "start": "1", **data})
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors
    assert field in errors and any(text in e for e in errors[field]), errors
    assert not BulkJob.objects.exists()


def test_bulk_throttling_pauses_and_resumes(cognito, plain_pool, monkeypatch, django_capture_on_commit_callbacks):
    """Throttled past botocore's retries: the job goes back to `queued` where it stopped; the sweeper resumes it."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = test_users_bulk.test_users_bulk_start(
            pool=plain_pool, actor="admin", options={"delivery": "SUPPRESS"},
            pattern={"username": "t{n}", "email": "t{n}@example.com", "name": "T {n}", "count": 4, "start": 1},
        )
    assert len(callbacks) == 1
    original = CognitoGateway.admin_create_user
    calls = {"n": 0}

    def throttled_after_two(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise CognitoThrottled("Rate exceeded", code="TooManyRequestsException", operation="admin_create_user")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CognitoGateway, "admin_create_user", throttled_after_two)
    test_users_bulk.test_users_bulk_run(job=job)
    job.refresh_from_db()
    assert job.status == "queued" and job.processed == 2 and "Paused at row 3" in job.error
    assert job.results["created"] == 2
    monkeypatch.setattr(CognitoGateway, "admin_create_user", original)
    BulkJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    tasks.sweep_outbox()
    job.refresh_from_db()
    assert job.status == "done" and job.results["created"] == 4 and job.processed == 4
    assert {u["Username"] for u in list_all_users(cognito, plain_pool.pool_id)} == {"alice", "t1", "t2", "t3", "t4"}


# --- In a real browser ------------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_operator_creates_a_test_user_in_the_browser(cognito, live_server, django_user_model):
    import os

    from tests.browser_helpers import CHROMIUM, SCREENSHOTS

    if not os.path.exists(CHROMIUM):
        from tests.conftest import require_service

        require_service("Chromium", f"{CHROMIUM} is missing")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    pool_id = create_pool(cognito, name="eshop", email_username=True)
    cognito.create_group(UserPoolId=pool_id, GroupName="testers")
    pool = _mirror(pool_id)
    django_user_model.objects.create_superuser("operator", "op@example.com", "correct-horse-battery")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "correct-horse-battery")
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        page.goto(f"{live_server.url}{reverse('admin:directory_userpool_change', args=[pool.pk])}")
        page.click("#create-test-user-link")
        page.fill("#id_email", "browser-qa@example.com")
        page.fill("#id_name", "Browser QA")
        page.get_by_label("testers").check()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "create-test-user.png"), full_page=True)
        page.click("input[name=_create]")
        password = page.inner_text("#temporary-password")
        page.screenshot(path=str(SCREENSHOTS / "create-test-user-done.png"), full_page=True)
        assert passwords.password_problems(password, POLICY) == []
        page.click("#test-user-link")
        page.wait_for_selector("#content-main")
        assert "browser-qa@example.com" in page.content() and password not in page.content()
        browser.close()
    [record] = [u for u in list_all_users(cognito, pool_id) if u["UserStatus"] == "FORCE_CHANGE_PASSWORD"]
    assert signs_in_with(cognito, pool, "browser-qa@example.com", password) == "NEW_PASSWORD_REQUIRED"
    assert remote_groups(cognito, pool, record["Username"]) == ["testers"]


def test_bulk_adopts_its_own_lost_rows_and_refuses_others(cognito, plain_pool, django_capture_on_commit_callbacks):
    """A worker that died between AdminCreateUser and the mirror write: its user is adopted on
    redelivery (Cognito's UsernameExistsException, then a lookup); an older user of the same name is not."""
    with django_capture_on_commit_callbacks(execute=False):
        job = test_users_bulk.test_users_bulk_start(
            pool=plain_pool, actor="admin", options={"delivery": "SUPPRESS"},
            pattern={"username": "r{n}", "email": "r{n}@example.com", "name": "R {n}", "count": 2, "start": 1},
        )
    create_user(cognito, plain_pool.pool_id, "r1", email="r1@example.com", name="R 1")  # the lost row
    test_users_bulk.test_users_bulk_run(job=job)
    job.refresh_from_db()
    assert job.results["rows"]["1"]["status"] == "created" and job.results["rows"]["1"]["adopted"] is True
    assert job.results["rows"]["2"]["status"] == "created"
    assert CognitoUser.objects.get(pool=plain_pool, username="r1").is_test_user
    assert AuditEvent.objects.filter(action="created", object_id="r1", detail__adopted=True).exists()

    create_user(cognito, plain_pool.pool_id, "old1", email="old1@example.com", name="Old")
    with django_capture_on_commit_callbacks(execute=False):
        later = test_users_bulk.test_users_bulk_start(
            pool=plain_pool, actor="admin", options={"delivery": "SUPPRESS"},
            rows=[{"username": "old1", "email": "old1b@example.com", "name": "Old B"}],
        )
    BulkJob.objects.filter(pk=later.pk).update(created_at=timezone.now() + timedelta(minutes=1))
    later.refresh_from_db()
    test_users_bulk.test_users_bulk_run(job=later)
    later.refresh_from_db()
    row = later.results["rows"]["1"]
    assert row["status"] == "failed" and "already exists" in row["error"] and "in Cognito" in row["error"]
    assert not CognitoUser.objects.filter(username="old1").exists()
