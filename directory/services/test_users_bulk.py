"""Many test users, in the background: from a pattern or a CSV upload, as a BulkJob a worker runs
row by row (AdminCreateUser without a password: Cognito generates and delivers each one)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..gateway import CognitoError, CognitoGateway, CognitoThrottled, CognitoUnavailable
from ..mapping import SECRET_KEYS, user_fields
from ..models import BulkJob, CognitoGroup, UserPool
from ..outbox import enqueue_bulk_job
from ..validation import MAX_ATTRIBUTE_LENGTH
from .test_users import (
    NewUser,
    add_to_groups,
    cognito_errors,
    creatable_attributes,
    find_in_cognito,
    find_in_mirror,
    prepare_new_user,
    record_created,
    taken_message,
)

BULK_OPERATION = BulkJob.Operation.CREATE_TEST_USERS
BULK_MAX_ROWS = 1000
# Bulk progress (and per-row results) are written every this many rows.
BULK_PROGRESS_EVERY = 10
# A bulk job paused by throttling this many times is given up.
BULK_MAX_PAUSES = 20


def expand_pattern(pattern: str, n: int) -> str:
    # str.replace, not str.format: an operator's braces must not reach format().
    return pattern.replace("{n}", str(n))


def pattern_rows(spec: Mapping[str, Any]) -> list[dict[str, str]]:
    """The rows a pattern spec stands for: {"start", "count", "username", "email", "name", "phone_number"}."""
    start, count = int(spec.get("start", 1)), int(spec.get("count") or 0)
    rows = []
    for n in range(start, start + count):
        row = {}
        for key in ("username", "email", "name", "phone_number"):
            if spec.get(key):
                row[key] = expand_pattern(str(spec[key]), n)
        rows.append(row)
    return rows


def job_rows(job: BulkJob) -> list[dict[str, str]]:
    params = job.params or {}
    if "pattern" in params:
        return pattern_rows(params["pattern"])
    return [dict(r) for r in params.get("rows") or []]


def _refuse_passwords(keys: Iterable[str]) -> None:
    bad = sorted(k for k in keys if "password" in k.lower() or k in SECRET_KEYS)
    if bad:
        raise ValidationError({"csv_file": [
            f"csv_file: column(s) {', '.join(bad)} refused: bulk test users get their temporary password from "
            f"Cognito's invitation, never from this project. Remove the column."
        ]})


def parse_csv(pool: UserPool, content: bytes) -> list[dict[str, str]]:
    """Rows of an uploaded CSV: columns are `username` and attribute names; a password column is refused."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"csv_file": ["csv_file: the file is not UTF-8 text."]}) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ValidationError({"csv_file": [f"csv_file: line {line} contains a NUL character; save it as plain text."]})
    # newline="": the csv module then reads \r\n, \n and a lone \r (old Mac files) as line ends.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _csv_rows(pool, reader)
    except csv.Error as exc:
        raise ValidationError({"csv_file": [f"csv_file: line {reader.line_num}: {exc}."]}) from None


def _csv_rows(pool: UserPool, reader: csv.DictReader) -> list[dict[str, str]]:
    headers = [h.strip() for h in reader.fieldnames or [] if h is not None]
    if not headers:
        raise ValidationError({"csv_file": ["csv_file: the file is empty; the first line must name the columns."]})
    _refuse_passwords(headers)
    known = {"username", *(a["Name"] for a in creatable_attributes(pool))}
    unknown = [h for h in headers if h not in known]
    if unknown:
        raise ValidationError({"csv_file": [
            f"csv_file: unknown column(s) {', '.join(unknown)}; columns must be username or attributes of this "
            f"pool ({', '.join(sorted(known))})."
        ]})
    rows: list[dict[str, str]] = []
    for raw in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        too_long = next((k for k, v in row.items() if len(v) > MAX_ATTRIBUTE_LENGTH), None)
        if too_long is not None:
            raise ValidationError({"csv_file": [
                f"csv_file: line {reader.line_num}: {too_long} is longer than {MAX_ATTRIBUTE_LENGTH} characters, "
                f"Cognito's limit for an attribute value."
            ]})
        rows.append({k: v for k, v in row.items() if v})
        if len(rows) > BULK_MAX_ROWS:
            raise ValidationError({"csv_file": [f"csv_file: at most {BULK_MAX_ROWS} rows per upload."]})
    if not rows:
        raise ValidationError({"csv_file": ["csv_file: the file has no rows below its header."]})
    return rows


