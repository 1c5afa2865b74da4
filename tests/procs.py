"""Real processes for cross-process tests: a private redis-server, Celery worker subprocesses,
and a moto Cognito server with a fault middleware. Every process runs in its own session
(process group) so it can be killed whole; everything here is cleaned up by its owner."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def kill_group(proc: subprocess.Popen | None, sig: int = signal.SIGKILL, timeout: float = 10) -> None:
    """Signal the process group led by `proc` (started with start_new_session) and reap it."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# --------------------------------------------------------------------------- Redis


def redis_server_binary() -> str | None:
    """$REDIS_SERVER_BIN if set (and only that), else /usr/bin/redis-server, else PATH's."""
    configured = os.environ.get("REDIS_SERVER_BIN")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access(REDIS_SERVER, os.X_OK):
        return REDIS_SERVER
    return shutil.which("redis-server")


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private, non-persistent redis-server on a free loopback port; start/stop at will
    (a restart keeps the port, like a broker coming back)."""

    def __init__(self, log_dir: Path, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or redis_server_binary() or REDIS_SERVER
        self.port = port or free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        assert self.proc is None, "already running"
        self.starts += 1
        log = self.log_dir / f"redis-{self.port}-{self.starts}.log"
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(self.log_dir), "--logfile", ""]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            wait_until(lambda: self.proc.poll() is not None or _redis_ping(self.port), timeout=timeout,
                       what=f"redis-server on port {self.port}")
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            code = self.proc.returncode
            self.proc = None
            raise RuntimeError(f"redis-server exited with {code}:\n{_tail(log)}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        kill_group(proc, signal.SIGKILL)
        # Down means refusing connections, not just a dead pid.
        wait_until(lambda: not _redis_ping(self.port), timeout=5, what="redis-server to stop")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@contextlib.contextmanager
def redis_server(log_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(log_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- Celery workers


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for another process, naming the database this process is using
    (inside a test: the test database)."""
    engine = settings_dict["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    if engine == "django.db.backends.postgresql":
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    raise NotImplementedError(f"no DATABASE_URL for {engine}")


def worker_env(*, database_url: str, broker_url: str, cognito_endpoint: str, **extra: str) -> dict[str, str]:
    # DATABASE_*: a worker connects with `database_url` only, never as the owner (DATABASE_OWNER_URL).
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AWS_", "CELERY_", "DJANGO_", "DATABASE_"))
    }
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        CELERY_TASK_ALWAYS_EAGER="false",
        DJANGO_DEBUG="true",
        DJANGO_SETTINGS_MODULE="cognito_admin.settings",
        DJANGO_LOG_LEVEL="INFO",
        AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=cognito_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class CeleryWorker:
    """`celery -A cognito_admin worker` as a subprocess in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path, *, pool: str = "solo", concurrency: int = 1,
                 name: str = "w1") -> None:
        self.env = env
        self.log_path = log_path
        self.args = [str(VENV_BIN / "celery"), "-A", "cognito_admin", "worker", "--pool", pool,
                     "--concurrency", str(concurrency), "-Q", "celery", "--without-gossip", "--without-mingle",
                     "--without-heartbeat", "--loglevel", "INFO", "--hostname", f"{name}@%h"]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> CeleryWorker:
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until(lambda: self.proc.poll() is not None or " ready." in _tail(self.log_path, 100_000),
                       timeout=timeout, interval=0.2, what="the celery worker to be ready")
        except TimeoutError as exc:
            self.kill()
            raise TimeoutError(f"{exc}\n{self.log()}") from None
        if self.proc.poll() is not None:
            raise RuntimeError(f"celery worker exited with {self.proc.returncode}:\n{self.log()}")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        proc, self.proc = self.proc, None
        kill_group(proc, sig)

    def pool_children(self) -> list[int]:
        """The prefork pool's processes (the main process's children)."""
        assert self.proc is not None
        return children(self.proc.pid)

    def log(self, chars: int = 6000) -> str:
        return _tail(self.log_path, chars)

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def worker_for_test(tmp_path: Path, name: str, *, settings_dict: dict[str, Any], cognito_endpoint: str, broker_url: str,
                pool: str = "solo", **env: str) -> CeleryWorker:
    """A worker on the test's database (`connection.settings_dict`), broker and Cognito endpoint,
    logging to tmp_path/worker-NAME.log; `env` adds or overrides environment variables."""
    environ = worker_env(database_url=database_url(settings_dict), broker_url=broker_url,
                         cognito_endpoint=cognito_endpoint, **env)
    return CeleryWorker(environ, tmp_path / f"worker-{name}.log", pool=pool, concurrency=1, name=name)


# --------------------------------------------------------------------------- moto with faults


class HoldAfterForward:
    """A shim for EmulatorMiddleware: forwards the request to moto (so Cognito applies it),
    then, for the first `hold` calls, keeps the answer back until the test releases it —
    a worker can be killed while its call is in flight but already done remotely."""

    def __init__(self, hold: int = 1, timeout: float = 60) -> None:
        self.hold = hold
        self.timeout = timeout
        self.calls = 0
        self.in_flight = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any],
                 app: Callable[..., Iterable[bytes]]) -> Iterable[bytes]:
        with self._lock:
            self.calls += 1
            held = self.calls <= self.hold
        if not held:
            return app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        result = app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        self.in_flight.set()
        self.release.wait(self.timeout)
        start_response(captured["status"], captured["headers"])
        return [body]


class FaultServer:
    """moto's WSGI app behind the emulator's middleware, on a free loopback port.
    Shares moto's in-process backends with every other moto server in this process."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        import logging

        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        from emulator import build_app

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.app = build_app(handlers)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=MotoRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-moto", daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
