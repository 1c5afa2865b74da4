"""Creating user pools (the console's quick setup, plus every setting of the pool's Settings page)
and adding app clients. Cognito is called in the request through services.provisioning; a new
client's secret is rendered once in the POST's response and kept nowhere."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from ..models import UserPool
from ..services import clients as client_services
from ..services import provisioning
from ..services.provisioning import ClientSpec, PoolSpec
from ..settings_catalog import POOL_SETTINGS_BY_NAME
from ..sync.lease import sync_pool
from .base import form_page_context
from .groups import add_errors
from .widgets import LinesField

CREATION_ONLY = "Cannot be changed after the pool is created."
# Service error keys that belong to a field of another name on these forms.
ERROR_FIELDS = {"password_policy": "minimum_length", "allow_admin_create_user_only": "self_sign_up"}
# The page that shows a secret: no caching, no referrer, no script but this app's own.
SECRET_PAGE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
}


def _choices(table: dict[str, str]) -> list[tuple[str, str]]:
    return list(table.items())


def custom_attribute_lines(pool: UserPool) -> list[str]:
    """A pool's custom attributes as the create form writes them (`name:Type`)."""
    return [
        f"{a['Name'].removeprefix('custom:')}:{a.get('AttributeDataType', 'String')}"
        for a in pool.schema or [] if a.get("Name", "").startswith("custom:")
    ]


