"""The write side of the user admin: bulk actions (as background jobs), per-user buttons, the attribute
editor and bulk job pages, all driven through the admin against the moto server."""

from __future__ import annotations

import csv
import io
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from directory.models import AuditEvent, BulkJob, CognitoGroup, CognitoUser, PendingChange, UserPool
from directory.sync.pull import pull_pool
from tests.cognito_helpers import create_pool, create_user

pytestmark = pytest.mark.django_db

PASSWORD = "Passw0rd!Long"
SCHEMA = [
    {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
    {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
    {"Name": "phone_number", "AttributeDataType": "String", "Required": False, "Mutable": True},
    {"Name": "department", "AttributeDataType": "String", "Mutable": True},
    {"Name": "employee_id", "AttributeDataType": "String", "Mutable": False},
]
CHANGELIST = "admin:directory_cognitouser_changelist"


@pytest.fixture
def world(cognito):
    """A pool with groups and users in every state an action needs, mirrored by a pull; and a second pool."""
    # moto lists only the attributes given at creation in SchemaAttributes (Cognito lists every
    # standard one), so the schema names what the tests edit: phone_number and an immutable one.
    pool_id = create_pool(cognito, name="shop", Schema=SCHEMA)
    client_id = cognito.create_user_pool_client(UserPoolId=pool_id, ClientName="spa")["UserPoolClient"]["ClientId"]
    cognito.create_group(UserPoolId=pool_id, GroupName="admins", Precedence=1)
    cognito.create_group(UserPoolId=pool_id, GroupName="editors", Precedence=2)
    # alice: CONFIRMED, in admins; bob: e-mail unverified, with an unverified phone; carol: FORCE_CHANGE_PASSWORD.
    create_user(cognito, pool_id, "alice", email="alice@example.com", name="Alice Ångström")
    cognito.admin_set_user_password(UserPoolId=pool_id, Username="alice", Password=PASSWORD, Permanent=True)
    cognito.admin_add_user_to_group(UserPoolId=pool_id, Username="alice", GroupName="admins")
    create_user(cognito, pool_id, "bob", email="bob@example.com", name="=HYPERLINK(\"x\")",
                phone_number="+15550100002", **{"custom:employee_id": "E-1"})
    cognito.admin_set_user_password(UserPoolId=pool_id, Username="bob", Password=PASSWORD, Permanent=True)
    cognito.admin_update_user_attributes(
        UserPoolId=pool_id, Username="bob", UserAttributes=[{"Name": "email_verified", "Value": "false"}]
    )
    create_user(cognito, pool_id, "carol", email="carol@example.com", name="Carol")
    cognito.sign_up(
        ClientId=client_id, Username="dave", Password=PASSWORD,
        UserAttributes=[{"Name": "email", "Value": "dave@example.com"}, {"Name": "name", "Value": "Dave"}],
    )
    other_id = create_pool(cognito, name="staff")
    cognito.create_group(UserPoolId=other_id, GroupName="operators")
    create_user(cognito, other_id, "erin", email="erin@example.com", name="Erin")

    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    other = UserPool.objects.create(pool_id=other_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    assert pull_pool(pool=other).status == "succeeded"
    pool.refresh_from_db()
    other.refresh_from_db()
    users = {u.username: u for u in CognitoUser.objects.all()}
    assert users["dave"].status == "UNCONFIRMED" and users["alice"].status == "CONFIRMED"
    assert not users["bob"].email_verified
    return {"pool": pool, "other": other, **users}


def remote(cognito, pool, username):
    user = cognito.admin_get_user(UserPoolId=pool.pool_id, Username=username)
    return user, {a["Name"]: a["Value"] for a in user["UserAttributes"]}


def remote_groups(cognito, pool, username):
    groups = cognito.admin_list_groups_for_user(UserPoolId=pool.pool_id, Username=username)["Groups"]
    return sorted(g["GroupName"] for g in groups)


def assert_audited(username, operation, changes, actor="admin"):
    """A `requested` event and an `applied` one with the same correlation id and the given before/after."""
    requested = AuditEvent.objects.filter(
        object_type="user", object_id=username, action="requested", detail__operation=operation
    ).order_by("-id").first()
    assert requested is not None, f"no requested event for {operation} on {username}"
    assert requested.actor == actor and requested.source == "admin"
    applied = AuditEvent.objects.get(correlation_id=requested.correlation_id, action="applied")
    assert applied.actor == actor
    for field, (before, after) in changes.items():
        assert requested.changes[field] == [before, after], requested.changes
        assert applied.changes[field] == [before, after], applied.changes
    change = PendingChange.objects.get(correlation_id=requested.correlation_id)
    assert change.status == "applied", change.last_error
    return change


def post_action(client, action, users, **extra):
    data = {"action": action, "index": 0, "_selected_action": [u.pk for u in users], **extra}
    return client.post(reverse(CHANGELIST), data)


def confirm_action(client, action, users, **extra):
    """The second POST of an intermediate page: ids, action and the confirm flag, no `index`."""
    data = {"action": action, "_selected_action": [u.pk for u in users], "confirm": "yes", **extra}
    return client.post(reverse(CHANGELIST), data)


def user_url(name, user):
    return reverse(f"admin:directory_cognitouser_{name}", args=[user.pk])


def messages_of(response):
    return [str(m) for m in response.wsgi_request._messages]


@pytest.fixture
def staff(client, django_user_model):
    """A staff client whose permissions a test chooses; starts with view_cognitouser only."""
    user = django_user_model.objects.create_user("staffer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_cognitouser"))

    def grant(*codenames):
        user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
        client.force_login(django_user_model.objects.get(pk=user.pk))
        return client

    client.force_login(user)
    client.grant = grant
    return client


# --- Bulk actions ----------------------------------------------------------------------------------------


def test_disable_and_enable_actions(admin_client, cognito, world, django_capture_on_commit_callbacks):
    pool, alice, bob = world["pool"], world["alice"], world["bob"]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "disable_users", [alice, bob])
    assert response.status_code == HTTPStatus.FOUND
    job = BulkJob.objects.get(operation="disable")
    assert job.status == "done" and job.processed == 2 and job.total == 2 and job.skipped == 0
    assert job.changes.filter(status="applied").count() == 2
    for name in ("alice", "bob"):
        assert remote(cognito, pool, name)[0]["Enabled"] is False
        assert_audited(name, "user.set_enabled", {"enabled": (True, False)})
    assert remote(cognito, pool, "carol")[0]["Enabled"] is True
    page = admin_client.get(response["Location"]).content.decode()
    assert reverse("admin:directory_bulkjob_change", args=[job.pk]) in page
    assert AuditEvent.objects.filter(action="bulk_requested", object_id=str(job.pk)).exists()

    with django_capture_on_commit_callbacks(execute=True):
        post_action(admin_client, "enable_users", [alice])
    assert remote(cognito, pool, "alice")[0]["Enabled"] is True
    assert_audited("alice", "user.set_enabled", {"enabled": (False, True)})
    assert remote(cognito, pool, "bob")[0]["Enabled"] is False


def test_reset_password_action(admin_client, cognito, world, django_capture_on_commit_callbacks):
    pool = world["pool"]
    with django_capture_on_commit_callbacks(execute=True):
        post_action(admin_client, "reset_password", [world["alice"], world["dave"]])
    assert remote(cognito, pool, "alice")[0]["UserStatus"] == "RESET_REQUIRED"
    assert_audited("alice", "user.reset_password", {"status": ("CONFIRMED", "RESET_REQUIRED")})
    # dave is UNCONFIRMED: skipped with the reason, Cognito untouched.
    job = BulkJob.objects.get(operation="reset_password")
    assert job.skipped == 1 and "dave" in job.error
    assert remote(cognito, pool, "dave")[0]["UserStatus"] == "UNCONFIRMED"


def test_confirm_sign_up_action(admin_client, cognito, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_action(admin_client, "confirm_sign_up", [world["dave"]])
    assert remote(cognito, world["pool"], "dave")[0]["UserStatus"] == "CONFIRMED"
    assert_audited("dave", "user.confirm_sign_up", {"status": ("UNCONFIRMED", "CONFIRMED")})
    assert CognitoUser.objects.get(pk=world["dave"].pk).status == "CONFIRMED"


def test_mark_email_verified_action(admin_client, cognito, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_action(admin_client, "mark_email_verified", [world["bob"]])
    assert remote(cognito, world["pool"], "bob")[1]["email_verified"] == "true"
    assert_audited("bob", "user.update_attributes", {"attributes.email_verified": ("false", "true")})
    assert CognitoUser.objects.get(pk=world["bob"].pk).email_verified is True


def test_add_to_group_intermediate_page(admin_client, cognito, world, django_capture_on_commit_callbacks):
    pool, bob, carol = world["pool"], world["bob"], world["carol"]
    editors = CognitoGroup.objects.get(pool=pool, name="editors")
    response = post_action(admin_client, "add_to_group", [bob, carol])
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'name="confirm" value="yes"' in html and 'name="action" value="add_to_group"' in html
    assert f'name="_selected_action" value="{bob.pk}"' in html and f'name="_selected_action" value="{carol.pk}"' in html
    choices = {str(g) for g in response.context["form"].fields["group"].queryset}
    assert choices == {"admins", "editors"}  # not the other pool's "operators"
    assert "operators" not in html
    assert response.context["site_header"] == "Cognito directory"  # each_context
    assert not BulkJob.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_action(admin_client, "add_to_group", [bob, carol], group=editors.pk)
    assert response.status_code == HTTPStatus.FOUND
    assert remote_groups(cognito, pool, "bob") == ["editors"]
    assert remote_groups(cognito, pool, "carol") == ["editors"]
    assert_audited("bob", "user.add_to_group", {"groups.editors": (False, True)})
    assert set(editors.users.values_list("username", flat=True)) == {"bob", "carol"}


def test_add_to_group_refuses_other_pools_group(admin_client, cognito, world, django_capture_on_commit_callbacks):
    operators = CognitoGroup.objects.get(name="operators")
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_action(admin_client, "add_to_group", [world["bob"]], group=operators.pk)
    assert response.status_code == HTTPStatus.OK  # the page again, with the error
    assert "group" in response.context["form"].errors
    assert not BulkJob.objects.exists()
    assert remote_groups(cognito, world["pool"], "bob") == []


def test_remove_from_group(admin_client, cognito, world, django_capture_on_commit_callbacks):
    pool, alice = world["pool"], world["alice"]
    admins = CognitoGroup.objects.get(pool=pool, name="admins")
    response = post_action(admin_client, "remove_from_group", [alice])
    assert response.status_code == HTTPStatus.OK and "Remove users from a group" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        confirm_action(admin_client, "remove_from_group", [alice], group=admins.pk)
    assert remote_groups(cognito, pool, "alice") == []
    assert_audited("alice", "user.remove_from_group", {"groups.admins": (True, False)})


def test_group_action_across_pools_refused(admin_client, cognito, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "add_to_group", [world["bob"], world["erin"]])
    assert response.status_code == HTTPStatus.FOUND
    assert any("several user pools" in m for m in messages_of(response))
    assert not BulkJob.objects.exists() and not PendingChange.objects.exists()


def test_delete_in_cognito_action(admin_client, cognito, world, django_capture_on_commit_callbacks):
    pool, alice, carol = world["pool"], world["alice"], world["carol"]
    response = post_action(admin_client, "delete_in_cognito", [alice, carol])
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "alice" in html and "carol" in html and "Membership of group admins" in html
    assert 'name="confirm" value="yes"' in html
    assert remote(cognito, pool, "alice")  # nothing happened yet
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_action(admin_client, "delete_in_cognito", [alice, carol])
    assert response.status_code == HTTPStatus.FOUND
    for name in ("alice", "carol"):
        with pytest.raises(cognito.exceptions.UserNotFoundException):
            cognito.admin_get_user(UserPoolId=pool.pool_id, Username=name)
        assert_audited(name, "user.delete", {"exists": (True, False)})
    assert not CognitoUser.objects.filter(username__in=["alice", "carol"]).exists()
    assert remote(cognito, pool, "bob")


def test_select_across_posts_back_the_filter(admin_client, cognito, world, django_capture_on_commit_callbacks):
    url = reverse(CHANGELIST) + f"?pool__id__exact={world['other'].pk}"
    data = {"action": "disable_users", "index": 0, "select_across": "1", "_selected_action": [world["erin"].pk]}
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, data)
    assert remote(cognito, world["other"], "erin")[0]["Enabled"] is False
    assert remote(cognito, world["pool"], "alice")[0]["Enabled"] is True


def test_export_csv(admin_client, world):
    response = post_action(admin_client, "export_csv", [world["alice"], world["bob"]])
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    content = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(content)))
    assert list(rows[0]) == ["username", "sub", "email", "email_verified", "phone_number", "name", "status",
                             "enabled", "groups", "created", "modified"]
    by_name = {r["username"]: r for r in rows}
    assert set(by_name) == {"alice", "bob"}
    alice = by_name["alice"]
    assert alice["email"] == "alice@example.com" and alice["name"] == "Alice Ångström"
    assert alice["groups"] == "admins" and alice["status"] == "CONFIRMED" and alice["enabled"] == "true"
    assert alice["sub"] == world["alice"].sub and alice["created"]
    assert by_name["bob"]["phone_number"] == "+15550100002" and by_name["bob"]["email_verified"] == "false"
    assert by_name["bob"]["name"].startswith("'=")  # no formula reaches a spreadsheet
    assert PASSWORD not in content


