"""Message templates: Cognito's rules at their boundaries, the save / restore / pull services
against the moto server, and the editor's admin views."""

from __future__ import annotations

import copy
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse

from directory import message_templates as m
from directory.models import AuditEvent, PendingChange, TemplateVersion, UserPool
from directory.services import templates as templates_service
from directory.sync.pull import pull_pool
from emulator import ESHOP_VERIFICATION_HTML
from tests.cognito_helpers import described

VALID = {
    "default_email_option": "CONFIRM_WITH_CODE",
    "email_subject": "Your code",
    "email_message": "Your code is {####}",
    "email_subject_by_link": "",
    "email_message_by_link": "",
    "sms_message": "Code {####}",
    "invite_email_subject": "Welcome aboard",
    "invite_email_message": "Hi {username}, password {####}",
    "invite_sms_message": "{username} {####}",
}


def errors_for(**changes: str) -> dict[str, list[str]]:
    return m.validation_errors({**VALID, **changes})


def pad(template: str, length: int, filler: str = "a") -> str:
    return template + filler * (length - len(template))


# Validation: every rule at and just past its boundary -------------------------------------------------


def test_valid_set_has_no_errors():
    assert errors_for() == {}


@pytest.mark.parametrize(
    ("name", "base", "low_ok", "high_ok"),
    [
        ("email_message", "{####}", 6, 20000),
        ("email_message_by_link", "{##Verify##}", 12, 20000),
        ("invite_email_message", "{username}{####}", 16, 20000),
        ("sms_message", "{####}", 6, 140),
        ("invite_sms_message", "{username}{####}", 16, 140),
        ("email_subject", "", 1, 140),
        ("email_subject_by_link", "", 1, 140),
        ("invite_email_subject", "", 1, 140),
    ],
)
def test_length_boundaries(name, base, low_ok, high_ok):
    rule = m.rule_for(name)
    assert errors_for(**{name: pad(base, low_ok)}) == {}
    assert errors_for(**{name: pad(base, high_ok)}) == {}
    too_long = errors_for(**{name: pad(base, high_ok + 1)})[name]
    assert too_long == [f"{name}: at most {rule.max:,} characters (Cognito's maximum length); it has {high_ok + 1:,}."]


@pytest.mark.parametrize(
    "name", ["email_message", "email_message_by_link", "invite_email_message", "sms_message", "invite_sms_message"]
)
def test_minimum_length_five_is_refused_six_accepted(name):
    errors = errors_for(**{name: "abcde"})[name]
    assert f"{name}: at least 6 characters (Cognito's minimum length); it has 5." in errors
    assert m.rule_for(name).min == 6  # straight from botocore's service model


def test_subject_boundaries_zero_one():
    # The subject of the option in use is required (Cognito's minimum is 1); the other option's may stay blank.
    assert errors_for(email_subject="")["email_subject"] == [
        "email_subject: required for CONFIRM_WITH_CODE (1–140 characters, Cognito's length rule)."
    ]
    assert errors_for(email_subject="a") == {}
    assert "email_subject_by_link" in errors_for(
        default_email_option="CONFIRM_WITH_LINK", email_subject_by_link="", email_message_by_link="Click {##here##}"
    )
    assert (
        errors_for(
            default_email_option="CONFIRM_WITH_LINK",
            email_subject_by_link="a",
            email_message_by_link="Click {##here##}",
        )
        == {}
    )


def test_email_body_by_code_needs_the_code():
    assert errors_for(email_message="Your code is here")["email_message"] == [
        "email_message: must contain the code placeholder {####} (Cognito's rule for verification messages)."
    ]


def test_sms_needs_the_code_and_one_line():
    assert "must contain the code placeholder {####}" in errors_for(sms_message="Your code")["sms_message"][0]
    assert errors_for(sms_message="Code:\n{####}")["sms_message"] == [
        "sms_message: no line breaks (Cognito's pattern .*\\{####\\}.* does not match across lines)."
    ]


@pytest.mark.parametrize("body", ["Click here", "Your code {####}", "Click {####}"])
def test_email_body_by_link_needs_link_text(body):
    errors = errors_for(
        default_email_option="CONFIRM_WITH_LINK", email_subject_by_link="Verify", email_message_by_link=body
    )
    assert "must contain the link placeholder {##link text##}" in errors["email_message_by_link"][0]