def test_users_bulk_start(
    *,
    pool: UserPool,
    actor: str,
    options: Mapping[str, Any],
    pattern: Mapping[str, Any] | None = None,
    rows: list[dict[str, str]] | None = None,
) -> BulkJob:
    """Queue the creation of many test users (a BulkJob run by a worker). Either `pattern`
    ({"start", "count", "username", "email", "name", "phone_number"} with `{n}`) or CSV `rows`.
    `options`: delivery, email_verified, groups (names), expires_in_days. No password is taken:
    Cognito generates and delivers each one. Nothing is sent to Cognito here."""
    errors: dict[str, list[str]] = {}
    if (pattern is None) == (rows is None):
        raise ValidationError("Give either a pattern or CSV rows.")
    if rows is not None:
        _refuse_passwords({k for row in rows for k in row})
        if not 1 <= len(rows) <= BULK_MAX_ROWS:
            errors["csv_file"] = [f"csv_file: between 1 and {BULK_MAX_ROWS} rows (it has {len(rows)})."]
        all_rows = rows
    else:
        spec = {k: v for k, v in dict(pattern or {}).items() if v not in (None, "")}
        count = int(spec.get("count") or 0)
        start = int(spec.get("start", 1))
        if not 1 <= count <= BULK_MAX_ROWS:
            errors["count"] = [f"count must be between 1 and {BULK_MAX_ROWS}."]
        if start < 0:
            errors["start"] = ["start must be 0 or more."]
        patterned = [k for k in ("username", "email", "phone_number") if spec.get(k)]
        if count > 1 and not any("{n}" in str(spec[k]) for k in patterned):
            target = f"{patterned[0]}_pattern" if patterned else "email_pattern"
            errors[target] = [f"{target} must contain {{n}} so that each of the {count} users is different."]
        pattern = spec
        all_rows = pattern_rows({**spec, "count": min(count, 1)}) if count >= 1 else []
    option_data = {
        "delivery": options.get("delivery") or "EMAIL",
        "email_verified": bool(options.get("email_verified")),
        "groups": [g.name if isinstance(g, CognitoGroup) else str(g) for g in options.get("groups") or ()],
        "expires_in_days": options.get("expires_in_days"),
    }
    if pattern is not None and all_rows and not errors:
        # The first row stands for all of them: a pattern that yields a bad user is refused now.
        _, row_errors = prepare_new_user(pool, {**all_rows[0], **option_data})
        for name, messages in row_errors.items():
            target = {
                "username": "username_pattern", "email": "email_pattern", "name": "name_pattern",
                "phone_number": "phone_pattern",
            }.get(name, name)
            errors.setdefault(target, []).extend(messages)
    else:
        _, option_errors = prepare_new_user(pool, {"username": "x", **option_data, "delivery": "SUPPRESS"})
        for name in ("groups", "expires_in_days"):
            if name in option_errors:
                errors[name] = option_errors[name]
    if errors:
        raise ValidationError(errors)
    params: dict[str, Any] = {**option_data}
    if pattern is not None:
        params["pattern"] = dict(pattern)
        total = int(pattern["count"])
    else:
        params["rows"] = rows
        total = len(rows or [])
    with transaction.atomic():
        job = BulkJob.objects.create(
            pool=pool, operation=BULK_OPERATION, params=params, user_ids=[], total=total, actor=actor,
            results={"rows": {}, "created": 0, "skipped": 0, "failed": 0},
        )
        audit.record(
            action=audit.Action.BULK_REQUESTED,
            object_type="bulk_job",
            object_id=str(job.pk),
            pool_id=pool.pool_id,
            detail={"operation": BULK_OPERATION, "users": total, "source": "pattern" if pattern else "csv",
                    **{k: v for k, v in option_data.items()}},
            source=audit.Source.ADMIN,
            actor=actor,
            outcome=audit.Outcome.PENDING,
        )
        transaction.on_commit(lambda: enqueue_bulk_job(job.pk))
    return job


def _row_result(new: NewUser | None, row: Mapping[str, str], status: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "username": (new.username if new else "") or row.get("username") or row.get("email") or "",
        "email": row.get("email", ""),
        **extra,
    }


def _existing_row(
    job: BulkJob, new: NewUser, row: Mapping[str, str], found: tuple[str, dict[str, Any]]
) -> dict[str, Any]:
    """A row whose user Cognito already holds (and the mirror does not)."""
    name, record = found
    created = user_fields(record)["remote_created_at"]
    if created is not None and created >= job.created_at - timedelta(seconds=5):
        # Made by this job before a crash lost its mirror row: adopt it rather than fail the row.
        user = record_created(pool=job.pool, record=record, new=new, actor=job.actor, added=[], failed={},
                               source=audit.Source.WORKER, detail={"bulk_job": job.pk, "adopted": True})
        return _row_result(new, row, "created", username=user.username, adopted=True)
    return _row_result(new, row, "failed", error=taken_message(
        name, new.attributes.get(name, new.username), record["Username"], where="in Cognito"))


