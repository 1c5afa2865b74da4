"""Latency mode: every Cognito call answered after a fixed delay, as a distant Cognito answers.

moto answers a page of users in a few milliseconds; real Cognito takes tens (the figures in the
README's benchmarks use 80 ms a page). With `cognito_emulator --latency-ms N` (or
COGNITO_EMULATOR_LATENCY_MS=N) each Cognito request waits N ms before it is handled, on its own
request thread, so concurrent requests wait side by side as they would over a network. The
emulator's own endpoints (`/_emulator/...`, `/moto-api/...`) are not delayed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from .protocol import TARGET_PREFIX, Environ, StartResponse, WSGIApp

LATENCY_VARIABLE = "COGNITO_EMULATOR_LATENCY_MS"


def parse_latency_ms(value: str | float, *, name: str = LATENCY_VARIABLE) -> float:
    """Milliseconds from text or a number; ValueError naming `name` unless 0 or more."""
    try:
        ms = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number of milliseconds") from None
    if not ms >= 0 or ms == float("inf"):  # also refuses NaN
        raise ValueError(f"{name}: must be 0 or more milliseconds, not {value!r}")
    return ms


def latency_ms(value: float | None = None) -> float:
    """The value if given, else $COGNITO_EMULATOR_LATENCY_MS, else 0."""
    if value is not None:
        return parse_latency_ms(value, name="latency_ms")
    raw = os.environ.get(LATENCY_VARIABLE, "").strip()
    return parse_latency_ms(raw) if raw else 0.0


class LatencyMiddleware:
    """Delays every Cognito request (X-Amz-Target) by a fixed number of milliseconds."""

    def __init__(self, app: WSGIApp, ms: float) -> None:
        self.app = app
        self.ms = parse_latency_ms(ms, name="ms")

    def __getattr__(self, name: str) -> Any:
        # The wrapped middlewares' attributes (handlers, quota counts …) stay reachable.
        return getattr(self.app, name)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(TARGET_PREFIX):
            time.sleep(self.ms / 1000)
        return self.app(environ, start_response)
