"""Create test users from a pool's page: one at a time (in the request, temporary password shown
once) or many from a pattern or a CSV (a background bulk job). Prepended to UserPoolAdmin's URLs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from .. import passwords, selectors
from ..models import CognitoGroup, UserPool
from ..services import test_users, test_users_bulk

PERMISSION = "directory.create_test_user_cognitouser"
DELIVERY_CHOICES = [
    ("EMAIL", "EMAIL — Cognito e-mails the invitation"),
    ("SMS", "SMS — Cognito texts the invitation (needs a phone number)"),
    ("SUPPRESS", "SUPPRESS — send nothing (hand the password over yourself)"),
]
FIXED_ATTRIBUTES = ("email", "name", "phone_number")


def _put_errors(form: forms.Form, exc: ValidationError) -> None:
    """A service's ValidationError on the form: per field where the form has it, else above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.message_dict.items():
        if name in form.fields:
            for error in errors:
                form.add_error(name, error)
        elif name == NON_FIELD_ERRORS:
            form.add_error(None, errors)
        else:
            form.add_error(None, [e if e.startswith(name) else f"{name}: {e}" for e in errors])


def _groups_field(pool: UserPool) -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=CognitoGroup.objects.filter(pool=pool).order_by("precedence", "name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="AdminAddUserToGroup for each, right after the user is created.",
        error_messages={
            "invalid_choice": "groups: %(value)s is not a group of this pool.",
            "invalid_pk_value": "groups: %(pk)s is not a group of this pool.",
        },
    )


def _expires_field() -> forms.IntegerField:
    # No initial value: a test user is kept until the operator chooses an expiry.
    return forms.IntegerField(
        required=False,
        label="Expires in (days)",
        help_text=f"1 to {test_users.MAX_EXPIRES_IN_DAYS}; the user is deleted from Cognito then. Blank: never.",
        error_messages={"invalid": "expires_in_days must be a whole number of days."},
    )


def _identifier_help(pool: UserPool) -> str:
    if pool.username_attributes:
        label = test_users.identifier_labels(pool.username_attributes)
        return f"This pool signs in by {label}: leave blank, the {label} becomes the username."
    text = "Required: this pool signs in by username."
    if pool.alias_attributes:
        text += f" Aliases: {', '.join(pool.alias_attributes)} (the username cannot look like one)."
    return text


