"""Pool settings moto lacks or gets wrong, answered as Cognito does.

- SetUserPoolMfaConfig / GetUserPoolMfaConfig: e-mail MFA (moto drops EmailMfaConfiguration), and
  Cognito's prerequisites: MFA ON or OPTIONAL needs an enabled method; SMS needs an SMS role (in the
  request or the pool's SmsConfiguration); e-mail needs DEVELOPER e-mail sending and not the Lite
  plan. The mode reads the same through DescribeUserPool; the SMS message and role land in the pool.
- TagResource / UntagResource / ListTagsForResource (moto has none): a pool's tags, which
  DescribeUserPool shows as UserPoolTags.
- AddCustomAttributes: at most 50 custom attributes, names of 1-20 characters (moto checks neither).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .protocol import (
    ACCOUNT_ID,
    STATE_LOCK,
    CognitoError,
    Environ,
    StartResponse,
    WSGIApp,
    call_through,
    error_response,
    find_pool,
    json_response,
    read_body,
    read_params,
    relay,
    request_region,
)

_INVALID = "InvalidParameterException"


def _email_mfa(pool: Any) -> dict[str, Any] | None:
    return getattr(pool, "email_mfa_config", None)


def mfa_config_of(pool: Any) -> dict[str, Any]:
    """GetUserPoolMfaConfig's answer for a pool."""
    answer: dict[str, Any] = {"MfaConfiguration": pool.mfa_config or "OFF"}
    if pool.token_mfa_config is not None:
        answer["SoftwareTokenMfaConfiguration"] = pool.token_mfa_config
    if pool.sms_mfa_config:
        answer["SmsMfaConfiguration"] = pool.sms_mfa_config
    if _email_mfa(pool):
        answer["EmailMfaConfiguration"] = _email_mfa(pool)
    return answer


def _check_mfa(pool: Any, params: dict[str, Any]) -> None:
    mode = params.get("MfaConfiguration") or pool.mfa_config or "OFF"
    if mode not in ("OFF", "ON", "OPTIONAL"):
        raise CognitoError(_INVALID, f"MfaConfiguration must be OFF, ON or OPTIONAL, not {mode!r}.")
    token = bool((params.get("SoftwareTokenMfaConfiguration") or {}).get("Enabled"))
    sms = params.get("SmsMfaConfiguration")
    email = params.get("EmailMfaConfiguration")
    config = pool.extended_config
    if sms:
        role = (sms.get("SmsConfiguration") or config.get("SmsConfiguration") or {}).get("SnsCallerArn")
        if not role:
            raise CognitoError(_INVALID, "SMS MFA needs an SmsConfiguration with an SnsCallerArn.")
        message = sms.get("SmsAuthenticationMessage")
        if message is not None and "{####}" not in message:
            raise CognitoError(_INVALID, "SmsAuthenticationMessage must contain {####}.")
    if email:
        if (config.get("EmailConfiguration") or {}).get("EmailSendingAccount") != "DEVELOPER":
            raise CognitoError(_INVALID, "Email MFA requires the pool to send e-mail through Amazon SES "
                                         "(EmailSendingAccount DEVELOPER).")
        if config.get("UserPoolTier") == "LITE":
            raise CognitoError("FeatureUnavailableInTierException", "Email MFA is not available on the Lite plan.")
        if "{####}" not in (email.get("Message") or "{####}"):
            raise CognitoError(_INVALID, "EmailMfaConfiguration.Message must contain {####}.")
    if mode != "OFF" and not (token or sms or email or params.get("WebAuthnConfiguration")):
        raise CognitoError(_INVALID, "Invalid MFA configuration given, can't turn on MFA without any enabled "
                                     "MFA factors.")


