"""Restoring a backup (services/backup.py's CSV or JSON) into a pool, the same one or another: a
quota-aware background job with an outcome per row. Missing groups are created; new users are created
with AdminCreateUser, MessageAction SUPPRESS and no password (there is none in a backup: they are
invited or reset later); existing users are skipped or updated as the operator chose."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import audit, selectors
from ..gateway import CognitoError, CognitoGateway, CognitoThrottled, CognitoUnavailable
from ..mapping import group_fields, user_created_changes, user_fields, user_hash
from ..models import BackupChunk, BulkJob, CognitoGroup, CognitoUser, GroupMembership, UserPool
from ..outbox import enqueue_bulk_job
from ..validation import READ_ONLY_ATTRIBUTES, validate_group, validate_user_attributes
from .backup import CSV_COLUMNS, FILE_FORMAT, csv_unsafe, exportable
from .test_users import add_to_groups, schema_with_standard
from .users import cognito_user_set_enabled, cognito_user_set_group, cognito_user_update_attributes

RESTORE_OPERATION = BulkJob.Operation.RESTORE_USERS
EXISTING = ("skip", "update")
RESTORE_USER_OPERATION = "user.restore"
MAX_ROWS = 1_000_000
# The uploaded file is kept in pieces of this many characters.
INPUT_CHUNK = 1_000_000
# Progress (and the rows' outcomes) is written at most this often, and at the end or a pause.
SAVE_EVERY_SECONDS = 2.0
# Rows whose outcome the job keeps whatever it is; past them, failed rows only.
ROW_DETAIL_LIMIT = 5000
MAX_PAUSES = 20
FIELD = "backup_file"


@dataclass
class Backup:
    """A parsed backup file: its groups and its users (JSON-shaped, whichever the format)."""

    fmt: str
    groups: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)


def _refuse(message: str) -> ValidationError:
    return ValidationError({FIELD: [f"{FIELD}: {message}"]})


def _check_names(names: set[str]) -> None:
    bad = sorted(n for n in names if not exportable(n))
    if bad:
        raise _refuse(f"{', '.join(bad)} refused: a backup never carries a password or a secret.")


def parse_backup(content: bytes | str) -> Backup:
    """A backup file's groups and users; ValidationError naming `backup_file` and the rule otherwise."""
    try:
        text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    except UnicodeDecodeError:
        raise _refuse("the file is not UTF-8 text.") from None
    if "\x00" in text:
        raise _refuse("the file contains a NUL character.")
    backup = _parse_json(text) if text.lstrip().startswith("{") else _parse_csv(text)
    if not backup.users and not backup.groups:
        raise _refuse("the file holds no users and no groups.")
    if len(backup.users) > MAX_ROWS:
        raise _refuse(f"at most {MAX_ROWS:,} users per file.")
    _check_names({k for u in backup.users for k in u["attributes"]})
    return backup