@pytest.mark.parametrize(
    ("name", "value", "missing"),
    [
        ("invite_email_message", "Password {####}", "{username}"),
        ("invite_email_message", "Hello {username}", "{####}"),
        ("invite_sms_message", "Password {####}", "{username}"),
        ("invite_sms_message", "Hello {username} !", "{####}"),
    ],
)
def test_invitations_need_username_and_code(name, value, missing):
    (error,) = errors_for(**{name: value})[name]
    assert error.startswith(f"{name}: must contain {missing} (")


@pytest.mark.parametrize(
    ("char", "label"),
    [
        ("\u200d", "U+200D ZERO WIDTH JOINER"),
        ("\u200f", "U+200F RIGHT-TO-LEFT MARK"),
        ("\u00ad", "U+00AD SOFT HYPHEN"),
        ("\u0007", "U+0007"),
        ("\u00a0", "U+00A0 NO-BREAK SPACE"),
    ],
)
@pytest.mark.parametrize("name", ["email_message", "email_subject", "invite_email_message", "invite_email_subject"])
def test_control_and_format_characters_are_refused(name, char, label):
    value = VALID[name].replace(" ", char, 1)
    (error,) = errors_for(**{name: value})[name]
    assert error.startswith(f"{name}: contains {label}")
    assert "Cognito's pattern" in error


def test_family_emoji_with_zero_width_joiners_is_refused_but_plain_emoji_are_fine():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert "U+200D ZERO WIDTH JOINER" in errors_for(email_message=f"{family} {{####}}")["email_message"][0]
    assert errors_for(email_message="❤️ 🎉 Zoë’s code: {####} — 李小龍") == {}


def test_default_email_option_must_be_cognitos():
    assert errors_for(default_email_option="CONFIRM_WITH_SMOKE")["default_email_option"] == [
        "default_email_option: must be CONFIRM_WITH_CODE or CONFIRM_WITH_LINK (Cognito's DefaultEmailOptionType)."
    ]


def test_warnings_for_stripped_html_and_default_email():
    pool = UserPool(pool_id="us-east-1_x", email_configuration={"EmailSendingAccount": "COGNITO_DEFAULT"})
    body = (
        '<script>x()</script><form></form><link rel="stylesheet" href="https://x/y.css">'
        "<style>@import url(x)</style>{####}"
    )
    warnings = m.warnings_for({**VALID, "email_message": body}, pool)
    text = "\n".join(warnings)
    for expected in ("<script>", "forms and inputs", "external CSS", "@import", "COGNITO_DEFAULT"):
        assert expected in text
    developer = UserPool(pool_id="us-east-1_y", email_configuration={"EmailSendingAccount": "DEVELOPER"})
    assert m.warnings_for(VALID, developer) == []


def test_sms_segments():
    assert (m.sms_info("{####}").encoding, m.sms_info("{####}").segments) == ("GSM-7", 1)
    gsm = m.sms_info(pad("{####}", 140))  # 140 + 6-digit code - 6 placeholder chars = 140 septets
    assert (gsm.length, gsm.segments) == (140, 1)
    assert m.sms_info(pad("{####}", 161)).segments == 2
    assert m.sms_info("{####} " + "€" * 80).length == 6 + 1 + 160  # the euro sign costs two septets
    ucs = m.sms_info(pad("{####} ✓", 70))
    assert (ucs.encoding, ucs.length, ucs.segments) == ("UCS-2", 70, 1)
    assert m.sms_info(pad("{####} ✓", 71)).segments == 2
    assert m.sms_info(pad("{####} ✓", 135)).segments == 3  # 67 per part


def test_preview_renders_the_samples():
    preview = m.build_preview({**VALID, "email_message": ESHOP_VERIFICATION_HTML})
    verification = preview.emails[0]
    assert "{123456}" in verification.html and "{####}" not in verification.html  # the seed writes {{####}}
    assert "Welcome to eSHOP-FCJ" in verification.text and "<" not in verification.text
    invitation = preview.emails[1]
    assert m.SAMPLE_USERNAME in invitation.html and m.SAMPLE_TEMPORARY_PASSWORD in invitation.html
    link = m.build_preview(
        {
            **VALID,
            "default_email_option": "CONFIRM_WITH_LINK",
            "email_subject_by_link": "Verify",
            "email_message_by_link": "Please <b>{##Verify Email##}</b>",
        }
    ).emails[0]
    assert '<a href="#cognito-confirmation-link"' in link.html and ">Verify Email</a>" in link.html


# Services against moto --------------------------------------------------------------------------------


def new_templates(**changes):
    values = {**VALID, **changes}
    return m.templates_from_fields(values)


