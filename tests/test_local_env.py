"""Commands outside `make run`: local mode writes var/local.env (the emulator's endpoint, region, throwaway
credentials, DEBUG, the secret key), and settings read it, so `manage.py cognito_discover` works from a
plain shell; the environment still wins, and an AWS configuration makes the file ignored."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection

from directory.models import UserPool
from tests import procs
from tests.cognito_helpers import create_pool

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import os; from django.conf import settings; "
    "print(settings.DEBUG, settings.SECRET_KEY, os.environ.get('AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER'), "
    "settings.COGNITO_LOCAL_MODE)"
)


@pytest.fixture
def run_script():
    spec = importlib.util.spec_from_file_location("make_run_script_local_env", ROOT / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plain_shell(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A shell that has none of make run's variables: no AWS, Django, Celery, database or Cognito settings."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DJANGO_", "CELERY_", "DATABASE_", "COGNITO_", "PYTEST", "REDIS_"))
    }
    env.update(
        COGNITO_ADMIN_VAR_DIR=str(tmp_path / "var"),
        # boto3 must find nothing of this machine's own (no ~/.aws, no instance metadata).
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )


def _local_session(run_script, tmp_path: Path, endpoint: str) -> dict[str, str]:
    """What make run does in local mode before it starts the processes."""
    env = {"COGNITO_EMULATOR_PORT": str(urlsplit(endpoint).port), "COGNITO_ADMIN_VAR_DIR": str(tmp_path / "var")}
    run_script.prepare_local(env)
    run_script.write_local_env(env)
    return env


@pytest.mark.django_db(transaction=True)
def test_cognito_discover_works_from_a_plain_shell_after_make_run(run_script, emu, tmp_path):
    pool_id = create_pool(emu, name="from-a-plain-shell")
    shell = _plain_shell(tmp_path, DATABASE_URL=procs.database_url(connection.settings_dict))

    before = _manage(shell, "cognito_discover")
    assert before.returncode != 0
    assert "DJANGO_SECRET_KEY" in before.stderr  # what the README's command did before local.env

    session = _local_session(run_script, tmp_path, emu.meta.endpoint_url)
    result = _manage(shell, "cognito_discover")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"from-a-plain-shell ({pool_id})" in result.stdout
    assert UserPool.objects.get(pool_id=pool_id).last_synced_at is not None
    assert session["DJANGO_SECRET_KEY"] not in result.stdout + result.stderr


def test_the_file_holds_what_commands_need_and_keeps_its_secret_key(run_script, tmp_path):
    env = _local_session(run_script, tmp_path, "http://127.0.0.1:9333")
    path = tmp_path / "var" / "local.env"
    lines = dict(line.split("=", 1) for line in path.read_text().splitlines() if not line.startswith("#"))
    assert lines["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] == "http://127.0.0.1:9333"
    assert lines["AWS_ACCESS_KEY_ID"] == lines["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert lines["AWS_REGION"] == "us-east-1" and lines["DJANGO_DEBUG"] == "true"
    assert lines["COGNITO_LOCAL_MODE"] == "true"
    assert len(lines["DJANGO_SECRET_KEY"]) >= 50 and lines["DJANGO_SECRET_KEY"] == env["DJANGO_SECRET_KEY"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The next make run keeps the key (sessions survive a restart) ...
    again = _local_session(run_script, tmp_path, "http://127.0.0.1:9333")
    assert again["DJANGO_SECRET_KEY"] == env["DJANGO_SECRET_KEY"]
    # ... and a key the environment sets is used, never copied into the file.
    own = {"COGNITO_ADMIN_VAR_DIR": str(tmp_path / "var"), "DJANGO_SECRET_KEY": "the-operators-own-key"}
    run_script.prepare_local(own)
    run_script.write_local_env(own)
    assert "the-operators-own-key" not in path.read_text() and "DJANGO_SECRET_KEY" not in path.read_text()


def test_settings_read_the_file_below_the_environment_and_not_with_aws_configured(run_script, tmp_path):
    session = _local_session(run_script, tmp_path, "http://127.0.0.1:9444")
    probe = _manage(_plain_shell(tmp_path), "shell", "-c", PROBE)
    assert probe.returncode == 0, probe.stderr[-2000:]
    last_line = probe.stdout.strip().splitlines()[-1]
    assert last_line.split() == ["True", session["DJANGO_SECRET_KEY"], "http://127.0.0.1:9444", "True"]

    # What the shell says wins, key by key.
    probe = _manage(_plain_shell(tmp_path, DJANGO_DEBUG="false", DJANGO_SECRET_KEY="from-the-shell"), "shell", "-c",
                    PROBE)
    assert probe.stdout.strip().splitlines()[-1].split() == ["False", "from-the-shell", "http://127.0.0.1:9444", "True"]

    # A shell configured for AWS ignores the whole file: no emulator endpoint under real credentials.
    aws = _plain_shell(tmp_path, AWS_PROFILE="prod", DJANGO_DEBUG="true")
    probe = _manage(aws, "shell", "-c", PROBE)
    assert probe.returncode == 0, probe.stderr[-2000:]
    debug, key, endpoint, local = probe.stdout.strip().splitlines()[-1].split()
    assert key != session["DJANGO_SECRET_KEY"] and endpoint == "None" and local == "False"
