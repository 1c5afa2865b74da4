"""Cognito's message templates: editor fields <-> Cognito's keys, Cognito's rules, the preview
rendering, diffs, and the version history (TemplateVersion) that saves and pulls append to.
The save, restore and test-send services are in services/templates.py."""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import regex
from django.core.exceptions import ValidationError
from django.db.models import Max

from . import audit
from .gateway import service_shape
from .mapping import content_hash
from .models import PendingChange, TemplateVersion, UserPool

VERIFICATION = "VerificationMessageTemplate"
INVITATION = "InviteMessageTemplate"
CODE = "CONFIRM_WITH_CODE"
LINK = "CONFIRM_WITH_LINK"
OPERATION = PendingChange.Operation.POOL_UPDATE_MESSAGES

# Editor field -> (template, member, botocore structure shape). The field names are Cognito's, snake-cased;
# they are part of the admin's public interface (README).
FIELDS: dict[str, tuple[str, str, str]] = {
    "default_email_option": (VERIFICATION, "DefaultEmailOption", "VerificationMessageTemplateType"),
    "email_subject": (VERIFICATION, "EmailSubject", "VerificationMessageTemplateType"),
    "email_message": (VERIFICATION, "EmailMessage", "VerificationMessageTemplateType"),
    "email_subject_by_link": (VERIFICATION, "EmailSubjectByLink", "VerificationMessageTemplateType"),
    "email_message_by_link": (VERIFICATION, "EmailMessageByLink", "VerificationMessageTemplateType"),
    "sms_message": (VERIFICATION, "SmsMessage", "VerificationMessageTemplateType"),
    "invite_email_subject": (INVITATION, "EmailSubject", "MessageTemplateType"),
    "invite_email_message": (INVITATION, "EmailMessage", "MessageTemplateType"),
    "invite_sms_message": (INVITATION, "SMSMessage", "MessageTemplateType"),
}
TEXT_FIELDS = [name for name in FIELDS if name != "default_email_option"]
LABELS = {
    "default_email_option": "Verification type",
    "email_subject": "Verification e-mail subject (code)",
    "email_message": "Verification e-mail message (code)",
    "email_subject_by_link": "Verification e-mail subject (link)",
    "email_message_by_link": "Verification e-mail message (link)",
    "sms_message": "Verification SMS message",
    "invite_email_subject": "Invitation e-mail subject",
    "invite_email_message": "Invitation e-mail message",
    "invite_sms_message": "Invitation SMS message",
}
EMAIL_BODIES = {"email_message", "email_message_by_link", "invite_email_message"}
# The legacy top-level keys DescribeUserPool still returns next to VerificationMessageTemplate.
# Cognito accepts both only when they agree, so a push always sets them to the template's values.
LEGACY_KEYS = {
    "EmailVerificationMessage": "EmailMessage",
    "EmailVerificationSubject": "EmailSubject",
    "SmsVerificationMessage": "SmsMessage",
}

SAMPLE_CODE = "123456"
SAMPLE_USERNAME = "jane.doe@example.com"
SAMPLE_TEMPORARY_PASSWORD = "Tmp-9xQ#4kLw"  # a made-up sample shown in previews, never a real one
# Link text must not be empty: "{####}" fits the pattern but Cognito answers "The message is invalid".
LINK_PLACEHOLDER = re.compile(r"\{##([^#].*?)##\}", re.DOTALL)
CODE_PLACEHOLDER = "{####}"
USERNAME_PLACEHOLDER = "{username}"


# Templates <-> editor fields -----------------------------------------------------------------------


def templates_from_pool(pool: UserPool) -> dict[str, dict[str, str]]:
    """The pool's template set, by Cognito's names, from the mirror."""
    return {
        VERIFICATION: dict(pool.verification_message_template or {}),
        INVITATION: dict((pool.admin_create_user_config or {}).get(INVITATION) or {}),
    }


