"""Quota mode: Cognito's per-category request rates enforced in front of the emulator.

Cognito answers TooManyRequestsException once an account exceeds a category's request
rate in a region (UserList 30/s, UserUpdate 25/s …). moto never does, so without this a
client that ignores the quotas looks fine locally. With `cognito_emulator --quota` (or
COGNITO_EMULATOR_QUOTA=1) every Cognito call takes a token from a bucket per region and
category holding one second of Cognito's default rate; past it the answer is Cognito's
throttling error. GET /_emulator/quota shows the counts (DELETE resets them and the buckets).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from typing import Any

from directory.ratelimit import COGNITO_QUOTAS, LocalBackend, category_for

from .protocol import TARGET_PREFIX, Environ, StartResponse, WSGIApp

QUOTA_PATH = "/_emulator/quota"


def quota_mode(flag: bool | None = None) -> bool:
    """The flag if given, else $COGNITO_EMULATOR_QUOTA (1/true/yes/on)."""
    if flag is not None:
        return flag
    return os.environ.get("COGNITO_EMULATOR_QUOTA", "").strip().lower() in {"1", "true", "yes", "on"}


class QuotaMiddleware:
    """Enforces Cognito's per-category request rates (account-wide, per region) in front of the emulator."""

    def __init__(self, app: WSGIApp, quotas: dict[str, float] | None = None) -> None:
        self.app = app
        self.quotas = dict(COGNITO_QUOTAS if quotas is None else quotas)
        self._backend = LocalBackend()
        self._lock = threading.Lock()
        self.allowed: dict[str, int] = {}
        self.refused: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        # The wrapped EmulatorMiddleware's attributes (handlers …) stay reachable.
        return getattr(self.app, name)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == QUOTA_PATH:
            return self._stats(environ, start_response)
        header = environ.get("HTTP_X_AMZ_TARGET", "")
        if not header.startswith(TARGET_PREFIX):
            return self.app(environ, start_response)
        category = category_for(header[len(TARGET_PREFIX) :])
        rate = float(self.quotas.get(category) or min(self.quotas.values()))
        match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        region = match.group(1) if match else "us-east-1"
        wait = self._backend.take(
            f"{region}:{category}", lane="interactive", rate=rate, burst=rate, share=1.0, lanes=("interactive",)
        )
        with self._lock:
            counts = self.refused if wait > 0 else self.allowed
            counts[category] = counts.get(category, 0) + 1
        if wait <= 0:
            return self.app(environ, start_response)
        body = json.dumps({"__type": "TooManyRequestsException", "message": "Rate exceeded"}).encode()
        start_response(
            "400 Bad Request",
            [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-ErrorType", "TooManyRequestsException"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    def _stats(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        with self._lock:
            if environ.get("REQUEST_METHOD") == "DELETE":
                self.allowed.clear()
                self.refused.clear()
                self._backend.reset()
            payload = {"quotas": self.quotas, "allowed": dict(self.allowed), "refused": dict(self.refused)}
        body = json.dumps(payload).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
