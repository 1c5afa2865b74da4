"""Outbox -> remote: apply one PendingChange to Cognito, at least once and idempotently.

For every change the worker reads the remote object first and compares the fields the
change touches with the values the operator saw (`before`) and wants (`after`):
- already equal to `after`: the change was applied before (a redelivery) — nothing is sent;
- different from `before`: someone else changed it since — `conflict`, Cognito's value is kept;
- otherwise the call is made, the object is read again and the mirror updated from it.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from .. import audit
from ..delivery import resend_code_error, resend_code_plan, resend_code_send
from ..gateway import (
    CognitoError,
    CognitoGateway,
    CognitoNotFound,
    CognitoThrottled,
    CognitoUnavailable,
    full_update_request,
)
from ..mapping import (
    USER_FIELDS,
    client_fields,
    diff,
    group_fields,
    model_values,
    pool_fields,
    pool_hash,
    record_hash,
    user_fields,
    user_hash,
)
from ..mirror import revert_mirror
from ..models import AppClient, AuditEvent, CognitoGroup, CognitoUser, GroupMembership, PendingChange, UserPool
from ..outbox import enqueue_change, stale_applying_seconds
from ..settings_catalog import CLIENT_FIELD_BY_KEY
from .push_pool import pool_call, pool_columns_for_units, pool_state

logger = logging.getLogger(__name__)

State = dict[str, Any]
RETRYABLE = (CognitoThrottled, CognitoUnavailable)
Operation = PendingChange.Operation
_GROUP_FIELDS = ("name", "description", "precedence", "role_arn", "remote_created_at", "remote_modified_at")


class VerificationFailed(CognitoError):
    """A full-config update moved settings it was not meant to touch."""


def get_path(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)  # type: ignore[assignment]
    return data


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        data = data.setdefault(part, {})
    data[parts[-1]] = value


# Reading remote state ----------------------------------------------------------------------------


def _user_state(change: PendingChange, gw: CognitoGateway) -> State:
    record = gw.get_user(change.pool.pool_id, change.object_key)
    state: State = {}
    fields = user_fields(record) if record else None
    groups: list[str] | None = None
    for field in change.fields:
        if field == "exists":
            state[field] = record is not None
        elif fields is None:
            state[field] = None
        elif field.startswith("attributes."):
            state[field] = fields["attributes"].get(field.split(".", 1)[1])
        elif field.startswith("groups."):
            if groups is None:
                groups = gw.admin_list_groups_for_user(change.pool.pool_id, change.object_key)
            state[field] = field.split(".", 1)[1] in groups
        else:
            state[field] = fields.get(field)
    return state


def _group_state(change: PendingChange, gw: CognitoGateway) -> State:
    try:
        fields = group_fields(gw.get_group(change.pool.pool_id, change.object_key))
    except CognitoNotFound:
        return {f: (False if f == "exists" else None) for f in change.fields}
    return {f: (True if f == "exists" else fields.get(f)) for f in change.fields}


def _client_state(change: PendingChange, gw: CognitoGateway) -> State:
    described = gw.describe_user_pool_client(change.pool.pool_id, change.object_key)
    described.pop("ClientSecret", None)
    return {f: get_path(described, f) for f in change.fields}


# Calls -----------------------------------------------------------------------------------------------


def _user_call(change: PendingChange, gw: CognitoGateway) -> None:
    pool_id, username, after = change.pool.pool_id, change.object_key, change.payload["after"]
    op = change.operation
    if op == Operation.USER_UPDATE_ATTRIBUTES:
        updates = {k.split(".", 1)[1]: v for k, v in after.items() if v is not None}
        removals = [k.split(".", 1)[1] for k, v in after.items() if v is None]
        if updates:
            gw.admin_update_user_attributes(pool_id, username, updates)
        if removals:
            gw.admin_delete_user_attributes(pool_id, username, removals)
    elif op == Operation.USER_SET_ENABLED:
        gw.admin_set_user_enabled(pool_id, username, bool(after["enabled"]))
    elif op == Operation.USER_DELETE:
        try:
            gw.admin_delete_user(pool_id, username)
        except CognitoNotFound:
            pass  # already gone: the intent is met
    elif op == Operation.USER_RESET_PASSWORD:
        gw.admin_reset_user_password(pool_id, username)
    elif op == Operation.USER_CONFIRM_SIGN_UP:
        gw.admin_confirm_sign_up(pool_id, username)
    elif op == Operation.USER_ADD_TO_GROUP:
        gw.admin_add_user_to_group(pool_id, username, change.payload["group"])
    elif op == Operation.USER_REMOVE_FROM_GROUP:
        gw.admin_remove_user_from_group(pool_id, username, change.payload["group"])
    else:  # pragma: no cover - guarded by HANDLERS
        raise ValueError(op)


def _group_call(change: PendingChange, gw: CognitoGateway) -> None:
    pool_id, name, after = change.pool.pool_id, change.object_key, change.payload["after"]
    params = {
        "Description": after.get("description"),
        "Precedence": after.get("precedence"),
        "RoleArn": after.get("role_arn") or None,
    }
    params = {k: v for k, v in params.items() if v not in (None, "")}
    if change.operation == Operation.GROUP_CREATE:
        gw.create_group(pool_id, name, **params)
    elif change.operation == Operation.GROUP_UPDATE:
        group = gw.get_group(pool_id, name)
        # UpdateGroup resets what it is not given, like the pool update: carry the rest.
        full = {k: group[k] for k in ("Description", "Precedence", "RoleArn") if group.get(k) is not None}
        renames = {"description": "Description", "precedence": "Precedence", "role_arn": "RoleArn"}
        for field, value in after.items():
            if value in (None, ""):
                full.pop(renames[field], None)
            else:
                full[renames[field]] = value
        gw.update_group(pool_id, name, **full)
    elif change.operation == Operation.GROUP_DELETE:
        try:
            gw.delete_group(pool_id, name)
        except CognitoNotFound:
            pass


def _full_config_call(
    change: PendingChange,
    gw: CognitoGateway,
    *,
    operation: str,
    describe: Callable[[], dict[str, Any]],
    update: Callable[[dict[str, Any]], Any],
) -> dict[str, Any]:
    """Describe -> keep the accepted keys -> apply the change -> update -> describe -> verify."""
    accepted = gw.accepted_keys(operation)
    described = describe()
    described.pop("ClientSecret", None)
    request = full_update_request(operation, described, accepted)
    for path, value in change.payload["after"].items():
        set_path(request, path, copy.deepcopy(value))
    # None in `after` means "leave the key out" (botocore refuses None values).
    request = _without_none(request)
    update(request)
    described_after = describe()
    described_after.pop("ClientSecret", None)
    before_request = full_update_request(operation, described, accepted)
    after_request = full_update_request(operation, described_after, accepted)
    intended = {path.split(".")[0] for path in change.payload["after"]}
    moved = sorted(
        key
        for key in set(before_request) | set(after_request)
        if key not in intended and before_request.get(key) != after_request.get(key)
    )
    # A nested key like Policies.PasswordPolicy: other members of the parent must not move either.
    for path in change.payload["after"]:
        top = path.split(".")[0]
        if "." in path:
            parent_before = copy.deepcopy(before_request.get(top) or {})
            parent_after = copy.deepcopy(after_request.get(top) or {})
            set_path({top: parent_before}, path, None)
            set_path({top: parent_after}, path, None)
            if parent_before != parent_after:
                moved.append(top)
    if moved:
        raise VerificationFailed(
            f"settings other than the intended ones changed: {', '.join(sorted(set(moved)))}",
            code="VerificationFailed",
            operation=operation,
        )
    return request


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def _client_call(change: PendingChange, gw: CognitoGateway) -> None:
    pool_id, client_id = change.pool.pool_id, change.object_key
    _full_config_call(
        change,
        gw,
        operation="UpdateUserPoolClient",
        describe=lambda: gw.describe_user_pool_client(pool_id, client_id),
        update=gw.update_user_pool_client,
    )


# Mirror refresh ---------------------------------------------------------------------------------------


# Bookkeeping that moves with any change, the operator's own included: not worth an event alone.
_NOT_AUDITED = ("raw", "remote_modified_at", "estimated_number_of_users", "content_hash")


def _audit_seen(change: PendingChange, *, object_type: str, object_id: str, object_repr: str,
                before: dict[str, Any] | None, after: dict[str, Any] | None, touched: set[str]) -> None:
    """What the re-read found changed in Cognito besides this change's own fields, audited as a
    pull would (`created` / `updated` / `deleted`, source sync), linked to the change that saw it."""
    if before is None and after is None:
        return
    if after is None:
        action, changes = audit.Action.DELETED, {}
    elif before is None:
        action, changes = audit.Action.CREATED, diff({}, after, skip=_NOT_AUDITED)
    else:
        action = audit.Action.UPDATED
        changes = {
            key: value for key, value in diff(before, after, skip=_NOT_AUDITED).items()
            if key not in touched and key.split(".", 1)[0] not in touched
        }
        if not changes:
            return
    audit.record(
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        pool_id=change.pool.pool_id,
        changes=changes,
        detail={"seen_by_change": change.pk, "operation": change.operation},
        source=audit.Source.SYNC,
        actor=change.actor,
        correlation_id=str(change.correlation_id),
    )


def _refresh_user(change: PendingChange, gw: CognitoGateway) -> None:
    pool = change.pool
    record = gw.get_user(pool.pool_id, change.object_key)
    user = CognitoUser.objects.filter(pool=pool, username=change.object_key).first()
    before = model_values(user, USER_FIELDS) if user is not None else None
    if record is None:
        if user is not None:
            user.delete()
            if change.operation != Operation.USER_DELETE:
                _audit_seen(change, object_type="user", object_id=change.object_key, object_repr=user.email,
                            before=before, after=None, touched=set())
        return
    fields = user_fields(record)
    if user is None:
        user = CognitoUser(pool=pool)
    for name, value in fields.items():
        setattr(user, name, value)
    user.content_hash = user_hash(fields)
    user.save()
    _audit_seen(change, object_type="user", object_id=user.username, object_repr=user.email,
                before=before, after=fields, touched=set(change.fields))
    group_fields_ = [f for f in change.fields if f.startswith("groups.")]
    if group_fields_:
        remote = set(gw.admin_list_groups_for_user(pool.pool_id, change.object_key))
        for field in group_fields_:
            name = field.split(".", 1)[1]
            group = CognitoGroup.objects.filter(pool=pool, name=name).first()
            if group is None:
                continue
            if name in remote:
                GroupMembership.objects.get_or_create(group=group, user=user)
            else:
                GroupMembership.objects.filter(group=group, user=user).delete()


def _refresh_group(change: PendingChange, gw: CognitoGateway) -> None:
    pool = change.pool
    group = CognitoGroup.objects.filter(pool=pool, name=change.object_key).first()
    before = model_values(group, _GROUP_FIELDS) if group is not None else None
    try:
        fields = group_fields(gw.get_group(pool.pool_id, change.object_key))
    except CognitoNotFound:
        CognitoGroup.objects.filter(pool=pool, name=change.object_key).delete()
        if group is not None and change.operation != Operation.GROUP_DELETE:
            _audit_seen(change, object_type="group", object_id=change.object_key, object_repr=change.object_key,
                        before=before, after=None, touched=set())
        return
    group = group or CognitoGroup(pool=pool)
    for name, value in fields.items():
        setattr(group, name, value)
    group.content_hash = record_hash(fields)
    group.save()
    if change.operation != Operation.GROUP_CREATE:
        _audit_seen(change, object_type="group", object_id=group.name, object_repr=group.name,
                    before=before, after={k: fields[k] for k in _GROUP_FIELDS}, touched=set(change.fields))


def _refresh_client(change: PendingChange, gw: CognitoGateway) -> None:
    fields = client_fields(gw.describe_user_pool_client(change.pool.pool_id, change.object_key))
    client = AppClient.objects.filter(client_id=change.object_key).first()
    before = model_values(client, fields) if client is not None else None
    client = client or AppClient(pool=change.pool)
    for name, value in fields.items():
        setattr(client, name, value)
    client.content_hash = record_hash(fields)
    client.save()
    touched = {CLIENT_FIELD_BY_KEY.get(key, key) for key in change.fields}
    _audit_seen(change, object_type="app_client", object_id=client.client_id, object_repr=client.name,
                before=before, after=fields, touched=touched)


def _refresh_pool(change: PendingChange, gw: CognitoGateway) -> None:
    pool = UserPool.objects.get(pk=change.pool_id)
    fields = pool_fields(
        gw.describe_user_pool(pool.pool_id), region=pool.region, mfa=gw.get_user_pool_mfa_config(pool.pool_id) or {}
    )
    before = model_values(pool, [name for name in fields if name != "pool_id"])
    for name, value in fields.items():
        setattr(pool, name, value)
    pool.content_hash = pool_hash(fields)
    pool.save(update_fields=[*(name for name in fields if name != "pool_id"), "content_hash"])
    _audit_seen(change, object_type="pool", object_id=pool.pool_id, object_repr=pool.name, before=before,
                after={k: v for k, v in fields.items() if k != "pool_id"},
                touched=pool_columns_for_units(change.fields))


def _resend_state(change: PendingChange, gw: CognitoGateway) -> State:
    # Sent once the call's result is on the change (the push saves it with the outcome).
    return {"code_sent": bool((change.payload or {}).get("result"))}


def _resend_call(change: PendingChange, gw: CognitoGateway) -> None:
    """Resend a code: the call follows the user's status in Cognito now, not when it was queued."""
    record = gw.get_user(change.pool.pool_id, change.object_key)
    if record is None:
        raise CognitoNotFound("the user no longer exists in Cognito", code="UserNotFoundException")
    fields = user_fields(record)
    try:
        plan = resend_code_plan(
            pool=change.pool, username=change.object_key, status=fields["status"],
            email=fields.get("email", ""), phone_number=fields.get("phone_number", ""),
        )
    except ValidationError as exc:
        raise CognitoError("; ".join(exc.messages), code="UnsupportedUserState") from exc
    try:
        result = resend_code_send(gateway=gw, pool=change.pool, username=change.object_key, plan=plan)
    except RETRYABLE:
        raise
    except CognitoError as exc:
        raise CognitoError(resend_code_error(exc), code=exc.code, operation=exc.operation) from exc
    change.payload = {**change.payload, "result": result}


