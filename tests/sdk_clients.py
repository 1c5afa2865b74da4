"""Real Cognito client libraries, each behind one small adapter, driven against the emulator over HTTP.

- amazon-cognito-identity-js and AWS SDK v3 run under Node (tests/sdk/*.mjs, installed with `npm ci`);
- pycognito and the AWS CLI run from this venv.

Every adapter answers in one shape: {"tokens": {...}} | {"challenge": name, ...} | {"error": code, "message": ...},
so one test can run a flow through all four.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from botocore.exceptions import ClientError
from pycognito import Cognito
from pycognito.exceptions import ForceChangePasswordException

from directory.gateway import secret_hash
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parent.parent
SDK_DIR = ROOT / "tests" / "sdk"
AWS_CLI = ROOT / ".venv" / "bin" / "aws"
REGION = "us-east-1"


def ensure_node_sdks() -> str:
    """Node and the pinned npm packages (installed with `npm ci` if missing); skip locally, fail under CI."""
    node = shutil.which("node")
    if node is None:
        require_service("Node", "the npm client SDKs run under node (apt-get install nodejs npm)")
    if not (SDK_DIR / "node_modules" / ".package-lock.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            require_service("npm", f"`npm ci` in {SDK_DIR} installs the pinned client SDKs")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SDK_DIR, check=True, timeout=600,
                       capture_output=True)
    return node


def sdk_version(package: str) -> str:
    return json.loads((SDK_DIR / "node_modules" / package / "package.json").read_text())["version"]


def messages(endpoint: str, pool_id: str, username: str) -> list[dict]:
    """The emulator's message log for one user (newest first), read over HTTP as a developer would."""
    query = urllib.parse.urlencode({"pool_id": pool_id, "username": username})
    with urllib.request.urlopen(f"{endpoint}/_emulator/messages?{query}", timeout=10) as response:  # noqa: S310
        return json.load(response)["messages"]


def verified_claims(endpoint: str, pool_id: str, token: str, *, audience: str | None = None) -> dict:
    """The token's claims, verified by PyJWT against the pool's JWKS served by the emulator."""
    issuer = f"{endpoint}/{pool_id}"
    key = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json").get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], issuer=issuer, audience=audience,
                      options={"verify_aud": audience is not None})


@dataclass
class App:
    """Where a client library is pointed: the emulator, a pool and one of its app clients."""

    endpoint: str
    pool_id: str
    client_id: str
    secret: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def hash(self, username: str) -> str | None:
        return secret_hash(self.secret, username, self.client_id) if self.secret else None


def _result(answer: dict) -> dict:
    if "AuthenticationResult" in answer:
        auth = answer["AuthenticationResult"]
        return {"tokens": {"id": auth["IdToken"], "access": auth["AccessToken"], "refresh": auth.get("RefreshToken")}}
    if "ChallengeName" in answer:
        return {"challenge": answer["ChallengeName"], "parameters": answer.get("ChallengeParameters") or {},
                "session": answer.get("Session")}
    return {"ok": answer}


