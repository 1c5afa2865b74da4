"""Hostile input on every admin page never answers 500: hypothesis-generated list filters, searches,
orderings and date-hierarchy parts on every changelist, values in every field of every form the
admin renders, and CSV uploads. Each bad value is a 400 or a form error naming the field."""

from __future__ import annotations

from html.parser import HTMLParser
from http import HTTPStatus

import pytest
from django.contrib import admin
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directory.models import UserPool
from tests.admin_helpers import admin_urls, one_of_each

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
# Text an attacker or a clumsy paste sends: NUL and control characters, very long runs, digits
# past any range, unicode (no lone surrogates: they cannot be sent as UTF-8 at all).
TEXT = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40),
    st.sampled_from(["\x00", "a\x00b", "10000", "-1", "99999999999999999999", "0", "", " ", "%", "\\", "'", '"']),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.just("x" * 140_000),
)


class _Forms(HTMLParser):
    """The field names of the POST forms that post back to the page itself."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._in_form = (attrs.get("method") or "").lower() == "post" and not attrs.get("action")
        elif self._in_form and tag in {"input", "select", "textarea"} and attrs.get("name"):
            if attrs.get("type") not in {"submit", "hidden", "file"} and attrs["name"] != "csrfmiddlewaretoken":
                self.fields.append(attrs["name"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def _changelist_keys(model) -> list[str]:
    model_admin = admin.site.get_model_admin(model)
    keys = ["q", "o", "p", "all", "_facets", "e"]
    for item in model_admin.list_filter or ():
        name = item if isinstance(item, str) else getattr(item, "parameter_name", None)
        if name:
            keys += [name, f"{name}__exact", f"{name}__id__exact", f"{name}__isnull"]
    if model_admin.date_hierarchy:
        keys += [f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")]
    return keys


def _changelist_probe(client, url: str, keys: list[str]):
    @FUZZ
    @given(params=st.dictionaries(st.sampled_from(keys), TEXT, min_size=1, max_size=3))
    def probe(params):
        response = client.get(url, params)
        assert response.status_code != HTTPStatus.INTERNAL_SERVER_ERROR, (url, params)

    return probe


def _form_probe(client, url: str, name: str, fields: list[str]):
    @FUZZ
    @given(values=st.fixed_dictionaries({field: TEXT for field in fields}))
    def probe(values):
        response = client.post(url, values)
        assert response.status_code != HTTPStatus.INTERNAL_SERVER_ERROR, (name, values)

    return probe


def test_changelist_parameters_never_answer_500(admin_client, django_user_model):
    one_of_each(django_user_model)
    checked = 0
    for model in admin.site._registry:  # noqa: SLF001 - every registered model, third-party ones too
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        keys = _changelist_keys(model)

        _changelist_probe(admin_client, url, keys)()
        checked += 1
    assert checked >= 15


def test_every_admin_form_refuses_bad_values_without_500(admin_client, django_user_model):
    objects = one_of_each(django_user_model)
    forms = 0
    for _, name, url in admin_urls(objects):
        page = admin_client.get(url)
        if page.status_code != HTTPStatus.OK or "text/html" not in page.get("Content-Type", ""):
            continue
        parser = _Forms()
        parser.feed(page.content.decode())
        fields = sorted(set(parser.fields))
        if not fields or name.endswith("_delete"):
            continue
        forms += 1

        _form_probe(admin_client, url, name, fields)()
    assert forms >= 5


@pytest.mark.parametrize(
    "content",
    [
        b"email,name\r\nann@example.com,Ann\x00\r\n",
        b"email,name\rann@example.com,Ann\rbob@example.com,Bob\r",
        b"email,name\n" + b"ann@example.com," + b"x" * 140_000 + b"\n",
        b"\xff\xfe\x00bad",
        b"",
    ],
)
def test_csv_uploads_with_bad_bytes_get_a_field_error(admin_client, content):
    from django.core.files.uploadedfile import SimpleUploadedFile

    pool = UserPool.objects.create(
        pool_id="us-east-1_fuzz", region="us-east-1", name="fuzz",
        schema=[{"Name": "email", "AttributeDataType": "String"}, {"Name": "name", "AttributeDataType": "String"}],
    )
    url = reverse("admin:directory_userpool_create_test_users", args=[pool.pk])
    response = admin_client.post(url, {"csv_file": SimpleUploadedFile("users.csv", content), "delivery": "SUPPRESS"})
    assert response.status_code in {HTTPStatus.OK, HTTPStatus.FOUND}
    if response.status_code == HTTPStatus.OK and b"\r" in content and b"\x00" not in content and len(content) < 1000:
        return  # CR-only line ends are read as lines: no error is expected
    if response.status_code == HTTPStatus.OK and content:
        assert "csv_file" in response.content.decode()
