"""Backing up a pool's users: a background job that writes the users (attributes, status, enabled),
the pool's groups (description, precedence) and the memberships as CSV or JSON, in BackupChunk rows
the job's page streams as a download. Flat memory: users are read in keyset pages. No password or
secret is in the file: the mirror holds none."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.utils import timezone

from .. import audit
from ..mapping import SECRET_KEYS
from ..models import BackupChunk, BulkJob, CognitoGroup, CognitoUser, GroupMembership, UserPool
from ..outbox import enqueue_bulk_job
from ..validation import E164

BACKUP_OPERATION = BulkJob.Operation.BACKUP_USERS
FORMATS = ("csv", "json")
FILE_FORMAT = "cognito-directory-backup"
FILE_VERSION = 1
# Users per keyset page, and so per BackupChunk row.
PAGE_SIZE = 1000
# The CSV's fixed columns; every attribute follows in a column of its own.
CSV_COLUMNS = (
    "record", "username", "enabled", "status", "groups", "group_description", "group_precedence",
    "created", "modified",
)
# A cell starting with one of these is written with a leading apostrophe, so a spreadsheet shows it as
# text instead of running it as a formula; a restore removes the apostrophe again.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    if value.startswith(FORMULA_PREFIXES) and not E164.match(value):
        return "'" + value
    return value


def csv_unsafe(value: str) -> str:
    """The inverse of csv_safe."""
    if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES) and not E164.match(value[1:]):
        return value[1:]
    return value


def exportable(name: str) -> bool:
    return "password" not in name.lower() and name not in SECRET_KEYS


def user_backup_start(*, pool: UserPool, fmt: str, actor: str) -> BulkJob:
    """Queue a backup of every user of `pool` (a BulkJob a worker runs). Nothing is sent to Cognito:
    the file is written from the mirror, as fresh as the pool's last sync."""
    if fmt not in FORMATS:
        raise ValidationError({"format": [f"format must be one of {', '.join(FORMATS)} (got {fmt!r})."]})
    total = CognitoUser.objects.filter(pool=pool).count()
    with transaction.atomic():
        job = BulkJob.objects.create(
            pool=pool, operation=BACKUP_OPERATION, params={"format": fmt}, total=total, actor=actor,
            results={"users": 0, "groups": 0, "memberships": 0},
        )
        audit.record(
            action=audit.Action.BULK_REQUESTED, object_type="bulk_job", object_id=str(job.pk), pool_id=pool.pool_id,
            detail={"operation": BACKUP_OPERATION, "format": fmt, "users": total},
            source=audit.Source.ADMIN, actor=actor, outcome=audit.Outcome.PENDING,
        )
        transaction.on_commit(lambda: enqueue_bulk_job(job.pk))
    return job


def attribute_columns(pool: UserPool) -> list[str]:
    """Every attribute a user of the pool has or may have: the schema's, then any other found."""
    names = [a["Name"] for a in pool.schema or () if a.get("Name")]
    connection = connections[CognitoUser.objects.db]
    if connection.vendor == "postgresql":
        sql = "SELECT DISTINCT jsonb_object_keys(attributes) FROM directory_cognitouser WHERE pool_id = %s"
    else:
        sql = "SELECT DISTINCT j.key FROM directory_cognitouser, json_each(attributes) AS j WHERE pool_id = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [pool.pk])
        found = sorted(row[0] for row in cursor.fetchall())
    return [n for n in dict.fromkeys([*names, *found]) if exportable(n)]


def _groups(pool: UserPool) -> list[dict[str, Any]]:
    return [
        {"name": g.name, "description": g.description, "precedence": g.precedence}
        for g in CognitoGroup.objects.filter(pool=pool).order_by("precedence", "name")
    ]


def _user_pages(pool: UserPool) -> Iterator[list[dict[str, Any]]]:
    """The pool's users in id order, a page at a time, each with its group names."""
    last = 0
    while True:
        rows = list(
            CognitoUser.objects.filter(pool=pool, pk__gt=last).order_by("pk").values_list(
                "pk", "username", "enabled", "status", "attributes", "remote_created_at", "remote_modified_at",
            )[:PAGE_SIZE]
        )
        if not rows:
            return
        last = rows[-1][0]
        groups: dict[int, list[str]] = {}
        for user_id, name in GroupMembership.objects.filter(user_id__in=[r[0] for r in rows]).order_by(
            "group__precedence", "group__name"
        ).values_list("user_id", "group__name"):
            groups.setdefault(user_id, []).append(name)
        yield [
            {
                "username": username,
                "enabled": enabled,
                "status": status,
                "attributes": {k: v for k, v in sorted((attributes or {}).items()) if exportable(k)},
                "groups": groups.get(pk, []),
                "created": created.isoformat() if created else None,
                "modified": modified.isoformat() if modified else None,
            }
            for pk, username, enabled, status, attributes, created, modified in rows
        ]


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_safe(v) for v in row])
    return out.getvalue()