class IdentityJs:
    """amazon-cognito-identity-js: SRP sign-in (its default); no client secrets (it cannot make a SECRET_HASH)."""

    name = "identity-js"
    srp = True

    def __init__(self, node: str) -> None:
        self.node = node

    def _run(self, app: App, **args: Any) -> dict:
        payload = {"endpoint": app.endpoint, "poolId": app.pool_id, "clientId": app.client_id, **args}
        done = subprocess.run([self.node, str(SDK_DIR / "identity_js.mjs"), json.dumps(payload)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        answer = json.loads(done.stdout)
        if "error" in answer:
            return {"error": answer["error"]["code"], "message": answer["error"]["message"],
                    "challenges": answer.get("challenges", [])}
        return answer

    def sign_up(self, app: App, username: str, password: str, attributes: dict[str, str]) -> dict:
        return self._run(app, op="signUp", username=username, password=password, attributes=attributes)

    def confirm(self, app: App, username: str, code: str) -> dict:
        return self._run(app, op="confirm", username=username, code=code)

    def sign_in(self, app: App, username: str, password: str, *, new_password: str | None = None,
                flow: str | None = None) -> dict:
        answer = self._run(app, op="signIn", username=username, password=password, newPassword=new_password,
                           flow=flow)
        challenges = answer.pop("challenges", [])
        if "error" in answer:
            return {**answer, "challenges": challenges}
        if "idToken" not in answer:
            first = challenges[0]
            return {"challenge": first["name"], "parameters": first, "challenges": challenges}
        return {"tokens": {"id": answer["idToken"], "access": answer["accessToken"],
                           "refresh": answer["refreshToken"]}, "challenges": challenges}

    def refresh(self, app: App, username: str, refresh_token: str) -> dict:
        answer = self._run(app, op="refresh", username=username, refreshToken=refresh_token)
        if "error" in answer:
            return answer
        return {"tokens": {"id": answer["idToken"], "access": answer["accessToken"]}}


class SdkV3:
    """AWS SDK for JavaScript v3: the API as it is (USER_PASSWORD_AUTH; SRP needs code of one's own)."""

    name = "aws-sdk-v3"
    srp = False

    def __init__(self, node: str) -> None:
        self.node = node

    def call(self, app: App, command: str, payload: dict) -> dict:
        args = {"endpoint": app.endpoint, "region": REGION, "command": command, "input": payload}
        done = subprocess.run([self.node, str(SDK_DIR / "sdk_v3.mjs"), json.dumps(args)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        answer = json.loads(done.stdout)
        if "error" in answer:
            return {"error": answer["error"]["code"], "message": answer["error"]["message"]}
        return _result(answer)

    def sign_up(self, app: App, username: str, password: str, attributes: dict[str, str]) -> dict:
        payload = {"ClientId": app.client_id, "Username": username, "Password": password,
                   "UserAttributes": [{"Name": k, "Value": v} for k, v in attributes.items()]}
        if app.secret:
            payload["SecretHash"] = app.hash(username)
        return self.call(app, "SignUp", payload)

    def confirm(self, app: App, username: str, code: str) -> dict:
        payload = {"ClientId": app.client_id, "Username": username, "ConfirmationCode": code}
        if app.secret:
            payload["SecretHash"] = app.hash(username)
        return self.call(app, "ConfirmSignUp", payload)

    def sign_in(self, app: App, username: str, password: str, *, new_password: str | None = None,
                flow: str = "USER_PASSWORD_AUTH", secret_hash: bool = True) -> dict:
        params = {"USERNAME": username, "PASSWORD": password}
        if app.secret and secret_hash:
            params["SECRET_HASH"] = app.hash(username)
        answer = self.call(app, "InitiateAuth", {"AuthFlow": flow, "ClientId": app.client_id,
                                                 "AuthParameters": params})
        if answer.get("challenge") == "NEW_PASSWORD_REQUIRED" and new_password:
            responses = {"USERNAME": answer["parameters"]["USER_ID_FOR_SRP"], "NEW_PASSWORD": new_password}
            if app.secret:
                responses["SECRET_HASH"] = app.hash(responses["USERNAME"])
            first = answer
            answer = self.call(app, "RespondToAuthChallenge", {
                "ChallengeName": "NEW_PASSWORD_REQUIRED", "ClientId": app.client_id,
                "Session": answer["session"], "ChallengeResponses": responses})
            answer["challenges"] = [first]
        return answer

    def refresh(self, app: App, username: str, refresh_token: str) -> dict:
        params = {"REFRESH_TOKEN": refresh_token}
        if app.secret:
            params["SECRET_HASH"] = app.hash(username)
        return self.call(app, "InitiateAuth", {"AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": app.client_id,
                                               "AuthParameters": params})


def _client_error(exc: ClientError) -> dict:
    return {"error": exc.response["Error"]["Code"], "message": exc.response["Error"].get("Message", "")}


class PyCognito:
    """pycognito (PyPI): SRP sign-in with its own AWSSRP; verifies tokens against the endpoint's JWKS."""

    name = "pycognito"
    srp = True

    def _user(self, app: App, username: str | None = None, **tokens: Any) -> Cognito:
        return Cognito(app.pool_id, app.client_id, username=username, client_secret=app.secret,
                       boto3_client_kwargs={"endpoint_url": app.endpoint, "region_name": REGION}, **tokens)

    def sign_up(self, app: App, username: str, password: str, attributes: dict[str, str]) -> dict:
        user = self._user(app)
        user.set_base_attributes(**attributes)
        try:
            return {"ok": user.register(username, password)}
        except ClientError as exc:
            return _client_error(exc)

    def confirm(self, app: App, username: str, code: str) -> dict:
        try:
            self._user(app, username).confirm_sign_up(code, username=username)
        except ClientError as exc:
            return _client_error(exc)
        return {"ok": True}

    def sign_in(self, app: App, username: str, password: str, *, new_password: str | None = None) -> dict:
        user = self._user(app, username)
        challenges = []
        try:
            try:
                user.authenticate(password=password)
            except ForceChangePasswordException:
                challenges.append({"name": "NEW_PASSWORD_REQUIRED"})
                if not new_password:
                    return {"challenge": "NEW_PASSWORD_REQUIRED", "challenges": challenges}
                user.new_password_challenge(password, new_password)
        except ClientError as exc:
            return {**_client_error(exc), "challenges": challenges}
        # pycognito verified both tokens against the emulator's JWKS and issuer already.
        return {"tokens": {"id": user.id_token, "access": user.access_token, "refresh": user.refresh_token},
                "challenges": challenges}

    def refresh(self, app: App, username: str, refresh_token: str) -> dict:
        user = self._user(app, username, refresh_token=refresh_token, access_token="expired", id_token="none")
        try:
            user.renew_access_token()
        except ClientError as exc:
            return _client_error(exc)
        return {"tokens": {"id": user.id_token, "access": user.access_token}}


class AwsCli:
    """The AWS CLI (PyPI `awscli`), as a shell script would call it."""

    name = "aws-cli"
    srp = False

    def call(self, app: App, operation: str, *args: str) -> dict:
        if not AWS_CLI.exists():
            require_service("the AWS CLI", f"{AWS_CLI} is missing (make install-dev)")
        env = {**os.environ, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
               "AWS_PAGER": ""}
        done = subprocess.run([str(AWS_CLI), "cognito-idp", operation, "--endpoint-url", app.endpoint,
                               "--region", REGION, "--output", "json", *args],
                              capture_output=True, text=True, timeout=120, env=env, check=False)
        if done.returncode:
            match = re.search(r"An error occurred \((\w+)\) when calling the \w+ operation: (.*)", done.stderr)
            assert match, done.stderr[-3000:]
            return {"error": match[1], "message": match[2].strip()}
        return _result(json.loads(done.stdout or "{}"))

    def sign_up(self, app: App, username: str, password: str, attributes: dict[str, str]) -> dict:
        args = ["--client-id", app.client_id, "--username", username, "--password", password,
                "--user-attributes", json.dumps([{"Name": k, "Value": v} for k, v in attributes.items()])]
        if app.secret:
            args += ["--secret-hash", app.hash(username)]
        return self.call(app, "sign-up", *args)

    def confirm(self, app: App, username: str, code: str) -> dict:
        args = ["--client-id", app.client_id, "--username", username, "--confirmation-code", code]
        if app.secret:
            args += ["--secret-hash", app.hash(username)]
        return self.call(app, "confirm-sign-up", *args)

    def sign_in(self, app: App, username: str, password: str, *, new_password: str | None = None,
                flow: str = "USER_PASSWORD_AUTH") -> dict:
        params = {"USERNAME": username, "PASSWORD": password}
        if app.secret:
            params["SECRET_HASH"] = app.hash(username)
        answer = self.call(app, "initiate-auth", "--client-id", app.client_id, "--auth-flow", flow,
                           "--auth-parameters", json.dumps(params))
        if answer.get("challenge") == "NEW_PASSWORD_REQUIRED" and new_password:
            responses = {"USERNAME": answer["parameters"]["USER_ID_FOR_SRP"], "NEW_PASSWORD": new_password}
            if app.secret:
                responses["SECRET_HASH"] = app.hash(responses["USERNAME"])
            first = answer
            answer = self.call(app, "respond-to-auth-challenge", "--client-id", app.client_id,
                               "--challenge-name", "NEW_PASSWORD_REQUIRED", "--session", answer["session"],
                               "--challenge-responses", json.dumps(responses))
            answer["challenges"] = [first]
        return answer

    def refresh(self, app: App, username: str, refresh_token: str) -> dict:
        params = {"REFRESH_TOKEN": refresh_token}
        if app.secret:
            params["SECRET_HASH"] = app.hash(username)
        return self.call(app, "initiate-auth", "--client-id", app.client_id, "--auth-flow", "REFRESH_TOKEN_AUTH",
                         "--auth-parameters", json.dumps(params))
