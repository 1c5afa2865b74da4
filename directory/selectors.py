"""Read-only queries the admin shows: resends asked for, e-mails sent today, the latest code delivery,
the audit chain's latest verification, the directory home's figures (aggregates over sync runs, the
outbox and the audit log: never a scan of the users), and users by any attribute."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connections
from django.db.models import Count, Exists, F, Lookup, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate, TruncHour
from django.db.models.lookups import Exact, IContains, IStartsWith
from django.utils import timezone

from . import search_index
from .models import AuditEvent, AuditVerification, CognitoUser, PendingChange, SyncRun, UserPool, UserSearchText
from .validation import MAX_ATTRIBUTE_LENGTH

Action = AuditEvent.Action
RESEND_OPERATION = PendingChange.Operation.USER_RESEND_CODE
TEST_USER_OPERATION = PendingChange.Operation.USER_CREATE_TEST_USER


def resend_events(pool: UserPool) -> QuerySet[AuditEvent]:
    """A pool's audit events of resends: sent in a request, or queued for the worker."""
    return AuditEvent.objects.filter(pool_id=pool.pool_id, object_type="user").filter(
        Q(action=Action.RESEND_CODE) | Q(action=Action.REQUESTED, detail__operation=RESEND_OPERATION)
    )


def resend_code_recent(*, user: CognitoUser) -> int:
    """Resends asked for this user in the last hour (sent here or queued), from the audit log."""
    since = timezone.now() - timedelta(hours=1)
    return resend_events(user.pool).filter(object_id=user.username, created_at__gte=since).count()


def uses_cognito_default_email(pool: UserPool) -> bool:
    return (pool.email_configuration or {}).get("EmailSendingAccount") in (None, "", "COGNITO_DEFAULT")


def start_of_today() -> datetime:
    return timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _emails_sent_since(start: datetime) -> QuerySet[AuditEvent]:
    """Audit events of e-mails this project made Cognito send since `start` (any pool)."""
    email = "EMAIL"
    return AuditEvent.objects.filter(object_type="user", created_at__gte=start, outcome="ok").filter(
        Q(action=Action.RESEND_CODE, detail__delivery__DeliveryMedium=email)
        | Q(action=Action.APPLIED, detail__operation=RESEND_OPERATION, detail__delivery__DeliveryMedium=email)
        # Test users created here with an e-mailed invitation (services/test_users.py).
        | Q(action=Action.CREATED, detail__operation=TEST_USER_OPERATION, detail__delivery=email)
    )


def messages_sent_today(pool: UserPool) -> int:
    """E-mails this project made Cognito send for the pool today (UTC): resends and invitations, from the audit log."""
    return _emails_sent_since(start_of_today()).filter(pool_id=pool.pool_id).count()


def messages_sent_today_by_pool() -> dict[str, int]:
    """messages_sent_today for every pool at once: pool id -> e-mails sent today (one grouped query over
    today's audit events)."""
    rows = (
        _emails_sent_since(start_of_today()).order_by().values("pool_id").annotate(n=Count("id"))
        .values_list("pool_id", "n")
    )
    return dict(rows)


def default_email_warning(pool: UserPool) -> str | None:
    """A warning for pools that send through Cognito's default e-mail (a few dozen messages a day per account)."""
    if not uses_cognito_default_email(pool):
        return None
    return (
        f"{pool.name or pool.pool_id} sends e-mail through Cognito's default e-mail (EmailSendingAccount "
        f"COGNITO_DEFAULT), which allows only a few dozen messages a day per account: "
        f"{messages_sent_today(pool)} already sent today for this pool from here."
    )


def latest_code_delivery(*, user: CognitoUser) -> AuditEvent | None:
    """The newest audit event of a resend for this user that reached Cognito (sent or failed)."""
    return (
        AuditEvent.objects.filter(pool_id=user.pool.pool_id, object_type="user", object_id=user.username)
        .filter(
            Q(action=Action.RESEND_CODE)
            | Q(action__in=[Action.APPLIED, Action.FAILED], detail__operation=RESEND_OPERATION)
        )
        .order_by("-created_at", "-id")
        .first()
    )


def audit_chain_alarm() -> AuditVerification | None:
    """The latest verification of the audit chain if it found the chain broken, else None."""
    latest = AuditVerification.objects.order_by("-id").first()
    return latest if latest is not None and not latest.ok else None


# The directory home ---------------------------------------------------------------------------------

