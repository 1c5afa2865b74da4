"""django-axes' record of login attempts in the admin, with a permission on its one action (its own
admin declares none, so anyone who may view the attempts could clear them)."""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin


class GuardedAccessAttemptAdmin(AccessAttemptAdmin):
    """Clearing expired attempts needs `delete_accessattempt`."""

    @admin.action(permissions=["delete"], description="Clean up expired attempts")
    def cleanup_expired_attempts(self, request, queryset):
        return super().cleanup_expired_attempts(request, queryset)


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, GuardedAccessAttemptAdmin)
