"""Backup and restore of a pool's users against the emulator: the file's content (CSV and JSON), what
Cognito holds after a restore into another pool, skip vs update of existing users, per-row outcomes,
bad files, no password in the file, audit events, permissions."""

from __future__ import annotations

import csv
import io
import json
from http import HTTPStatus

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import include, path, resolve, reverse

from directory import gateway, tasks
from directory.admin.backups import pool_urls
from directory.models import AuditEvent, BackupChunk, BulkJob, CognitoGroup, CognitoUser, PendingChange, UserPool
from directory.services.restore import parse_backup
from directory.sync.pull import pull_pool

from .cognito_helpers import create_pool, create_user, inject, list_all_users

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:directory_cognitouser_changelist")
RESTORE_URL = reverse("admin:directory_bulkjob_restore")
SENTINEL = "Zq9!SENTINEL-backup-7f3a"


def mirror(pool_id: str) -> UserPool:
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    pool.refresh_from_db()
    return pool


@pytest.fixture
def source(emu):
    """Sign-in by username, a custom attribute, two groups with members, a disabled user."""
    pool_id = create_pool(emu, name="staff")
    emu.create_group(UserPoolId=pool_id, GroupName="admins", Description="Can do it all", Precedence=1)
    emu.create_group(UserPoolId=pool_id, GroupName="testers", Description="QA", Precedence=5)
    create_user(emu, pool_id, "alice", email="alice@example.com", name="Alice Ångström", **{"custom:department": "eng"})
    emu.admin_create_user(UserPoolId=pool_id, Username="bob", TemporaryPassword=SENTINEL, MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "email", "Value": "bob@example.com"},
                                          {"Name": "name", "Value": "=HYPERLINK(\"x\")"}])
    create_user(emu, pool_id, "carol", email="carol@example.com", name="Carol")
    emu.admin_add_user_to_group(UserPoolId=pool_id, Username="alice", GroupName="admins")
    emu.admin_add_user_to_group(UserPoolId=pool_id, Username="alice", GroupName="testers")
    emu.admin_add_user_to_group(UserPoolId=pool_id, Username="bob", GroupName="testers")
    emu.admin_disable_user(UserPoolId=pool_id, Username="bob")
    return mirror(pool_id)