@dataclass(frozen=True)
class Handler:
    state: Callable[[PendingChange, CognitoGateway], State]
    call: Callable[[PendingChange, CognitoGateway], None]
    refresh: Callable[[PendingChange, CognitoGateway], None]


_USER = Handler(_user_state, _user_call, _refresh_user)
_GROUP = Handler(_group_state, _group_call, _refresh_group)
HANDLERS: dict[str, Handler] = {
    Operation.USER_UPDATE_ATTRIBUTES: _USER,
    Operation.USER_SET_ENABLED: _USER,
    Operation.USER_DELETE: _USER,
    Operation.USER_RESET_PASSWORD: _USER,
    Operation.USER_CONFIRM_SIGN_UP: _USER,
    Operation.USER_ADD_TO_GROUP: _USER,
    Operation.USER_REMOVE_FROM_GROUP: _USER,
    Operation.USER_RESEND_CODE: Handler(_resend_state, _resend_call, _refresh_user),
    Operation.GROUP_CREATE: _GROUP,
    Operation.GROUP_UPDATE: _GROUP,
    Operation.GROUP_DELETE: _GROUP,
    Operation.CLIENT_UPDATE: Handler(_client_state, _client_call, _refresh_client),
    Operation.POOL_UPDATE: Handler(pool_state, pool_call, _refresh_pool),
    Operation.POOL_UPDATE_MESSAGES: Handler(pool_state, pool_call, _refresh_pool),
}