class CreateTestUserForm(forms.Form):
    """Built from the pool's settings: its identifier, required and custom attributes, groups and policy.

    Every field is optional to Django: the service checks the pool's rules and says which rule failed.
    """

    def __init__(self, *args: Any, pool: UserPool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = pool
        required = set(test_users.required_attributes(pool))
        signs_in_by = set(pool.username_attributes or [])
        self.fields["username"] = forms.CharField(required=False, label="username", help_text=_identifier_help(pool))
        self.attribute_names: list[str] = []
        for name in FIXED_ATTRIBUTES:
            bits = []
            if name in required:
                bits.append("required by this pool")
            if name in signs_in_by:
                bits.append("the username of this pool")
            if name == "phone_number":
                bits.append("E.164, e.g. +14155550100")
            self.fields[name] = forms.CharField(required=False, label=name, help_text="; ".join(bits).capitalize())
            self.attribute_names.append(name)
        for definition in test_users.creatable_attributes(pool):
            name = definition["Name"]
            if name in FIXED_ATTRIBUTES or not (definition.get("Required") or name.startswith("custom:")):
                continue
            bits = [definition.get("AttributeDataType", "String")]
            if definition.get("Required"):
                bits.append("required by this pool")
            if definition.get("Mutable") is False:
                bits.append("immutable: only set at creation")
            self.fields[name] = forms.CharField(required=False, label=name, help_text="; ".join(bits))
            self.attribute_names.append(name)
        self.fields["temporary_password"] = forms.CharField(
            required=False,
            strip=False,
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            help_text=self.policy_help(),
        )
        self.fields["delivery"] = forms.ChoiceField(
            choices=DELIVERY_CHOICES, initial=test_users.default_delivery(pool),
            error_messages={"invalid_choice": "delivery must be EMAIL, SMS or SUPPRESS."},
        )
        self.fields["email_verified"] = forms.BooleanField(
            required=False, label="Mark e-mail verified", help_text="Sets email_verified=true."
        )
        self.fields["groups"] = _groups_field(pool)
        self.fields["expires_in_days"] = _expires_field()

    def policy_help(self) -> str:
        rules = passwords.password_rules(self.pool.password_policy)
        needs = [label for key, label in (
            ("RequireUppercase", "an uppercase letter"), ("RequireLowercase", "a lowercase letter"),
            ("RequireNumbers", "a number"), ("RequireSymbols", "a symbol"),
        ) if rules.get(key)]
        policy = f"at least {passwords.minimum_length(self.pool.password_policy)} characters"
        if needs:
            policy += ", with " + ", ".join(needs)
        return (f"Blank: one is generated to this pool's policy ({policy}). Shown once on the next page; "
                f"never stored.")

    @property
    def fieldsets(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            ("User", {"fields": ("username", *self.attribute_names)}),
            ("Sign-in", {"fields": ("temporary_password", "delivery", "email_verified")}),
            ("Groups and expiry", {"fields": ("groups", "expires_in_days")}),
        ]


class CreateTestUsersForm(forms.Form):
    """Many test users from a pattern ({n} is replaced by start, start+1, …) or an uploaded CSV."""

    def __init__(self, *args: Any, pool: UserPool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = pool
        self.pattern_fields: list[str] = []
        if not pool.username_attributes:
            self.fields["username_pattern"] = forms.CharField(
                required=False, initial="qa-{n}", help_text="This pool signs in by username, e.g. qa-{n}."
            )
            self.pattern_fields.append("username_pattern")
        self.fields["email_pattern"] = forms.CharField(
            required=False, initial="qa+{n}@example.com", help_text="e.g. qa+{n}@example.com"
        )
        self.fields["name_pattern"] = forms.CharField(required=False, initial="QA tester {n}")
        self.fields["count"] = forms.IntegerField(
            required=False, initial=5, help_text=f"How many users, 1 to {test_users_bulk.BULK_MAX_ROWS}.",
            error_messages={"invalid": "count must be a whole number."},
        )
        self.fields["start"] = forms.IntegerField(
            required=False, initial=1, help_text="The first {n}.",
            error_messages={"invalid": "start must be a whole number."},
        )
        self.pattern_fields += ["email_pattern", "name_pattern", "count", "start"]
        self.fields["csv_file"] = forms.FileField(
            required=False,
            label="Or upload a CSV",
            help_text=(
                "Instead of the pattern: a header line of column names (username and attribute names, "
                f"e.g. email,name), then up to {test_users_bulk.BULK_MAX_ROWS} rows. A password column is refused."
            ),
        )
        delivery, help_text = test_users.default_delivery(pool), ""
        if delivery == "EMAIL" and selectors.uses_cognito_default_email(pool):
            # Many invitations at once would spend the day's e-mails of Cognito's default sender.
            delivery = "SUPPRESS"
            help_text = (f" This pool sends through Cognito's default e-mail, {selectors.DEFAULT_EMAIL_DAILY_LIMIT} "
                         "messages a day: SUPPRESS unless you choose EMAIL.")
        self.fields["delivery"] = forms.ChoiceField(
            choices=DELIVERY_CHOICES, initial=delivery,
            help_text="Cognito generates every temporary password and delivers it (or not, with SUPPRESS)."
            + help_text,
            error_messages={"invalid_choice": "delivery must be EMAIL, SMS or SUPPRESS."},
        )
        self.fields["email_verified"] = forms.BooleanField(required=False, label="Mark e-mail verified")
        self.fields["groups"] = _groups_field(self.pool)
        self.fields["expires_in_days"] = _expires_field()

    @property
    def fieldsets(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            ("Pattern", {"fields": tuple(self.pattern_fields)}),
            ("CSV", {"fields": ("csv_file",)}),
            ("Options", {"fields": ("delivery", "email_verified", "groups", "expires_in_days")}),
        ]


# Views -----------------------------------------------------------------------------------------------------


def _pool_for(model_admin, request, object_id) -> UserPool:
    """admin_view checks only is_staff: the permission and the object are checked here."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    pool = model_admin.get_object(request, unquote(object_id))
    if pool is None:
        raise Http404(f"No user pool with primary key {object_id!r}.")
    return pool


def _context(model_admin, request, pool: UserPool, title: str, **extra: Any) -> dict[str, Any]:
    request.current_app = model_admin.admin_site.name
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "original": pool,
        "change_url": reverse("admin:directory_userpool_change", args=[pool.pk],
                              current_app=model_admin.admin_site.name),
        **extra,
    }


def _form_context(form: forms.Form) -> dict[str, Any]:
    return {
        "form": form,
        "adminform": helpers.AdminForm(form, form.fieldsets, {}),
        "errors": helpers.AdminErrorList(form, []),
    }


@sensitive_variables("result")
def create_test_user_view(model_admin, request, object_id):
    """One test user, created in Cognito inside this request; the result page shows the temporary
    password once and is never cached. The password is not put in the session, a message or a log."""
    pool = _pool_for(model_admin, request, object_id)
    if request.method == "POST":
        form = CreateTestUserForm(request.POST, pool=pool)
        if form.is_valid():
            try:
                result = test_users.test_user_create(
                    pool=pool, data=form.cleaned_data, actor=request.user.get_username()
                )
            except ValidationError as exc:
                _put_errors(form, exc)
            else:
                # In e-mail / phone pools Cognito's username is the sub: name the user by what signs in.
                shown = (result.user.email or result.user.phone_number) if pool.username_attributes else ""
                context = _context(
                    model_admin, request, pool, f"Test user {shown or result.user.username} created",
                    result=result,
                    user_url=reverse("admin:directory_cognitouser_change", args=[result.user.pk],
                                     current_app=model_admin.admin_site.name),
                    create_url=reverse("admin:directory_userpool_create_test_user", args=[pool.pk]),
                )
                response = TemplateResponse(
                    request, "admin/directory/userpool/create_test_user_done.html", context
                )
                add_never_cache_headers(response)
                return response
    else:
        form = CreateTestUserForm(pool=pool)
    context = _context(
        model_admin, request, pool, f"Create a test user in {pool.name}",
        bulk_url=reverse("admin:directory_userpool_create_test_users", args=[pool.pk]),
        **_form_context(form),
    )
    response = TemplateResponse(request, "admin/directory/userpool/create_test_user.html", context)
    add_never_cache_headers(response)
    return response


def create_test_users_view(model_admin, request, object_id):
    """Many test users as a background bulk job: the operator lands on the job's page (progress,
    per-row results)."""
    pool = _pool_for(model_admin, request, object_id)
    if request.method == "POST":
        form = CreateTestUsersForm(request.POST, request.FILES, pool=pool)
        if form.is_valid():
            data = form.cleaned_data
            options = {k: data.get(k) for k in ("delivery", "email_verified", "groups", "expires_in_days")}
            try:
                upload = data.get("csv_file")
                if upload is not None:
                    rows = test_users_bulk.parse_csv(pool, upload.read())
                    job = test_users_bulk.test_users_bulk_start(
                        pool=pool, rows=rows, options=options, actor=request.user.get_username()
                    )
                else:
                    pattern = {
                        "username": data.get("username_pattern") or "",
                        "email": data.get("email_pattern") or "",
                        "name": data.get("name_pattern") or "",
                        "count": data.get("count") or 0,
                        "start": 1 if data.get("start") is None else data["start"],
                    }
                    job = test_users_bulk.test_users_bulk_start(
                        pool=pool, pattern=pattern, options=options, actor=request.user.get_username()
                    )
            except ValidationError as exc:
                _put_errors(form, exc)
            else:
                model_admin.message_user(
                    request, f"Creating {job.total} test user(s) in {pool.name} in the background.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:directory_bulkjob_change", args=[job.pk]))
    else:
        form = CreateTestUsersForm(pool=pool)
    context = _context(
        model_admin, request, pool, f"Create test users in {pool.name}",
        single_url=reverse("admin:directory_userpool_create_test_user", args=[pool.pk]),
        **_form_context(form),
    )
    return TemplateResponse(request, "admin/directory/userpool/create_test_users.html", context)


def test_user_urls(model_admin) -> list:
    """URLs prepended to UserPoolAdmin.get_urls (before the admin's catch-all)."""
    opts = model_admin.opts
    wrap = model_admin.admin_site.admin_view

    def single(request, object_id):
        return create_test_user_view(model_admin, request, object_id)

    def bulk(request, object_id):
        return create_test_users_view(model_admin, request, object_id)

    return [
        path(
            "<path:object_id>/create-test-user/",
            wrap(sensitive_post_parameters("temporary_password")(single)),
            name=f"{opts.app_label}_{opts.model_name}_create_test_user",
        ),
        path(
            "<path:object_id>/create-test-users/",
            wrap(bulk),
            name=f"{opts.app_label}_{opts.model_name}_create_test_users",
        ),
    ]


def test_user_context(model_admin, request, object_id) -> dict[str, Any]:
    """change_view context for the pool page's "Create test user" button."""
    return {
        "can_create_test_user": request.user.has_perm(PERMISSION),
        "create_test_user_url": reverse("admin:directory_userpool_create_test_user", args=[object_id]),
    }


test_user_urls.__test__ = False  # type: ignore[attr-defined]
test_user_context.__test__ = False  # type: ignore[attr-defined]