@pytest.fixture
def target(emu):
    """Another pool, signing in by e-mail, without the custom attribute; it already has `testers`."""
    pool_id = create_pool(emu, name="shop", email_username=True, Schema=[
        {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
        {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
    ])
    emu.create_group(UserPoolId=pool_id, GroupName="testers", Description="Their own testers", Precedence=9)
    return mirror(pool_id)


def back_up(client, pool, fmt, capture) -> tuple[BulkJob, str]:
    users = CognitoUser.objects.filter(pool=pool)
    with capture(execute=True):
        response = client.post(CHANGELIST, {"action": f"backup_pool_{fmt}", "index": 0,
                                            "_selected_action": [users.first().pk]})
    job = BulkJob.objects.get(operation=BulkJob.Operation.BACKUP_USERS, pool=pool, params__format=fmt)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("admin:directory_bulkjob_change", args=[job.pk])
    job.refresh_from_db()
    assert job.status == BulkJob.Status.DONE, job.error
    page = client.get(response["Location"]).content.decode()
    download = reverse("admin:directory_bulkjob_download", args=[job.pk])
    assert f'href="{download}"' in page and "3 users, 2 groups, 3 memberships" in page
    response = client.get(download)
    assert response.status_code == HTTPStatus.OK
    assert f'{pool.pool_id}-users-' in response["Content-Disposition"]
    return job, b"".join(response.streaming_content).decode()


def restore(client, pool, text: str, capture, *, existing="skip", name="backup.json") -> BulkJob:
    with capture(execute=True):
        response = client.post(RESTORE_URL, {
            "pool": pool.pk, "existing": existing,
            "backup_file": SimpleUploadedFile(name, text.encode(), content_type="application/octet-stream"),
        })
    assert response.status_code == HTTPStatus.FOUND, response.content.decode()[:3000]
    job = BulkJob.objects.filter(operation=BulkJob.Operation.RESTORE_USERS).latest("pk")
    assert response["Location"] == reverse("admin:directory_bulkjob_change", args=[job.pk])
    job.refresh_from_db()
    return job


def remote(emu, pool):
    """Cognito's users of a pool: {email: (record, attributes, groups)}."""
    out = {}
    for user in list_all_users(emu, pool.pool_id):
        attributes = {a["Name"]: a["Value"] for a in user["Attributes"]}
        groups = emu.admin_list_groups_for_user(UserPoolId=pool.pool_id, Username=user["Username"])["Groups"]
        out[attributes["email"]] = (user, attributes, sorted(g["GroupName"] for g in groups))
    return out


def keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys(v)}
    return set()


def test_json_backup_holds_users_groups_memberships_and_no_password(admin_client, source,
                                                                   django_capture_on_commit_callbacks):
    job, text = back_up(admin_client, source, "json", django_capture_on_commit_callbacks)
    data = json.loads(text)
    assert data["format"] == "cognito-directory-backup" and data["pool"]["pool_id"] == source.pool_id
    assert data["groups"] == [
        {"name": "admins", "description": "Can do it all", "precedence": 1},
        {"name": "testers", "description": "QA", "precedence": 5},
    ]
    users = {u["username"]: u for u in data["users"]}
    assert set(users) == {"alice", "bob", "carol"}
    alice, bob = users["alice"], users["bob"]
    assert alice["groups"] == ["admins", "testers"] and alice["enabled"] is True
    assert alice["attributes"]["custom:department"] == "eng"
    assert alice["attributes"]["name"] == "Alice Ångström"
    assert alice["attributes"]["sub"] == CognitoUser.objects.get(pool=source, username="alice").sub
    assert bob["enabled"] is False and bob["groups"] == ["testers"] and bob["status"] == "FORCE_CHANGE_PASSWORD"
    assert users["carol"]["groups"] == []
    assert SENTINEL not in text
    assert not {k for k in keys(data) if "password" in k.lower() or "secret" in k.lower()}
    # Audited: requested, finished, downloaded (who, which file).
    events = AuditEvent.objects.filter(object_type="bulk_job", object_id=str(job.pk))
    assert sorted(events.values_list("action", flat=True)) == ["backup_downloaded", "bulk_finished",
                                                              "bulk_requested"]
    downloaded = events.get(action="backup_downloaded")
    assert downloaded.actor == "admin" and downloaded.detail["users"] == 3


def test_csv_backup_reads_in_a_spreadsheet_and_round_trips(admin_client, source, django_capture_on_commit_callbacks):
    _, text = back_up(admin_client, source, "csv", django_capture_on_commit_callbacks)
    rows = list(csv.DictReader(io.StringIO(text)))
    groups = [r for r in rows if r["record"] == "group"]
    assert [(g["groups"], g["group_description"], g["group_precedence"]) for g in groups] == [
        ("admins", "Can do it all", "1"), ("testers", "QA", "5")]
    users = {r["username"]: r for r in rows if r["record"] == "user"}
    assert users["alice"]["groups"] == "admins;testers" and users["alice"]["custom:department"] == "eng"
    assert users["bob"]["enabled"] == "false"
    # A formula is written as text for spreadsheets, and read back as it was.
    assert users["bob"]["name"] == "'=HYPERLINK(\"x\")"
    parsed = {u["username"]: u for u in parse_backup(text).users}
    assert parsed["bob"]["attributes"]["name"] == '=HYPERLINK("x")'
    assert parsed["alice"]["groups"] == ["admins", "testers"] and parsed["bob"]["enabled"] is False
    assert SENTINEL not in text and "password" not in rows[0].keys()


def test_restore_into_another_pool(admin_client, emu, source, target, django_capture_on_commit_callbacks):
    _, text = back_up(admin_client, source, "json", django_capture_on_commit_callbacks)
    job = restore(admin_client, target, text, django_capture_on_commit_callbacks)
    assert job.status == BulkJob.Status.DONE, job.error
    assert (job.results["created"], job.results["skipped"], job.results["failed"]) == (3, 0, 0)
    assert job.results["groups"] == {"admins": "created", "testers": "exists"}
    held = remote(emu, target)
    assert set(held) == {"alice@example.com", "bob@example.com", "carol@example.com"}
    alice_record, alice, alice_groups = held["alice@example.com"]
    assert alice["name"] == "Alice Ångström" and "custom:department" not in alice
    assert alice_groups == ["admins", "testers"]
    assert alice["sub"] != json.loads(text)["users"][0]["attributes"]["sub"]  # Cognito gives a new sub
    bob_record, bob, bob_groups = held["bob@example.com"]
    assert bob_record["Enabled"] is False and bob_groups == ["testers"] and bob["name"] == '=HYPERLINK("x")'
    assert all(r["UserStatus"] == "FORCE_CHANGE_PASSWORD" for r, _, _ in held.values())
    admins = emu.get_group(UserPoolId=target.pool_id, GroupName="admins")["Group"]
    assert (admins["Description"], admins["Precedence"]) == ("Can do it all", 1)
    testers = emu.get_group(UserPoolId=target.pool_id, GroupName="testers")["Group"]
    assert testers["Description"] == "Their own testers"  # an existing group is left as it is
    # Per-row outcomes name what the pool could not take.
    rows = job.results["rows"]
    assert {r["status"] for r in rows.values()} == {"created"}
    alice_row = next(r for r in rows.values() if r["email"] == "alice@example.com")
    assert "custom:department" in alice_row["reason"] and "sub" in alice_row["reason"]
    # The mirror has them, with memberships; every change is audited.
    mirrored = CognitoUser.objects.get(pool=target, email="alice@example.com")
    assert sorted(mirrored.groups.values_list("name", flat=True)) == ["admins", "testers"]
    assert not CognitoUser.objects.get(pool=target, email="bob@example.com").enabled
    created = AuditEvent.objects.filter(pool_id=target.pool_id, action="created", detail__restore_job=job.pk)
    assert sorted(created.values_list("object_type", flat=True)) == ["group", "user", "user", "user"]
    assert AuditEvent.objects.filter(pool_id=target.pool_id, action="group_added").count() == 3
    finished = AuditEvent.objects.get(object_id=str(job.pk), action="bulk_finished")
    assert finished.detail["created"] == 3 and finished.detail["groups_created"] == ["admins"]
    # The job's page shows each row.
    page = admin_client.get(reverse("admin:directory_bulkjob_change", args=[job.pk])).content.decode()
    assert "created 3, updated 0, skipped 0, failed 0" in page and "admins created" in page


def test_existing_users_are_skipped_or_updated(admin_client, emu, source, django_capture_on_commit_callbacks):
    _, text = back_up(admin_client, source, "json", django_capture_on_commit_callbacks)
    before = remote_by_username(emu, source)
    job = restore(admin_client, source, text, django_capture_on_commit_callbacks, existing="skip")
    assert (job.results["created"], job.results["skipped"], job.results["failed"]) == (0, 3, 0)
    assert remote_by_username(emu, source) == before
    assert not PendingChange.objects.exists()
    # The operator edits the file: alice renamed, bob enabled, carol in admins; and chooses update.
    data = json.loads(text)
    for user in data["users"]:
        if user["username"] == "alice":
            user["attributes"]["name"] = "Alice Liddell"
        elif user["username"] == "bob":
            user["enabled"] = True
        else:
            user["groups"] = ["admins"]
    job = restore(admin_client, source, json.dumps(data), django_capture_on_commit_callbacks, existing="update")
    assert job.status == BulkJob.Status.DONE, job.error
    assert (job.results["updated"], job.results["created"], job.results["failed"]) == (3, 0, 0)
    after = remote_by_username(emu, source)
    assert after["alice"][1]["name"] == "Alice Liddell"
    assert after["bob"][0]["Enabled"] is True
    assert after["carol"][2] == ["admins"]
    assert after["alice"][2] == ["admins", "testers"]  # memberships are added, never removed
    assert set(PendingChange.objects.values_list("status", flat=True)) == {"applied"}
    reasons = {r["username"]: r["reason"].split("; ") for r in job.results["rows"].values()}
    assert reasons["alice"] == ["requested: attributes name", "not restored (Cognito's own, or not in this pool): sub"]
    assert reasons["bob"][0] == "requested: enabled"
    assert reasons["carol"][0] == "requested: added to admins"


def remote_by_username(emu, pool):
    out = {}
    for user in list_all_users(emu, pool.pool_id):
        groups = emu.admin_list_groups_for_user(UserPoolId=pool.pool_id, Username=user["Username"])["Groups"]
        out[user["Username"]] = (
            {"Enabled": user["Enabled"], "UserStatus": user["UserStatus"]},
            {a["Name"]: a["Value"] for a in user["Attributes"]},
            sorted(g["GroupName"] for g in groups),
        )
    return out


def test_bad_rows_get_their_own_outcome(admin_client, emu, target, django_capture_on_commit_callbacks):
    text = (
        "record,username,enabled,status,groups,group_description,group_precedence,created,modified,email,name,"
        "custom:shoe_size\r\n"
        "group,,,,bad group name!,,,,,,,\r\n"
        "user,u1,true,CONFIRMED,,,,,,dana@example.com,Dana,44\r\n"
        "user,u2,true,CONFIRMED,,,,,,,No Email,\r\n"
        f"user,u3,true,CONFIRMED,,,,,,erin@example.com,{'x' * 2049},\r\n"
        "user,u4,true,CONFIRMED,bad group name!,,,,,fay@example.com,Fay,\r\n"
    )
    job = restore(admin_client, target, text, django_capture_on_commit_callbacks, name="rows.csv")
    assert job.status == BulkJob.Status.DONE
    rows = job.results["rows"]
    assert rows["1"]["status"] == "created" and "custom:shoe_size" in rows["1"]["reason"]
    assert rows["2"]["status"] == "failed" and "signs in by email" in rows["2"]["error"]
    assert rows["3"]["status"] == "failed" and "name is 2049 characters long" in rows["3"]["error"]
    assert rows["4"]["status"] == "created" and "bad group name!" in rows["4"]["groups_failed"]
    assert job.results["groups"]["bad group name!"].startswith("failed")
    assert set(remote(emu, target)) == {"dana@example.com", "fay@example.com"}
    assert AuditEvent.objects.filter(action="group_add_failed", pool_id=target.pool_id).count() == 1
    assert "row 2:" in job.error and "row 3:" in job.error


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("record,username,password\r\nuser,x,Secret1!\r\n", "password refused: a backup never carries a password"),
        ('{"format": "something else", "users": []}', 'a JSON backup starts with "format"'),
        ('{"format": "cognito-directory-backup", "users": [{"username": "x", "TemporaryPassword": "a"}]}',
         "TemporaryPassword refused"),
        ("{not json", "not valid JSON"),
        ("name,email\r\nx,y@example.com\r\n", "record and username among them"),
        ("record,username\r\n", "holds no users and no groups"),
        ("record,username\r\nperson,x\r\n", "line 2: record must be user or group"),
    ],
)
def test_bad_files_are_form_errors(admin_client, emu, target, content, message):
    users_before = list_all_users(emu, target.pool_id)
    response = admin_client.post(RESTORE_URL, {
        "pool": target.pk, "existing": "skip",
        "backup_file": SimpleUploadedFile("bad.csv", content.encode()),
    })
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode().replace("&quot;", '"')
    assert "backup_file: " in html and message in html
    assert not BulkJob.objects.exists() and not BackupChunk.objects.exists()
    assert list_all_users(emu, target.pool_id) == users_before