def set_user_pool_mfa_config(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """SetUserPoolMfaConfig as Cognito checks and keeps it (every method in one call: omitted = off)."""
    try:
        params = read_params(environ)
        with STATE_LOCK:
            pool = find_pool(request_region(environ), params.get("UserPoolId") or "")
            _check_mfa(pool, params)
            pool.mfa_config = params.get("MfaConfiguration") or pool.mfa_config or "OFF"
            pool.token_mfa_config = params.get("SoftwareTokenMfaConfiguration")
            sms = copy.deepcopy(params.get("SmsMfaConfiguration"))
            if sms:
                if sms.get("SmsConfiguration"):
                    pool.extended_config["SmsConfiguration"] = sms["SmsConfiguration"]
                sms.setdefault("SmsConfiguration", pool.extended_config.get("SmsConfiguration"))
                if sms.get("SmsAuthenticationMessage"):
                    pool.extended_config["SmsAuthenticationMessage"] = sms["SmsAuthenticationMessage"]
            pool.sms_mfa_config = sms
            pool.email_mfa_config = copy.deepcopy(params.get("EmailMfaConfiguration"))
            pool.extended_config["MfaConfiguration"] = pool.mfa_config
            pool.last_modified_date = datetime.now(UTC).replace(tzinfo=None)
            answer = mfa_config_of(pool)
    except CognitoError as exc:
        return error_response(start_response, exc)
    return json_response(start_response, answer)


def get_user_pool_mfa_config(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    try:
        params = read_params(environ)
        with STATE_LOCK:
            answer = mfa_config_of(find_pool(request_region(environ), params.get("UserPoolId") or ""))
    except CognitoError as exc:
        return error_response(start_response, exc)
    return json_response(start_response, answer)


def _pool_by_arn(arn: str) -> Any:
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "cognito-idp" or not parts[5].startswith("userpool/"):
        raise CognitoError(_INVALID, f"{arn!r} is not a user pool ARN.")
    if parts[4] != ACCOUNT_ID:
        raise CognitoError("ResourceNotFoundException", f"No user pool {arn} in this account.")
    return find_pool(parts[3], parts[5].split("/", 1)[1])


def _tags(pool: Any) -> dict[str, str]:
    return pool.extended_config.setdefault("UserPoolTags", {})


def _tagging(work: Any) -> Any:
    def handler(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
        try:
            params = read_params(environ)
            with STATE_LOCK:
                answer = work(_pool_by_arn(params.get("ResourceArn") or ""), params)
        except CognitoError as exc:
            return error_response(start_response, exc)
        return json_response(start_response, answer)

    handler.__name__ = work.__name__
    handler.__doc__ = work.__doc__
    return handler


@_tagging
def tag_resource(pool: Any, params: dict[str, Any]) -> dict[str, Any]:
    """TagResource: adds or overwrites tags (at most 50 a pool; keys 1-128, values up to 256 characters)."""
    tags = dict(params.get("Tags") or {})
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.lower().startswith("aws:"):
            raise CognitoError(_INVALID, f"Invalid tag {key[:40]!r}.")
    merged = {**_tags(pool), **tags}
    if len(merged) > 50:
        raise CognitoError("LimitExceededException", "A user pool has at most 50 tags.")
    pool.extended_config["UserPoolTags"] = merged
    return {}


@_tagging
def untag_resource(pool: Any, params: dict[str, Any]) -> dict[str, Any]:
    """UntagResource: removes the keys (an absent key is no error)."""
    tags = _tags(pool)
    for key in params.get("TagKeys") or []:
        tags.pop(key, None)
    return {}


@_tagging
def list_tags_for_resource(pool: Any, params: dict[str, Any]) -> dict[str, Any]:
    return {"Tags": dict(_tags(pool))}


def add_custom_attributes(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """AddCustomAttributes with Cognito's limits, then moto's (which refuses an existing name)."""
    try:
        params = read_params(environ)
        with STATE_LOCK:
            pool = find_pool(request_region(environ), params.get("UserPoolId") or "")
            wanted = params.get("CustomAttributes") or []
            for attribute in wanted:
                if not 1 <= len(attribute.get("Name") or "") <= 20:
                    raise CognitoError(_INVALID, "A custom attribute name has 1 to 20 characters.")
            existing = [n for n in pool.schema_attributes if n.startswith(("custom:", "dev:custom:"))]
            if len(existing) + len(wanted) > 50:
                raise CognitoError("LimitExceededException", "A user pool has at most 50 custom attributes.")
            status, headers, data = call_through(app, environ, read_body(environ))
            if status.startswith("200"):
                pool.last_modified_date = datetime.now(UTC).replace(tzinfo=None)
    except CognitoError as exc:
        return error_response(start_response, exc)
    return relay(start_response, status, headers, data)