def _csv_user(user: dict[str, Any], columns: list[str]) -> list[str]:
    return [
        "user", user["username"], "true" if user["enabled"] else "false", user["status"], ";".join(user["groups"]),
        "", "", user["created"] or "", user["modified"] or "",
        *(user["attributes"].get(c, "") for c in columns),
    ]


def _json_user(user: dict[str, Any]) -> str:
    return json.dumps(user, ensure_ascii=False, sort_keys=True)


def user_backup_run(*, job: BulkJob) -> BulkJob:
    """Write the backup file of a job's pool into BackupChunk rows, with progress on the job. Safe to
    run twice: a rerun writes the file again from the start."""
    BulkJob.objects.filter(pk=job.pk, status=BulkJob.Status.QUEUED).update(status=BulkJob.Status.RUNNING)
    job.refresh_from_db()
    pool, fmt = job.pool, job.params.get("format", "json")
    BackupChunk.objects.filter(job=job, kind=BackupChunk.Kind.OUTPUT).delete()
    groups = _groups(pool)
    columns = attribute_columns(pool)
    seq, size, users, memberships = 0, 0, 0, 0

    def write(text: str) -> None:
        nonlocal seq, size
        BackupChunk.objects.create(job=job, kind=BackupChunk.Kind.OUTPUT, seq=seq, data=text)
        seq += 1
        size += len(text.encode())

    if fmt == "csv":
        write(_csv_text([
            [*CSV_COLUMNS, *columns],
            *(["group", "", "", "", g["name"], g["description"],
               "" if g["precedence"] is None else str(g["precedence"]), "", "", *([""] * len(columns))]
              for g in groups),
        ]))
    else:
        header = {
            "format": FILE_FORMAT, "version": FILE_VERSION, "exported_at": timezone.now().isoformat(),
            "pool": {"pool_id": pool.pool_id, "region": pool.region, "name": pool.name,
                     "username_attributes": pool.username_attributes},
            "groups": groups,
        }
        write(json.dumps(header, ensure_ascii=False, indent=1)[:-2] + ',\n "users": [\n')
    for page in _user_pages(pool):
        if fmt == "csv":
            write(_csv_text([_csv_user(u, columns) for u in page]))
        else:
            write(("" if users == 0 else ",\n") + ",\n".join(_json_user(u) for u in page))
        users += len(page)
        memberships += sum(len(u["groups"]) for u in page)
        BulkJob.objects.filter(pk=job.pk).update(processed=users, total=max(job.total, users))
    if fmt == "json":
        write("\n ]\n}\n")
    results = {"users": users, "groups": len(groups), "memberships": memberships, "format": fmt, "bytes": size}
    BulkJob.objects.filter(pk=job.pk).update(
        status=BulkJob.Status.DONE, finished_at=timezone.now(), processed=users, total=users, results=results,
    )
    audit.record(
        action=audit.Action.BULK_FINISHED, object_type="bulk_job", object_id=str(job.pk), pool_id=pool.pool_id,
        detail={"operation": BACKUP_OPERATION, **results}, source=audit.Source.WORKER, actor=job.actor,
    )
    job.refresh_from_db()
    return job


def backup_file_name(job: BulkJob) -> str:
    stamp = (job.finished_at or job.created_at).strftime("%Y%m%d-%H%M%S")
    return f"{job.pool.pool_id}-users-{stamp}.{job.params.get('format', 'json')}"


def backup_download(*, job: BulkJob, actor: str) -> Iterator[str]:
    """The finished backup's text, chunk by chunk (the download streams it); the download is audited."""
    if job.operation != BACKUP_OPERATION or job.status != BulkJob.Status.DONE:
        raise ValidationError("This job is not a finished backup.")
    audit.record(
        action=audit.Action.BACKUP_DOWNLOADED, object_type="bulk_job", object_id=str(job.pk),
        pool_id=job.pool.pool_id, detail={"file": backup_file_name(job), "users": job.processed},
        source=audit.Source.ADMIN, actor=actor,
    )
    chunks = BackupChunk.objects.filter(job=job, kind=BackupChunk.Kind.OUTPUT).order_by("seq")
    return (data for data in chunks.values_list("data", flat=True).iterator(chunk_size=1))