def test_pages_check_their_permissions(client, admin_client, source, django_user_model,
                                       django_capture_on_commit_callbacks):
    job, _ = back_up(admin_client, source, "json", django_capture_on_commit_callbacks)
    downloads = AuditEvent.objects.filter(action="backup_downloaded").count()
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(staff)
    for url in (reverse("admin:directory_bulkjob_backup", args=[source.pk]), RESTORE_URL,
                reverse("admin:directory_bulkjob_download", args=[job.pk])):
        assert client.get(url).status_code == HTTPStatus.FORBIDDEN, url
    assert AuditEvent.objects.filter(action="backup_downloaded").count() == downloads


def test_backup_page_starts_a_csv_job(admin_client, source, django_capture_on_commit_callbacks):
    url = reverse("admin:directory_bulkjob_backup", args=[source.pk])
    page = admin_client.get(url).content.decode()
    assert "3 users" in page and "2 groups" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"format": "csv"})
    job = BulkJob.objects.get(operation=BulkJob.Operation.BACKUP_USERS)
    assert response["Location"] == reverse("admin:directory_bulkjob_change", args=[job.pk])
    job.refresh_from_db()
    assert job.status == BulkJob.Status.DONE and job.params == {"format": "csv"} and job.processed == 3
    assert admin_client.post(url, {"format": "xml"}).status_code == HTTPStatus.OK
    assert BulkJob.objects.count() == 1
    assert CognitoGroup.objects.filter(pool=source).count() == 2


