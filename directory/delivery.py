"""Codes and invitations: which Cognito call sends a user's pending code again, making that call,
and turning Cognito's refusals into sentences an operator can act on. Used inside the request
(services.resend) and by the worker that applies a queued resend (sync.push)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from .gateway import CognitoError, CognitoGateway
from .models import AppClient, UserPool, UserStatus

RESEND_REFUSALS = {
    UserStatus.CONFIRMED: "CONFIRMED users have no pending code; use Reset password",
    UserStatus.RESET_REQUIRED: (
        "RESET_REQUIRED users get their code from the forgot-password flow at sign-in; use Reset password to "
        "send a new one"
    ),
    UserStatus.EXTERNAL_PROVIDER: "EXTERNAL_PROVIDER users sign in through their identity provider; Cognito "
    "sends them no code",
}
_RESEND_ERRORS = {
    "LimitExceededException": "Cognito's limit of codes for this user is reached (LimitExceededException); "
    "wait before trying again",
    "CodeDeliveryFailureException": "Cognito could not deliver the message (CodeDeliveryFailureException); "
    "check the user's e-mail / phone and the pool's e-mail and SMS configuration",
    "UnsupportedUserStateException": "Cognito says the user's state does not allow a resend "
    "(UnsupportedUserStateException); sync the pool to see the current status",
    "UserNotFoundException": "the user no longer exists in Cognito; sync the pool",
    "NotAuthorizedException": "Cognito refused the app client (NotAuthorizedException)",
}


@dataclass(frozen=True)
class ResendPlan:
    """Which Cognito call a resend makes for a user, and through what."""

    api: str  # "AdminCreateUser" (MessageAction=RESEND) or "ResendConfirmationCode"
    medium: str = ""  # RESEND: the DesiredDeliveryMedium
    client_id: str = ""  # ResendConfirmationCode: the app client
    client_has_secret: bool = False


def client_for_user_api(pool: UserPool) -> AppClient | None:
    """The app client to call a client API (ResendConfirmationCode, SignUp) through. Any client of
    the pool may; one without a secret needs no SecretHash, so no secret has to be read at all."""
    return AppClient.objects.filter(pool=pool).order_by("has_secret", "name", "client_id").first()


def resend_code_plan(*, pool: UserPool, username: str, status: str, email: str, phone_number: str) -> ResendPlan:
    """The call for a user in this state, or a ValidationError that says why there is none."""
    if status == UserStatus.FORCE_CHANGE_PASSWORD:
        if not email and not phone_number:
            raise ValidationError(
                {"status": [f"{username} has no e-mail or phone number to send the invitation to."]}
            )
        return ResendPlan(api="AdminCreateUser", medium="EMAIL" if email else "SMS")
    if status == UserStatus.UNCONFIRMED:
        client = client_for_user_api(pool)
        if client is None:
            raise ValidationError(
                {"status": [f"{username}: the pool has no app client to call ResendConfirmationCode through."]}
            )
        return ResendPlan(api="ResendConfirmationCode", client_id=client.client_id, client_has_secret=client.has_secret)
    reason = RESEND_REFUSALS.get(status, f"{status} users have no pending code or invitation")
    raise ValidationError({"status": [f"{username} is {status}: {reason}."]})


def resend_code_error(exc: CognitoError) -> str:
    """A sentence an operator can act on, for a Cognito error answered to a resend."""
    hint = _RESEND_ERRORS.get(exc.code)
    return f"{hint}: {exc.message}" if hint else str(exc)


def resend_code_send(*, gateway: CognitoGateway, pool: UserPool, username: str, plan: ResendPlan) -> dict[str, Any]:
    """Make the call a plan names; returns what to audit: the API and the delivery details (medium,
    masked destination). A client secret is read from Cognito here, used for the SecretHash and dropped."""
    if plan.api == "AdminCreateUser":
        record = gateway.admin_resend_invitation(pool.pool_id, username, mediums=[plan.medium])
        attrs = {a["Name"]: a["Value"] for a in record.get("Attributes", [])}
        attribute = "email" if plan.medium == "EMAIL" else "phone_number"
        # AdminCreateUser answers no CodeDeliveryDetails: this is what was asked for.
        delivery = {
            "DeliveryMedium": plan.medium,
            "Destination": mask_destination(attrs.get(attribute, ""), plan.medium),
            "AttributeName": attribute,
        }
        return {"api": "AdminCreateUser", "message_action": "RESEND", "delivery": delivery}
    hash_value = None
    if plan.client_has_secret:
        hash_value = gateway.secret_hash_for(pool.pool_id, plan.client_id, username)
    details = gateway.resend_confirmation_code(plan.client_id, username, secret_hash=hash_value)
    del hash_value
    delivery = {k: details[k] for k in ("DeliveryMedium", "Destination", "AttributeName") if k in details}
    return {"api": "ResendConfirmationCode", "client": plan.client_id, "delivery": delivery}


def mask_destination(value: str, medium: str) -> str:
    """Cognito's masked destination: "t***@e***.com", "+*******0100"."""
    if not value:
        return ""
    if medium == "EMAIL":
        local, _, domain = value.partition("@")
        name, dot, tld = domain.rpartition(".")
        if not name:
            name, dot, tld = domain, "", ""
        return f"{local[:1]}***@{name[:1]}***{dot}{tld}"
    return "+" + "*" * max(len(value) - 5, 0) + value[-4:]


def describe_delivery(result: dict[str, Any]) -> str:
    delivery = result.get("delivery") or {}
    medium, destination = delivery.get("DeliveryMedium", "?"), delivery.get("Destination", "")
    return f"{medium} to {destination}" if destination else medium