class UserPoolCreateForm(forms.Form):
    """The console's quick setup, then "More settings": the fields of the pool's Settings form, so a setting
    added there is offered here too. clean() applies the Settings form's and the services' rules."""

    region = forms.ChoiceField(help_text=CREATION_ONLY)
    pool_name = forms.CharField(label="User pool name", help_text="1 to 128 letters, digits, spaces or + = , . @ -.")
    application_type = forms.ChoiceField(
        choices=_choices(provisioning.APPLICATION_TYPES), widget=forms.RadioSelect,
        help_text="Decides the app client: single-page and mobile apps get no secret and SRP sign-in "
        "(ALLOW_USER_SRP_AUTH, ALLOW_REFRESH_TOKEN_AUTH); a traditional web app gets a client secret and the "
        "authorization-code grant to the return URL. Whether a client has a secret cannot change afterwards.",
    )
    app_client_name = forms.CharField(label="Name your application", help_text="The app client's name.")
    sign_in_identifiers = forms.MultipleChoiceField(
        choices=_choices(provisioning.SIGN_IN_IDENTIFIERS), widget=forms.CheckboxSelectMultiple,
        label="Options for sign-in identifiers",
        help_text="With username, e-mail and phone number become aliases; without it, they are the username. "
        + CREATION_ONLY,
    )
    case_sensitive = forms.BooleanField(
        required=False, label="Case-sensitive sign-in",
        help_text="Off (the console's default): User@Example.com and user@example.com are the same user. "
        + CREATION_ONLY,
    )
    self_sign_up = forms.BooleanField(
        required=False, label="Enable self-registration", help_text="Off: only administrators create users.",
    )
    required_attributes = forms.MultipleChoiceField(
        choices=[(name, name) for name in provisioning.STANDARD_ATTRIBUTES], widget=forms.CheckboxSelectMultiple,
        required=False, label="Required attributes for sign-up",
        help_text="Signing in by e-mail needs email; by phone, phone_number. " + CREATION_ONLY,
    )
    custom_attributes = LinesField(
        required=False, label="Custom attributes",
        help_text="One per line as name:Type (String, Number, DateTime, Boolean), e.g. department:String. More can "
        "be added later; none can ever be removed.",
    )
    return_url = forms.CharField(
        required=False, label="Add a return URL", widget=forms.TextInput(attrs={"size": 60}),
        help_text="Where users go after signing in (https, or http://localhost). Optional for single-page and mobile "
        "apps; a traditional web app needs one.",
    )
    copy_messages = forms.BooleanField(
        required=False, label="Copy the message templates",
        help_text="The verification and invitation messages of the pool this one is made like.",
    )
    like = forms.IntegerField(required=False, widget=forms.HiddenInput)

    quick_setup = (
        "region", "application_type", "app_client_name", "pool_name", "sign_in_identifiers", "case_sensitive",
        "self_sign_up", "required_attributes", "custom_attributes", "return_url",
    )

    def __init__(self, *args: Any, settings_form: type[forms.Form], regions: list[str],
                 like: UserPool | None = None, **kwargs: Any) -> None:
        self.settings_form = settings_form
        self.regions = regions
        self.like_pool = like
        blank = settings_form(pool=like or UserPool())
        initial = {
            "region": regions[0] if regions else "", "application_type": "spa", "sign_in_identifiers": ["email"],
            "required_attributes": ["email"], "self_sign_up": True, "case_sensitive": False,
        }
        # The Settings form's fields start at the pool's values (a clone's) or a blank pool's.
        settings_initial = {name: field.initial for name, field in blank.fields.items()}
        if like is None:
            # A new pool starts at the console's defaults (each setting's catalogue entry says them).
            settings_initial.update({name: POOL_SETTINGS_BY_NAME[name].default for name in blank.fields
                                     if name in POOL_SETTINGS_BY_NAME})
        else:
            initial.update(clone_initial(like))
        super().__init__(*args, initial={**settings_initial, **initial, **kwargs.pop("initial", {})}, **kwargs)
        self.fields["region"].choices = [(r, r) for r in regions]
        if like is None:
            del self.fields["copy_messages"]
        # The Settings form's fields, but those the quick setup asks itself (self sign-up, the pool name).
        self.settings_fields: list[str] = []
        for name, field in blank.fields.items():
            # A disabled field there is a setting shown locked (creation-only): the quick setup asks for those.
            if name not in self.fields and name not in provisioning.QUICK_SETUP_SETTINGS and not field.disabled:
                self.fields[name] = copy.deepcopy(field)
                self.settings_fields.append(name)
        self.spec: PoolSpec | None = None

    def fieldsets(self) -> list[tuple[str, dict[str, Any]]]:
        sets = [
            ("Application", {"fields": ("region", "application_type", "app_client_name", "return_url")}),
            ("User pool", {"fields": ("pool_name",)}),
            ("Sign-in and sign-up (chosen once)", {"fields": (
                "sign_in_identifiers", "case_sensitive", "self_sign_up", "required_attributes", "custom_attributes",
            )}),
        ]
        groups = getattr(self.settings_form, "fieldsets", None)
        if groups:
            placed = set()
            for title, options in groups:
                names = [n for n in options["fields"] if n in self.settings_fields]
                placed.update(names)
                if names:
                    sets.append((f"More settings: {title}", {"fields": names}))
            rest = [n for n in self.settings_fields if n not in placed]
            if rest:
                sets.append(("More settings", {"fields": rest}))
        else:
            sets.append(("More settings", {"fields": self.settings_fields}))
        if "copy_messages" in self.fields:
            sets.append(("Copied from the pool this one is made like", {"fields": ("copy_messages", "like")}))
        return sets

    def _parse_custom(self, lines: list[str]) -> list[tuple[str, str]]:
        parsed = []
        for line in lines:
            name, _, kind = line.partition(":")
            name = name.strip()
            if name.startswith("custom") and kind and ":" in kind:  # "custom:name:Type"
                name, _, kind = kind.partition(":")
            parsed.append((name.strip(), (kind or "String").strip()))
        return parsed

    def clean(self):
        cleaned = super().clean()
        settings_form = self.settings_form(self.data, pool=UserPool())
        if not settings_form.is_valid():
            for name, errors in settings_form.errors.items():
                if name in self.settings_fields and name not in self.errors:
                    for error in errors:
                        self.add_error(name, error)
                elif name == "__all__":
                    for error in errors:
                        self.add_error(None, error)
        # Every setting as the operator left it (the console's defaults included), not only what differs
        # from a blank pool: CreateUserPool then holds exactly what the page showed.
        cleaned_settings = getattr(settings_form, "cleaned_data", {}) or {}
        changes = {name: cleaned_settings[name] for name in self.settings_fields if name in cleaned_settings}
        if self.errors:
            return cleaned
        templates: dict[str, Any] = {}
        if cleaned.get("copy_messages") and self.like_pool is not None:
            templates = provisioning.pool_templates(self.like_pool)
        self.spec = PoolSpec(
            region=cleaned["region"], pool_name=cleaned["pool_name"].strip(),
            application_type=cleaned["application_type"], app_client_name=cleaned["app_client_name"].strip(),
            sign_in_identifiers=list(cleaned["sign_in_identifiers"]), case_sensitive=cleaned["case_sensitive"],
            self_sign_up=cleaned["self_sign_up"], required_attributes=list(cleaned["required_attributes"]),
            return_url=cleaned["return_url"].strip(),
            custom_attributes=self._parse_custom(cleaned["custom_attributes"]),
            settings=changes, templates=templates,
        )
        try:
            provisioning.validate_pool_spec(self.spec, regions=self.regions)
        except ValidationError as exc:
            add_errors(self, exc, aliases=ERROR_FIELDS)
        return cleaned


