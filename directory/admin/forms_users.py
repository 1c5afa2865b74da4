"""Forms for the user pages: the attribute editor built from the pool's schema, the group choice of bulk actions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from ..models import CognitoGroup, CognitoUser, UserPool
from ..validation import MAX_ATTRIBUTE_LENGTH, READ_ONLY_ATTRIBUTES, validate_user_attributes

BOOLEAN_CHOICES = [("", "–"), ("true", "true"), ("false", "false")]


def _is_editable(definition: dict[str, Any]) -> bool:
    name = definition["Name"]
    return (
        definition.get("Mutable", True) is not False
        and name not in READ_ONLY_ATTRIBUTES
        and not definition.get("DeveloperOnlyAttribute")
        and not name.startswith("dev:")
    )


class UserAttributesForm(forms.Form):
    """One field per attribute of the pool's schema: mutable ones editable, the rest shown disabled.

    Values are checked with the same rules the service applies (validation.validate_user_attributes),
    so errors name the attribute and Cognito's rule; the service checks again inside its transaction.
    """

    def __init__(self, *args, user: CognitoUser, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.read_only_names: list[str] = []
        current = user.attributes or {}
        for definition in user.pool.schema:
            name = definition.get("Name")
            if not name or name.startswith("dev:"):
                continue
            editable = _is_editable(definition)
            required = bool(definition.get("Required")) and editable
            label = name
            if definition.get("AttributeDataType") == "Boolean":
                field: forms.Field = forms.ChoiceField(choices=BOOLEAN_CHOICES, required=required, label=label)
            else:
                constraints = definition.get("StringAttributeConstraints") or {}
                max_length = int(constraints.get("MaxLength") or MAX_ATTRIBUTE_LENGTH)
                widget = forms.TextInput(attrs={"size": 60, "maxlength": max_length})
                # No Django max_length: the over-long case gets the service's message, which
                # names the attribute and Cognito's limit.
                field = forms.CharField(required=required, label=label, widget=widget, strip=True)
            field.initial = current.get(name, "")
            field.error_messages["required"] = f"{name} is required by this pool and cannot be blank."
            help_bits = [definition.get("AttributeDataType", "String")]
            if name == "phone_number":
                help_bits.append("E.164, e.g. +14155550100")
            if definition.get("Required"):
                help_bits.append("required")
            if not editable:
                field.disabled = True
                help_bits.append("read-only: immutable or managed by Cognito")
                self.read_only_names.append(name)
            field.help_text = "; ".join(help_bits)
            self.fields[name] = field
        # Values the user holds that the schema does not list (Cognito-managed ones such as
        # `sub` when a schema omits them) are shown, never editable.
        for name in sorted(set(current) - set(self.fields)):
            self.fields[name] = forms.CharField(
                required=False, disabled=True, initial=current[name], label=name,
                help_text="read-only: not in the pool's schema or managed by Cognito",
            )
            self.read_only_names.append(name)

    def clean(self):
        cleaned = super().clean()
        # A disabled field ignores what was posted for it; posting it anyway is refused
        # so an operator (or a script) learns that the attribute cannot change.
        schema = {a.get("Name") for a in self.user.pool.schema}
        for name in self.read_only_names:
            if name in self.data:
                if name in READ_ONLY_ATTRIBUTES or name not in schema:
                    message = f"{name} is managed by Cognito (or not in this pool's schema) and cannot be changed."
                else:
                    message = f"{name} is immutable in this pool: it can only be set at creation."
                self.add_error(name, message)
        changed = self.changed_attributes(cleaned)
        if changed:
            try:
                validate_user_attributes(self.user.pool, changed)
            except ValidationError as exc:
                self.add_service_errors(exc)
        return cleaned

    def changed_attributes(self, cleaned: dict[str, Any] | None = None) -> dict[str, str]:
        cleaned = self.cleaned_data if cleaned is None else cleaned
        current = self.user.attributes or {}
        changed = {}
        for name, field in self.fields.items():
            if field.disabled or name not in cleaned:
                continue
            value = cleaned[name] or ""
            if value != (current.get(name) or ""):
                changed[name] = value
        return changed

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put a service's ValidationError({attribute: [...]}) on the matching fields."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for name, messages in exc.message_dict.items():
            if name in self.fields:
                for message in messages:
                    if message not in self.errors.get(name, []):
                        self.add_error(name, message)
            else:
                self.add_error(None, [f"{name}: {m}" for m in messages])


class GroupChoiceForm(forms.Form):
    """The group for add_to_group / remove_from_group: only groups of the selection's pool."""

    group = forms.ModelChoiceField(queryset=CognitoGroup.objects.none(), empty_label=None)

    def __init__(self, *args, pool: UserPool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = CognitoGroup.objects.filter(pool=pool).order_by("precedence", "name")
