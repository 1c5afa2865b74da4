"""Logging filters: a refused request (403) is one line in the log, not a traceback."""

from __future__ import annotations

import logging


class ForbiddenWithoutTraceback(logging.Filter):
    """django.request logs a PermissionDenied with its traceback ("Forbidden (Permission denied): /path"):
    a refusal is an expected answer, so the line stays and the traceback goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
