"""The local Cognito emulator: demo seed, moto status shim, shim middleware and the management command."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest
from werkzeug.test import Client

import emulator
from directory.message_templates import validation_errors

ROOT = Path(__file__).resolve().parent.parent
SPA_FLOWS = {"ALLOW_USER_SRP_AUTH", "ALLOW_USER_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
DEMO_POOLS = {"webchat", "eshop-fcj", "notes-app", "staff-portal"}
UNICODE = ["Zoë Ångström", "李小龍", "Łukasz Żółć", "José Núñez"]
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _pools(cognito) -> dict[str, str]:
    return {p["Name"]: p["Id"] for p in cognito.list_user_pools(MaxResults=60)["UserPools"]}


def _users(cognito, pool_id: str) -> list[dict]:
    pages = cognito.get_paginator("list_users").paginate(UserPoolId=pool_id)
    users = [u for page in pages for u in page["Users"]]
    for user in users:
        user["attrs"] = {a["Name"]: a["Value"] for a in user["Attributes"]}
    return users


def _client(cognito, pool_id: str, name: str) -> dict:
    clients = cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    (client_id,) = [c["ClientId"] for c in clients if c["ClientName"] == name]
    return cognito.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]


def _required(pool: dict) -> set[str]:
    return {a["Name"] for a in pool["SchemaAttributes"] if a.get("Required")}


def test_seed_demo_pools_sign_in_and_clients(cognito):
    summary = emulator.seed_demo(cognito, users_per_pool=8)

    pools = _pools(cognito)
    assert set(pools) == DEMO_POOLS
    assert {name: info["pool_id"] for name, info in summary.items()} == pools
    assert all(info["created"] for info in summary.values())
    describe = {n: cognito.describe_user_pool(UserPoolId=i)["UserPool"] for n, i in pools.items()}

    for name in ("webchat", "eshop-fcj"):
        assert describe[name]["UsernameAttributes"] == ["email"]
        assert describe[name]["AutoVerifiedAttributes"] == ["email"]
        assert {"email", "name"} <= _required(describe[name])
    assert "UsernameAttributes" not in describe["notes-app"]
    assert "UsernameAttributes" not in describe["staff-portal"]
    assert describe["staff-portal"]["AliasAttributes"] == ["email"]

    chatapp = _client(cognito, pools["webchat"], "chatapp")
    eshop_client = _client(cognito, pools["eshop-fcj"], "eshop-client-no-secret")
    notes_server = _client(cognito, pools["notes-app"], "notes-server")
    for spa in (chatapp, eshop_client):
        assert "ClientSecret" not in spa
        # Amplify's and identity-js's default sign-in is SRP: Cognito refuses it without ALLOW_USER_SRP_AUTH.
        assert set(spa["ExplicitAuthFlows"]) == SPA_FLOWS
        assert len(spa["ExplicitAuthFlows"]) == 4
    assert notes_server["ClientSecret"]
    assert sorted(notes_server["ExplicitAuthFlows"]) == ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert summary["webchat"]["clients"] == ["chatapp"]
    assert summary["notes-app"]["clients"] == ["notes-server"]

    eshop = describe["eshop-fcj"]
    template = eshop["VerificationMessageTemplate"]
    assert template["DefaultEmailOption"] == "CONFIRM_WITH_CODE"
    assert template["EmailSubject"] == "Account verification code"
    assert template["EmailMessage"] == emulator.ESHOP_VERIFICATION_HTML
    assert "{####}" in template["EmailMessage"]
    assert "Welcome to <strong>eSHOP-FCJ</strong>" in template["EmailMessage"]
    assert eshop["UserAttributeUpdateSettings"]["AttributesRequireVerificationBeforeUpdate"] == ["email"]

    staff = describe["staff-portal"]
    assert staff["MfaConfiguration"] == "OPTIONAL"
    mfa = cognito.get_user_pool_mfa_config(UserPoolId=pools["staff-portal"])
    assert mfa["SoftwareTokenMfaConfiguration"] == {"Enabled": True}
    policy = staff["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] == 12
    assert policy["TemporaryPasswordValidityDays"] == 3
    assert all(policy[k] for k in ("RequireUppercase", "RequireLowercase", "RequireNumbers", "RequireSymbols"))
    admin_create = staff["AdminCreateUserConfig"]
    assert admin_create["AllowAdminCreateUserOnly"] is True
    invite = admin_create["InviteMessageTemplate"]
    assert "{username}" in invite["EmailMessage"]
    assert "{####}" in invite["EmailMessage"]
    assert "{####}" in invite["SMSMessage"]
    assert "custom:department" in {a["Name"] for a in staff["SchemaAttributes"]}
    assert staff["DeletionProtection"] == "ACTIVE"
    assert staff["UserPoolTags"] == {"env": "demo"}

    for name, pool_id in pools.items():
        groups = {g["GroupName"]: g for g in cognito.list_groups(UserPoolId=pool_id)["Groups"]}
        assert {"admins", "editors"} <= set(groups), name
        assert groups["admins"]["Precedence"] == 1
        assert all(g.get("Description") for g in groups.values())
    assert "customers" in {g["GroupName"] for g in cognito.list_groups(UserPoolId=pools["eshop-fcj"])["Groups"]}


def test_seed_demo_users_default_size(cognito):
    started = time.monotonic()
    summary = emulator.seed_demo(cognito)
    elapsed = time.monotonic() - started
    print(f"seed_demo (default size) took {elapsed:.2f} s")

    for name, info in summary.items():
        users = _users(cognito, info["pool_id"])
        assert len(users) == info["users"]
        assert len(users) == (121 if name == "notes-app" else 120)
        statuses = Counter(u["UserStatus"] for u in users)
        assert set(statuses) == set(emulator.ALL_STATUSES), name
        assert statuses["CONFIRMED"] > len(users) // 3
        assert any(not u["Enabled"] for u in users), name
        assert sum(u["Enabled"] for u in users) > len(users) * 0.8
        names = {u["attrs"].get("name") for u in users}
        assert set(UNICODE) <= names, name
        phones = [u["attrs"]["phone_number"] for u in users if "phone_number" in u["attrs"]]
        assert len(phones) > 10
        assert all(E164.match(p) for p in phones)
        assert all(u["attrs"].get("email_verified") == "true" for u in users if u["UserStatus"] == "CONFIRMED")

        groups = [g["GroupName"] for g in cognito.list_groups(UserPoolId=info["pool_id"])["Groups"]]
        members = {
            g: {u["Username"] for u in cognito.list_users_in_group(UserPoolId=info["pool_id"], GroupName=g)["Users"]}
            for g in groups
        }
        assert all(members.values()), f"{name}: a group without members: {members.keys()}"
        assert 0 < len(members["admins"]) < min(len(m) for g, m in members.items() if g != "admins")

    notes = _users(cognito, summary["notes-app"]["pool_id"])
    (test_user,) = [u for u in notes if u["Username"] == "notes-test-user"]
    assert test_user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert "phone_number" not in test_user["attrs"]
    assert test_user["attrs"]["email"] == "notes-test-user@example.com"
    assert any(not u["Username"].isascii() for u in notes)  # Cognito usernames may be non-ASCII

    staff = _users(cognito, summary["staff-portal"]["pool_id"])
    assert all(u["attrs"].get("custom:department") for u in staff)
    assert len({u["attrs"]["custom:department"] for u in staff}) > 3

    webchat = _users(cognito, summary["webchat"]["pool_id"])
    # In e-mail pools the Username is the sub.
    assert all(u["Username"] == u["attrs"]["sub"] for u in webchat)


def test_seed_demo_is_idempotent(cognito):
    first = emulator.seed_demo(cognito, users_per_pool=10)
    before = {name: len(_users(cognito, info["pool_id"])) for name, info in first.items()}

    again = emulator.seed_demo(cognito, users_per_pool=10)

    assert len(cognito.list_user_pools(MaxResults=60)["UserPools"]) == 4
    assert not any(info["created"] for info in again.values())
    assert {n: i["pool_id"] for n, i in again.items()} == {n: i["pool_id"] for n, i in first.items()}
    assert {n: i["clients"] for n, i in again.items()} == {n: i["clients"] for n, i in first.items()}
    assert {name: len(_users(cognito, info["pool_id"])) for name, info in again.items()} == before


def _fingerprint(cognito, summary: dict) -> dict:
    out = {}
    for name, info in summary.items():
        users = _users(cognito, info["pool_id"])
        out[name] = sorted(
            (u["attrs"].get("email", ""), u["attrs"].get("name", ""), u["UserStatus"], u["Enabled"]) for u in users
        )
    return out


def test_seed_demo_is_deterministic_and_http_path_matches_in_process_path(cognito, moto_server):
    fast = _fingerprint(cognito, emulator.seed_demo(cognito, users_per_pool=16))

    urllib_reset(moto_server)
    slow = _fingerprint(cognito, emulator.seed_demo(cognito, users_per_pool=16, fast=False))

    assert slow == fast
    assert {s for rows in fast.values() for (_, _, s, _) in rows} == set(emulator.ALL_STATUSES)


def test_seed_demo_makes_users_in_process_when_the_server_runs_here(cognito):
    calls: Counter[str] = Counter()
    cognito.meta.events.register("before-call.cognito-idp.*", lambda model, **kw: calls.update([model.name]))

    emulator.seed_demo(cognito, users_per_pool=20)

    assert calls["CreateUserPool"] == 4
    # Only seed 001's test user goes over HTTP; the 80 demo users do not.
    assert calls["AdminCreateUser"] == 1
    assert calls["SignUp"] == calls["AdminAddUserToGroup"] == 0


def urllib_reset(endpoint: str) -> None:
    import urllib.request

    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()


def test_set_user_status(cognito):
    pool_id = cognito.create_user_pool(PoolName="status-test", UsernameAttributes=["email"])["UserPool"]["Id"]
    created = cognito.admin_create_user(
        UserPoolId=pool_id,
        Username="ana@example.com",
        UserAttributes=[{"Name": "email_verified", "Value": "true"}],
        MessageAction="SUPPRESS",
    )
    sub = created["User"]["Username"]

    for status in ("EXTERNAL_PROVIDER", "ARCHIVED", "COMPROMISED", "UNKNOWN"):
        emulator.set_user_status(pool_id, sub, status)
        assert cognito.admin_get_user(UserPoolId=pool_id, Username=sub)["UserStatus"] == status

    # By e-mail alias, and back to one of moto's own statuses: its API keeps working on the user.
    emulator.set_user_status(pool_id, "ana@example.com", "CONFIRMED")
    assert cognito.admin_get_user(UserPoolId=pool_id, Username=sub)["UserStatus"] == "CONFIRMED"
    cognito.admin_reset_user_password(UserPoolId=pool_id, Username=sub)
    assert cognito.admin_get_user(UserPoolId=pool_id, Username=sub)["UserStatus"] == "RESET_REQUIRED"

    with pytest.raises(LookupError, match="nobody"):
        emulator.set_user_status(pool_id, "nobody", "ARCHIVED")
    with pytest.raises(LookupError, match="us-east-1_missing"):
        emulator.set_user_status("us-east-1_missing", sub, "ARCHIVED")
    with pytest.raises(LookupError):
        emulator.set_user_status(pool_id, sub, "ARCHIVED", region="eu-west-1")


def test_eshop_template_is_one_cognito_accepts():
    """The e-shop pool's HTML verification e-mail (the walkthrough's, pasted as operators paste it)
    passes Cognito's template rules: the code placeholder, the length and the characters."""
    html = emulator.ESHOP_VERIFICATION_HTML
    assert "{####}" in html and html.lstrip().startswith("<")
    assert validation_errors({"email_message": html, "email_subject": "Account verification code"}) == {}