@pytest.mark.django_db
def test_first_pull_records_version_one(eshop):
    (version,) = TemplateVersion.objects.filter(pool=eshop)
    assert (version.number, version.source, version.actor) == (1, "initial", "")
    assert version.templates["VerificationMessageTemplate"]["EmailMessage"] == ESHOP_VERIFICATION_HTML
    assert version.outcome == "in Cognito"


@pytest.mark.django_db
def test_rejected_template_changes_nothing(eshop, cognito, django_capture_on_commit_callbacks):
    before = described(cognito, eshop)
    mirror = copy.deepcopy(eshop.verification_message_template)
    broken = new_templates(email_message="No placeholder here")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError) as exc:
        templates_service.pool_messages_update(pool=eshop, templates=broken, actor="alice")
    assert exc.value.message_dict["email_message"][0].startswith("email_message: must contain the code placeholder")
    assert TemplateVersion.objects.filter(pool=eshop).count() == 1
    assert not PendingChange.objects.exists()
    assert not AuditEvent.objects.filter(action__in=["requested", "template_version"], actor="alice").exists()
    eshop.refresh_from_db()
    assert eshop.verification_message_template == mirror
    assert described(cognito, eshop)["VerificationMessageTemplate"] == before["VerificationMessageTemplate"]


@pytest.mark.django_db
def test_save_pushes_full_config_and_keeps_every_other_setting(
    emu, eshop, cognito, sent_requests, django_capture_on_commit_callbacks
):
    # Through the emulator: moto alone drops the e-mail sign-in on UpdateUserPool, which the push's
    # check of the whole pool (rightly) fails.
    before = described(cognito, eshop)
    templates = new_templates(
        email_message=ESHOP_VERIFICATION_HTML.replace("{{####}}", "{####}"), email_subject="Your eSHOP code"
    )
    with django_capture_on_commit_callbacks(execute=True):
        version = templates_service.pool_messages_update(pool=eshop, templates=templates, actor="alice", remote=before)
    version.refresh_from_db()
    assert (version.number, version.source, version.actor, version.outcome) == (2, "operator", "alice", "applied")
    after = described(cognito, eshop)
    assert after["VerificationMessageTemplate"] == templates["VerificationMessageTemplate"]
    assert after["AdminCreateUserConfig"]["InviteMessageTemplate"] == templates["InviteMessageTemplate"]
    (request,) = sent_requests
    for key in (
        "LambdaConfig",
        "UserPoolTags",
        "AutoVerifiedAttributes",
        "AccountRecoverySetting",
        "UserAttributeUpdateSettings",
        "EmailConfiguration",
        "MfaConfiguration",
        "Policies",
        "DeletionProtection",
    ):
        assert request[key] == before[key], key
    assert request["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is False
    # The legacy top-level keys agree with the template (Cognito refuses them contradicting it).
    assert request["EmailVerificationMessage"] == templates["VerificationMessageTemplate"]["EmailMessage"]
    assert request["EmailVerificationSubject"] == "Your eSHOP code"
    assert request["SmsVerificationMessage"] == "Code {####}"
    eshop.refresh_from_db()
    assert eshop.verification_message_template == templates["VerificationMessageTemplate"]
    actions = set(AuditEvent.objects.filter(pool_id=eshop.pool_id, actor="alice").values_list("action", flat=True))
    assert {"requested", "template_version", "applied"} <= actions


@pytest.mark.django_db
def test_restore_round_trips_byte_for_byte(eshop, cognito, django_capture_on_commit_callbacks):
    rows = "".join(f"<tr><td>Zeile {i} — Zoë ❤️ 李小龍 🎉  </td></tr>\n" for i in range(300))
    long_html = f"<table>{rows}</table>"
    rich = new_templates(
        email_subject="Bestätigung ✅ für Zoë",
        email_message=f"{long_html}\n  <p>Ihr Code: <b>{{####}}</b>  </p>\t\n",
        sms_message="Código {####} ✓",
        invite_email_message="¡Hola {username}! 🎉 Contraseña temporal: {####}",
    )
    assert len(rich["VerificationMessageTemplate"]["EmailMessage"]) > 10000
    with django_capture_on_commit_callbacks(execute=True):
        v2 = templates_service.pool_messages_update(pool=eshop, templates=rich, actor="alice")
    with django_capture_on_commit_callbacks(execute=True):
        v3 = templates_service.pool_messages_update(pool=eshop, templates=new_templates(), actor="bob")
    assert described(cognito, eshop)["VerificationMessageTemplate"]["EmailMessage"] == VALID["email_message"]
    with django_capture_on_commit_callbacks(execute=True):
        v4 = templates_service.pool_messages_restore(
            pool=eshop, version=v2, actor="carol", remote=described(cognito, eshop)
        )
    v4.refresh_from_db()
    assert (v3.number, v4.number, v4.source, v4.restored_from_id, v4.outcome) == (3, 4, "restore", v2.pk, "applied")
    remote = described(cognito, eshop)
    assert remote["VerificationMessageTemplate"] == v2.templates["VerificationMessageTemplate"]
    assert remote["AdminCreateUserConfig"]["InviteMessageTemplate"] == v2.templates["InviteMessageTemplate"]
    assert (
        remote["VerificationMessageTemplate"]["EmailMessage"].encode()
        == rich["VerificationMessageTemplate"]["EmailMessage"].encode()
    )
    assert v4.content_hash == v2.content_hash


@pytest.mark.django_db
def test_conflict_when_cognito_moved_after_the_diff(eshop, cognito, django_capture_on_commit_callbacks):
    seen = described(cognito, eshop)
    cognito.update_user_pool(
        UserPoolId=eshop.pool_id,
        VerificationMessageTemplate={
            "DefaultEmailOption": "CONFIRM_WITH_CODE",
            "EmailSubject": "Someone else",
            "EmailMessage": "Changed in the console {####}",
        },
        AdminCreateUserConfig=seen["AdminCreateUserConfig"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        version = templates_service.pool_messages_update(
            pool=eshop, templates=new_templates(), actor="alice", remote=seen
        )
    version.refresh_from_db()
    assert version.outcome == "conflict"
    assert described(cognito, eshop)["VerificationMessageTemplate"]["EmailSubject"] == "Someone else"


@pytest.mark.django_db
def test_pull_records_a_template_changed_in_cognito(eshop, cognito):
    current = described(cognito, eshop)
    template = {**current["VerificationMessageTemplate"], "EmailSubject": "Changed in the console"}
    cognito.update_user_pool(
        UserPoolId=eshop.pool_id,
        VerificationMessageTemplate=template,
        AdminCreateUserConfig=current["AdminCreateUserConfig"],
    )
    assert pull_pool(pool=eshop, source="worker").status == "succeeded"
    latest = TemplateVersion.objects.filter(pool=eshop).order_by("-number").first()
    assert (latest.number, latest.source, latest.actor) == (2, "sync", "")
    assert latest.templates["VerificationMessageTemplate"]["EmailSubject"] == "Changed in the console"
    assert pull_pool(pool=eshop).status == "succeeded"
    assert TemplateVersion.objects.filter(pool=eshop).count() == 2


@pytest.mark.django_db
def test_second_save_waits_for_the_first(eshop):
    # Not applied: no on_commit run.
    templates_service.pool_messages_update(pool=eshop, templates=new_templates(), actor="alice")
    with pytest.raises(ValidationError, match="still on its way to Cognito"):
        templates_service.pool_messages_update(pool=eshop, templates=new_templates(email_subject="Other"), actor="bob")
    assert TemplateVersion.objects.filter(pool=eshop).count() == 2


# Admin views --------------------------------------------------------------------------------------------


def url(view: str, *args) -> str:
    return reverse(f"admin:directory_userpool_{view}", args=args)


def form_data(**changes: str) -> dict[str, str]:
    return {**VALID, **changes}


@pytest.mark.django_db
def test_editor_page_has_a_strict_csp(admin_client, eshop):
    response = admin_client.get(url("messages", eshop.pk))
    assert response.status_code == HTTPStatus.OK
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip())
    assert policy["script-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    body = response.content.decode()
    assert 'id="messages-editor-config"' in body and "messages_editor.js" in body
    assert '<iframe sandbox=""' in body and "allow-scripts" not in body and "allow-same-origin" not in body
    # The rest of the admin is not given a policy by this feature.
    assert "Content-Security-Policy" not in admin_client.get(url("change", eshop.pk))


@pytest.mark.django_db
def test_pool_page_links_to_the_editor(admin_client, eshop):
    body = admin_client.get(url("change", eshop.pk)).content.decode()
    assert url("messages", eshop.pk) in body and 'id="pool-messages-link"' in body


@pytest.mark.django_db
@pytest.mark.parametrize("view", ["messages", "messages_history"])
def test_views_need_the_permission(client, django_user_model, eshop, view):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(url(view, eshop.pk)).status_code == HTTPStatus.FORBIDDEN
    assert client.post(url("messages_preview", eshop.pk), form_data()).status_code == HTTPStatus.FORBIDDEN
    assert client.post(url("messages_restore", eshop.pk, 1)).status_code == HTTPStatus.FORBIDDEN
    user.user_permissions.add(Permission.objects.get(codename="edit_messages_userpool"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    assert client.get(url(view, eshop.pk)).status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_preview_renders_frames_and_errors(admin_client, eshop):
    response = admin_client.post(url("messages_preview", eshop.pk), form_data(email_message=ESHOP_VERIFICATION_HTML))
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert 'id="preview-verification-desktop"' in body and 'id="preview-verification-phone"' in body
    assert "{123456}" in body  # inside the escaped srcdoc
    assert "&lt;table width=&quot;100%&quot;" in body  # escaped into the attribute, never live markup
    response = admin_client.post(url("messages_preview", eshop.pk), form_data(email_message="no code"))
    state = response.context["preview_state"]
    assert state["errors"]["email_message"][0].startswith("email_message: must contain the code placeholder {####}")
    assert response.context["preview"].sms[0][2].segments == 1


@pytest.mark.django_db
def test_editor_shows_field_errors_and_saves_nothing(admin_client, eshop):
    response = admin_client.post(url("messages", eshop.pk), form_data(email_message="no code", _review="1"))
    assert response.status_code == HTTPStatus.OK
    assert "email_message: must contain the code placeholder {####}" in response.content.decode()
    assert TemplateVersion.objects.filter(pool=eshop).count() == 1 and not PendingChange.objects.exists()


@pytest.mark.django_db
def test_review_confirm_save_history_restore(admin_client, emu, eshop, cognito, django_capture_on_commit_callbacks):
    data = form_data(email_message=ESHOP_VERIFICATION_HTML.replace("\n", "\r\n").replace("{{####}}", "{####}"))
    response = admin_client.post(url("messages", eshop.pk), {**data, "_review": "1"})
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert "Compared with Cognito, read just now (DescribeUserPool)" in body
    diff_names = [d.name for d in response.context["diffs"]]
    assert "email_message" in diff_names and "sms_message" in diff_names
    remote_hash = response.context["remote_hash"]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("messages", eshop.pk), {**data, "remote_hash": remote_hash, "_confirm": "1"})
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == url("messages_history", eshop.pk)
    version = TemplateVersion.objects.get(pool=eshop, number=2)
    assert version.actor == "admin" and version.outcome == "applied"
    # CRLF from the browser is stored as Cognito's LF, so the text matches the walkthrough's byte for byte.
    remote = described(cognito, eshop)["VerificationMessageTemplate"]["EmailMessage"]
    assert remote == ESHOP_VERIFICATION_HTML.replace("{{####}}", "{####}")
    history = admin_client.get(url("messages_history", eshop.pk)).content.decode()
    assert 'id="version-2"' in history and "Saved in the editor" in history and "applied" in history
    assert 'id="restore-1"' in history and 'id="restore-2"' not in history
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("messages_restore", eshop.pk, 1))
    assert response.status_code == HTTPStatus.FOUND
    restored = TemplateVersion.objects.get(pool=eshop, number=3)
    assert restored.source == "restore" and restored.restored_from.number == 1
    assert described(cognito, eshop)["VerificationMessageTemplate"]["EmailMessage"] == ESHOP_VERIFICATION_HTML


@pytest.mark.django_db
def test_confirm_refuses_when_cognito_moved_during_review(admin_client, eshop, cognito):
    data = form_data()
    response = admin_client.post(url("messages", eshop.pk), {**data, "_review": "1"})
    remote_hash = response.context["remote_hash"]
    current = described(cognito, eshop)
    cognito.update_user_pool(
        UserPoolId=eshop.pool_id,
        VerificationMessageTemplate={**current["VerificationMessageTemplate"], "EmailSubject": "Moved"},
        AdminCreateUserConfig=current["AdminCreateUserConfig"],
    )
    response = admin_client.post(url("messages", eshop.pk), {**data, "remote_hash": remote_hash, "_confirm": "1"})
    assert response.status_code == HTTPStatus.OK
    assert "changed while you were reviewing" in response.content.decode()
    assert not PendingChange.objects.exists()


@pytest.mark.django_db
def test_template_versions_are_read_only_in_the_admin(admin_client, eshop):
    changelist = admin_client.get(reverse("admin:directory_templateversion_changelist"))
    assert changelist.status_code == HTTPStatus.OK and "eshop-fcj" in changelist.content.decode()
    assert admin_client.get(reverse("admin:directory_templateversion_add")).status_code == HTTPStatus.FORBIDDEN
    version = TemplateVersion.objects.get(pool=eshop)
    change = reverse("admin:directory_templateversion_change", args=[version.pk])
    assert admin_client.post(change, {}).status_code == HTTPStatus.FORBIDDEN