def _parse_json(text: str) -> Backup:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _refuse(f"not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
        raise _refuse(f'a JSON backup starts with "format": "{FILE_FORMAT}" (made by "Back up users").')
    _check_names(set(data) - {"format", "version", "exported_at", "pool", "groups", "users"})
    groups, users = data.get("groups") or [], data.get("users") or []
    if not isinstance(groups, list) or not isinstance(users, list):
        raise _refuse('"groups" and "users" must be lists.')
    backup = Backup("json")
    for n, group in enumerate(groups, 1):
        if not isinstance(group, dict) or not isinstance(group.get("name"), str) or not group["name"]:
            raise _refuse(f"group {n} has no name.")
        backup.groups.append({"name": group["name"], "description": str(group.get("description") or ""),
                              "precedence": group.get("precedence")})
    for n, user in enumerate(users, 1):
        if not isinstance(user, dict):
            raise _refuse(f"user {n} is not an object.")
        _check_names(set(user))
        attributes = user.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise _refuse(f"user {n}: attributes must be an object of names and values.")
        backup.users.append({
            "username": str(user.get("username") or ""),
            "enabled": user.get("enabled") is not False,
            "status": str(user.get("status") or ""),
            "attributes": {str(k): "" if v is None else str(v) for k, v in attributes.items()},
            "groups": [str(g) for g in user.get("groups") or []],
        })
    return backup


def _parse_csv(text: str) -> Backup:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        headers = [h for h in reader.fieldnames or [] if h is not None]
        _check_names(set(headers))
        if "record" not in headers or "username" not in headers:
            raise _refuse("a CSV backup's first line names its columns, record and username among them.")
        attributes = [h for h in headers if h not in CSV_COLUMNS]
        backup = Backup("csv")
        for raw in reader:
            row = {k: csv_unsafe(v or "") for k, v in raw.items() if k is not None}
            if row.get("record") == "group":
                precedence = row.get("group_precedence", "").strip()
                if not precedence.isdigit() and precedence:
                    raise _refuse(f"line {reader.line_num}: group_precedence must be a whole number.")
                backup.groups.append({"name": row.get("groups", "").strip(),
                                      "description": row.get("group_description", ""),
                                      "precedence": int(precedence) if precedence else None})
            elif row.get("record") == "user":
                backup.users.append({
                    "username": row.get("username", "").strip(),
                    "enabled": row.get("enabled", "true").strip().lower() != "false",
                    "status": row.get("status", ""),
                    "attributes": {a: row[a] for a in attributes if row.get(a)},
                    "groups": [g for g in row.get("groups", "").split(";") if g.strip()],
                })
            elif any(row.values()):
                raise _refuse(f"line {reader.line_num}: record must be user or group.")
    except csv.Error as exc:
        raise _refuse(f"line {reader.line_num}: {exc}.") from None
    return backup


def user_restore_start(
    *, pool: UserPool, content: bytes, file_name: str, existing: str, actor: str
) -> BulkJob:
    """Check an uploaded backup and queue its restore into `pool` (a BulkJob a worker runs). Nothing
    is sent to Cognito here; the file is kept with the job (BackupChunk rows) for the worker."""
    if existing not in EXISTING:
        raise ValidationError({"existing": [f"existing must be one of {', '.join(EXISTING)} (got {existing!r})."]})
    backup = parse_backup(content)
    text = content.decode("utf-8-sig")
    with transaction.atomic():
        job = BulkJob.objects.create(
            pool=pool, operation=RESTORE_OPERATION, total=len(backup.users), actor=actor,
            params={"format": backup.fmt, "existing": existing, "file_name": file_name[:200],
                    "groups": len(backup.groups)},
            results={"rows": {}, "created": 0, "updated": 0, "skipped": 0, "failed": 0, "groups": {}},
        )
        BackupChunk.objects.bulk_create(
            BackupChunk(job=job, kind=BackupChunk.Kind.INPUT, seq=n, data=text[start:start + INPUT_CHUNK])
            for n, start in enumerate(range(0, len(text), INPUT_CHUNK))
        )
        audit.record(
            action=audit.Action.BULK_REQUESTED, object_type="bulk_job", object_id=str(job.pk), pool_id=pool.pool_id,
            detail={"operation": RESTORE_OPERATION, "users": len(backup.users), "groups": len(backup.groups),
                    "existing": existing, "file": file_name[:200], "format": backup.fmt},
            source=audit.Source.ADMIN, actor=actor, outcome=audit.Outcome.PENDING,
        )
        transaction.on_commit(lambda: enqueue_bulk_job(job.pk))
    return job


def _job_backup(job: BulkJob) -> Backup:
    chunks = BackupChunk.objects.filter(job=job, kind=BackupChunk.Kind.INPUT).order_by("seq")
    return parse_backup("".join(chunks.values_list("data", flat=True)))


# Groups ------------------------------------------------------------------------------------------------------


def _restore_groups(job: BulkJob, backup: Backup, gw: CognitoGateway, results: dict[str, Any]) -> None:
    """Create the groups the pool lacks (those the file defines, and any a user row names)."""
    pool = job.pool
    wanted = {g["name"]: g for g in backup.groups if g["name"]}
    for user in backup.users:
        for name in user["groups"]:
            wanted.setdefault(name, {"name": name, "description": "", "precedence": None})
    done: dict[str, str] = results["groups"]
    have = set(CognitoGroup.objects.filter(pool=pool, name__in=list(wanted)).values_list("name", flat=True))
    for name, group in wanted.items():
        if name in done:
            continue
        if name in have:
            done[name] = "exists"
            continue
        precedence = group["precedence"] if isinstance(group["precedence"], int) else None
        try:
            validate_group(name=name, description=group["description"], precedence=precedence)
        except ValidationError as exc:
            done[name] = f"failed: {'; '.join(exc.messages)}"
            continue
        group = {**group, "precedence": precedence}
        params = {k: v for k, v in (("Description", group["description"]),
                                    ("Precedence", group["precedence"])) if v not in (None, "")}
        try:
            record = gw.create_group(pool.pool_id, name, **params)
        except (CognitoThrottled, CognitoUnavailable):
            raise
        except CognitoError as exc:
            if exc.code != "GroupExistsException":
                done[name] = f"failed: {exc}"
                continue
            record = gw.get_group(pool.pool_id, name)
        fields = group_fields(record)
        with transaction.atomic():
            CognitoGroup.objects.update_or_create(pool=pool, name=name, defaults=fields)
            audit.record(
                action=audit.Action.CREATED, object_type="group", object_id=name, object_repr=name,
                pool_id=pool.pool_id,
                changes={k: [None, fields[k]] for k in ("name", "description", "precedence")},
                detail={"operation": RESTORE_USER_OPERATION, "restore_job": job.pk},
                source=audit.Source.WORKER, actor=job.actor,
            )
        done[name] = "created"


# Users -------------------------------------------------------------------------------------------------------


def _target_username(pool: UserPool, user: dict[str, Any]) -> str:
    """Pools that sign in by e-mail or phone take it as the username (Cognito makes the sub the username)."""
    for name in pool.username_attributes or ():
        if user["attributes"].get(name):
            return user["attributes"][name]
    return "" if pool.username_attributes else user["username"]


def _existing(pool: UserPool, user: dict[str, Any], username: str) -> CognitoUser | None:
    users = CognitoUser.objects.filter(pool=pool)
    if "email" in (pool.username_attributes or ()) and user["attributes"].get("email"):
        return users.filter(email=user["attributes"]["email"]).first()
    if "phone_number" in (pool.username_attributes or ()) and user["attributes"].get("phone_number"):
        return users.filter(
            selectors.attribute_equals("phone_number", user["attributes"]["phone_number"], using=users.db)
        ).first()
    return users.filter(username=username).first()


def _split_attributes(pool: UserPool, attributes: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(what the pool takes, what it cannot: Cognito's own attributes and names outside its schema)."""
    schema = {a["Name"] for a in schema_with_standard(pool).schema}
    kept, dropped = {}, []
    for name, value in attributes.items():
        if name in READ_ONLY_ATTRIBUTES or name.startswith("cognito:") or name not in schema:
            dropped.append(name)
        elif value != "":
            kept[name] = value
    return kept, sorted(dropped)


def _outcome(user: dict[str, Any], status: str, username: str = "", **extra: Any) -> dict[str, Any]:
    return {"status": status, "username": username or user["username"],
            "email": user["attributes"].get("email", ""), **extra}


def _dropped_note(dropped: list[str]) -> str:
    return f"not restored (Cognito's own, or not in this pool): {', '.join(dropped)}" if dropped else ""


@dataclass
class _NewUser:
    """A row whose user is to be created: what goes to Cognito, and what came back."""

    index: int
    user: dict[str, Any]
    username: str
    attributes: dict[str, str]
    dropped: list[str]
    groups: list[CognitoGroup]
    record: dict[str, Any] | None = None
    added: list[CognitoGroup] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _create_in_cognito(pool: UserPool, new: _NewUser, gw: CognitoGateway) -> dict[str, Any] | None:
    """AdminCreateUser (SUPPRESS, no password), the memberships, disabling: on a worker's thread, no
    database. Returns the row's outcome if Cognito refused the user, else None (`new` holds the record)."""
    try:
        record = gw.admin_create_user(
            pool.pool_id, new.username, attributes=new.attributes, delivery=["EMAIL"], suppress=True
        )
    except (CognitoThrottled, CognitoUnavailable):
        raise
    except CognitoError as exc:
        if exc.code in {"UsernameExistsException", "AliasExistsException"}:
            return _outcome(new.user, "skipped", new.username, reason="already in Cognito but not in the mirror "
                            "yet: sync the pool, then restore again to update it")
        return _outcome(new.user, "failed", new.username, error=f"{exc}. {_dropped_note(new.dropped)}".strip(" ."))
    new.added, new.failed = add_to_groups(pool, record["Username"], new.groups, gw)
    for name in set(new.user["groups"]) - {g.name for g in new.groups}:
        new.failed[name] = "the group could not be created"
    if not new.user["enabled"]:
        gw.admin_set_user_enabled(pool.pool_id, record["Username"], False)
        record = {**record, "Enabled": False}
    new.record = record
    return None


def _record_created(job: BulkJob, created: list[_NewUser]) -> dict[int, dict[str, Any]]:
    """Mirror rows, memberships and audit events of the users a batch created, in one transaction."""
    pool = job.pool
    outcomes: dict[int, dict[str, Any]] = {}
    events = []
    with transaction.atomic():
        for new in created:
            fields = user_fields(new.record)
            mirrored = CognitoUser(pool=pool, content_hash=user_hash(fields), **fields)
            mirrored.save()
            GroupMembership.objects.bulk_create([GroupMembership(group=g, user=mirrored) for g in new.added])
            common = {"object_type": "user", "object_id": mirrored.username,
                      "object_repr": mirrored.email or new.username, "pool_id": pool.pool_id,
                      "source": audit.Source.WORKER, "actor": job.actor, "correlation_id": str(uuid.uuid4())}
            events.append(audit.build(
                action=audit.Action.CREATED, changes=user_created_changes(fields),
                detail={"operation": RESTORE_USER_OPERATION, "restore_job": job.pk, "delivery": "SUPPRESS",
                        "groups": [g.name for g in new.added], "not_restored": new.dropped, "sub": mirrored.sub},
                **common,
            ))
            events += [audit.build(action=audit.Action.GROUP_ADDED, changes={"group": [None, g.name]},
                                   detail={"group": g.name, "restore_job": job.pk}, **common) for g in new.added]
            events += [audit.build(action=audit.Action.GROUP_ADD_FAILED, detail={"group": n, "error": e},
                                   outcome=audit.Outcome.FAILED, **common) for n, e in new.failed.items()]
            outcome = _outcome(new.user, "created", mirrored.username, reason=_dropped_note(new.dropped))
            if new.failed:
                outcome["groups_failed"] = new.failed
            outcomes[new.index] = outcome
        # Last in the transaction: the audit chain's lock is held only for the append.
        audit.record_many(events)
    return outcomes


def _update(job: BulkJob, user: dict[str, Any], existing: CognitoUser, attributes: dict[str, str],
            dropped: list[str]) -> dict[str, Any]:
    """Bring an existing user to the file's values through the outbox (audited, pushed by the workers)."""
    pool, actor = job.pool, job.actor
    schema = {a["Name"]: a for a in pool.schema or ()}
    changed = {k: v for k, v in attributes.items() if existing.attributes.get(k) != v}
    immutable = sorted(k for k in changed if schema.get(k, {}).get("Mutable") is False)
    for name in immutable:
        changed.pop(name)
    notes = []
    try:
        if changed and cognito_user_update_attributes(
            user=existing, attributes=changed, actor=actor, source=audit.Source.WORKER
        ):
            notes.append(f"attributes {', '.join(sorted(changed))}")
        if cognito_user_set_enabled(user=existing, enabled=user["enabled"], actor=actor,
                                    source=audit.Source.WORKER, job=job):
            notes.append("enabled" if user["enabled"] else "disabled")
        for group in CognitoGroup.objects.filter(pool=pool, name__in=user["groups"]).order_by("name"):
            if cognito_user_set_group(user=existing, group=group, member=True, actor=actor,
                                      source=audit.Source.WORKER, job=job):
                notes.append(f"added to {group.name}")
    except ValidationError as exc:
        return _outcome(user, "failed", existing.username, error="; ".join(exc.messages))
    extra = [_dropped_note(dropped)] if dropped else []
    if immutable:
        extra.append(f"immutable in this pool, left as they are: {', '.join(immutable)}")
    if not notes:
        return _outcome(user, "unchanged", existing.username, reason="; ".join(["already as in the file", *extra]))
    return _outcome(user, "updated", existing.username,
                    reason="; ".join([f"requested: {', '.join(notes)}", *extra]))


def _prepare_row(job: BulkJob, index: int, user: dict[str, Any], groups: dict[str, CognitoGroup]
                 ) -> dict[str, Any] | _NewUser:
    """A row's outcome when it needs no new user (skipped, updated, refused), else the user to create."""
    pool = job.pool
    username = _target_username(pool, user)
    if not username:
        return _outcome(user, "failed", error=f"this pool signs in by {' or '.join(pool.username_attributes)}, "
                        "which the row does not have")
    attributes, dropped = _split_attributes(pool, user["attributes"])
    existing = _existing(pool, user, username)
    if existing is not None:
        if job.params.get("existing") != "update":
            return _outcome(user, "skipped", existing.username, reason="already in the pool (existing users: skip)")
        return _update(job, user, existing, attributes, dropped)
    try:
        validate_user_attributes(schema_with_standard(pool), attributes, creating=True)
    except ValidationError as exc:
        return _outcome(user, "failed", username, error="; ".join(exc.messages))
    return _NewUser(index, user, username, attributes, dropped, [groups[g] for g in user["groups"] if g in groups])


def _restore_batch(job: BulkJob, backup: Backup, indexes: list[int], gw: CognitoGateway,
                   executor: ThreadPoolExecutor) -> tuple[dict[int, dict[str, Any]], Exception | None]:
    """Outcomes of a batch of rows; the users to create are created side by side (each a few Cognito
    calls, under the shared budget). A pause (throttling, Cognito unreachable) is returned with the
    outcomes of the rows that got one; the others are tried again when the job resumes."""
    groups = {g.name: g for g in CognitoGroup.objects.filter(pool=job.pool)}
    outcomes: dict[int, dict[str, Any]] = {}
    to_create: list[_NewUser] = []
    for index in indexes:
        prepared = _prepare_row(job, index, backup.users[index], groups)
        if isinstance(prepared, _NewUser):
            to_create.append(prepared)
        else:
            outcomes[index] = prepared
    futures = [(new, executor.submit(_create_in_cognito, job.pool, new, gw)) for new in to_create]
    pause: Exception | None = None
    created = []
    for new, future in futures:
        try:
            refused = future.result()
        except (CognitoThrottled, CognitoUnavailable) as exc:
            pause = pause or exc
            continue
        if refused is not None:
            outcomes[new.index] = refused
        else:
            created.append(new)
    outcomes.update(_record_created(job, created))
    return outcomes, pause


def user_restore_run(*, job: BulkJob, gateway: CognitoGateway | None = None) -> BulkJob:
    """Restore a job's file into its pool: groups first, then the user rows, a batch at a time, new
    users created on COGNITO_RESTORE_THREADS threads, recording each row's outcome. Safe to run twice (rows
    with an outcome are not revisited; a user already there is skipped or updated). Throttling pauses
    the job (back to `queued`); the outbox sweeper resumes it."""
    BulkJob.objects.filter(pk=job.pk, status=BulkJob.Status.QUEUED).update(status=BulkJob.Status.RUNNING)
    job.refresh_from_db()
    gw = gateway or CognitoGateway(job.pool.region)
    backup = _job_backup(job)
    results: dict[str, Any] = {"rows": {}, "created": 0, "updated": 0, "skipped": 0, "failed": 0, "groups": {},
                               **(job.results or {})}
    rows = results["rows"]
    todo = [i for i in range(min(job.processed, len(backup.users)), len(backup.users)) if str(i + 1) not in rows]
    threads = max(1, settings.COGNITO_RESTORE_THREADS)

    cursor = min(job.processed, len(backup.users))  # every row before it has its outcome
    last_save = 0.0

    def save(**extra: Any) -> None:
        nonlocal cursor, last_save
        while cursor < len(backup.users) and str(cursor + 1) in rows:
            cursor += 1
        # Past the first ROW_DETAIL_LIMIT rows only failures keep their outcome (the counts keep all):
        # a million rows' outcomes would be rewritten with every save.
        for key in [k for k, r in rows.items() if ROW_DETAIL_LIMIT < int(k) <= cursor and r["status"] != "failed"]:
            del rows[key]
        BulkJob.objects.filter(pk=job.pk).update(processed=cursor, skipped=results["skipped"], results=results,
                                                 **extra)
        last_save = time.monotonic()

    pause: Exception | None = None
    with ThreadPoolExecutor(threads, thread_name_prefix="restore") as executor:
        try:
            _restore_groups(job, backup, gw, results)
        except (CognitoThrottled, CognitoUnavailable) as exc:
            pause = exc
        for start in range(0, len(todo) if pause is None else 0, threads * 2):
            outcomes, pause = _restore_batch(job, backup, todo[start:start + threads * 2], gw, executor)
            for index, outcome in outcomes.items():
                rows[str(index + 1)] = outcome
                key = {"unchanged": "skipped"}.get(outcome["status"], outcome["status"])
                results[key] = results.get(key, 0) + 1
            if pause is not None:
                break
            if time.monotonic() - last_save >= SAVE_EVERY_SECONDS:
                save()
    if pause is not None:
        results["pauses"] = int(results.get("pauses", 0)) + 1
        if results["pauses"] > MAX_PAUSES:
            save(status=BulkJob.Status.FAILED, finished_at=timezone.now(),
                 error=f"Gave up after {MAX_PAUSES} pauses: {pause}")
        else:
            save(status=BulkJob.Status.QUEUED, error=f"Paused ({pause}); resumes shortly.")
        job.refresh_from_db()
        return job
    failures = [f"row {n}: {r.get('error', '')}" for n, r in sorted(rows.items(), key=lambda i: int(i[0]))
                if r["status"] == "failed"]
    failures += [f"group {n}: {s}" for n, s in results["groups"].items() if s.startswith("failed")]
    save(status=BulkJob.Status.DONE, finished_at=timezone.now(), error="\n".join(failures[:200]))
    audit.record(
        action=audit.Action.BULK_FINISHED, object_type="bulk_job", object_id=str(job.pk), pool_id=job.pool.pool_id,
        detail={"operation": RESTORE_OPERATION, **{k: results.get(k, 0) for k in
                                                   ("created", "updated", "skipped", "failed")},
                "groups_created": sorted(n for n, s in results["groups"].items() if s == "created")},
        outcome=audit.Outcome.FAILED if failures else audit.Outcome.OK,
        source=audit.Source.WORKER, actor=job.actor,
    )
    job.refresh_from_db()
    return job