def _bulk_row(job: BulkJob, row: Mapping[str, str], options: Mapping[str, Any], gw: CognitoGateway) -> dict[str, Any]:
    """Create one row's user. Throttling and an unreachable Cognito propagate (the job pauses)."""
    pool = job.pool
    new, errors = prepare_new_user(pool, {**row, **options})
    if errors:
        return _row_result(new, row, "failed", error="; ".join(m for ms in errors.values() for m in ms))
    taken = find_in_mirror(pool, new)
    if taken is not None:
        name, user = taken
        if user.is_test_user:
            # A redelivered job (or a second upload) meets users it already made: not an error.
            return _row_result(new, row, "skipped", username=user.username, reason="already a test user")
        return _row_result(new, row, "failed", error=taken_message(name, new.attributes.get(name, new.username),
                                                                      user.username, where="in the mirror"))
    # ListUsers (30 rps, the scarcest quota) is only spent up front where Cognito would not refuse a
    # duplicate itself: an alias is unique only once verified. Elsewhere Cognito's
    # UsernameExistsException says it, and the lookup happens only then.
    if pool.alias_attributes:
        found = find_in_cognito(pool, new, gw)
        if found is not None:
            return _existing_row(job, new, row, found)
    try:
        # No TemporaryPassword: Cognito generates it and delivers it (or not, with SUPPRESS).
        record = gw.admin_create_user(
            pool.pool_id, new.username, attributes=new.attributes, delivery=new.mediums,
            suppress=new.delivery == "SUPPRESS",
        )
    except (CognitoThrottled, CognitoUnavailable):
        raise
    except CognitoError as exc:
        if exc.code in {"UsernameExistsException", "AliasExistsException"}:
            found = find_in_cognito(pool, new, gw)
            if found is not None:
                return _existing_row(job, new, row, found)
        messages = cognito_errors(exc, new)
        return _row_result(new, row, "failed", error="; ".join(m for ms in messages.values() for m in ms))
    added, failed = add_to_groups(pool, record["Username"], new.groups, gw)
    user = record_created(pool=pool, record=record, new=new, actor=job.actor, added=added, failed=failed,
                           source=audit.Source.WORKER, detail={"bulk_job": job.pk})
    result = _row_result(new, row, "created", username=user.username)
    if failed:
        result["groups_failed"] = failed
    return result


def test_users_bulk_run(*, job: BulkJob, gateway: CognitoGateway | None = None) -> BulkJob:
    """Create a bulk job's users one row at a time (AdminCreateUser without a password, then the
    groups), recording each row's outcome in BulkJob.results. Safe to run twice: rows already done
    are not revisited, and a user that already exists as a test user is skipped. Throttling pauses
    the job (back to `queued`); the outbox sweeper resumes it where it stopped."""
    BulkJob.objects.filter(pk=job.pk, status=BulkJob.Status.QUEUED).update(status=BulkJob.Status.RUNNING)
    job.refresh_from_db()
    pool = job.pool
    gw = gateway or CognitoGateway(pool.region)
    rows = job_rows(job)
    params = job.params or {}
    options = {k: params.get(k) for k in ("delivery", "email_verified", "groups", "expires_in_days")}
    results: dict[str, Any] = {"rows": {}, "created": 0, "skipped": 0, "failed": 0, **(job.results or {})}
    processed = min(job.processed, len(rows))

    def save(**extra: Any) -> None:
        BulkJob.objects.filter(pk=job.pk).update(
            processed=processed, skipped=results["skipped"], results=results, **extra
        )

    for index in range(processed, len(rows)):
        try:
            outcome = _bulk_row(job, rows[index], options, gw)
        except (CognitoThrottled, CognitoUnavailable) as exc:
            results["pauses"] = int(results.get("pauses", 0)) + 1
            if results["pauses"] > BULK_MAX_PAUSES:
                save(status=BulkJob.Status.FAILED, finished_at=timezone.now(),
                     error=f"Gave up at row {index + 1} after {BULK_MAX_PAUSES} pauses: {exc}")
            else:
                save(status=BulkJob.Status.QUEUED, error=f"Paused at row {index + 1} ({exc}); resumes shortly.")
            job.refresh_from_db()
            return job
        results["rows"][str(index + 1)] = outcome
        results[{"created": "created", "skipped": "skipped"}.get(outcome["status"], "failed")] += 1
        processed = index + 1
        if processed % BULK_PROGRESS_EVERY == 0:
            save()
    failures = [f"row {n}: {r.get('error', '')}" for n, r in results["rows"].items() if r["status"] == "failed"]
    save(status=BulkJob.Status.DONE, finished_at=timezone.now(), error="\n".join(failures[:200]))
    audit.record(
        action=audit.Action.BULK_FINISHED,
        object_type="bulk_job",
        object_id=str(job.pk),
        pool_id=pool.pool_id,
        detail={"operation": BULK_OPERATION, "created": results["created"], "skipped": results["skipped"],
                "failed": results["failed"]},
        outcome=audit.Outcome.FAILED if results["failed"] else audit.Outcome.OK,
        source=audit.Source.WORKER,
        actor=job.actor,
    )
    job.refresh_from_db()
    return job



# These are services, not tests: keep pytest from collecting them when a test module imports them.
for _service in (test_users_bulk_start, test_users_bulk_run):
    _service.__test__ = False  # type: ignore[attr-defined]