def clone_initial(pool: UserPool) -> dict[str, Any]:
    """The quick-setup answers that make a pool like `pool` (its Settings come from the Settings form)."""
    client = pool.app_clients.order_by("pk").first()
    return {
        "region": pool.region,
        "pool_name": f"{pool.name}-copy"[:128],
        "sign_in_identifiers": [i for i in pool.sign_in_identifiers if i in provisioning.SIGN_IN_IDENTIFIERS],
        "case_sensitive": bool(pool.username_case_sensitive),
        "self_sign_up": not pool.allow_admin_create_user_only,
        "required_attributes": [n for n in pool.required_attributes if n in provisioning.STANDARD_ATTRIBUTES],
        "custom_attributes": custom_attribute_lines(pool),
        "application_type": "web" if client is not None and client.has_secret else "spa",
        "app_client_name": client.name if client is not None else f"{pool.name}-copy-app"[:128],
        "return_url": (client.callback_urls or [""])[0] if client is not None else "",
        "copy_messages": True,
        "like": pool.pk,
    }


def _secret_page(request, context: dict[str, Any]) -> TemplateResponse:
    response = TemplateResponse(request, "admin/directory/provisioning/created.html", context)
    response._csp_config = SECRET_PAGE_CSP  # django-csp's per-response policy
    response["Referrer-Policy"] = "no-referrer"
    add_never_cache_headers(response)
    return response