# Cognito's default e-mail (EmailSendingAccount COGNITO_DEFAULT) sends at most 50 messages a day.
# https://docs.aws.amazon.com/cognito/latest/developerguide/quotas.html
DEFAULT_EMAIL_DAILY_LIMIT = 50
OPEN_CHANGE_STATUSES = (
    PendingChange.Status.PENDING, PendingChange.Status.APPLYING, PendingChange.Status.FAILED,
    PendingChange.Status.CONFLICT,
)


def latest_sync_runs(pools: list[UserPool]) -> tuple[dict[int, SyncRun], dict[int, SyncRun]]:
    """Each pool's newest sync run that was not skipped, and its newest complete successful one (not a
    resumed run, whose count leaves out what it took over): two queries through the (pool, status,
    started_at) index, whatever the number of runs or users."""
    runs = SyncRun.objects.filter(pool=OuterRef("pk")).order_by("-started_at", "-id")
    latest = Subquery(runs.exclude(status=SyncRun.Status.SKIPPED).values("pk")[:1])
    complete = Subquery(
        runs.filter(status=SyncRun.Status.SUCCEEDED, resumed_from__isnull=True).values("pk")[:1]
    )
    pairs = list(
        UserPool.objects.filter(pk__in=[p.pk for p in pools]).order_by()
        .annotate(latest=latest, complete=complete).values_list("pk", "latest", "complete")
    )
    wanted = {pk for _, a, b in pairs for pk in (a, b) if pk is not None}
    by_id = SyncRun.objects.in_bulk(wanted) if wanted else {}
    return (
        {pool: by_id[a] for pool, a, _ in pairs if a in by_id},
        {pool: by_id[b] for pool, _, b in pairs if b in by_id},
    )


def sync_interval_minutes(pool: UserPool) -> int:
    if pool.sync_interval_minutes is not None:
        return pool.sync_interval_minutes
    return settings.COGNITO_SYNC_INTERVAL_MINUTES


def sync_health(
    pool: UserPool, latest: SyncRun | None, complete: SyncRun | None, *, now: datetime | None = None
) -> tuple[str, str]:
    """(level, explanation) of a pool's pulls: `ok`, `running`, `stale` (no successful pull for three
    scheduled intervals), `failing` (the last pull failed) or `never`."""
    now = now or timezone.now()
    if latest is None:
        return "never", "Never synced."
    if latest.status == SyncRun.Status.RUNNING:
        return "running", f"A pull is running (phase {latest.phase or 'starting'})."
    if latest.status == SyncRun.Status.FAILED:
        reason = (latest.error or "no reason recorded").strip().splitlines()[0][:200]
        return "failing", f"The last pull failed: {reason}"
    interval = sync_interval_minutes(pool)
    last_ok = (complete.finished_at or complete.started_at) if complete else None
    last_ok = max(filter(None, [last_ok, latest.finished_at]), default=None)
    if interval and last_ok and now - last_ok > timedelta(minutes=3 * interval):
        return "stale", f"No successful pull for over {3 * interval} minutes (three scheduled intervals)."
    return "ok", "The last pull succeeded."


def users_by_day(*, days: int = 30, now: datetime | None = None) -> dict[int, dict]:
    """pool pk -> {date: users}: per UTC day, the most users a complete successful pull listed (its
    `seen`), over the last `days` days. One grouped query over the runs of those days."""
    since = (now or timezone.now()) - timedelta(days=days)
    rows = (
        SyncRun.objects.filter(started_at__gte=since, status=SyncRun.Status.SUCCEEDED, resumed_from__isnull=True)
        .order_by().annotate(day=TruncDate("started_at")).values("pool_id", "day").annotate(users=Max("seen"))
        .values_list("pool_id", "day", "users")
    )
    found: dict[int, dict] = {}
    for pool_pk, day, users in rows:
        found.setdefault(pool_pk, {})[day] = users
    return found


def recent_sync_durations(*, limit: int = 30) -> list[SyncRun]:
    """The newest finished pulls (succeeded or failed), oldest first, with their pool."""
    runs = (
        SyncRun.objects.filter(finished_at__isnull=False, status__in=[SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED])
        .select_related("pool").only("pk", "started_at", "finished_at", "status", "seen", "pool__name", "pool__pool_id")
        .order_by("-started_at", "-id")[:limit]
    )
    return list(reversed(runs))


