"""The pool's message template editor: form, live preview, diff-and-confirm, history and restore.

Operator-authored HTML is shown only inside `<iframe sandbox srcdoc>` on pages whose
Content-Security-Policy allows no inline or remote script and no remote loads (srcdoc
documents inherit the policy of the page that holds them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.decorators import csp
from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib import messages as flash
from django.contrib.admin.utils import unquote
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from .. import message_templates as templates
from ..models import TemplateVersion, UserPool
from ..services import templates as templates_service
from .base import ReadOnlyAdminMixin

PERMISSION = "directory.edit_messages_userpool"

# The editor and the preview hold operator HTML: scripts only from our own static files, no
# inline script, nothing remote. Inline styles are allowed because e-mail HTML is styled inline.
EDITOR_CSP = {
    "default-src": [NONE],
    "script-src": [SELF],
    "style-src": [SELF, UNSAFE_INLINE],
    "img-src": [SELF, "data:"],
    "font-src": [SELF],
    "connect-src": [SELF],
    "frame-src": [NONE],
    "child-src": [NONE],
    "object-src": [NONE],
    "base-uri": [NONE],
    "form-action": [SELF],
    "frame-ancestors": [SELF],
}

OPTION_CHOICES = [
    (templates.CODE, "Code ({####})"),
    (templates.LINK, "Link ({##link text##})"),
]
HELP = {
    "default_email_option": "How Cognito verifies e-mail addresses: a code to type, or a link to click.",
    "email_subject": "1–140 characters.",
    "email_message": "6–20,000 characters; must contain {####} (the code). HTML allowed.",
    "email_subject_by_link": "1–140 characters.",
    "email_message_by_link": "6–20,000 characters; must contain {##link text##}. HTML allowed.",
    "sms_message": "6–140 characters; must contain {####}. Blank: Cognito's default.",
    "invite_email_subject": "1–140 characters. Blank: Cognito's default.",
    "invite_email_message": "6–20,000 characters; must contain {username} and {####} (the temporary password).",
    "invite_sms_message": "6–140 characters; must contain {username} and {####}.",
}


def _normalise(value: str, original: str) -> str:
    """Browsers send textarea line breaks as CRLF; keep Cognito's text when only they differ."""
    value = value.replace("\r\n", "\n")
    if value == original.replace("\r\n", "\n"):
        return original
    return value


class MessageTemplatesForm(forms.Form):
    """The message editor's fields, named after Cognito's; clean() applies Cognito's rules."""

    default_email_option = forms.ChoiceField(choices=OPTION_CHOICES, widget=forms.RadioSelect)

    def __init__(self, *args: Any, pool: UserPool, **kwargs: Any) -> None:
        self.pool = pool
        self.original = templates.fields_from_templates(templates.templates_from_pool(pool))
        kwargs.setdefault("initial", self.original)
        super().__init__(*args, **kwargs)
        for name in templates.TEXT_FIELDS:
            long = name in templates.EMAIL_BODIES
            self.fields[name] = forms.CharField(
                required=False,
                strip=False,  # byte for byte: Cognito keeps trailing spaces, so do we
                label=templates.LABELS[name],
                widget=forms.Textarea(attrs={"rows": 14 if long else 2, "cols": 60, "spellcheck": "false"}),
            )
        for name, field in self.fields.items():
            field.help_text = HELP[name]
            field.label = templates.LABELS[name]

    def values(self) -> dict[str, str]:
        """The submitted values, CRLF normalised, whether or not they are valid."""
        values = {}
        for name in templates.FIELDS:
            raw = self.data.get(self.add_prefix(name), "") if self.is_bound else self.initial.get(name, "")
            values[name] = _normalise(str(raw or ""), self.original.get(name, ""))
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in templates.TEXT_FIELDS:
            if name in cleaned:
                cleaned[name] = _normalise(cleaned[name], self.original.get(name, ""))
        for name, errors in templates.validation_errors({**self.values(), **cleaned}).items():
            for error in errors:
                self.add_error(name if name in self.fields else None, error)
        return cleaned

    def templates(self) -> dict[str, dict[str, str]]:
        return templates.templates_from_fields(self.cleaned_data)


