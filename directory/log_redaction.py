"""Keeps secrets out of botocore's request logs: a logging filter installed on its loggers."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from .mapping import SECRET_KEYS, without_secrets


class RedactRequestSecrets(logging.Filter):
    """botocore logs every request's parameters at DEBUG ("Making request ... with params"), body
    included: the AdminCreateUser body carries the temporary password. This filter removes secret
    keys from logged request bodies before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_redact(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = _redact(record.args)
        return True


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        if "body" in value:
            return {**value, "body": _redact_body(value["body"])}
        return value
    if isinstance(value, bytes | str):
        return _redact_body(value)
    return value


def _redact_body(body: Any) -> Any:
    if not isinstance(body, bytes | str):
        return body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not any(key in text for key in SECRET_KEYS):
        return body
    try:
        cleaned = json.dumps(without_secrets(json.loads(text)))
    except ValueError:
        cleaned = "<redacted: carried a secret>"
    return cleaned.encode() if isinstance(body, bytes) else cleaned


_redaction = RedactRequestSecrets()
REDACTED_LOGGERS = ("botocore.endpoint", "botocore.httpsession", "botocore.parsers", "urllib3.connectionpool")


def install_log_redaction() -> None:
    """Attach the redaction filter to botocore's request loggers (idempotent)."""
    for name in REDACTED_LOGGERS:
        target = logging.getLogger(name)
        if _redaction not in target.filters:
            target.addFilter(_redaction)