def pool_add_view(model_admin, request, *, settings_form: type[forms.Form]):
    """userpool/add/ (and ?like=<pk>): create a pool and its app client in Cognito now, pull it, land on it.
    `admin_view` only checks is_staff, so the permission is checked here."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    like = None
    like_pk = request.POST.get("like") or request.GET.get("like")
    if like_pk:
        like = UserPool.objects.filter(pk=like_pk).first() if str(like_pk).isdigit() else None
        if like is None or not model_admin.has_view_permission(request, like):
            raise PermissionDenied
    regions = list(settings.COGNITO_REGIONS)
    actor = request.user.get_username()
    if request.method == "POST":
        form = UserPoolCreateForm(request.POST, settings_form=settings_form, regions=regions, like=like)
        if form.is_valid() and form.spec is not None:
            try:
                created = provisioning.user_pool_create(spec=form.spec, regions=regions, actor=actor)
            except ValidationError as exc:
                add_errors(form, exc, aliases=ERROR_FIELDS)
            else:
                return _pool_created(model_admin, request, created, form.spec)
    else:
        form = UserPoolCreateForm(settings_form=settings_form, regions=regions, like=like)
    title = f"Create a user pool like {like.name}" if like else "Create a user pool"
    context = form_page_context(model_admin, request, title=title, form=form, fieldsets=form.fieldsets(), like=like,
                       changelist_url=reverse("admin:directory_userpool_changelist"))
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/directory/provisioning/create_pool.html", context)


def _pool_created(model_admin, request, created: provisioning.Created, spec: PoolSpec):
    pool = created.pool
    run = sync_pool(pool=pool, source="admin", actor=request.user.get_username())
    pool_url = reverse("admin:directory_userpool_change", args=[pool.pk])
    if run.status != "succeeded":
        model_admin.message_user(
            request, f"{pool.name} was created in Cognito, but mirroring it failed ({run.error}); "
            "the next sync or discovery fills it in.", messages.WARNING,
        )
    if created.client_error:
        model_admin.message_user(
            request, f"User pool {pool.name} ({pool.pool_id}) was created, but its app client was not: "
            f"{created.client_error}. The pool is kept; add a client from its page.", messages.ERROR,
        )
    if created.secret:
        context = {
            **model_admin.admin_site.each_context(request), "opts": model_admin.opts,
            "title": f"User pool {pool.name} created", "pool": pool, "pool_url": pool_url,
            "client_id": created.client_id, "client_name": created.client_name, "secret": created.secret,
            "application_type": provisioning.APPLICATION_TYPES[spec.application_type],
        }
        request.current_app = model_admin.admin_site.name
        return _secret_page(request, context)
    if not created.client_error:
        model_admin.message_user(
            request, f"User pool {pool.name} ({pool.pool_id}) and app client {created.client_name} "
            f"({created.client_id}) created in Cognito.", messages.SUCCESS,
        )
    return HttpResponseRedirect(pool_url)


# App clients ----------------------------------------------------------------------------------


class AppClientCreateForm(forms.Form):
    """A new app client: the application type's preset, and any value given here instead."""

    pool = forms.ModelChoiceField(queryset=UserPool.objects.all(), help_text="The user pool the client belongs to.")
    client_name = forms.CharField(label="App client name", help_text="1 to 128 letters, digits, spaces or + = , . @ -.")
    application_type = forms.ChoiceField(
        choices=_choices(provisioning.APPLICATION_TYPES), widget=forms.RadioSelect,
        help_text="Fields left blank below follow the type: single-page and mobile apps get no secret and "
        "ALLOW_USER_SRP_AUTH + ALLOW_REFRESH_TOKEN_AUTH; a web app gets a secret and the code grant.",
    )
    generate_secret = forms.NullBooleanField(
        required=False, label="Client secret",
        widget=forms.Select(choices=[("unknown", "As the application type decides"), ("true", "Generate a secret"),
                                     ("false", "No secret")]),
        help_text="Cannot be changed after the client is created. A secret is shown once, on the next page.",
    )
    explicit_auth_flows = forms.MultipleChoiceField(
        choices=(), required=False, widget=forms.CheckboxSelectMultiple, label="Authentication flows",
        help_text="None ticked: as the application type decides. Only ALLOW_ flows are offered; Cognito refuses a "
        "mix with the legacy values.",
    )
    callback_urls = LinesField(required=False, label="Callback URLs", help_text="One per line; https or http://localhost.")
    logout_urls = LinesField(required=False, label="Sign-out URLs", help_text="One per line.")
    allowed_oauth_flows = forms.MultipleChoiceField(
        choices=(), required=False, widget=forms.CheckboxSelectMultiple, label="OAuth grant types",
        help_text="None ticked: the code grant when there is a callback URL (or a web app).",
    )
    allowed_oauth_scopes = LinesField(
        required=False, label="OAuth scopes", help_text="One per line; blank: openid, email, phone with a grant.",
    )
    access_token_validity = forms.IntegerField(
        required=False, label="Access token validity (hours)", help_text="1 to 24 hours; blank: 1.",
    )
    id_token_validity = forms.IntegerField(
        required=False, label="ID token validity (hours)", help_text="1 to 24 hours; blank: 1.",
    )
    refresh_token_validity = forms.IntegerField(
        required=False, label="Refresh token validity (days)", help_text="1 to 3650 days; blank: 30.",
    )
    prevent_user_existence_errors = forms.ChoiceField(
        choices=[("ENABLED", "ENABLED (recommended)"), ("LEGACY", "LEGACY")], required=False,
        label="Prevent user existence errors",
    )

    fieldsets_ = (
        ("App client", {"fields": ("pool", "client_name", "application_type", "generate_secret")}),
        ("Authentication flows", {"fields": ("explicit_auth_flows", "prevent_user_existence_errors")}),
        ("Login pages (OAuth)", {"fields": ("callback_urls", "logout_urls", "allowed_oauth_flows",
                                            "allowed_oauth_scopes")}),
        ("Tokens", {"fields": ("access_token_validity", "id_token_validity", "refresh_token_validity")}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        flows = client_services.api_enum("ExplicitAuthFlowsType")
        # Every value Cognito knows is accepted (so a legacy one gets an error saying why), only ALLOW_ ones shown.
        self.fields["explicit_auth_flows"].choices = [(f, f) for f in flows]
        self.fields["explicit_auth_flows"].widget.choices = [(f, f) for f in flows if f.startswith("ALLOW_")]
        self.fields["allowed_oauth_flows"].choices = [(f, f) for f in client_services.api_enum("OAuthFlowType")]
        self.spec: ClientSpec | None = None

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        flows = list(cleaned.get("explicit_auth_flows") or [])
        legacy = client_services.legacy_flows(flows)
        if legacy:
            self.add_error("explicit_auth_flows", client_services.flows_mix_problem(flows) or (
                f"{', '.join(legacy)}: legacy auth flows; a new client takes the ALLOW_ values "
                f"({', '.join(client_services.migrate_legacy_flows(legacy))})."
            ))
            return cleaned
        self.spec = ClientSpec(
            client_name=cleaned["client_name"].strip(), application_type=cleaned["application_type"],
            generate_secret=cleaned.get("generate_secret"), explicit_auth_flows=flows or None,
            callback_urls=cleaned["callback_urls"], logout_urls=cleaned["logout_urls"],
            allowed_oauth_flows=list(cleaned["allowed_oauth_flows"]) or None,
            allowed_oauth_scopes=cleaned["allowed_oauth_scopes"] or None,
            access_token_validity=cleaned.get("access_token_validity"),
            id_token_validity=cleaned.get("id_token_validity"),
            refresh_token_validity=cleaned.get("refresh_token_validity"),
            prevent_user_existence_errors=cleaned.get("prevent_user_existence_errors") or "ENABLED",
        )
        try:
            provisioning.validate_client_spec(self.spec)
        except ValidationError as exc:
            add_errors(self, exc)
        return cleaned


def client_add_view(model_admin, request):
    """appclient/add/?pool=<pk>: create an app client in Cognito now, mirror it, show its secret once.
    `admin_view` only checks is_staff, so the permission is checked here."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    if request.method == "POST":
        form = AppClientCreateForm(request.POST)
        if form.is_valid() and form.spec is not None:
            pool = form.cleaned_data["pool"]
            try:
                created = provisioning.app_client_create(pool=pool, spec=form.spec, actor=request.user.get_username())
            except ValidationError as exc:
                add_errors(form, exc)
            else:
                client_url = reverse("admin:directory_appclient_change", args=[created.client.pk])
                if created.secret:
                    context = {
                        **model_admin.admin_site.each_context(request), "opts": model_admin.opts,
                        "title": f"App client {created.client_name} created", "pool": pool,
                        "pool_url": reverse("admin:directory_userpool_change", args=[pool.pk]),
                        "client_url": client_url, "client_id": created.client_id,
                        "client_name": created.client_name, "secret": created.secret,
                        "application_type": provisioning.APPLICATION_TYPES[form.spec.application_type],
                    }
                    request.current_app = model_admin.admin_site.name
                    return _secret_page(request, context)
                model_admin.message_user(
                    request, f"App client {created.client_name} ({created.client_id}) created in Cognito.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(client_url)
    else:
        pool_pk = request.GET.get("pool", "")
        initial = {"application_type": "spa", "prevent_user_existence_errors": "ENABLED"}
        if pool_pk.isdigit():
            initial["pool"] = pool_pk
        form = AppClientCreateForm(initial=initial)
    context = form_page_context(model_admin, request, title="Add an app client", form=form, fieldsets=form.fieldsets_,
                       changelist_url=reverse("admin:directory_appclient_changelist"))
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/directory/provisioning/add_client.html", context)
