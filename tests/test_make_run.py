"""`make run` end to end in AWS mode with DEBUG off (production settings): the admin and its static
files are served, against a Cognito endpoint (moto's server standing in for AWS)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import procs

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except OSError:  # not listening yet
        return 0, ""


def test_aws_mode_with_debug_off_serves_the_admin(moto_server, tmp_path):
    port = procs.free_port()
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "DATABASE_", "COGNITO_", "PYTEST"))
    }
    env.update(
        AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="a-production-like-secret-for-this-test-only",
        DJANGO_SUPERUSER_USERNAME="ops",
        DJANGO_SUPERUSER_PASSWORD="a-long-password-for-ops",
        COGNITO_ADMIN_VAR_DIR=str(tmp_path / "var"),
        PORT=str(port),
    )
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "scripts" / "run.py")], cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        procs.wait_until(lambda: _get(f"{base}/admin/login/")[0] == 200, timeout=90, what="the admin's login page")
        status, page = _get(f"{base}/admin/login/")
        assert status == 200 and "Cognito directory" in page
        css = next(part.split('"')[0] for part in page.split('href="')[1:] if part.startswith("/static/"))
        assert ".css" in css and css != "/static/admin/css/base.css"  # a hashed name from the manifest
        assert _get(f"{base}{css}")[0] == 200
    finally:
        procs.kill_group(proc, signal.SIGTERM)
        log.close()
    assert "make run: aws mode" in (tmp_path / "run.log").read_text()