def _pool_or_404(model_admin, request, object_id: str) -> UserPool:
    pool = model_admin.get_object(request, unquote(object_id))
    if pool is None:
        raise Http404(f"No user pool with primary key {object_id!r}.")
    return pool


def _check(request, perm: str = PERMISSION) -> None:
    # admin_view only checks is_staff; each view checks its own permission.
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _read_cognito(pool: UserPool) -> tuple[dict[str, Any] | None, str]:
    """DescribeUserPool now, or None and the reason when Cognito cannot be read."""
    return templates_service.pool_messages_remote(pool)


def _urls(model_admin, pool: UserPool) -> dict[str, str]:
    name = model_admin.admin_site.name
    return {
        "change_url": reverse("admin:directory_userpool_change", args=[pool.pk], current_app=name),
        "editor_url": reverse("admin:directory_userpool_messages", args=[pool.pk], current_app=name),
        "preview_url": reverse("admin:directory_userpool_messages_preview", args=[pool.pk], current_app=name),
        "history_url": reverse("admin:directory_userpool_messages_history", args=[pool.pk], current_app=name),
        "test_send_url": reverse("admin:directory_userpool_messages_test_send", args=[pool.pk], current_app=name),
    }


def _preview_context(values: dict[str, str], pool: UserPool) -> dict[str, Any]:
    errors = templates.validation_errors(values)
    return {
        "preview": templates.build_preview(values),
        "warnings": templates.warnings_for(values, pool),
        "preview_state": {
            "errors": errors,
            "warnings": templates.warnings_for(values, pool),
            "lengths": {name: len(values.get(name) or "") for name in templates.TEXT_FIELDS},
        },
        "sample": {
            "code": templates.SAMPLE_CODE,
            "username": templates.SAMPLE_USERNAME,
            "password": templates.SAMPLE_TEMPORARY_PASSWORD,
        },
    }


def _context(model_admin, request, pool: UserPool, **extra: Any) -> dict[str, Any]:
    request.current_app = model_admin.admin_site.name
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": pool,
        "pool": pool,
        "local_mode": settings.COGNITO_LOCAL_MODE,
        **_urls(model_admin, pool),
        **extra,
    }


def _render_editor(model_admin, request, pool: UserPool, form: MessageTemplatesForm, **extra: Any):
    values = form.values()
    urls = _urls(model_admin, pool)
    context = _context(
        model_admin,
        request,
        pool,
        title=f"Messages of {pool.name}",
        form=form,
        field_groups=[
            (
                "Verification message",
                [
                    "default_email_option",
                    "email_subject",
                    "email_message",
                    "email_subject_by_link",
                    "email_message_by_link",
                    "sms_message",
                ],
            ),
            ("Invitation message", ["invite_email_subject", "invite_email_message", "invite_sms_message"]),
        ],
        editor_config={
            "previewUrl": urls["preview_url"],
            "debounceMs": 300,
            "maxLengths": {n: templates.rule_for(n).max for n in templates.TEXT_FIELDS},
        },
        **_preview_context(values, pool),
        **extra,
    )
    return TemplateResponse(request, "admin/directory/userpool/messages.html", context)