def templates_from_described(described: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The template set from a DescribeUserPool record."""
    return {
        VERIFICATION: dict(described.get(VERIFICATION) or {}),
        INVITATION: dict((described.get("AdminCreateUserConfig") or {}).get(INVITATION) or {}),
    }


def fields_from_templates(templates: dict[str, dict[str, str]]) -> dict[str, str]:
    values = {name: (templates.get(tpl) or {}).get(member, "") or "" for name, (tpl, member, _) in FIELDS.items()}
    values["default_email_option"] = values["default_email_option"] or CODE
    return values


def templates_from_fields(values: dict[str, str]) -> dict[str, dict[str, str]]:
    """Blank fields are left out: Cognito then uses its own default for that message."""
    templates: dict[str, dict[str, str]] = {VERIFICATION: {}, INVITATION: {}}
    for name, (tpl, member, _) in FIELDS.items():
        value = values.get(name) or ""
        if value != "":
            templates[tpl][member] = value
    return templates


def templates_hash(templates: dict[str, dict[str, str]]) -> str:
    return content_hash(templates)


# Validation -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One member's constraints as botocore's service model publishes them."""

    min: int | None
    max: int | None
    pattern: str | None
    enum: tuple[str, ...] = ()


_rules: dict[str, Rule] = {}


def rule_for(name: str) -> Rule:
    """min/max/pattern of an editor field's shape, read from botocore's cognito-idp model."""
    if name not in _rules:
        _, member, structure = FIELDS[name]
        shape = service_shape(structure).members[member]
        meta = shape.metadata
        _rules[name] = Rule(
            meta.get("min"), meta.get("max"), meta.get("pattern"), tuple(getattr(shape, "enum", ()) or ())
        )
    return _rules[name]


# Cognito checks the service model's patterns with Java's regex dialect, where `\s` is ASCII
# whitespace only (a no-break space U+00A0 is refused); the `regex` package does the \p{..} classes.
_JAVA_SPACE = r" \t\n\x0B\f\r"
_ALLOWED_CHAR = regex.compile(r"[\p{L}\p{M}\p{S}\p{N}\p{P}" + _JAVA_SPACE + "*]")


def java_pattern(pattern: str) -> str:
    r"""A service-model pattern for the `regex` package, `\s` read as Java reads it. The
    patterns use `\s` only inside character classes."""
    return pattern.replace("\\s", _JAVA_SPACE)


def _char_name(ch: str) -> str:
    return unicodedata.name(ch, f"U+{ord(ch):04X}")


def _refused_characters(value: str) -> list[tuple[int, str]]:
    return [(i, ch) for i, ch in enumerate(value) if not _ALLOWED_CHAR.fullmatch(ch)]


def _field_errors(name: str, value: str) -> list[str]:
    rule = rule_for(name)
    errors: list[str] = []
    length = len(value)
    if rule.min is not None and length < rule.min:
        errors.append(f"{name}: at least {rule.min} characters (Cognito's minimum length); it has {length}.")
    if rule.max is not None and length > rule.max:
        errors.append(f"{name}: at most {rule.max:,} characters (Cognito's maximum length); it has {length:,}.")
    refused = _refused_characters(value) if rule.pattern and "\\p{L}" in rule.pattern else []
    if refused:
        shown = ", ".join(f"U+{ord(ch):04X} {_char_name(ch)} at position {i + 1}" for i, ch in refused[:3])
        more = f" and {len(refused) - 3} more" if len(refused) > 3 else ""
        hint = " (write &nbsp; for a no-break space)" if any(ch == "\u00a0" for _, ch in refused) else ""
        errors.append(
            f"{name}: contains {shown}{more}; Cognito's pattern allows only letters, marks, symbols, numbers, "
            "punctuation and ordinary whitespace (no control or format characters such as zero-width joiners, "
            f"direction marks or soft hyphens){hint}."
        )
    if name in {"email_message", "sms_message"} and CODE_PLACEHOLDER not in value:
        errors.append(f"{name}: must contain the code placeholder {{####}} (Cognito's rule for verification messages).")
    if name == "email_message_by_link" and not LINK_PLACEHOLDER.search(value):
        errors.append(
            f"{name}: must contain the link placeholder {{##link text##}}, e.g. {{##Verify Email##}} "
            "(Cognito's rule for verification by link)."
        )
    if name in {"invite_email_message", "invite_sms_message"}:
        missing = [p for p in (USERNAME_PLACEHOLDER, CODE_PLACEHOLDER) if p not in value]
        if missing:
            errors.append(
                f"{name}: must contain {' and '.join(missing)} (invitations carry the username and the temporary "
                "password; without {####} Cognito sends no invitation)."
            )
    if name == "sms_message" and ("\n" in value or "\r" in value) and CODE_PLACEHOLDER in value:
        errors.append(f"{name}: no line breaks (Cognito's pattern {rule.pattern} does not match across lines).")
    if not errors and rule.pattern and not regex.fullmatch(java_pattern(rule.pattern), value):
        # Whatever the specific checks above did not name: the service model's pattern has the last word.
        errors.append(f"{name}: does not match Cognito's pattern {rule.pattern}.")
    return errors


def validation_errors(values: dict[str, str]) -> dict[str, list[str]]:
    """Errors by editor field, each naming the field and Cognito's rule; empty when valid."""
    errors: dict[str, list[str]] = {}
    option = values.get("default_email_option") or CODE
    if option not in rule_for("default_email_option").enum:
        errors["default_email_option"] = [
            f"default_email_option: must be {CODE} or {LINK} (Cognito's DefaultEmailOptionType)."
        ]
    # The message the pool actually sends must be set; the other option's may stay blank.
    required = (
        {"email_subject", "email_message"} if option == CODE else {"email_subject_by_link", "email_message_by_link"}
    )
    for name in TEXT_FIELDS:
        value = values.get(name) or ""
        if value == "":
            if name in required:
                rule = rule_for(name)
                errors[name] = [
                    f"{name}: required for {option} ({rule.min}–{rule.max:,} characters, Cognito's length rule)."
                ]
            continue
        problems = _field_errors(name, value)
        if problems:
            errors[name] = problems
    return errors


def validate_templates(values: dict[str, str]) -> None:
    errors = validation_errors(values)
    if errors:
        raise ValidationError(errors)


_STRIPPED_HTML = [
    (re.compile(r"<\s*script\b", re.I), "<script> is removed by e-mail clients and never runs"),
    (
        re.compile(r"\son[a-z]+\s*=", re.I),
        "event-handler attributes (onclick, onerror …) are removed by e-mail clients",
    ),
    (re.compile(r"javascript\s*:", re.I), "javascript: links are removed or disabled by e-mail clients"),
    (
        re.compile(r"<\s*form\b|<\s*input\b|<\s*button\b", re.I),
        "forms and inputs are stripped or disabled by most e-mail clients",
    ),
    (
        re.compile(r"<\s*link\b[^>]*stylesheet", re.I),
        "external CSS (<link rel=stylesheet>) is not loaded by most e-mail clients; inline the styles",
    ),
    (re.compile(r"@import", re.I), "@import in <style> is ignored by most e-mail clients; inline the styles"),
    (
        re.compile(r"<\s*(iframe|object|embed|video|audio)\b", re.I),
        "embedded frames and media are removed by e-mail clients",
    ),
]


def warnings_for(values: dict[str, str], pool: UserPool | None = None) -> list[str]:
    """Things Cognito accepts but users will not see as written (not errors)."""
    warnings: list[str] = []
    for name in sorted(EMAIL_BODIES):
        value = values.get(name) or ""
        for pattern, text in _STRIPPED_HTML:
            if pattern.search(value):
                warnings.append(f"{name}: {text}.")
    if pool is not None:
        account = (pool.email_configuration or {}).get("EmailSendingAccount") or "COGNITO_DEFAULT"
        custom_email = [
            n
            for n in (
                "email_subject",
                "email_message",
                "email_subject_by_link",
                "email_message_by_link",
                "invite_email_subject",
                "invite_email_message",
            )
            if values.get(n)
        ]
        if account == "COGNITO_DEFAULT" and custom_email:
            warnings.append(
                "This pool sends e-mail through Cognito's default e-mail (EmailSendingAccount COGNITO_DEFAULT): "
                "AWS documents custom e-mail subjects and messages as allowed only with DEVELOPER (your own "
                "Amazon SES), and the default sender delivers only a few dozen e-mails a day."
            )
    return warnings


# Rendering -----------------------------------------------------------------------------------------------


def _link_html(match: re.Match[str]) -> str:
    # Cognito turns {##text##} into a link to its confirmation endpoint; the preview keeps it in-page.
    return (
        f'<a href="#cognito-confirmation-link" title="Cognito inserts its confirmation link here">{match.group(1)}</a>'
    )


def render_message(template: str, *, invitation: bool = False, html_link: bool = True) -> str:
    """The message a user receives, with the preview's sample values in the placeholders."""
    text = template.replace(CODE_PLACEHOLDER, SAMPLE_TEMPORARY_PASSWORD if invitation else SAMPLE_CODE)
    text = text.replace(USERNAME_PLACEHOLDER, SAMPLE_USERNAME)
    if html_link:
        return LINK_PLACEHOLDER.sub(_link_html, text)
    return LINK_PLACEHOLDER.sub(lambda m: f"{m.group(1)} [link]", text)


class _TextExtractor(HTMLParser):
    """HTML -> the plain text a client shows when it cannot render HTML."""

    _BLOCK = {"p", "div", "br", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "hr"}
    _SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def plain_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# GSM 03.38 basic character set, and the extension table (each costs two septets).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


@dataclass
class SmsInfo:
    """An SMS as it will be sent: text, encoding, length in that encoding's units, segments."""

    text: str
    template_length: int
    encoding: str
    length: int
    segments: int
    per_segment: int


def sms_info(template: str, *, invitation: bool = False) -> SmsInfo:
    text = render_message(template, invitation=invitation, html_link=False)
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
        length = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        length = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 1 if length <= single else math.ceil(length / multi)
    return SmsInfo(text, len(template), encoding, length, segments, single if segments == 1 else multi)


@dataclass
class EmailPreview:
    """One e-mail as a user receives it."""

    key: str
    title: str
    subject: str
    html: str
    text: str
    fields: tuple[str, str] = ("", "")


@dataclass
class Preview:
    emails: list[EmailPreview] = field(default_factory=list)
    sms: list[tuple[str, str, SmsInfo]] = field(default_factory=list)


def build_preview(values: dict[str, str]) -> Preview:
    """What users receive with these templates, with sample code, username and temporary password."""
    preview = Preview()
    option = values.get("default_email_option") or CODE
    if option == LINK:
        subject_field, body_field, title = (
            "email_subject_by_link",
            "email_message_by_link",
            "Verification e-mail (link)",
        )
    else:
        subject_field, body_field, title = "email_subject", "email_message", "Verification e-mail (code)"
    body = values.get(body_field) or ""
    rendered = render_message(body)
    preview.emails.append(
        EmailPreview(
            "verification",
            title,
            render_message(values.get(subject_field) or "", html_link=False),
            rendered,
            plain_text(rendered),
            (subject_field, body_field),
        )
    )
    invite = values.get("invite_email_message") or ""
    rendered = render_message(invite, invitation=True)
    preview.emails.append(
        EmailPreview(
            "invitation",
            "Invitation e-mail",
            render_message(values.get("invite_email_subject") or "", invitation=True, html_link=False),
            rendered,
            plain_text(rendered),
            ("invite_email_subject", "invite_email_message"),
        )
    )
    if values.get("sms_message"):
        preview.sms.append(("sms_message", "Verification SMS", sms_info(values["sms_message"])))
    if values.get("invite_sms_message"):
        preview.sms.append(
            ("invite_sms_message", "Invitation SMS", sms_info(values["invite_sms_message"], invitation=True))
        )
    return preview


# Diffs ----------------------------------------------------------------------------------------------------


@dataclass
class FieldDiff:
    name: str
    label: str
    before: str
    after: str
    lines: list[str]


def templates_diff(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[FieldDiff]:
    """Per editor field: what changes, with a unified line diff for long texts."""
    old, new = fields_from_templates(before), fields_from_templates(after)
    # An unset option is Cognito's default (code); do not show that as a change.
    diffs = []
    for name in FIELDS:
        if old[name] == new[name]:
            continue
        lines = list(
            difflib.unified_diff(old[name].splitlines(), new[name].splitlines(), "Cognito", "new", lineterm="", n=2)
        )[2:]
        diffs.append(FieldDiff(name, LABELS[name], old[name], new[name], lines))
    return diffs


# Versions ---------------------------------------------------------------------------------------------------


def _next_number(pool: UserPool) -> int:
    return (TemplateVersion.objects.filter(pool=pool).aggregate(n=Max("number"))["n"] or 0) + 1


def record_version(
    *,
    pool: UserPool,
    templates: dict[str, dict[str, str]],
    source: str,
    actor: str,
    change: PendingChange | None = None,
    restored_from: TemplateVersion | None = None,
    audit_source: str = audit.Source.ADMIN,
) -> TemplateVersion:
    version = TemplateVersion.objects.create(
        pool=pool,
        number=_next_number(pool),
        actor=actor,
        source=source,
        templates=templates,
        content_hash=templates_hash(templates),
        restored_from=restored_from,
        change=change,
    )
    audit.record(
        action=audit.Action.TEMPLATE_VERSION,
        object_type="pool",
        object_id=pool.pool_id,
        object_repr=pool.name,
        pool_id=pool.pool_id,
        detail={
            "version": version.number,
            "source": source,
            "content_hash": version.content_hash,
            **({"change": change.pk} if change else {}),
            **({"restored_from": restored_from.number} if restored_from else {}),
        },
        source=audit_source,
        actor=actor,
        outcome=audit.Outcome.PENDING if change else audit.Outcome.OK,
        correlation_id=str(change.correlation_id) if change else "",
    )
    return version


def ensure_initial_version(pool: UserPool) -> TemplateVersion | None:
    """Version 1 (source `initial`) from the mirror when the pool has no version yet."""
    if TemplateVersion.objects.filter(pool=pool).exists():
        return None
    return record_version(
        pool=pool,
        templates=templates_from_pool(pool),
        source=TemplateVersion.Source.INITIAL,
        actor="",
        audit_source=audit.Source.SYNC,
    )


def record_pulled_templates(pool: UserPool, actor: str = "") -> TemplateVersion | None:
    """Called by a pull after it saved the pool: version 1 (`initial`) the first time a pool is
    seen, and a new version attributed to the sync when Cognito's templates differ from the
    last version that reached (or is on its way to) Cognito."""
    if not TemplateVersion.objects.filter(pool=pool).exists():
        return ensure_initial_version(pool)
    templates = templates_from_pool(pool)
    current = templates_hash(templates)
    unsent = (PendingChange.Status.FAILED, PendingChange.Status.CONFLICT, PendingChange.Status.DISCARDED)
    for version in TemplateVersion.objects.filter(pool=pool).select_related("change").order_by("-number"):
        if version.change is not None and version.change.status in unsent:
            continue
        if version.content_hash == current:
            return None
        break
    return record_version(
        pool=pool, templates=templates, source=TemplateVersion.Source.SYNC, actor=actor, audit_source=audit.Source.SYNC
    )
