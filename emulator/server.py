"""The emulator's server: moto's WSGI app behind the shim middleware, served from a daemon thread,
with its state kept on disk when asked (state.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from .latency import LatencyMiddleware, latency_ms
from .protocol import TARGET_PREFIX, Environ, Handler, StartResponse, WSGIApp, cognito_backend, set_status
from .quota import QuotaMiddleware, quota_mode
from .shims import PATHS, PATTERNS, SHIMS
from .signin import SESSIONS
from .state import StateStore

# Calls that change nothing (the state file is written only after the others).
_READ_ONLY = ("Describe", "List", "Get", "AdminGet", "AdminList")
# Browsers calling the emulator from an app on another origin (Amplify, identity-js) preflight first.
CORS_HEADERS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "*"),
    ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
    ("Access-Control-Expose-Headers", "x-amzn-RequestId, x-amzn-ErrorType, x-amzn-ErrorMessage, Date"),
]


class EmulatorMiddleware:
    """WSGI middleware in front of moto that routes selected Cognito operations to shims."""

    def __init__(self, app: WSGIApp, handlers: dict[str, Handler] | None = None) -> None:
        self.app = app
        self.handlers: dict[str, Handler] = dict(SHIMS if handlers is None else handlers)
        self.on_change: list[Any] = []  # called after a call that may have changed state

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {k.lower() for k, _ in headers}
            return start_response(
                status, [*headers, *(h for h in CORS_HEADERS if h[0].lower() not in present)], exc_info
            )

        if environ.get("REQUEST_METHOD") == "OPTIONS":
            with_cors("200 OK", [("Content-Length", "0")])
            return [b""]
        header = environ.get("HTTP_X_AMZ_TARGET", "")
        path = environ.get("PATH_INFO", "")
        handler = self.handlers.get(header)
        if handler is None and path in PATHS:
            handler = PATHS[path]  # the emulator's own endpoints (message log)
        if handler is None and environ.get("REQUEST_METHOD") == "GET":
            handler = next((h for pattern, h in PATTERNS if pattern.match(path)), None)
        try:
            if handler is None:
                return self.app(environ, with_cors)
            return handler(environ, with_cors, self.app)
        finally:
            operation = header[len(TARGET_PREFIX) :] if header.startswith(TARGET_PREFIX) else ""
            if (operation and not operation.startswith(_READ_ONLY)) or path in PATHS or path.startswith("/moto-api"):
                for callback in self.on_change:
                    callback()


def build_app(handlers: dict[str, Handler] | None = None) -> EmulatorMiddleware:
    """moto's all-services WSGI app wrapped in the shim middleware."""
    return EmulatorMiddleware(DomainDispatcherApplication(create_backend_app), handlers)


@dataclass
class EmulatorServer:
    """A running emulator: werkzeug's threaded server in a daemon thread."""

    server: Any
    thread: threading.Thread
    host: str = "127.0.0.1"
    store: StateStore | None = None
    restored: int | None = None  # pools read back from the state file (None: there was none)
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
        if self.store is not None:
            self.store.stop()  # the last write, after the last request


def start_server(
    port: int = 0,
    host: str = "127.0.0.1",
    quota: bool | None = None,
    state_path: Path | str | None = None,
    reset: bool = False,
    latency: float | None = None,
) -> EmulatorServer:
    """Serve build_app() on host:port (0: a free port) and return once it accepts requests.
    `quota` (default: $COGNITO_EMULATOR_QUOTA) enforces Cognito's request rates (QuotaMiddleware);
    `latency` (milliseconds, default: $COGNITO_EMULATOR_LATENCY_MS) delays every Cognito call
    (LatencyMiddleware), throttled answers included. With `state_path`, the state is read from that
    file first (unless `reset`, which deletes it) and written back on change and on stop."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    SESSIONS.clear()
    middleware = build_app()
    store = restored = None
    if state_path is not None:
        store = StateStore(Path(state_path))
        if reset:
            store.reset()
        restored = store.load()
        middleware.on_change.append(store.mark_dirty)
        store.start()
    app: WSGIApp = QuotaMiddleware(middleware) if quota_mode(quota) else middleware
    delay = latency_ms(latency)
    if delay:
        app = LatencyMiddleware(app, delay)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="cognito-emulator", daemon=True)
    thread.start()
    return EmulatorServer(server=server, thread=thread, host=host, store=store, restored=restored)


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
    set_status(user, status)