def _json_call(client: Client, operation: str, body: dict):
    return client.post(
        "/",
        data=json.dumps(body),
        headers={
            "X-Amz-Target": emulator.target(operation),
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": (
                "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/cognito-idp/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        },
    )


def test_middleware_routes_by_target_and_passes_the_rest_through(cognito):
    seen = []

    def fake_resend(environ, start_response, app):
        seen.append(environ["HTTP_X_AMZ_TARGET"])
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1")])
        return [b'{"CodeDeliveryDetails": {"DeliveryMedium": "EMAIL"}}']

    app = emulator.build_app({emulator.target("ResendConfirmationCode"): fake_resend})
    assert isinstance(app, emulator.EmulatorMiddleware)
    client = Client(app)

    shimmed = _json_call(client, "ResendConfirmationCode", {"ClientId": "x", "Username": "y"})
    assert shimmed.status_code == 200
    assert json.loads(shimmed.data)["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    assert seen == [emulator.target("ResendConfirmationCode")]

    passed = _json_call(client, "ListUserPools", {"MaxResults": 10})
    assert passed.status_code == 200
    assert "UserPools" in json.loads(passed.data)
    assert len(seen) == 1

    # The default app carries the module's shims (a copy: a test's handlers do not leak into it).
    default = emulator.build_app()
    assert default.handlers == emulator.SHIMS
    assert default.handlers is not emulator.SHIMS


def test_start_server_serves_boto3_and_stops():
    server = emulator.start_server()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.endpoint)
        client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint)
        pool_id = client.create_user_pool(PoolName="emulator-smoke")["UserPool"]["Id"]
        assert client.describe_user_pool(UserPoolId=pool_id)["UserPool"]["Name"] == "emulator-smoke"
    finally:
        server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_command_serves_seeds_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
        "COGNITO_ADMIN_VAR_DIR": str(tmp_path),
    }
    env.pop("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", None)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "cognito_emulator", "--port", str(port), "--seed", "demo", "--latency-ms", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("Cognito emulator listening on" in line for line in output):
            assert proc.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            try:
                output.append(lines.get(timeout=0.2))
            except queue.Empty:
                pass
        assert output[-1].strip() == f"Cognito emulator listening on http://127.0.0.1:{port}"

        client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}")
        names: set[str] = set()
        while names != DEMO_POOLS:  # seeding runs after the line: poll until it is done
            assert proc.poll() is None, "".join(output)
            assert time.monotonic() < deadline, f"pools so far: {names}"
            names = {p["Name"] for p in client.list_user_pools(MaxResults=60)["UserPools"]}
            if names != DEMO_POOLS:
                time.sleep(0.1)
        staff_id = {p["Name"]: p["Id"] for p in client.list_user_pools(MaxResults=60)["UserPools"]}["staff-portal"]
        while client.describe_user_pool(UserPoolId=staff_id)["UserPool"]["EstimatedNumberOfUsers"] < 120:
            assert time.monotonic() < deadline
            time.sleep(0.1)

        proc.terminate()
        stopped = time.monotonic()
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - stopped < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while not lines.empty():
        output.append(lines.get())
    text = "".join(output)
    assert "Seeded demo data" in text
    assert "Latency mode: every Cognito call answered 1 ms late" in text
    assert "staff-portal" in text
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