def _same(state: State, wanted: dict[str, Any]) -> bool:
    return all(state.get(k) == v for k, v in wanted.items())


def _same_object(change: PendingChange):
    return PendingChange.objects.filter(
        pool_id=change.pool_id, object_type=change.object_type, object_key=change.object_key
    )


def _claim(change_pk: int) -> PendingChange | None:
    with transaction.atomic():
        change = PendingChange.objects.select_for_update().select_related("pool").filter(pk=change_pk).first()
        if change is None or change.status not in PendingChange.ACTIVE:
            return None
        if _same_object(change).filter(pk__lt=change.pk, status__in=PendingChange.ACTIVE).exists():
            # An earlier change of this object is still on its way: this one was made on top of it
            # (its `before` is that change's `after`), so it waits, and is sent when that one ends.
            return None
        change.status = PendingChange.Status.APPLYING
        change.attempts += 1
        change.save(update_fields=["status", "attempts", "updated_at"])
        return change


def apply_change(change_pk: int, *, gateway: CognitoGateway | None = None) -> PendingChange | None:
    """Apply one outbox row to Cognito. Returns the change, or None when there was nothing to
    do (unknown, or no longer pending). Raises only retryable errors (throttling, Cognito
    unreachable), after putting the change back to `pending`."""
    change = _claim(change_pk)
    if change is None:
        return None
    try:
        with _touching(change):
            return _apply(change, gateway)
    finally:
        _send_next(change)