def _render_confirm(model_admin, request, pool: UserPool, form: MessageTemplatesForm, **extra: Any):
    described, unreachable = _read_cognito(pool)
    wanted = form.templates()
    if described is not None:
        current = templates.templates_from_described(described)
        compared_with = "Cognito, read just now (DescribeUserPool)"
    else:
        current = templates.templates_from_pool(pool)
        synced = f"{pool.last_synced_at:%Y-%m-%d %H:%M:%S} UTC" if pool.last_synced_at else "never"
        compared_with = f"the mirror (last pull: {synced}) — Cognito could not be read: {unreachable}"
    diffs = templates.templates_diff(current, wanted)
    context = _context(
        model_admin,
        request,
        pool,
        title=f"Review the message changes of {pool.name}",
        form=form,
        diffs=diffs,
        compared_with=compared_with,
        remote_hash=templates.templates_hash(current) if described is not None else "",
        warnings=templates.warnings_for(form.values(), pool),
        hidden_values=[(name, form.cleaned_data.get(name, "")) for name in templates.FIELDS],
        **extra,
    )
    return TemplateResponse(request, "admin/directory/userpool/messages_confirm.html", context)


@csp(EDITOR_CSP)
def editor_view(model_admin, request, object_id: str):
    """Edit a pool's verification and invitation messages; saving goes through a diff against
    what Cognito holds now, then services (messages.pool_messages_update)."""
    _check(request)
    pool = _pool_or_404(model_admin, request, object_id)
    if request.method != "POST":
        return _render_editor(model_admin, request, pool, MessageTemplatesForm(pool=pool))
    form = MessageTemplatesForm(request.POST, pool=pool)
    if "_back" in request.POST or not form.is_valid():
        return _render_editor(model_admin, request, pool, form)
    if "_confirm" not in request.POST:
        return _render_confirm(model_admin, request, pool, form)
    described, _ = _read_cognito(pool)
    if described is not None:
        seen = request.POST.get("remote_hash", "")
        now = templates.templates_hash(templates.templates_from_described(described))
        if seen != now:
            return _render_confirm(
                model_admin,
                request,
                pool,
                form,
                moved="Cognito's templates changed while you were reviewing: this is the diff against them now.",
            )
    try:
        version = templates_service.pool_messages_update(
            pool=pool, templates=form.templates(), actor=request.user.get_username(), remote=described
        )
    except ValidationError as exc:
        for name, errors in (
            exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
        ).items():
            for error in errors:
                form.add_error(name if name in form.fields else None, error)
        return _render_editor(model_admin, request, pool, form)
    if version is None:
        flash.info(request, "Nothing to save: the templates are the same as Cognito's.")
        return HttpResponseRedirect(_urls(model_admin, pool)["editor_url"])
    if version.change is not None:
        version.change.refresh_from_db()  # an eager worker (tests, local) may have applied it already
    flash.success(
        request,
        f"Saved as version {version.number}; the change to Cognito is {version.outcome}.",
    )
    return HttpResponseRedirect(_urls(model_admin, pool)["history_url"])


