"""Find the pools Cognito has in the configured regions and register them in the mirror."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from ..gateway import CognitoGateway
from ..models import UserPool


def discover_pools(*, regions: Iterable[str] | None = None) -> list[UserPool]:
    """ListUserPools in each region; return the mirror's UserPool rows for them, creating
    placeholders for new ones (their settings, and their audit events, come with the pull).

    Sends ListUserPools only. Idempotent.
    """
    pools: list[UserPool] = []
    for region in regions or settings.COGNITO_REGIONS:
        for summary in CognitoGateway(region).list_user_pools():
            pool, _ = UserPool.objects.get_or_create(
                pool_id=summary["Id"], defaults={"region": region, "name": summary.get("Name", "")}
            )
            pools.append(pool)
    return pools
