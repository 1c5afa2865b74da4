"""POST data for a pool's Settings page: what the page shows now, with some fields changed."""

from __future__ import annotations

from typing import Any

from directory.admin.pool_settings import PoolSettingsForm
from directory.models import UserPool


def settings_post(pool: UserPool, **overrides: Any) -> dict[str, Any]:
    """The Settings form as the page renders it for `pool` (unchanged), then `overrides` (None drops a
    field: an unticked box). Booleans become a ticked box or nothing, as a browser posts them."""
    form = PoolSettingsForm(pool=UserPool.objects.get(pk=pool.pk))
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if value is True:
            data[name] = "on"
        elif value not in (False, None):
            data[name] = value
    for name, value in overrides.items():
        if value is None or value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    return data