@csp({**EDITOR_CSP, "script-src": [NONE], "connect-src": [NONE]})
def preview_view(model_admin, request, object_id: str):
    """The preview pane for the values posted (the editor's script posts the form as it changes)."""
    _check(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    pool = _pool_or_404(model_admin, request, object_id)
    form = MessageTemplatesForm(request.POST, pool=pool)
    context = _context(model_admin, request, pool, **_preview_context(form.values(), pool))
    return TemplateResponse(request, "admin/directory/userpool/messages_preview.html", context)


def history_view(model_admin, request, object_id: str):
    """Every saved template version of a pool: who, when, where from, the push's outcome."""
    if not (request.user.has_perm(PERMISSION) or request.user.has_perm("directory.view_userpool")):
        raise PermissionDenied
    pool = _pool_or_404(model_admin, request, object_id)
    versions = list(
        TemplateVersion.objects.filter(pool=pool).select_related("change", "restored_from").order_by("-number")
    )
    current = templates.templates_hash(templates.templates_from_pool(pool))
    rows = [
        {
            "version": v,
            "fields": [
                (templates.LABELS[name], value)
                for name, value in templates.fields_from_templates(v.templates).items()
                if value
            ],
            "is_current": v.content_hash == current,
        }
        for v in versions
    ]
    context = _context(
        model_admin,
        request,
        pool,
        title=f"Message template history of {pool.name}",
        rows=rows,
        can_restore=request.user.has_perm(PERMISSION),
    )
    return TemplateResponse(request, "admin/directory/userpool/messages_history.html", context)


def restore_view(model_admin, request, object_id: str, number: int):
    """One-click restore (POST): a new version with the old templates, pushed like a save."""
    _check(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    pool = _pool_or_404(model_admin, request, object_id)
    version = TemplateVersion.objects.filter(pool=pool, number=number).first()
    if version is None:
        raise Http404(f"Pool {pool.pool_id} has no template version {number}.")
    described, _ = _read_cognito(pool)
    try:
        restored = templates_service.pool_messages_restore(
            pool=pool, version=version, actor=request.user.get_username(), remote=described
        )
    except ValidationError as exc:
        flash.error(request, f"Version {number} was not restored: {' '.join(exc.messages)}")
    else:
        if restored is None:
            flash.info(request, f"Version {number} is what Cognito holds already; nothing to restore.")
        else:
            flash.success(request, f"Version {number} restored as version {restored.number} ({restored.outcome}).")
    return HttpResponseRedirect(_urls(model_admin, pool)["history_url"])


def test_send_view(model_admin, request, object_id: str):
    """Local mode: POST signs a throwaway user up so the emulator renders the verification message
    from the saved template, then shows it in the emulator's message log."""
    _check(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    pool = _pool_or_404(model_admin, request, object_id)
    if not settings.COGNITO_LOCAL_MODE:
        raise Http404("Test send runs only against the local emulator (COGNITO_LOCAL_MODE).")
    try:
        sent = templates_service.pool_messages_test_send(pool=pool, actor=request.user.get_username())
    except ValidationError as exc:
        flash.error(request, f"Test send failed: {' '.join(exc.messages)}")
        return HttpResponseRedirect(_urls(model_admin, pool)["editor_url"])
    where = sent.delivery.get("Destination") or sent.email
    flash.success(
        request,
        f"Signed up {sent.username} through app client {sent.client_id}; the verification message "
        f"({sent.delivery.get('DeliveryMedium', 'EMAIL')} to {where}) is below. The user was deleted again.",
    )
    if sent.pending_template_change:
        flash.warning(
            request,
            "A saved template change has not reached Cognito yet; this message used the templates Cognito "
            "holds now. Send again once the change is applied.",
        )
    url = reverse("admin:directory_userpool_messages_sent", args=[pool.pk], current_app=model_admin.admin_site.name)
    return HttpResponseRedirect(f"{url}?{urlencode({'username': sent.username})}")


def message_urls(model_admin) -> list:
    """URL patterns for UserPoolAdmin.get_urls (prepended: the defaults end in a catch-all)."""
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_messages"

    def wrap(view: Callable[..., Any]):
        def bound(request, *args, **kwargs):
            return view(model_admin, request, *args, **kwargs)

        bound.__name__ = view.__name__
        return model_admin.admin_site.admin_view(bound)

    return [
        path("<path:object_id>/messages/preview/", wrap(preview_view), name=f"{prefix}_preview"),
        path("<path:object_id>/messages/history/", wrap(history_view), name=f"{prefix}_history"),
        path("<path:object_id>/messages/test-send/", wrap(test_send_view), name=f"{prefix}_test_send"),
        path(
            "<path:object_id>/messages/history/<int:number>/restore/",
            wrap(restore_view),
            name=f"{prefix}_restore",
        ),
        path("<path:object_id>/messages/", wrap(editor_view), name=prefix),
    ]


@admin.register(TemplateVersion)
class TemplateVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Saved template versions: read-only here; restore from the pool's message history page."""

    list_display = ("pool", "number", "created_at", "actor", "source", "outcome")
    list_filter = ("source", "pool")
    list_select_related = ("pool", "change")
    readonly_fields = (
        "pool",
        "number",
        "created_at",
        "actor",
        "source",
        "templates",
        "content_hash",
        "restored_from",
        "change",
        "outcome",
    )
    fields = readonly_fields