@contextmanager
def _touching(change: PendingChange) -> Iterator[None]:
    """While a worker applies a change, touch it every quarter of the stale threshold, so the
    sweeper tells a slow apply (waiting for the budget, retrying) from a dead worker's. Not inside
    a caller's transaction: nothing else could see the change there, and the row is its lock."""
    if transaction.get_connection().in_atomic_block:
        yield
        return
    stop = threading.Event()
    every = max(1.0, stale_applying_seconds() / 4)

    def touch() -> None:
        try:
            while not stop.wait(every):
                PendingChange.objects.filter(pk=change.pk, status=PendingChange.Status.APPLYING).update(
                    updated_at=timezone.now()
                )
        except Exception:  # noqa: BLE001 - a missed touch only makes the sweeper send the change again
            logger.exception("could not touch change %s while applying it", change.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=touch, name=f"applying-{change.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)


def _send_next(change: PendingChange) -> None:
    """Once a change has ended, the next change of the same object that waited for it is sent."""
    if PendingChange.objects.filter(pk=change.pk, status__in=PendingChange.ACTIVE).exists():
        return  # put back to pending (throttled): it is retried first, the next keeps waiting
    following = (
        _same_object(change).filter(pk__gt=change.pk, status=PendingChange.Status.PENDING).order_by("pk").first()
    )
    if following is not None:
        enqueue_change(following.pk)


def _apply(change: PendingChange, gateway: CognitoGateway | None) -> PendingChange:
    gw = gateway or CognitoGateway(change.pool.region)
    handler = HANDLERS[change.operation]
    desired = change.payload["after"]
    try:
        state = handler.state(change, gw)
        if _same(state, desired):
            outcome, sent = PendingChange.Status.APPLIED, False
        elif not _same(state, change.before):
            outcome, sent = PendingChange.Status.CONFLICT, False
        else:
            handler.call(change, gw)
            state = handler.state(change, gw)
            outcome, sent = PendingChange.Status.APPLIED, True
        with transaction.atomic():
            handler.refresh(change, gw)
            _finish(change, outcome, state=state, sent=sent, retries=gw.retries)
    except RETRYABLE as exc:
        PendingChange.objects.filter(pk=change.pk).update(
            status=PendingChange.Status.PENDING,
            last_error=str(exc),
            throttled=change.throttled + gw.retries + 1,
            updated_at=timezone.now(),
        )
        raise
    except CognitoError as exc:
        try:
            with transaction.atomic():
                handler.refresh(change, gw)
        except CognitoError:
            # Cognito cannot tell what it holds: the mirror must not keep showing a value that was
            # never applied, so it goes back to what the change started from (the next pull confirms).
            logger.warning("could not re-read %s after a failed change; its mirror is reverted", change.object_key)
            with transaction.atomic():
                revert_mirror(change)
        with transaction.atomic():
            _finish(change, PendingChange.Status.FAILED, error=str(exc), retries=gw.retries)
    change.refresh_from_db()
    return change


def _finish(
    change: PendingChange,
    status: str,
    *,
    state: State | None = None,
    sent: bool = False,
    error: str = "",
    retries: int = 0,
) -> None:
    change.status = status
    change.throttled += retries
    change.last_error = error
    if status == PendingChange.Status.APPLIED:
        change.applied_at = timezone.now()
    if status == PendingChange.Status.CONFLICT:
        change.remote_values = state or {}
        change.last_error = "Changed in Cognito since the edit was made; Cognito's value was kept."
    change.save()
    action = {
        PendingChange.Status.APPLIED: audit.Action.APPLIED,
        PendingChange.Status.CONFLICT: audit.Action.CONFLICT,
        PendingChange.Status.FAILED: audit.Action.FAILED,
    }[status]
    outcome = {
        PendingChange.Status.APPLIED: audit.Outcome.OK,
        PendingChange.Status.CONFLICT: audit.Outcome.CONFLICT,
        PendingChange.Status.FAILED: audit.Outcome.FAILED,
    }[status]
    if status == PendingChange.Status.CONFLICT:
        changes = {k: [change.before.get(k), (state or {}).get(k)] for k in change.fields}
    elif status == PendingChange.Status.APPLIED:
        changes = {k: [change.before.get(k), (state or {}).get(k)] for k in change.fields}
    else:
        changes = {}
    if status == PendingChange.Status.APPLIED and not sent and _already_audited(change):
        return
    audit.record(
        action=action,
        object_type=change.object_type,
        object_id=change.object_key,
        pool_id=change.pool.pool_id,
        changes=changes,
        detail={
            "operation": change.operation,
            "change": change.pk,
            "attempts": change.attempts,
            "retries": change.throttled,
            "sent": sent,
            **({"error": error} if error else {}),
            **({"wanted": change.payload["after"]} if status == PendingChange.Status.CONFLICT else {}),
            # What a call answered that operators need to see (a resend's delivery details).
            **((change.payload or {}).get("result") or {} if status == PendingChange.Status.APPLIED else {}),
        },
        outcome=outcome,
        source=audit.Source.WORKER,
        actor=change.actor,
        correlation_id=str(change.correlation_id),
    )


def _already_audited(change: PendingChange) -> bool:
    return AuditEvent.objects.filter(correlation_id=str(change.correlation_id), action=audit.Action.APPLIED).exists()
