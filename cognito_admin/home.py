"""The directory home, the admin's index page: each pool's users, pulls, changes and e-mails today,
charts of users over time, pull durations and push throughput, and the latest audit events.

Every figure comes from aggregates over sync runs, the outbox and the audit log (directory.selectors),
never from counting users: the page costs the same handful of queries for a pool of ten users or ten
million. Each panel is shown only to those who may view what it summarises."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from directory import charts, selectors
from directory.models import PendingChange, SyncRun, UserPool

DAYS = 30
HOURS = 24
RUNS = 30
EVENTS = 10
FAILED_RUN = "#D55E00"


def _svg(text: str):
    """directory.charts escapes every text it draws: its SVG goes into the page as it is."""
    return mark_safe(text)  # noqa: S308 - built by directory.charts, which escapes its input


def _days(today: date) -> list[date]:
    return [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]


def _changes_url(pool: UserPool, status: str) -> str:
    query = urlencode({"pool__id__exact": pool.pk, "status__exact": status})
    return f"{reverse('admin:directory_pendingchange_changelist')}?{query}"


def _pool_rows(
    pools: list[UserPool], daily: dict[int, dict], days: list[date], *, show_changes: bool
) -> list[dict[str, Any]]:
    latest, complete = selectors.latest_sync_runs(pools)
    changes = selectors.open_change_counts() if show_changes else {}
    emails = selectors.messages_sent_today_by_pool()
    rows = []
    for pool in pools:
        run, full = latest.get(pool.pk), complete.get(pool.pk)
        level, explanation = selectors.sync_health(pool, run, full)
        users = full.seen if full is not None else pool.estimated_number_of_users
        counted_by = (
            f"Users listed by the last complete pull ({full.finished_at:%Y-%m-%d %H:%M} UTC); Cognito's estimate: "
            f"{pool.estimated_number_of_users:,}." if full is not None and full.finished_at
            else "Cognito's estimate (no complete pull yet)."
        )
        series = [daily.get(pool.pk, {}).get(day) for day in days]
        counts = changes.get(pool.pk, {})
        default_email = selectors.uses_cognito_default_email(pool)
        sent = emails.get(pool.pool_id, 0)
        rows.append({
            "pool": pool,
            "url": reverse("admin:directory_userpool_change", args=[pool.pk]),
            "users": f"{users:,}",
            "users_title": counted_by,
            "sparkline": _svg(charts.sparkline(series, label=f"Users of {pool.name or pool.pool_id}, {DAYS} days")),
            "run": run,
            "last_sync_at": (run.finished_at or run.started_at) if run else None,
            "health": level,
            "health_text": explanation,
            "changes": [
                {"status": status, "count": counts.get(status, 0), "url": _changes_url(pool, status)}
                for status in (PendingChange.Status.PENDING, PendingChange.Status.APPLYING,
                               PendingChange.Status.FAILED, PendingChange.Status.CONFLICT)
            ] if show_changes else [],
            "emails_today": sent,
            "email_limit": selectors.DEFAULT_EMAIL_DAILY_LIMIT if default_email else None,
            "email_level": (
                "over" if default_email and sent >= selectors.DEFAULT_EMAIL_DAILY_LIMIT
                else "near" if default_email and sent >= selectors.DEFAULT_EMAIL_DAILY_LIMIT * 0.8 else "ok"
            ),
        })
    return rows


def _users_chart(pools: list[UserPool], daily: dict[int, dict], days: list[date]) -> str:
    labels = [f"{day:%d %b}" for day in days]
    shown = [p for p in pools if daily.get(p.pk)]
    shown.sort(key=lambda p: -max(daily[p.pk].values()))
    series = [charts.Series(p.name or p.pool_id, [daily[p.pk].get(day) for day in days]) for p in shown[:7]]
    if len(shown) > 7:
        rest = shown[7:]
        series.append(charts.Series(
            f"{len(rest)} more pools", [sum(daily[p.pk].get(day) or 0 for p in rest) or None for day in days]
        ))
    return charts.line_chart(series, labels, label=f"Users per pool over the last {DAYS} days")


def _durations_chart(runs: list[SyncRun]) -> str:
    bars = [(f"{run.started_at:%d %b}", (run.finished_at - run.started_at).total_seconds()) for run in runs]
    tips = [f"{run.pool.name or run.pool.pool_id}, {run.started_at:%Y-%m-%d %H:%M} ({run.status})" for run in runs]
    colours = [FAILED_RUN if run.status == SyncRun.Status.FAILED else charts.PALETTE[0] for run in runs]
    return charts.bar_chart(bars, label=f"Duration of the last {len(runs)} pulls, in seconds (failed ones in red)",
                            unit=" s", colours=colours, tips=tips)


def _throughput_chart(per_hour: dict[datetime, int], now: datetime) -> str:
    hour = now.replace(minute=0, second=0, microsecond=0)
    hours = [hour - timedelta(hours=HOURS - 1 - i) for i in range(HOURS)]
    if not per_hour:
        return charts.bar_chart([], label=f"Changes applied in Cognito per hour, last {HOURS} hours")
    by_hour = {key.replace(minute=0, second=0, microsecond=0): n for key, n in per_hour.items()}
    bars = [(f"{h:%H}:00", float(by_hour.get(h, 0))) for h in hours]
    return charts.bar_chart(bars, label=f"Changes applied in Cognito per hour (UTC), last {HOURS} hours",
                            unit=" changes")


def home_context(request) -> dict[str, Any]:
    """What templates/admin/index.html shows above the app list, for this operator's permissions."""
    user = request.user
    may = {name: user.has_perm(f"directory.view_{name}") for name in ("userpool", "pendingchange", "syncrun",
                                                                         "auditevent")}
    if not any(may.values()):
        return {}
    now = timezone.now()
    days = _days(now.date())
    home: dict[str, Any] = {"days": DAYS, "charts": []}
    daily = selectors.users_by_day(days=DAYS, now=now) if may["userpool"] else {}
    if may["userpool"]:
        pools = list(UserPool.objects.order_by("name", "pool_id"))
        home["pools"] = _pool_rows(pools, daily, days, show_changes=may["pendingchange"])
        home["show_changes"] = may["pendingchange"]
        home["email_limit"] = selectors.DEFAULT_EMAIL_DAILY_LIMIT
        home["charts"].append({"title": "Users over time", "svg": _svg(_users_chart(pools, daily, days))})
    if may["syncrun"]:
        home["charts"].append({
            "title": "Pull durations", "url": reverse("admin:directory_syncrun_changelist"),
            "svg": _svg(_durations_chart(selectors.recent_sync_durations(limit=RUNS))),
        })
    if may["pendingchange"]:
        home["charts"].append({
            "title": "Push throughput",
            "url": reverse("admin:directory_pendingchange_changelist") + "?status__exact=applied",
            "svg": _svg(_throughput_chart(selectors.push_throughput(hours=HOURS, now=now), now)),
        })
    if may["auditevent"]:
        home["events"] = selectors.latest_audit_events(limit=EVENTS)
        home["events_url"] = reverse("admin:directory_auditevent_changelist")
    return {"home": home}