# --- Permissions -------------------------------------------------------------------------------------------

ACTION_PERMS = {
    "enable_users": "enable_cognitouser",
    "disable_users": "enable_cognitouser",
    "reset_password": "reset_password_cognitouser",
    "confirm_sign_up": "confirm_cognitouser",
    "mark_email_verified": "verify_cognitouser",
    "add_to_group": "group_cognitouser",
    "remove_from_group": "group_cognitouser",
    "delete_in_cognito": "delete_in_cognito_cognitouser",
    "export_csv": "export_cognitouser",
}


@pytest.mark.parametrize("action", sorted(ACTION_PERMS))
def test_action_needs_its_permission(staff, cognito, world, action, django_capture_on_commit_callbacks):
    pool, target = world["pool"], world["alice"]
    before = remote(cognito, pool, "alice")
    html = staff.get(reverse(CHANGELIST)).content.decode()
    assert f'value="{action}"' not in html
    admins = CognitoGroup.objects.get(pool=pool, name="admins")
    with django_capture_on_commit_callbacks(execute=True):
        first = post_action(staff, action, [target])
        confirm_action(staff, action, [target], group=admins.pk)
    # The changelist again (or a redirect to it with "No action selected"): not a CSV, not an action's page.
    assert first.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
    assert not first["Content-Type"].startswith("text/csv")
    assert first.status_code == HTTPStatus.FOUND or "cl" in first.context
    assert not BulkJob.objects.exists() and not PendingChange.objects.exists()
    after = remote(cognito, pool, "alice")
    assert (after[0]["Enabled"], after[0]["UserStatus"], after[1]) == (
        before[0]["Enabled"], before[0]["UserStatus"], before[1]
    )
    assert remote_groups(cognito, pool, "alice") == ["admins"]

    staff.grant(ACTION_PERMS[action])
    html = staff.get(reverse(CHANGELIST)).content.decode()
    assert f'value="{action}"' in html


