"""A changelist paginator that never counts a large table row by row."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


class CappedCountPaginator(Paginator):
    """Counts at most `cap + 1` rows; an unfiltered list on PostgreSQL uses the planner's estimate.

    COUNT(*) over a million-row table is a full scan on PostgreSQL (MVCC keeps no row
    count). A filtered list is counted through a LIMIT subquery, so the database stops
    after `cap + 1` rows; past that the list says "10,000+". For the whole table,
    pg_class.reltuples (kept by VACUUM/ANALYZE) gives "about N" for free.
    """

    cap = 10_000

    def __init__(self, *args, cap: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if cap is not None:
            self.cap = cap
        self.count_is_exact = True
        self.count_display = ""

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not hasattr(qs, "query"):
            return super().count
        estimate = self._table_estimate(qs)
        if estimate is not None and estimate > self.cap:
            self.count_is_exact = False
            self.count_display = f"about {estimate:,}"
            return estimate
        counted = qs.order_by().values("pk")[: self.cap + 1].count()
        if counted > self.cap:
            self.count_is_exact = False
            self.count_display = f"{self.cap:,}+"
        else:
            self.count_display = f"{counted:,}"
        return counted

    @staticmethod
    def _table_estimate(qs) -> int | None:
        """reltuples of the model's table, for an unfiltered queryset on PostgreSQL; else None."""
        connection = connections[qs.db]
        if connection.vendor != "postgresql" or qs.query.where or qs.query.distinct:
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(qs.model._meta.db_table)],
            )
            row = cursor.fetchone()
        # -1 (never analysed) or 0 (tiny or empty): count for real, it is cheap then.
        if not row or row[0] is None or row[0] <= 0:
            return None
        return int(row[0])
