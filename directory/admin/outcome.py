"""What the flash message says became of a change by the end of the request: applied in Cognito
already (a worker, or an eager Celery, got to it), on its way, refused or in conflict — read from the
change's row after the request's work, never assumed."""

from __future__ import annotations

from django.contrib import messages

from ..models import PendingChange

Status = PendingChange.Status


def change_outcome(change: PendingChange) -> tuple[str, int]:
    """(sentence, message level) for `change` as its row stands now."""
    change.refresh_from_db(fields=["status", "last_error"])
    if change.status == Status.APPLIED:
        return "applied in Cognito.", messages.SUCCESS
    if change.status in PendingChange.ACTIVE:
        return "on its way to Cognito (a worker applies it in the background; see Pending changes).", messages.SUCCESS
    if change.status == Status.CONFLICT:
        return ("not applied: it changed in Cognito meanwhile (a conflict: retry or discard it in Pending "
                "changes)."), messages.WARNING
    if change.status == Status.FAILED:
        reason = (change.last_error or "no reason recorded").strip().splitlines()[0][:300]
        return f"Cognito refused it: {reason}", messages.ERROR
    return f"{change.status}.", messages.INFO


def report_change(model_admin, request, subject: str, change: PendingChange, *, applied_note: str = "") -> None:
    """One message: `subject` (e.g. "Disable ana@example.com") and what became of the change."""
    outcome, level = change_outcome(change)
    note = f" {applied_note}" if applied_note and change.status == Status.APPLIED else ""
    model_admin.message_user(request, f"{subject}: {outcome}{note}", level)