def test_staff_with_permission_runs_action(staff, cognito, world, django_capture_on_commit_callbacks):
    staff.grant("enable_cognitouser")
    with django_capture_on_commit_callbacks(execute=True):
        post_action(staff, "disable_users", [world["carol"]])
    assert remote(cognito, world["pool"], "carol")[0]["Enabled"] is False
    assert_audited("carol", "user.set_enabled", {"enabled": (True, False)}, actor="staffer")


VIEW_PERMS = {
    "enable": "enable_cognitouser",
    "disable": "enable_cognitouser",
    "reset_password": "reset_password_cognitouser",
    "confirm_sign_up": "confirm_cognitouser",
    "verify_email": "verify_cognitouser",
    "verify_phone": "verify_cognitouser",
    "delete_in_cognito": "delete_in_cognito_cognitouser",
    "attributes": "change_cognitouser",
}


@pytest.mark.parametrize("view", sorted(VIEW_PERMS))
def test_user_views_need_permission(staff, cognito, world, view, django_capture_on_commit_callbacks):
    user = world["bob"]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(user_url(view, user), {"confirm": "yes", "name": "Changed"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not PendingChange.objects.exists()
    assert remote(cognito, world["pool"], "bob")[0]["Enabled"] is True
    html = staff.get(reverse("admin:directory_cognitouser_change", args=[user.pk])).content.decode()
    assert user_url(view, user) not in html


@pytest.mark.parametrize("view", sorted(VIEW_PERMS))
def test_user_views_non_staff_redirected_to_login(client, django_user_model, world, view):
    plain = django_user_model.objects.create_user("plain", password="pw")
    plain.user_permissions.add(Permission.objects.get(codename=VIEW_PERMS[view]))
    client.force_login(plain)
    response = client.post(user_url(view, world["bob"]), {"confirm": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("admin:login"))
    assert not PendingChange.objects.exists()


def test_actions_non_staff_redirected_to_login(client, django_user_model, world):
    plain = django_user_model.objects.create_user("plain", password="pw")
    plain.user_permissions.add(*Permission.objects.filter(codename__in=ACTION_PERMS.values()))
    client.force_login(plain)
    response = post_action(client, "disable_users", [world["bob"]])
    assert response.status_code == HTTPStatus.FOUND and response["Location"].startswith(reverse("admin:login"))
    assert not BulkJob.objects.exists()


# --- Per-user views ------------------------------------------------------------------------------------------


def test_user_page_buttons_and_pending_changes(admin_client, world):
    bob = world["bob"]
    html = admin_client.get(reverse("admin:directory_cognitouser_change", args=[bob.pk])).content.decode()
    for view in ("disable", "reset_password", "verify_email", "verify_phone", "delete_in_cognito", "attributes"):
        assert user_url(view, bob) in html, view
    assert user_url("confirm_sign_up", bob) not in html and user_url("enable", bob) not in html
    assert 'name="_save"' not in html  # the standard form stays read-only
    # A change not yet applied (no on_commit callbacks run) shows above the audit history.
    from directory.services import users as user_services

    user_services.cognito_user_set_enabled(user=bob, enabled=False, actor="admin")
    html = admin_client.get(reverse("admin:directory_cognitouser_change", args=[bob.pk])).content.decode()
    section = html.split("field-pending_changes", 1)[1]
    assert "user.set_enabled" in section.split("field-audit_history", 1)[0]
    assert "<td>pending</td>" in section.split("field-audit_history", 1)[0]
    assert html.index("field-pending_changes") < html.index("field-audit_history")


def test_user_views_post_only(admin_client, world):
    for view in ("enable", "disable", "reset_password", "confirm_sign_up", "verify_email", "verify_phone"):
        assert admin_client.get(user_url(view, world["bob"])).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert not PendingChange.objects.exists()


def test_user_view_missing_user(admin_client, world):
    url = reverse("admin:directory_cognitouser_disable", args=[999999])
    assert admin_client.post(url).status_code == HTTPStatus.NOT_FOUND


def test_disable_enable_buttons(admin_client, cognito, world, django_capture_on_commit_callbacks):
    bob, pool = world["bob"], world["pool"]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(user_url("disable", bob))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("admin:directory_cognitouser_change", args=[bob.pk])
    assert remote(cognito, pool, "bob")[0]["Enabled"] is False
    assert_audited("bob", "user.set_enabled", {"enabled": (True, False)})
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(user_url("enable", bob))
    assert remote(cognito, pool, "bob")[0]["Enabled"] is True
    assert_audited("bob", "user.set_enabled", {"enabled": (False, True)})


def test_reset_password_button(admin_client, cognito, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(user_url("reset_password", world["alice"]))
    assert remote(cognito, world["pool"], "alice")[0]["UserStatus"] == "RESET_REQUIRED"
    assert_audited("alice", "user.reset_password", {"status": ("CONFIRMED", "RESET_REQUIRED")})


def test_refused_service_call_is_an_error_message(admin_client, cognito, world, django_capture_on_commit_callbacks):
    # dave is UNCONFIRMED: Cognito cannot reset his password; alice is confirmed already.
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(user_url("reset_password", world["dave"]), follow=True)
        second = admin_client.post(user_url("confirm_sign_up", world["alice"]), follow=True)
    assert response.status_code == HTTPStatus.OK and second.status_code == HTTPStatus.OK
    assert "only reset confirmed users" in response.content.decode()
    assert "only UNCONFIRMED users can be confirmed" in second.content.decode()
    assert 'class="error"' in response.content.decode()
    assert not PendingChange.objects.exists()
    assert remote(cognito, world["pool"], "dave")[0]["UserStatus"] == "UNCONFIRMED"


def test_confirm_sign_up_button(admin_client, cognito, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(user_url("confirm_sign_up", world["dave"]))
    assert remote(cognito, world["pool"], "dave")[0]["UserStatus"] == "CONFIRMED"
    assert_audited("dave", "user.confirm_sign_up", {"status": ("UNCONFIRMED", "CONFIRMED")})


def test_verify_buttons(admin_client, cognito, world, django_capture_on_commit_callbacks):
    bob = world["bob"]
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(user_url("verify_email", bob))
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(user_url("verify_phone", CognitoUser.objects.get(pk=bob.pk)))
    attrs = remote(cognito, world["pool"], "bob")[1]
    assert attrs["email_verified"] == "true" and attrs["phone_number_verified"] == "true"
    assert_audited("bob", "user.update_attributes", {"attributes.phone_number_verified": (None, "true")})
    bob.refresh_from_db()
    assert bob.email_verified and bob.phone_number_verified
    # carol has no phone: a message, not a 500.
    response = admin_client.post(user_url("verify_phone", world["carol"]), follow=True)
    assert response.status_code == HTTPStatus.OK and "has no phone_number" in response.content.decode()


def test_delete_button_confirms_first(admin_client, cognito, world, django_capture_on_commit_callbacks):
    alice, pool = world["alice"], world["pool"]
    response = admin_client.get(user_url("delete_in_cognito", alice))
    assert response.status_code == HTTPStatus.OK
    assert "Membership of group admins" in response.content.decode()
    response = admin_client.post(user_url("delete_in_cognito", alice))  # no confirm flag: the page again
    assert response.status_code == HTTPStatus.OK and not PendingChange.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(user_url("delete_in_cognito", alice), {"confirm": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse(CHANGELIST)
    with pytest.raises(cognito.exceptions.UserNotFoundException):
        cognito.admin_get_user(UserPoolId=pool.pool_id, Username="alice")
    assert_audited("alice", "user.delete", {"exists": (True, False)})
    assert not CognitoUser.objects.filter(pk=alice.pk).exists()


# --- Attribute editor ------------------------------------------------------------------------------------------


def attribute_data(user, **changes):
    """What the form posts back unchanged (every editable field's current value), plus changes."""
    data = {}
    for definition in user.pool.schema:
        name = definition["Name"]
        if definition.get("Mutable", True) and name not in {"sub"}:
            data[name] = user.attributes.get(name, "")
    data.update(changes)
    return data


def test_attribute_form_renders_from_schema(admin_client, world):
    bob = world["bob"]
    response = admin_client.get(user_url("attributes", bob))
    assert response.status_code == HTTPStatus.OK
    form = response.context["form"]
    assert not form.fields["name"].disabled and form.fields["name"].required
    assert not form.fields["custom:department"].disabled and not form.fields["custom:department"].required
    assert form.fields["custom:employee_id"].disabled  # immutable: shown read-only
    assert form.fields["sub"].disabled  # managed by Cognito
    assert form.fields["phone_number"].initial == "+15550100002"
    html = response.content.decode()
    assert 'name="custom:department"' in html and 'name="phone_number"' in html
    assert 'name="sub"' not in html and 'name="custom:employee_id"' not in html
    assert bob.sub in html and "E-1" in html


def test_attribute_edit_reaches_cognito(admin_client, cognito, world, django_capture_on_commit_callbacks):
    bob, pool = world["bob"], world["pool"]
    data = attribute_data(bob, name="Robert Ørsted", **{"custom:department": "sales"})
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(user_url("attributes", bob), data)
    assert response.status_code == HTTPStatus.FOUND, response.context["form"].errors
    attrs = remote(cognito, pool, "bob")[1]
    assert attrs["name"] == "Robert Ørsted" and attrs["custom:department"] == "sales"
    change = assert_audited("bob", "user.update_attributes", {
        "attributes.name": ('=HYPERLINK("x")', "Robert Ørsted"), "attributes.custom:department": (None, "sales"),
    })
    assert set(change.payload["after"]) == {"attributes.name", "attributes.custom:department"}  # changed only
    bob.refresh_from_db()
    assert bob.name == "Robert Ørsted"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("email", "not-an-email", "not a valid e-mail"),
        ("phone_number", "0044 20 7946 0000", "E.164"),
        ("name", "x" * 2049, "2048"),
        ("custom:department", "y" * 2049, "2048"),
        ("name", "", "required"),
        ("email", "", "required"),
        ("sub", "11111111-2222-3333-4444-555555555555", "cannot be changed"),
        ("custom:employee_id", "E-2", "immutable"),
    ],
)
def test_attribute_form_bad_input(admin_client, cognito, world, field, value, words,
                                  django_capture_on_commit_callbacks):
    bob, pool = world["bob"], world["pool"]
    before = remote(cognito, pool, "bob")[1]
    # Also a valid change next to the bad one: nothing may be half-applied.
    data = attribute_data(bob, **{"custom:department": "ops", field: value})
    if field == "custom:department":
        data["name"] = "Valid Name"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(user_url("attributes", bob), data)
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors
    assert field in errors, errors
    assert any(words in e for e in errors[field]), errors[field]
    assert field in " ".join(errors[field]) or words == "required"
    assert 'class="errorlist' in response.content.decode()
    assert not PendingChange.objects.exists()
    assert remote(cognito, pool, "bob")[1] == before
    bob.refresh_from_db()
    assert bob.attributes.get("custom:department") is None


def test_service_refusal_maps_to_field(admin_client, world, monkeypatch):
    """A rule only the service knows still lands on the attribute's field."""
    from django.core.exceptions import ValidationError

    from directory.services import users as user_services

    def refuse(**kwargs):
        raise ValidationError({"name": ["name: refused by the service."]})

    monkeypatch.setattr(user_services, "cognito_user_update_attributes", refuse)
    response = admin_client.post(user_url("attributes", world["bob"]), attribute_data(world["bob"], name="New"))
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors["name"] == ["name: refused by the service."]


def test_attribute_form_unchanged_submit_sends_nothing(admin_client, world):
    response = admin_client.post(user_url("attributes", world["bob"]), attribute_data(world["bob"]))
    assert response.status_code == HTTPStatus.FOUND
    assert not PendingChange.objects.exists()


def test_attribute_form_staff_with_change_permission(staff, cognito, world, django_capture_on_commit_callbacks):
    staff.grant("change_cognitouser")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(user_url("attributes", world["carol"]), attribute_data(world["carol"], name="Caroline"))
    assert response.status_code == HTTPStatus.FOUND
    assert remote(cognito, world["pool"], "carol")[1]["name"] == "Caroline"
    assert_audited("carol", "user.update_attributes", {"attributes.name": ("Carol", "Caroline")}, actor="staffer")
    # The standard change form stays read-only even with the change permission.
    url = reverse("admin:directory_cognitouser_change", args=[world["carol"].pk])
    assert staff.post(url, {"name": "x"}).status_code == HTTPStatus.FORBIDDEN


# --- Bulk job pages -----------------------------------------------------------------------------------------------


def test_bulk_job_pages(admin_client, world, django_capture_on_commit_callbacks):
    from directory.services import bulk as bulk_services

    job = bulk_services.bulk_job_start(users=CognitoUser.objects.filter(pk=world["bob"].pk), operation="disable",
                                  actor="admin")[0]
    url = reverse("admin:directory_bulkjob_change", args=[job.pk])
    html = admin_client.get(url).content.decode()
    assert 'http-equiv="refresh"' in html and "0 / 1" in html  # queued: refreshes
    with django_capture_on_commit_callbacks(execute=True):
        pass
    bulk_services.bulk_job_run(job=job)  # expanded, its change still pending
    html = admin_client.get(url).content.decode()
    assert 'http-equiv="refresh"' in html and "1 / 1" in html
    PendingChange.objects.filter(job=job).update(status="applied")
    html = admin_client.get(url).content.decode()
    assert 'http-equiv="refresh"' not in html
    assert "<td>applied</td><td>1</td>" in html
    listing = admin_client.get(reverse("admin:directory_bulkjob_changelist")).content.decode()
    assert "applied 1" in listing and "disable" in listing
    assert admin_client.get(reverse("admin:directory_bulkjob_add")).status_code == HTTPStatus.FORBIDDEN
    delete = reverse("admin:directory_bulkjob_delete", args=[job.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    assert admin_client.post(url, {"status": "done"}).status_code == HTTPStatus.FORBIDDEN
    assert BulkJob.objects.filter(pk=job.pk).exists()
