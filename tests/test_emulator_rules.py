"""The emulator's Cognito rules that the SDK tests do not reach, and its state across restarts (boto3 over HTTP)."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError

import emulator
from directory.models import AuditEvent, UserPool
from directory.sync.pull import pull_pool
from emulator.protocol import cognitoidp_backends
from tests.cognito_helpers import make_pool
from tests.sdk_clients import verified_claims

PASSWORD = "Passw0rd!Long"
POLICY = {"PasswordPolicy": {"MinimumLength": 12, "RequireUppercase": True, "RequireLowercase": True,
                             "RequireNumbers": True, "RequireSymbols": True}}


def code_of(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


def client(emu, pool_id, **extra):
    flows = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    return emu.create_user_pool_client(UserPoolId=pool_id, ClientName="app", ExplicitAuthFlows=flows,
                                       **extra)["UserPoolClient"]


def password_sign_in(emu, client_id, username, password):
    return emu.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                             AuthParameters={"USERNAME": username, "PASSWORD": password})


def test_ids_are_shaped_like_cognitos_and_never_collide(emu):
    first = emu.create_user_pool(PoolName="twin")["UserPool"]["Id"]
    second = emu.create_user_pool(PoolName="twin")["UserPool"]["Id"]
    assert re.fullmatch(r"us-east-1_[0-9A-Za-z]{9}", first) and re.fullmatch(r"us-east-1_[0-9A-Za-z]{9}", second)
    assert first != second and {p["Id"] for p in emu.list_user_pools(MaxResults=10)["UserPools"]} == {first, second}
    clients = [emu.create_user_pool_client(UserPoolId=first, ClientName="same", GenerateSecret=True)["UserPoolClient"]
               for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-z]{26}", c["ClientId"]) for c in clients)
    assert clients[0]["ClientId"] != clients[1]["ClientId"]
    assert all(re.fullmatch(r"[0-9a-z]{51}", c["ClientSecret"]) for c in clients)
    assert len(emu.list_user_pool_clients(UserPoolId=first, MaxResults=10)["UserPoolClients"]) == 2


def test_mfa_reads_the_same_both_ways_and_update_keeps_what_cognito_keeps(emu):
    pool_id = make_pool(emu, UsernameAttributes=["email"], UsernameConfiguration={"CaseSensitive": False},
                        LambdaConfig={"PreSignUp": "arn:aws:lambda:us-east-1:123456789012:function:pre"})
    emu.set_user_pool_mfa_config(UserPoolId=pool_id, MfaConfiguration="OPTIONAL",
                                 SoftwareTokenMfaConfiguration={"Enabled": True})
    described = emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert described["MfaConfiguration"] == emu.get_user_pool_mfa_config(UserPoolId=pool_id)["MfaConfiguration"]
    assert described["MfaConfiguration"] == "OPTIONAL"
    schema_before = described["SchemaAttributes"]
    time.sleep(0.01)

    emu.update_user_pool(UserPoolId=pool_id, MfaConfiguration="OFF", AutoVerifiedAttributes=["email"])
    after = emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert after["MfaConfiguration"] == emu.get_user_pool_mfa_config(UserPoolId=pool_id)["MfaConfiguration"] == "OFF"
    # What UpdateUserPool cannot carry stays; what it can and was left out is reset.
    assert after["UsernameAttributes"] == ["email"] and after["UsernameConfiguration"] == {"CaseSensitive": False}
    assert after["SchemaAttributes"] == schema_before and after["Name"] == "shop" and after["Id"] == pool_id
    assert "PreSignUp" not in (after.get("LambdaConfig") or {})
    assert after["LastModifiedDate"] > described["LastModifiedDate"]
    assert "PoolName" not in after and "UserPoolId" not in after


def test_password_policy_on_every_call_that_sets_a_password(emu):
    pool_id = make_pool(emu, Policies=POLICY)
    app = client(emu, pool_id)
    weak = "Short1!"
    with pytest.raises(ClientError) as exc:
        emu.admin_create_user(UserPoolId=pool_id, Username="ana", TemporaryPassword=weak, MessageAction="SUPPRESS")
    assert code_of(exc) == "InvalidPasswordException" and "not long enough" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        emu.sign_up(ClientId=app["ClientId"], Username="bo", Password="longenoughbutlower1!",
                    UserAttributes=[{"Name": "email", "Value": "bo@example.com"}, {"Name": "name", "Value": "Bo"}])
    assert code_of(exc) == "InvalidPasswordException" and "uppercase" in str(exc.value)
    emu.admin_create_user(UserPoolId=pool_id, Username="ana", TemporaryPassword="Temp-Passw0rd!1",
                          MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "email", "Value": "ana@example.com"},
                                          {"Name": "name", "Value": "A"}])
    with pytest.raises(ClientError) as exc:
        emu.admin_set_user_password(UserPoolId=pool_id, Username="ana", Password="NoSymbols1234", Permanent=True)
    assert code_of(exc) == "InvalidPasswordException" and "symbol" in str(exc.value)
    challenge = password_sign_in(emu, app["ClientId"], "ana", "Temp-Passw0rd!1")
    assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    with pytest.raises(ClientError) as exc:
        emu.respond_to_auth_challenge(ClientId=app["ClientId"], ChallengeName="NEW_PASSWORD_REQUIRED",
                                      Session=challenge["Session"],
                                      ChallengeResponses={"USERNAME": "ana", "NEW_PASSWORD": "nocapitals123!"})
    assert code_of(exc) == "InvalidPasswordException"
    emu.admin_set_user_password(UserPoolId=pool_id, Username="ana", Password=PASSWORD + "1", Permanent=True)
    tokens = password_sign_in(emu, app["ClientId"], "ana", PASSWORD + "1")["AuthenticationResult"]
    with pytest.raises(ClientError) as exc:
        emu.change_password(AccessToken=tokens["AccessToken"], PreviousPassword=PASSWORD + "1", ProposedPassword=weak)
    assert code_of(exc) == "InvalidPasswordException"
    with pytest.raises(ClientError) as exc:
        emu.change_password(AccessToken=tokens["AccessToken"], PreviousPassword="Wrong-Passw0rd!",
                            ProposedPassword=PASSWORD)
    assert code_of(exc) == "NotAuthorizedException"
    emu.change_password(AccessToken=tokens["AccessToken"], PreviousPassword=PASSWORD + "1", ProposedPassword=PASSWORD)
    assert "AuthenticationResult" in password_sign_in(emu, app["ClientId"], "ana", PASSWORD)


def test_codes_must_match_and_failed_attempts_count(emu):
    pool_id = make_pool(emu, AccountRecoverySetting={"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]})
    app = client(emu, pool_id)
    emu.sign_up(ClientId=app["ClientId"], Username="cy", Password=PASSWORD,
                UserAttributes=[{"Name": "email", "Value": "cy@example.com"}, {"Name": "name", "Value": "Cy"}])
    for _ in range(5):
        with pytest.raises(ClientError) as exc:
            emu.confirm_sign_up(ClientId=app["ClientId"], Username="cy", ConfirmationCode="not-it")
        assert code_of(exc) == "CodeMismatchException"
    (sent,) = emulator.MESSAGE_LOG.list(pool_id=pool_id, username="cy")
    with pytest.raises(ClientError) as exc:  # even the right code, once the attempts are spent
        emu.confirm_sign_up(ClientId=app["ClientId"], Username="cy", ConfirmationCode=sent["code"])
    assert code_of(exc) == "LimitExceededException"
    emu.resend_confirmation_code(ClientId=app["ClientId"], Username="cy")
    fresh = emulator.MESSAGE_LOG.list(pool_id=pool_id, username="cy")[0]["code"]
    emu.confirm_sign_up(ClientId=app["ClientId"], Username="cy", ConfirmationCode=fresh)
    user = emu.admin_get_user(UserPoolId=pool_id, Username="cy")
    assert user["UserStatus"] == "CONFIRMED"
    assert {a["Name"]: a["Value"] for a in user["UserAttributes"]}["email_verified"] == "true"

    emu.forgot_password(ClientId=app["ClientId"], Username="cy")
    reset = emulator.MESSAGE_LOG.list(pool_id=pool_id, username="cy")[0]
    assert reset["trigger"] == "ForgotPassword"
    with pytest.raises(ClientError) as exc:
        emu.confirm_forgot_password(ClientId=app["ClientId"], Username="cy", ConfirmationCode="000000x",
                                    Password="New-Passw0rd!!")
    assert code_of(exc) == "CodeMismatchException"
    emu.confirm_forgot_password(ClientId=app["ClientId"], Username="cy", ConfirmationCode=reset["code"],
                                Password="New-Passw0rd!!")
    assert "AuthenticationResult" in password_sign_in(emu, app["ClientId"], "cy", "New-Passw0rd!!")
    with pytest.raises(ClientError) as exc:
        password_sign_in(emu, app["ClientId"], "cy", PASSWORD)
    assert code_of(exc) == "NotAuthorizedException"


def test_token_validity_follows_the_client(emu):
    pool_id = make_pool(emu)
    app = client(emu, pool_id, AccessTokenValidity=5, IdTokenValidity=2, RefreshTokenValidity=1,
                 TokenValidityUnits={"AccessToken": "minutes", "IdToken": "hours", "RefreshToken": "days"})
    emu.admin_create_user(UserPoolId=pool_id, Username="di", MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "email", "Value": "di@example.com"}, {"Name": "name", "Value": "D"}])
    emu.admin_set_user_password(UserPoolId=pool_id, Username="di", Password=PASSWORD, Permanent=True)
    result = emu.admin_initiate_auth(UserPoolId=pool_id, ClientId=app["ClientId"], AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                     AuthParameters={"USERNAME": "di", "PASSWORD": PASSWORD})["AuthenticationResult"]
    endpoint = emu.meta.endpoint_url
    access = verified_claims(endpoint, pool_id, result["AccessToken"])
    identity = verified_claims(endpoint, pool_id, result["IdToken"], audience=app["ClientId"])
    assert result["ExpiresIn"] == 300 == access["exp"] - access["iat"]
    assert identity["exp"] - identity["iat"] == 7200
    assert identity["cognito:username"] == "di" and identity["email"] == "di@example.com"
    with pytest.raises(ClientError) as exc:  # ADMIN_USER_PASSWORD_AUTH checks the password like the others
        emu.admin_initiate_auth(UserPoolId=pool_id, ClientId=app["ClientId"], AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                AuthParameters={"USERNAME": "di", "PASSWORD": "Wrong-Passw0rd!"})
    assert code_of(exc) == "NotAuthorizedException" and "Incorrect username or password." in str(exc.value)


def test_user_last_modified_date_moves_as_cognitos(emu):
    pool_id = make_pool(emu)
    emu.create_group(UserPoolId=pool_id, GroupName="g")
    emu.admin_create_user(UserPoolId=pool_id, Username="ed", MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "email", "Value": "ed@example.com"}, {"Name": "name", "Value": "E"}])

    def modified():
        time.sleep(0.01)
        return emu.admin_get_user(UserPoolId=pool_id, Username="ed")["UserLastModifiedDate"]

    stamps = [modified()]
    emu.admin_disable_user(UserPoolId=pool_id, Username="ed")
    stamps.append(modified())
    emu.admin_enable_user(UserPoolId=pool_id, Username="ed")
    stamps.append(modified())
    emu.admin_set_user_password(UserPoolId=pool_id, Username="ed", Password=PASSWORD, Permanent=True)
    stamps.append(modified())
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
    emu.admin_add_user_to_group(UserPoolId=pool_id, Username="ed", GroupName="g")
    assert modified() == stamps[-1]  # group membership is not the user's record


def test_jwks_and_openid_configuration_are_served(emu):
    pool_id = make_pool(emu)
    base = f"{emu.meta.endpoint_url}/{pool_id}/.well-known"
    with urllib.request.urlopen(f"{base}/openid-configuration", timeout=5) as response:
        config = json.load(response)
    assert config["issuer"] == f"{emu.meta.endpoint_url}/{pool_id}" and config["jwks_uri"] == f"{base}/jwks.json"
    with urllib.request.urlopen(config["jwks_uri"], timeout=5) as response:
        (key,) = json.load(response)["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and "d" not in key


# --- State across restarts ------------------------------------------------------------------------------------


def restart(server, path, *, reset=False):
    """Stop the emulator, forget everything in this process (as a new process would), start on the same file."""
    server.stop()
    for backend in cognitoidp_backends[emulator.ACCOUNT_ID].values():
        backend.user_pools.clear()
        backend.user_pool_domains.clear()
    emulator.MESSAGE_LOG.clear()
    return emulator.start_server(port=0, state_path=path, reset=reset)


@pytest.mark.django_db
def test_state_survives_a_restart_and_the_mirror_sees_no_change(cognito, tmp_path, monkeypatch):
    from directory import gateway

    path = tmp_path / "state.json"
    server = emulator.start_server(port=0, state_path=path)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", server.endpoint)
        gateway.reset_clients()
        emu = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint)
        summary = emulator.seed_demo(emu, users_per_pool=10)
        webchat = summary["webchat"]["pool_id"]
        (app,) = emu.list_user_pool_clients(UserPoolId=webchat, MaxResults=10)["UserPoolClients"]  # chatapp
        signin = next(s for s in emulator.demo_sign_ins(users_per_pool=10) if s["pool"] == "webchat")
        before = password_sign_in(emu, app["ClientId"], signin["username"], signin["password"])["AuthenticationResult"]
        mirrored = [UserPool.objects.create(pool_id=i["pool_id"], region="us-east-1") for i in summary.values()]
        for pool in mirrored:
            assert pull_pool(pool=pool).status == "succeeded"
        audits = AuditEvent.objects.count()
        messages = emulator.MESSAGE_LOG.list()
        keys = urllib.request.urlopen(f"{server.endpoint}/{webchat}/.well-known/jwks.json", timeout=5).read()

        server = restart(server, path)
        assert server.restored == 4
        monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", server.endpoint)
        gateway.reset_clients()
        emu = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint)
        assert not any(i["created"] for i in emulator.seed_demo(emu, users_per_pool=10).values())
        for pool in mirrored:
            run = pull_pool(pool=pool)
            assert run.status == "succeeded"
        assert AuditEvent.objects.count() == audits  # nothing created, changed or removed
        assert emulator.MESSAGE_LOG.list() == messages
        assert urllib.request.urlopen(f"{server.endpoint}/{webchat}/.well-known/jwks.json", timeout=5).read() == keys
        # Passwords, refresh tokens and the signing key came back: the old refresh token still works.
        assert "AuthenticationResult" in password_sign_in(emu, app["ClientId"], signin["username"], signin["password"])
        renewed = emu.initiate_auth(ClientId=app["ClientId"], AuthFlow="REFRESH_TOKEN_AUTH",
                                    AuthParameters={"REFRESH_TOKEN": before["RefreshToken"]})["AuthenticationResult"]
        assert verified_claims(server.endpoint, webchat, renewed["IdToken"], audience=app["ClientId"])["email"] == (
            signin["email"])
        stored = path.read_text()
        assert signin["password"] not in stored and (path.stat().st_mode & 0o777) == 0o600

        # --reset starts afresh; the demo seed made again gives the same ids, subs and dates: no audit either.
        server = restart(server, path, reset=True)
        assert server.restored is None
        monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", server.endpoint)
        gateway.reset_clients()
        emu = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint)
        assert emu.list_user_pools(MaxResults=10)["UserPools"] == []
        again = emulator.seed_demo(emu, users_per_pool=10)
        assert {n: i["pool_id"] for n, i in again.items()} == {n: i["pool_id"] for n, i in summary.items()}
        for pool in mirrored:
            assert pull_pool(pool=pool).status == "succeeded"
        assert AuditEvent.objects.count() == audits, list(
            AuditEvent.objects.order_by("-pk").values_list("action", "object_id")[:10])
    finally:
        server.stop()
        gateway.reset_clients()


class Command:
    """`manage.py cognito_emulator` in a subprocess with its own var directory."""

    def __init__(self, var_dir, port, *args):
        import os
        import subprocess
        import sys
        from pathlib import Path

        env = {**os.environ, "DJANGO_DEBUG": "true", "PYTHONUNBUFFERED": "1", "COGNITO_ADMIN_VAR_DIR": str(var_dir)}
        env.pop("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", None)
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "cognito_emulator", "--port", str(port), *args],
            cwd=Path(__file__).resolve().parent.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, text, timeout=120):
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            self.lines.append(self.proc.stdout.readline())
        return "".join(self.lines)

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=20) == 0, "".join(self.lines) + self.proc.stdout.read()


@pytest.mark.slow
def test_command_keeps_its_state_across_a_restart_and_reset_starts_afresh(tmp_path):
    from tests.procs import free_port

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    first = Command(tmp_path, port, "--seed", "demo")
    try:
        assert "(new)" in first.wait_for("  staff-portal")
        emu = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=endpoint)
        pools = {p["Name"]: p["Id"] for p in emu.list_user_pools(MaxResults=10)["UserPools"]}
        created = emu.admin_create_user(UserPoolId=pools["webchat"], Username="kept@example.com",
                                        TemporaryPassword="Temp-Passw0rd!1", MessageAction="SUPPRESS",
                                        UserAttributes=[{"Name": "name", "Value": "Kept"}])["User"]
    finally:
        first.stop()
    state = tmp_path / "cognito-emulator" / "state.json"
    assert state.exists() and "Temp-Passw0rd!1" not in state.read_text()

    second = Command(tmp_path, port, "--seed", "demo")
    try:
        output = second.wait_for("  staff-portal")
        assert "4 pools restored" in output and "already there" in output
        emu = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=endpoint)
        assert {p["Name"]: p["Id"] for p in emu.list_user_pools(MaxResults=10)["UserPools"]} == pools
        kept = emu.admin_get_user(UserPoolId=pools["webchat"], Username="kept@example.com")
        assert kept["Username"] == created["Username"] and kept["UserStatus"] == "FORCE_CHANGE_PASSWORD"
        (chatapp,) = emu.list_user_pool_clients(UserPoolId=pools["webchat"], MaxResults=10)["UserPoolClients"]
        challenge = password_sign_in(emu, chatapp["ClientId"], "kept@example.com", "Temp-Passw0rd!1")
        assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    finally:
        second.stop()

    third = Command(tmp_path, port, "--seed", "demo", "--reset")
    try:
        assert "(new)" in third.wait_for("  staff-portal")
        emu = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=endpoint)
        assert {p["Name"]: p["Id"] for p in emu.list_user_pools(MaxResults=10)["UserPools"]} == pools
        with pytest.raises(ClientError) as exc:
            emu.admin_get_user(UserPoolId=pools["webchat"], Username="kept@example.com")
        assert code_of(exc) == "UserNotFoundException"
    finally:
        third.stop()
