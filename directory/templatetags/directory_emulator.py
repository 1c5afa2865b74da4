"""Template tags for the local emulator's pages (shown only in local mode)."""

from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def emulator_local_mode() -> bool:
    """True when the admin runs against the local emulator (COGNITO_LOCAL_MODE)."""
    return bool(getattr(settings, "COGNITO_LOCAL_MODE", False))
