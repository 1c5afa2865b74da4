"""Message templates: save (and restore) a pool's verification and invitation templates through
the outbox, and send a test message in local mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..delivery import client_for_user_api
from ..gateway import CognitoError, CognitoGateway, CognitoNotFound
from ..mapping import jsonable
from ..message_templates import (
    INVITATION,
    LEGACY_KEYS,
    OPERATION,
    VERIFICATION,
    ensure_initial_version,
    fields_from_templates,
    record_version,
    templates_from_described,
    templates_from_fields,
    templates_from_pool,
    validate_templates,
)
from ..models import PendingChange, TemplateVersion, UserPool
from ..outbox import request_change
from ..passwords import generate_temporary_password


def pool_messages_remote(pool: UserPool) -> tuple[dict[str, Any] | None, str]:
    """DescribeUserPool now (what the operator's diff is made against), or None and the reason
    when Cognito cannot be read. Sends one DescribeUserPool; changes nothing."""
    try:
        return jsonable(CognitoGateway(pool.region, purpose="interactive").describe_user_pool(pool.pool_id)), ""
    except CognitoError as exc:
        return None, str(exc)


def _request_values(pool: UserPool, templates: dict[str, dict[str, str]]) -> dict[str, Any]:
    """UpdateUserPool paths -> values for the template set (None: leave the key out)."""
    verification = templates[VERIFICATION]
    after: dict[str, Any] = {VERIFICATION: dict(verification)}
    for legacy, member in LEGACY_KEYS.items():
        after[legacy] = verification.get(member)
    after[f"AdminCreateUserConfig.{INVITATION}"] = dict(templates[INVITATION]) or None
    return after


def _described_values(described: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {VERIFICATION: described.get(VERIFICATION)}
    for legacy in LEGACY_KEYS:
        values[legacy] = described.get(legacy)
    values[f"AdminCreateUserConfig.{INVITATION}"] = (described.get("AdminCreateUserConfig") or {}).get(INVITATION)
    return values


@transaction.atomic
def pool_messages_update(
    *,
    pool: UserPool,
    templates: dict[str, dict[str, str]],
    actor: str,
    remote: dict[str, Any] | None = None,
    restored_from: TemplateVersion | None = None,
    source: str = audit.Source.ADMIN,
) -> TemplateVersion | None:
    """Save a pool's message templates: validates them with Cognito's rules, writes the mirror,
    a TemplateVersion, the audit events and a PendingChange — one transaction — that a worker
    sends as a full-config UpdateUserPool (DescribeUserPool first, so triggers, policies, MFA and
    every other setting stay). `remote` is the DescribeUserPool record the operator's diff was
    made against: the push refuses (conflict) if Cognito moved since. Returns None when nothing
    differs. Idempotent at the worker (a change already in Cognito is not sent twice)."""
    pool = UserPool.objects.select_for_update().get(pk=pool.pk)
    values = fields_from_templates(templates)
    validate_templates(values)
    active = PendingChange.objects.filter(pool=pool, operation=OPERATION, status__in=PendingChange.ACTIVE).first()
    if active is not None:
        raise ValidationError(
            f"A template change of this pool is still on its way to Cognito ({active.status}, requested by "
            f"{active.actor or 'the system'} at {active.created_at:%Y-%m-%d %H:%M:%S}); save again once it is applied."
        )
    wanted = templates_from_fields(values)
    current = templates_from_pool(pool)
    base = templates_from_described(remote) if remote is not None else current
    if wanted == base and wanted == current:
        return None
    ensure_initial_version(pool)
    before = _described_values(remote if remote is not None else {**(pool.raw or {}), **_mirror_record(pool)})
    after = _request_values(pool, wanted)
    # The mirror shows the new templates at once; a pull leaves them alone while the change is active.
    pool.verification_message_template = wanted[VERIFICATION]
    config = dict(pool.admin_create_user_config or {})
    if wanted[INVITATION]:
        config[INVITATION] = wanted[INVITATION]
    else:
        config.pop(INVITATION, None)
    pool.admin_create_user_config = config
    sms = dict(pool.sms_configuration or {})
    if wanted[VERIFICATION].get("SmsMessage"):
        sms["SmsVerificationMessage"] = wanted[VERIFICATION]["SmsMessage"]
    else:
        sms.pop("SmsVerificationMessage", None)
    pool.sms_configuration = sms
    pool.save(update_fields=["verification_message_template", "admin_create_user_config", "sms_configuration"])
    change = request_change(
        pool=pool,
        object_type="pool",
        object_key=pool.pool_id,
        operation=OPERATION,
        before=before,
        after=after,
        actor=actor,
        base_version=pool.content_hash,
        source=source,
        object_repr=pool.name,
    )
    return record_version(
        pool=pool,
        templates=wanted,
        source=TemplateVersion.Source.RESTORE if restored_from else TemplateVersion.Source.OPERATOR,
        actor=actor,
        change=change,
        restored_from=restored_from,
        audit_source=source,
    )


def _mirror_record(pool: UserPool) -> dict[str, Any]:
    """The template keys of a DescribeUserPool record, as the mirror holds them."""
    record: dict[str, Any] = {}
    if pool.verification_message_template:
        record[VERIFICATION] = pool.verification_message_template
    record["AdminCreateUserConfig"] = pool.admin_create_user_config or {}
    return record


def pool_messages_restore(
    *, pool: UserPool, version: TemplateVersion, actor: str, remote: dict[str, Any] | None = None
) -> TemplateVersion | None:
    """Restore an older version: a new version (source `restore`) pushed like any other save."""
    if version.pool_id != pool.pk:
        raise ValidationError({"version": [f"Version {version.number} belongs to another pool."]})
    return pool_messages_update(
        pool=pool, templates=version.templates, actor=actor, remote=remote, restored_from=version
    )



# Test send (local mode) ------------------------------------------------------------------------

# Sample values for attributes a pool may require at sign-up; anything else gets "test".
_SAMPLE_ATTRIBUTES = {
    "name": "Test Send",
    "given_name": "Test",
    "family_name": "Send",
    "phone_number": "+15555550100",
    "birthdate": "2000-01-01",
    "gender": "unspecified",
    "locale": "en",
    "zoneinfo": "Europe/London",
}


@dataclass
class TestSend:
    """What a test send did: the throwaway user it signed up and what Cognito said it delivered."""

    username: str
    email: str
    client_id: str
    delivery: dict[str, Any]
    pending_template_change: bool


def pool_messages_test_send(*, pool: UserPool, actor: str, gateway: Any = None) -> TestSend:
    """Local mode only: sign a throwaway user up through an app client of the pool, so the emulator
    renders the verification message from the templates Cognito holds now, then delete that user.

    Sends SignUp (with a SecretHash when the client has a secret; the secret is read from the
    emulator and dropped) and AdminDeleteUser. Not idempotent: each call sends one message. Cognito's
    refusals are raised as ValidationError ("Cognito answered ...").
    """
    if not settings.COGNITO_LOCAL_MODE:
        raise ValidationError("A test send signs a user up; it runs only against the local emulator (local mode).")
    client = client_for_user_api(pool)
    if client is None:
        raise ValidationError(f"{pool.name} has no app client to sign up through; create one first.")
    gw = gateway or CognitoGateway(pool.region, purpose="interactive")
    stamp = timezone.now().strftime("%Y%m%d%H%M%S%f")
    email = f"test-send+{stamp}@example.com"
    signs_in_with_email = "email" in (pool.username_attributes or [])
    username = email if signs_in_with_email else f"test-send-{stamp}"
    attributes = {"email": email}
    for name in pool.required_attributes:
        if name not in attributes and name not in {"sub", "email_verified", "phone_number_verified"}:
            attributes[name] = _SAMPLE_ATTRIBUTES.get(name, "test")
    try:
        hash_value = gw.secret_hash_for(pool.pool_id, client.client_id, username) if client.has_secret else None
        answer = gw.sign_up(
            client.client_id,
            username,
            generate_temporary_password(pool.password_policy),
            attributes,
            secret_hash=hash_value,
        )
        delivery = dict(answer.get("CodeDeliveryDetails") or {})
        # The message is in the emulator's log; the throwaway user must not land in the directory.
        try:
            gw.admin_delete_user(pool.pool_id, username)
        except CognitoNotFound:
            gw.admin_delete_user(pool.pool_id, answer["UserSub"])
    except CognitoError as exc:
        raise ValidationError(f"Cognito answered {exc}") from exc
    pending = PendingChange.objects.filter(
        pool=pool, operation=OPERATION, status__in=PendingChange.ACTIVE
    ).exists()
    audit.record(
        action=audit.Action.TEST_SEND,
        object_type="pool",
        object_id=pool.pool_id,
        object_repr=pool.name,
        pool_id=pool.pool_id,
        actor=actor,
        source=audit.Source.ADMIN,
        detail={"username": username, "client": client.client_id, "delivery": delivery},
    )
    return TestSend(
        username=username,
        email=email,
        client_id=client.client_id,
        delivery=delivery,
        pending_template_change=pending,
    )
