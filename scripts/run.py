"""`make run`: migrate, make sure there is an admin login, then run web + worker + beat (+ emulator).

Local mode (no AWS endpoint configured and no AWS credentials found) starts the Cognito
emulator with demo pools and points boto3 at it; AWS mode talks to Cognito as boto3 is
configured. See README.md, "make run".
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_ADMIN = ("admin", "admin", "admin@example.com")
TRUE = {"1", "true", "yes", "on"}
# What management commands need from local mode, written to var/local.env for a plain shell (settings
# read it at startup, below whatever the environment and .env say).
LOCAL_ENV_KEYS = (
    "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
    "AWS_DEFAULT_REGION", "COGNITO_LOCAL_MODE", "COGNITO_EMULATOR_PORT", "DJANGO_DEBUG",
)


def load_dotenv() -> None:
    """Read `.env` into the environment without overriding what the shell already set."""
    if (BASE_DIR / ".env").is_file():
        import environ

        environ.Env.read_env(str(BASE_DIR / ".env"))


def decide_mode(env: os._Environ | dict) -> str:
    """'aws' when an endpoint is set or boto3's credential chain finds credentials, else 'local'.

    COGNITO_LOCAL_MODE=true/false in the environment forces the choice (and skips the
    credential lookup).
    """
    forced = env.get("COGNITO_LOCAL_MODE", "").strip().lower()
    if forced:
        return "local" if forced in TRUE else "aws"
    if env.get("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"):
        return "aws"
    import boto3

    return "aws" if boto3.Session().get_credentials() is not None else "local"


def prepare_local(env: dict) -> None:
    """Point boto3 at the emulator on 127.0.0.1 with throwaway credentials."""
    port = env.setdefault("COGNITO_EMULATOR_PORT", "9229")
    env["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] = f"http://127.0.0.1:{port}"
    env["AWS_ACCESS_KEY_ID"] = "testing"
    env["AWS_SECRET_ACCESS_KEY"] = "testing"
    for key in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        env.pop(key, None)
    env.setdefault("AWS_REGION", "us-east-1")
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    env["COGNITO_LOCAL_MODE"] = "true"
    env.setdefault("DJANGO_DEBUG", "true")


def var_dir(env: dict) -> Path:
    return Path(env.get("COGNITO_ADMIN_VAR_DIR") or BASE_DIR / "var")


def local_env_path(env: dict) -> Path:
    return var_dir(env) / "local.env"


def _read_local_env(path: Path) -> dict[str, str]:
    values = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


def write_local_env(env: dict) -> Path:
    """Write var/local.env: the emulator's endpoint, region and throwaway credentials, DEBUG, and the
    secret key this session uses, so that `manage.py cognito_sync` etc. work from a plain shell.

    Without DJANGO_SECRET_KEY in the environment one is generated, or the one written last time is
    kept (sessions survive a restart), and put in `env` too, so web, worker, beat and the commands
    share it. A key the environment sets is not copied into the file.
    """
    path = local_env_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by `make run` (local mode) for management commands run from a plain shell; the",
        "# environment and .env take precedence. Removed when `make run` starts in AWS mode.",
    ]
    lines += [f"{key}={env[key]}" for key in LOCAL_ENV_KEYS if env.get(key)]
    if not env.get("DJANGO_SECRET_KEY"):
        env["DJANGO_SECRET_KEY"] = _read_local_env(path).get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
        lines.append(f"DJANGO_SECRET_KEY={env['DJANGO_SECRET_KEY']}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a secret key
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return path


def manage(*args: str, env: dict, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=BASE_DIR,
        env=env,
        check=check,
        text=True,
        capture_output=capture,
    )


def ensure_admin_login(env: dict, mode: str) -> str | None:
    """createsuperuser --noinput from DJANGO_SUPERUSER_*; admin/admin in local mode when unset.

    Returns the login to print, or None when no login was asked for.
    """
    user_env = dict(env)
    username = env.get("DJANGO_SUPERUSER_USERNAME")
    password = env.get("DJANGO_SUPERUSER_PASSWORD")
    if not (username and password):
        if mode != "local":
            return None
        username, password, email = LOCAL_ADMIN
        user_env.update(
            DJANGO_SUPERUSER_USERNAME=username,
            DJANGO_SUPERUSER_PASSWORD=password,
            DJANGO_SUPERUSER_EMAIL=email,
        )
        shown = f"{username} / {password}"
    else:
        # A real password is not echoed to the terminal (or to whatever logs it).
        shown = f"{username} / (the password in DJANGO_SUPERUSER_PASSWORD)"
    user_env.setdefault("DJANGO_SUPERUSER_EMAIL", f"{username}@example.com")
    result = manage("createsuperuser", "--noinput", env=user_env, check=False, capture=True)
    if result.returncode == 0:
        return f"{shown}  (created now)"
    if "already taken" in (result.stderr + result.stdout):
        return f"{shown}  (already existed: its password was left as it was)"
    sys.stderr.write(result.stdout + result.stderr)
    raise SystemExit(f"make run: createsuperuser failed (exit {result.returncode})")


def main() -> int:
    os.chdir(BASE_DIR)
    load_dotenv()
    env = dict(os.environ)
    # Procfile commands say `python` and `celery`: make them this venv's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PORT", "8000")
    env.setdefault("PYTHONUNBUFFERED", "1")

    mode = decide_mode(env)
    if mode == "local":
        prepare_local(env)
        local_env = write_local_env(env)
        procfile = "Procfile.local"
    else:
        procfile = "Procfile"
        # A local session's file would point the commands at an emulator that is not running.
        local_env_path(env).unlink(missing_ok=True)
        debug = env.get("DJANGO_DEBUG", "").strip().lower() in TRUE
        if not debug and not env.get("DJANGO_SECRET_KEY"):
            raise SystemExit("make run (AWS mode): set DJANGO_SECRET_KEY, or DJANGO_DEBUG=true for a local session.")

    print(f"==> make run: {mode} mode", flush=True)
    if mode == "aws":
        endpoint = env.get("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER") or "AWS (credential chain)"
        regions = env.get("COGNITO_REGIONS") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        print(f"    Cognito: {endpoint}; regions: {regions or 'us-east-1 (default)'}")
    else:
        print(f"    Cognito: local emulator on {env['AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER']}")

    if env.get("DATABASE_OWNER_URL"):
        # Separate database roles (README, Database roles): migrate as the owner, then grant the app's role.
        manage("migrate", "--database", "owner", "--noinput", env=env)
        manage("db_app_role", env=env)
    else:
        manage("migrate", "--noinput", env=env)
    if env.get("DJANGO_DEBUG", "").strip().lower() not in TRUE:
        # With DEBUG off the admin's pages name their static files through whitenoise's manifest,
        # which only collectstatic writes: without it every page is a 500.
        manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    login = ensure_admin_login(env, mode)

    url = f"http://127.0.0.1:{env['PORT']}/admin/"
    bar = "=" * 72
    print(bar)
    print(f"  Admin:  {url}")
    if login:
        print(f"  Login:  {login}")
    else:
        print("  Login:  set DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD, or run")
        print("          .venv/bin/python manage.py createsuperuser")
    print(f"  Processes: {procfile} (Ctrl-C stops them all)")
    if mode == "local":
        print(f"  Commands: .venv/bin/python manage.py cognito_sync --all (or make manage ARGS=...) read {local_env}")
    print(bar, flush=True)

    # Only createsuperuser and the migration need these.
    for key in ("DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL"):
        env.pop(key, None)
    env.pop("DATABASE_OWNER_URL", None)
    # `-e /dev/null`: honcho would otherwise re-read .env and let it override the shell,
    # the opposite of the precedence settings.py uses; .env was already merged above.
    argv = [
        sys.executable,
        "-m",
        "honcho",
        "start",
        "-f",
        str(BASE_DIR / procfile),
        "-d",
        str(BASE_DIR),
        "-e",
        "/dev/null",
        "-p",
        env["PORT"],
    ]
    os.execve(sys.executable, argv, env)  # noqa: S606 - replaces this process with honcho
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
