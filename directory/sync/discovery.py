"""Find the pools Cognito has in the configured regions: register new ones in the mirror, and mark
the ones Cognito no longer has as gone (their history kept)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import audit, mirror, outbox
from ..gateway import CognitoError, CognitoGateway, CognitoNotFound
from ..models import UserPool

GONE_REASON = "Not found in Cognito by discovery"

logger = logging.getLogger(__name__)


@dataclass
class Discovery:
    """What one discovery found: every pool listed, the new ones (and those back after being marked
    gone), the ones now marked gone, and the regions that could not be listed."""

    found: list[UserPool] = field(default_factory=list)
    new: list[UserPool] = field(default_factory=list)
    back: list[UserPool] = field(default_factory=list)
    gone: list[UserPool] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        text = (
            f"{len(self.found)} pool{'s' if len(self.found) != 1 else ''} found, {len(self.new)} new, "
            f"{len(self.gone)} gone"
        )
        if self.back:
            text += f", {len(self.back)} back"
        if self.errors:
            text += "; could not check: " + "; ".join(f"{region} ({error})" for region, error in self.errors.items())
        return text


def discover(
    *,
    regions: Iterable[str] | None = None,
    actor: str = "",
    source: str = audit.Source.DISCOVERY,
    pull_new: bool = True,
) -> Discovery:
    """ListUserPools in each region (COGNITO_REGIONS by default). A pool not in the mirror gets a
    placeholder row (its settings, and their audit events, come with its pull), audited `discovered`;
    a mirrored pool of that region that is not listed is described, and if Cognito answers
    ResourceNotFoundException it is marked gone (`mirror.pool_mark_gone`), audited `deleted`. A region
    whose listing fails marks nothing gone. With `pull_new`, new pools (and pools back) are pulled
    (a `sync_pool` task each, once committed). Sends ListUserPools, and DescribeUserPool only for
    mirrored pools missing from a listing. Idempotent."""
    result = Discovery()
    for region in regions or settings.COGNITO_REGIONS:
        gateway = CognitoGateway(region, purpose="interactive" if actor else "pull")
        try:
            summaries = list(gateway.list_user_pools())
        except CognitoError as exc:
            result.errors[region] = str(exc)
            continue
        listed = set()
        for summary in summaries:
            listed.add(summary["Id"])
            _register(result, region=region, summary=summary, actor=actor, source=source, pull=pull_new)
        missing = UserPool.objects.filter(region=region, deleted_at__isnull=True).exclude(pool_id__in=listed)
        for pool in missing.order_by("pk"):
            # ListUserPools is eventually consistent: only Cognito's "no such pool" makes it gone.
            try:
                gateway.describe_user_pool(pool.pool_id)
            except CognitoNotFound:
                _mark_gone(pool, actor=actor, source=source)
                result.gone.append(pool)
            except CognitoError as exc:
                result.errors[pool.pool_id] = str(exc)
    return result


def _register(result: Discovery, *, region: str, summary: dict, actor: str, source: str, pull: bool) -> None:
    with transaction.atomic():
        pool, created = UserPool.objects.get_or_create(
            pool_id=summary["Id"], defaults={"region": region, "name": summary.get("Name", "")}
        )
        if created:
            result.new.append(pool)
            action = audit.Action.DISCOVERED
        elif pool.is_gone:
            mirror.pool_unmark_gone(pool)
            result.back.append(pool)
            action = audit.Action.REAPPEARED
        else:
            result.found.append(pool)
            return
        audit.record(
            action=action,
            object_type="pool",
            object_id=pool.pool_id,
            object_repr=pool.name,
            pool_id=pool.pool_id,
            detail={"region": region},
            source=source,
            actor=actor,
        )
    result.found.append(pool)
    if pull:
        # Pulled once the row is committed: a new pool's settings, clients, groups and users.
        transaction.on_commit(lambda: _pull(pool.pk, actor))


def _pull(pool_pk: int, actor: str) -> None:
    try:
        outbox.enqueue_sync(pool_pk, source="discovery", actor=actor)
    except Exception as exc:  # noqa: BLE001 - the beat fan-out pulls a never-synced pool within a minute
        logger.warning("could not enqueue the pull of discovered pool %s (%s)", pool_pk, exc)


def _mark_gone(pool: UserPool, *, actor: str, source: str) -> None:
    with transaction.atomic():
        removed = mirror.pool_mark_gone(pool, reason=GONE_REASON, when=timezone.now())
        audit.record(
            action=audit.Action.DELETED,
            object_type="pool",
            object_id=pool.pool_id,
            object_repr=pool.name,
            pool_id=pool.pool_id,
            detail={"reason": GONE_REASON, "removed": removed},
            source=source,
            actor=actor,
        )


def discover_pools(*, regions: Iterable[str] | None = None) -> list[UserPool]:
    """The pools listed (new ones included), without pulling them; raises CognitoError when a
    region could not be listed."""
    result = discover(regions=regions, source=audit.Source.COMMAND, pull_new=False)
    if result.errors:
        raise CognitoError("; ".join(f"{key}: {error}" for key, error in result.errors.items()))
    return result.found