def test_throttling_pauses_the_restore_which_resumes_where_it_stopped(admin_client, emu, source, target, settings,
                                                                     django_capture_on_commit_callbacks):
    settings.COGNITO_RESTORE_THREADS = 2
    _, text = back_up(admin_client, source, "json", django_capture_on_commit_callbacks)
    data = json.loads(text)
    data["users"] += [
        {"username": f"extra{n}", "enabled": True, "status": "CONFIRMED", "groups": ["testers"],
         "attributes": {"email": f"extra{n}@example.com", "name": f"Extra {n}"}}
        for n in range(6)
    ]
    client = gateway.get_client("us-east-1")
    # Cognito keeps answering TooManyRequests after the fourth creation, past botocore's retries.
    with inject(client, "AdminCreateUser", lambda n: n > 4) as calls:
        job = restore(admin_client, target, json.dumps(data), django_capture_on_commit_callbacks)
    assert calls["failed"] > 0
    assert job.status == BulkJob.Status.QUEUED and job.error.startswith("Paused")
    assert job.results["pauses"] == 1 and job.results["created"] == 4
    assert len(list_all_users(emu, target.pool_id)) == 4
    # The sweeper sends it again; it goes on from where it stopped, creating each user once.
    tasks.run_bulk_job(job.pk)
    job.refresh_from_db()
    assert job.status == BulkJob.Status.DONE, job.error
    assert (job.results["created"], job.results["skipped"], job.results["failed"]) == (9, 0, 0)
    assert {r["status"] for r in job.results["rows"].values()} == {"created"}
    assert len(list_all_users(emu, target.pool_id)) == 9
    assert CognitoUser.objects.filter(pool=target).count() == 9


def test_the_pool_page_hook_serves_the_same_pages(rf, admin_user, source):
    """`backups.pool_urls`, for UserPoolAdmin.get_urls: userpool/<pk>/backup/ and userpool/<pk>/restore/."""
    class Conf:
        urlpatterns = [path("userpool/", include(pool_urls(admin.site.get_model_admin(UserPool))))]

    for url, text in ((f"/userpool/{source.pk}/backup/", "Back up the users of"),
                      (f"/userpool/{source.pk}/restore/", f'<option value="{source.pk}" selected>')):
        match = resolve(url, urlconf=Conf)
        assert match.url_name in {"directory_userpool_backup", "directory_userpool_restore"}
        request = rf.get(url)
        request.user = admin_user
        response = match.func(request, *match.args, **match.kwargs)
        response.render()
        assert response.status_code == HTTPStatus.OK
        assert text in response.content.decode()