def push_throughput(*, hours: int = 24, now: datetime | None = None) -> dict[datetime, int]:
    """Changes applied in Cognito per hour (UTC) over the last `hours` hours (the applied_at index)."""
    since = (now or timezone.now()) - timedelta(hours=hours)
    rows = (
        PendingChange.objects.filter(applied_at__gte=since, status=PendingChange.Status.APPLIED)
        .order_by().annotate(hour=TruncHour("applied_at")).values("hour").annotate(n=Count("id"))
        .values_list("hour", "n")
    )
    return dict(rows)


def open_change_counts() -> dict[int, dict[str, int]]:
    """pool pk -> {status: count} for changes pending, applying, failed or in conflict (the status
    index: the applied and discarded history is never read)."""
    rows = (
        PendingChange.objects.filter(status__in=OPEN_CHANGE_STATUSES).order_by()
        .values("pool_id", "status").annotate(n=Count("id")).values_list("pool_id", "status", "n")
    )
    found: dict[int, dict[str, int]] = {}
    for pool_pk, status, n in rows:
        found.setdefault(pool_pk, {})[status] = n
    return found


def latest_audit_events(*, limit: int = 10) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("-created_at", "-id")[:limit])


# --- Users by any attribute -------------------------------------------------------------------------------------
# A criterion is `<attribute>__<operator>__<value>` in the changelist's `attr` query parameter, repeated for
# several (all must hold). Equality is `attributes @> {"name": "value"}`, served on PostgreSQL by the GIN
# jsonb_path_ops index of migration 0010; starts-with and contains first narrow the rows with ILIKE on the
# attributes' JSON text (the pg_trgm GIN index of the same migration), then check the one attribute exactly.

ATTRIBUTE_OPERATORS = {"eq": "equals", "sw": "starts with", "co": "contains"}
MAX_ATTRIBUTE_CRITERIA = 10
# Cognito's attribute names are at most 32 characters (custom: plus up to 20).
MAX_ATTRIBUTE_NAME_LENGTH = 32
_CRITERION = re.compile(r"^(?P<name>.*?)__(?P<op>eq|sw|co)__(?P<value>.*)$", re.DOTALL)


@dataclass(frozen=True)
class AttributeCriterion:
    """One condition on a user's attribute: `name` `operator` `value`."""

    name: str
    operator: str
    value: str

    @property
    def param(self) -> str:
        return f"{self.name}__{self.operator}__{self.value}"

    def __str__(self) -> str:
        return f"{self.name} {ATTRIBUTE_OPERATORS.get(self.operator, self.operator)} {self.value!r}"


def check_attribute_criterion(name: str, operator: str, value: str) -> str | None:
    """The rule a criterion breaks, in words naming the part, or None when it is valid."""
    if not name.strip():
        return "the attribute name is empty."
    if name != name.strip() or any(c.isspace() or not c.isprintable() for c in name):
        return f"the attribute name {name!r} contains spaces or control characters."
    if len(name) > MAX_ATTRIBUTE_NAME_LENGTH:
        return f"the attribute name is longer than {MAX_ATTRIBUTE_NAME_LENGTH} characters, Cognito's limit."
    if operator not in ATTRIBUTE_OPERATORS:
        known = ", ".join(f"{k} ({v})" for k, v in ATTRIBUTE_OPERATORS.items())
        return f"unknown operator {operator!r}; use one of {known}."
    if value == "":
        return "the value is empty."
    if len(value) > MAX_ATTRIBUTE_LENGTH:
        return f"the value is {len(value)} characters long; an attribute holds at most {MAX_ATTRIBUTE_LENGTH}."
    if "\x00" in value:
        return "the value contains a NUL character."
    return None


def parse_attribute_criteria(params: list[str]) -> tuple[list[AttributeCriterion], list[str]]:
    """Criteria from `attr` query values (`name__op__value`), and a message for each bad one."""
    criteria: list[AttributeCriterion] = []
    errors: list[str] = []
    for raw in params:
        match = _CRITERION.match(raw)
        if match is None:
            parts = raw.split("__", 2)
            if len(parts) == 3:
                name, operator, value = parts
            else:
                errors.append(f"Attribute search {raw!r}: write it as attribute__operator__value, e.g. "
                              f"email__sw__alice (operators: {', '.join(ATTRIBUTE_OPERATORS)}).")
                continue
        else:
            name, operator, value = match["name"], match["op"], match["value"]
        problem = check_attribute_criterion(name, operator, value)
        if problem:
            errors.append(f"Attribute search {name or '(no name)'} {operator}: {problem}")
        else:
            criteria.append(AttributeCriterion(name, operator, value))
    if len(criteria) > MAX_ATTRIBUTE_CRITERIA:
        errors.append(f"Attribute search: at most {MAX_ATTRIBUTE_CRITERIA} criteria at once.")
    return criteria, errors


