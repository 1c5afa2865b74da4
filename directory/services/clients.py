"""App clients: validate and request a change of the settings operators may edit (a full-config
UpdateUserPoolClient, built by the push from a fresh DescribeUserPoolClient)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit
from ..gateway import service_enum
from ..models import AppClient, PendingChange
from ..outbox import request_change
from ..settings_catalog import CLIENT_SETTINGS
from ..validation import shape_problems, validate_urls


def api_enum(shape: str) -> list[str]:
    """Every value Cognito's API accepts for an enum shape (e.g. ExplicitAuthFlowsType), from botocore's model."""
    return sorted(service_enum(shape))


# Legacy ExplicitAuthFlows values and the ALLOW_ values that replace them.
LEGACY_FLOWS = {
    "ADMIN_NO_SRP_AUTH": "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "USER_PASSWORD_AUTH": "ALLOW_USER_PASSWORD_AUTH",
    "CUSTOM_AUTH_FLOW_ONLY": "ALLOW_CUSTOM_AUTH",
}


def legacy_flows(flows: list[str] | None) -> list[str]:
    return [flow for flow in flows or [] if flow in LEGACY_FLOWS]


def flows_mix_problem(flows: list[str] | None) -> str:
    """Why Cognito would refuse these ExplicitAuthFlows ("" when it would not): legacy values and ALLOW_
    values cannot be mixed in one request."""
    legacy = legacy_flows(flows)
    allow = [flow for flow in flows or [] if flow.startswith("ALLOW_")]
    if legacy and allow:
        return (
            f"Cognito refuses a mix of legacy auth flows ({', '.join(legacy)}) and ALLOW_ flows "
            f"({', '.join(allow)}) in one request: keep only ALLOW_ values (migrate the legacy ones), "
            "or only legacy ones."
        )
    return ""


def migrate_legacy_flows(flows: list[str] | None) -> list[str]:
    """The ALLOW_ flows that do what `flows` did: each legacy value mapped (ADMIN_NO_SRP_AUTH ->
    ALLOW_ADMIN_USER_PASSWORD_AUTH, USER_PASSWORD_AUTH -> ALLOW_USER_PASSWORD_AUTH, CUSTOM_AUTH_FLOW_ONLY ->
    ALLOW_CUSTOM_AUTH), plus ALLOW_REFRESH_TOKEN_AUTH, which legacy clients had implicitly."""
    migrated = [LEGACY_FLOWS.get(flow, flow) for flow in flows or []]
    return list(dict.fromkeys([*migrated, "ALLOW_REFRESH_TOKEN_AUTH"]))


def _unit_minutes(unit: str) -> int:
    return {"seconds": 1 / 60, "minutes": 1, "hours": 60, "days": 1440}.get(unit or "", 1)  # type: ignore[return-value]


def validate_client_changes(client: AppClient, changes: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    unknown = set(changes) - set(CLIENT_SETTINGS)
    for name in unknown:
        errors[name] = [f"{name} cannot be changed here."]
    flows = changes.get("explicit_auth_flows")
    if flows is not None:
        allowed = service_enum("ExplicitAuthFlowsType")
        bad = [f for f in flows if f not in allowed]
        if bad:
            errors["explicit_auth_flows"] = [
                f"Unknown auth flow(s) {', '.join(bad)}; Cognito accepts {', '.join(sorted(allowed))}."
            ]
        elif mix := flows_mix_problem(flows):
            errors["explicit_auth_flows"] = [mix]
    oauth = changes.get("allowed_oauth_flows")
    if oauth is not None:
        allowed = service_enum("OAuthFlowType")
        bad = [f for f in oauth if f not in allowed]
        if bad:
            errors["allowed_oauth_flows"] = [
                f"Unknown OAuth flow(s) {', '.join(bad)}; allowed: {', '.join(sorted(allowed))}."
            ]
    scopes = changes.get("allowed_oauth_scopes")
    if scopes is not None:
        bad_scopes = [(scope, shape_problems("ScopeType", scope)) for scope in scopes]
        bad_scopes = [(scope, problems) for scope, problems in bad_scopes if problems]
        if bad_scopes:
            scope, problems = bad_scopes[0]
            errors["allowed_oauth_scopes"] = [
                f"Scope {scope[:60]!r} needs {'; '.join(problems)}: printable ASCII without spaces, quotes or "
                f"backslashes, as in openid, email or resource-server/read."
            ]
    pue = changes.get("prevent_user_existence_errors")
    if pue not in (None, "") and pue not in service_enum("PreventUserExistenceErrorTypes"):
        errors["prevent_user_existence_errors"] = ["Must be ENABLED or LEGACY."]
    units = {**client.token_validity_units, **(changes.get("token_validity_units") or {})}
    # Cognito's ranges: access and ID tokens 5 minutes to 1 day; refresh 60 minutes to 10 years.
    ranges = {
        "access_token_validity": ("AccessToken", 5, 1440, "hours"),
        "id_token_validity": ("IdToken", 5, 1440, "hours"),
        "refresh_token_validity": ("RefreshToken", 60, 3650 * 1440, "days"),
    }
    for field, (unit_key, low, high, default_unit) in ranges.items():
        value = changes.get(field)
        if value is None:
            continue
        unit = units.get(unit_key) or default_unit
        minutes = int(value) * _unit_minutes(unit)
        if not low <= minutes <= high:
            errors[field] = [
                f"{field} {value} {unit} is outside Cognito's range ({low} minutes to {high // 1440} days)."
            ]
    for field in ("callback_urls", "logout_urls"):
        if changes.get(field):
            try:
                validate_urls(field, changes[field])
            except ValidationError as exc:
                errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def app_client_update(
    *, client: AppClient, changes: dict[str, Any], actor: str, source: str = audit.Source.ADMIN
) -> PendingChange | None:
    """Change an app client's settings: a full-config UpdateUserPoolClient built from a fresh
    DescribeUserPoolClient, so every other setting stays as it is. Idempotent."""
    validate_client_changes(client, changes)
    before = {CLIENT_SETTINGS[k]: getattr(client, k) for k, v in changes.items() if getattr(client, k) != v}
    after = {CLIENT_SETTINGS[k]: v for k, v in changes.items() if getattr(client, k) != v}
    if not after:
        return None
    for field, value in changes.items():
        setattr(client, field, value)
    client.save()
    return request_change(
        pool=client.pool,
        object_type="app_client",
        object_key=client.client_id,
        operation=PendingChange.Operation.CLIENT_UPDATE,
        before=before,
        after=after,
        actor=actor,
        base_version=client.content_hash,
        source=source,
        object_repr=client.name,
    )
