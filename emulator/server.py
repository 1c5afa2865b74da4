"""The emulator's server: moto's WSGI app behind the shim middleware, served from a daemon thread."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from moto.cognitoidp.models import UserStatus
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from .latency import LatencyMiddleware, latency_ms
from .protocol import Environ, Handler, StartResponse, WSGIApp, cognito_backend
from .quota import QuotaMiddleware, quota_mode
from .shims import PATHS, SHIMS


class EmulatorMiddleware:
    """WSGI middleware in front of moto that routes selected Cognito operations to shims."""

    def __init__(self, app: WSGIApp, handlers: dict[str, Handler] | None = None) -> None:
        self.app = app
        self.handlers: dict[str, Handler] = dict(SHIMS if handlers is None else handlers)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        handler = self.handlers.get(environ.get("HTTP_X_AMZ_TARGET", ""))
        if handler is None and environ.get("PATH_INFO") in PATHS:
            handler = PATHS[environ["PATH_INFO"]]  # the emulator's own endpoints (message log)
        if handler is None:
            return self.app(environ, start_response)
        return handler(environ, start_response, self.app)


def build_app(handlers: dict[str, Handler] | None = None) -> EmulatorMiddleware:
    """moto's all-services WSGI app wrapped in the shim middleware."""
    return EmulatorMiddleware(DomainDispatcherApplication(create_backend_app), handlers)


@dataclass
class EmulatorServer:
    """A running emulator: werkzeug's threaded server in a daemon thread."""

    server: Any
    thread: threading.Thread
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout)


def start_server(
    port: int = 0, host: str = "127.0.0.1", quota: bool | None = None, latency: float | None = None
) -> EmulatorServer:
    """Serve build_app() on host:port (0: a free port) and return once it accepts requests.
    `quota` (default: $COGNITO_EMULATOR_QUOTA) enforces Cognito's request rates (QuotaMiddleware);
    `latency` (milliseconds, default: $COGNITO_EMULATOR_LATENCY_MS) delays every Cognito call
    (LatencyMiddleware), throttled answers included."""
    # HASH ids derive from the creation request (region, name, settings) instead of being random,
    # so the demo pools and clients keep their ids across restarts: the mirror does not churn and
    # a frontend's pasted client id stays valid. Caveat: two identical clients in one pool collide.
    os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY", "HASH")
    os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY", "HASH")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app: WSGIApp = build_app()
    if quota_mode(quota):
        app = QuotaMiddleware(app)
    delay = latency_ms(latency)
    if delay:
        app = LatencyMiddleware(app, delay)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="cognito-emulator", daemon=True)
    thread.start()
    return EmulatorServer(server=server, thread=thread, host=host)


# --------------------------------------------------------------------------- moto's backend


def set_user_status(pool_id: str, username: str, status: str, region: str = "us-east-1") -> None:
    """Set a user's status inside moto's in-process backend (for statuses its API cannot produce).

    Works only in the process that hosts the moto server (or inside mock_aws). `username` is
    the Cognito Username (the sub in e-mail pools) or, as in Cognito, an e-mail/phone alias.
    """
    try:
        pool = cognito_backend(region).user_pools[pool_id]
    except KeyError:
        raise LookupError(
            f"user pool {pool_id} is not in this process's moto backend ({region}); "
            "set_user_status only works where the moto server runs"
        ) from None
    user = pool.users.get(username) or pool._get_user(username)
    if user is None:
        raise LookupError(f"user {username!r} not found in {pool_id}")
    # moto compares its own statuses by identity (`is UserStatus.CONFIRMED`): keep its enum.
    user.status = UserStatus[status] if status in UserStatus.__members__ else status

