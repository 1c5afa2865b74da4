"""Changelist filters."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Exists, OuterRef

from ..models import CognitoGroup, GroupMembership

POOL_PARAM = "pool__id__exact"


class GroupFilter(admin.SimpleListFilter):
    """Users in one group: the selected pool's groups, or every group when no pool is selected."""

    title = "group"
    parameter_name = "group"

    def lookups(self, request, model_admin):
        groups = CognitoGroup.objects.select_related("pool").order_by("pool__name", "name")
        pool = request.GET.get(POOL_PARAM)
        if pool and pool.isdigit():
            return [(str(g.pk), g.name) for g in groups.filter(pool_id=int(pool))]
        return [(str(g.pk), f"{g.name} ({g.pool.name})") for g in groups]

    def queryset(self, request, queryset):
        value = self.value()
        if value in (None, ""):
            return queryset
        if not str(value).isdigit():
            raise IncorrectLookupParameters(f"group must be a number, not {value!r}")
        # A semi-join (EXISTS) rather than a join: for a big group PostgreSQL can then walk
        # the users in list order and probe the (group, user) index for each, stopping at a
        # page, instead of fetching and sorting every member.
        members = GroupMembership.objects.filter(group_id=int(value), user_id=OuterRef("pk"))
        return queryset.filter(Exists(members))
