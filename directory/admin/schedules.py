"""Beat's periodic tasks in the admin: django-celery-beat's own admin, with a permission on every
action (its enable / disable / toggle / run actions declare none, so view-only staff could stop
the outbox sweeper) and each switch audited; its raw schedule tables are not shown."""

from __future__ import annotations

from django.contrib import admin, messages
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from ..sync import schedule


class GuardedPeriodicTaskAdmin(PeriodicTaskAdmin):
    """Switching or running a periodic task needs `change_periodictask`."""

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        changed = schedule.periodic_tasks_set_enabled(
            task_ids=list(queryset.values_list("pk", flat=True)), enabled=enabled, actor=request.user.get_username()
        )
        state = "enabled" if enabled else "disabled"
        self.message_user(request, f"{changed} task(s) {state}.", messages.SUCCESS if changed else messages.INFO)

    @admin.action(permissions=["change"], description="Enable selected tasks")
    def enable_tasks(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(permissions=["change"], description="Disable selected tasks")
    def disable_tasks(self, request, queryset):
        self._set_enabled(request, queryset, False)

    @admin.action(permissions=["change"], description="Toggle activity of selected tasks")
    def toggle_tasks(self, request, queryset):
        actor = request.user.get_username()
        on = list(queryset.filter(enabled=True).values_list("pk", flat=True))
        off = list(queryset.filter(enabled=False).values_list("pk", flat=True))
        changed = schedule.periodic_tasks_set_enabled(task_ids=on, enabled=False, actor=actor)
        changed += schedule.periodic_tasks_set_enabled(task_ids=off, enabled=True, actor=actor)
        self.message_user(request, f"{changed} task(s) toggled.", messages.SUCCESS if changed else messages.INFO)

    @admin.action(permissions=["change"], description="Run selected tasks")
    def run_tasks(self, request, queryset):
        return super().run_tasks(request, queryset)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, GuardedPeriodicTaskAdmin)
# Pools are scheduled on their own pages (Sync schedule); the system's tasks come with their
# schedules from a migration. The raw schedule tables stay out of the admin: nothing here needs
# them, and their forms answer some inputs with a 500 (celery's crontab parser raises).
for schedule_model in (ClockedSchedule, CrontabSchedule, IntervalSchedule, SolarSchedule):
    admin.site.unregister(schedule_model)
