"""The users changelist's search by any attribute: criteria in the URL (`?attr=email__sw__alice`,
repeated for several, all must hold), a small form above the list, and the changelist that applies them."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.views.main import ChangeList
from django.http import HttpResponseRedirect

from .. import selectors
from ..models import UserPool

ATTR_PARAM = "attr"
# The form's rows (attribute name, operator, value), turned into `attr` values by a redirect.
FORM_PARAMS = ("an", "ao", "av")
POOL_PARAM = "pool__id__exact"


class AttributeSearchChangeList(ChangeList):
    """Django's changelist, plus the `attr` criteria: not a field lookup, so kept out of the filters
    (and kept in every link the list builds, pagination and filters included)."""

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(ATTR_PARAM, None)
        return lookup_params

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        criteria, errors = selectors.parse_attribute_criteria(request.GET.getlist(ATTR_PARAM))
        self.attribute_criteria = criteria
        self.attribute_errors = errors
        if errors:
            # A bad criterion lists nothing rather than everything, and says why.
            for error in errors:
                messages.error(request, error)
            return queryset.none()
        return selectors.users_matching_attributes(queryset, criteria)


class AttributeSearchMixin:
    """For the users' ModelAdmin: the changelist above, the form's data on it, the form's redirect."""

    def get_changelist(self, request, **kwargs):
        return AttributeSearchChangeList

    def get_changelist_instance(self, request):
        cl = super().get_changelist_instance(request)
        raw = request.GET.getlist(ATTR_PARAM)
        parsed = {c.param: c for c in getattr(cl, "attribute_criteria", [])}
        cl.attribute_rows = [
            {"name": parsed[r].name, "operator": parsed[r].operator, "value": parsed[r].value}
            if r in parsed else _raw_row(r)
            for r in raw
        ]
        cl.attribute_operators = list(selectors.ATTRIBUTE_OPERATORS.items())
        pool_id = request.GET.get(POOL_PARAM)
        pools = UserPool.objects.filter(pk=pool_id) if pool_id and pool_id.isdigit() else UserPool.objects.all()
        cl.attribute_names = selectors.attribute_names(pools)
        cl.attribute_hidden = [
            (key, value)
            for key, values in request.GET.lists()
            if key not in (ATTR_PARAM, "p", *FORM_PARAMS)
            for value in values
        ]
        return cl

    def changelist_view(self, request, extra_context=None):
        if any(key in request.GET for key in FORM_PARAMS):
            return HttpResponseRedirect(f"{request.path}?{criteria_query(request.GET)}")
        return super().changelist_view(request, extra_context)


def _raw_row(raw: str) -> dict[str, str]:
    name, _, rest = raw.partition("__")
    operator, _, value = rest.partition("__")
    return {"name": name, "operator": operator, "value": value}


def criteria_query(query) -> str:
    """The changelist's query string for the form's rows: each filled row becomes one `attr`
    value; other parameters (the pool filter, the search box) stay; the page goes back to 1."""
    names, operators, values = (query.getlist(k) for k in FORM_PARAMS)
    pairs = [
        (key, value)
        for key, vals in query.lists()
        if key not in (ATTR_PARAM, "p", *FORM_PARAMS)
        for value in vals
    ]
    for name, operator, value in zip(names, operators, values, strict=False):
        if name.strip() or value:
            pairs.append((ATTR_PARAM, f"{name.strip()}__{operator}__{value}"))
    return urlencode(pairs)