# Attributes the search texts leave out: `sub` (a random UUID: its trigrams would cost every write the
# most and serve nothing), searched by its own column's index or by the exact value.
NOT_IN_SEARCH_TEXT = {"sub"}


class _ILike(Lookup):
    """`lhs ILIKE rhs` with a pattern the caller escaped."""

    lookup_name = "ilike"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", [*lhs_params, *rhs_params]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text_match(pattern: str, *, queued: bool) -> Q:
    """Users whose search text matches `pattern` (ILIKE: pg_trgm's GIN index serves it) and, while
    a pull's catch-up is pending (`queued`), every user whose text is queued (`search_index`):
    those are checked directly, so the search misses no user the mirror holds.

    EXISTS, not IN: PostgreSQL then chooses by the pattern's selectivity between reading the
    texts' trigram index first (a rare value) and walking the list in its own order, looking each
    user's text up by primary key until the page is full (a common one). With queued users the
    condition is an OR, which leaves it the first way only: slower, and only until the catch-up."""
    match = Q(Exists(UserSearchText.objects.filter(_ILike(F("text"), pattern), user_id=OuterRef("pk"))))
    if queued:
        match |= Q(id__in=RawSQL(search_index.QUEUED_IDS_SQL, []))  # noqa: S611 - constant SQL, no input
    return match


# A starts-with or contains whose pattern PostgreSQL expects in more search texts than this is
# checked on the users alone, in the list's own order (the page fills, and the capped count ends,
# long before the matches would all be read through the trigram index and joined).
COMMON_TEXT_MATCHES = 20_000


def _criterion_q(
    criterion: AttributeCriterion, vendor: str, *, queued: bool = False, using: str | None = None
) -> Q:
    name, value = criterion.name, criterion.value
    attribute = KeyTextTransform(name, "attributes")
    if vendor != "postgresql":
        lookup = {"eq": Exact, "sw": IStartsWith, "co": IContains}[criterion.operator]
        return Q(lookup(attribute, value))
    if criterion.operator == "eq":
        return Q(attributes__contains={name: value})
    if name in NOT_IN_SEARCH_TEXT:
        lookup = IStartsWith if criterion.operator == "sw" else IContains
        return Q(lookup(attribute, value))
    if criterion.operator == "sw":
        # The search text holds one value a line, each after a line feed: the key is checked below.
        narrow = "%\n" + _like_escape(value) + "%"
        exact = _like_escape(value) + "%"
    else:
        narrow = exact = "%" + _like_escape(value) + "%"
    if search_index.estimated_texts(narrow, using=using) > COMMON_TEXT_MATCHES:
        return Q(_ILike(attribute, exact))
    return _text_match(narrow, queued=queued) & Q(_ILike(attribute, exact))


def attribute_equals(name: str, value: str, *, using: str | None = None) -> Q:
    """Users whose attribute `name` is exactly `value` (on PostgreSQL through the GIN
    jsonb_path_ops index, which serves any attribute: `sub` and `phone_number` have no other)."""
    vendor = connections[using or CognitoUser.objects.db].vendor
    return _criterion_q(AttributeCriterion(name, "eq", value), vendor)


def users_matching_attributes(
    queryset: QuerySet[CognitoUser], criteria: list[AttributeCriterion]
) -> QuerySet[CognitoUser]:
    """`queryset` narrowed to users whose attributes meet every criterion. Equality is exact; starts
    with and contains ignore case."""
    vendor = connections[queryset.db].vendor
    queued = vendor == "postgresql" and search_index.queued(using=queryset.db)
    for criterion in criteria:
        queryset = queryset.filter(_criterion_q(criterion, vendor, queued=queued, using=queryset.db))
    return queryset


def attribute_names(pools: QuerySet[UserPool]) -> list[str]:
    """Attribute names of these pools' schemas (standard and custom), for the search form's suggestions."""
    names: set[str] = set()
    for schema in pools.values_list("schema", flat=True):
        names.update(a["Name"] for a in schema or () if a.get("Name"))
    return sorted(names)
