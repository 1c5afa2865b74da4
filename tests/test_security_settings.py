"""Production settings: login throttling with a record of failed logins, a working-day session,
and `check --deploy` clean with the documented production values."""

from __future__ import annotations

import os
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "x7$Kq!2vR9#pL0@mZ4^wT8&nB6*cY1(eH5)jF3_sD-aG=uI+oP",
    "DJANGO_ALLOWED_HOSTS": "cognito-admin.example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_SESSION_COOKIE_SECURE": "true",
    "DJANGO_CSRF_COOKIE_SECURE": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
}


def _check_deploy(extra: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(COGNITO_ADMIN_VAR_DIR=str(tmp_path), **extra)
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    result = _check_deploy(PRODUCTION, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_them(tmp_path):
    result = _check_deploy({k: PRODUCTION[k] for k in ("DJANGO_DEBUG", "DJANGO_SECRET_KEY")}, tmp_path)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stdout + result.stderr


def test_sessions_last_a_working_day():
    assert settings.SESSION_COOKIE_AGE == 8 * 3600


@pytest.mark.django_db
def test_wrong_passwords_lock_the_login_and_are_recorded(client, django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "the-right-password")
    login = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(login, {"username": "ops", "password": "wrong"})
        assert response.status_code == HTTPStatus.OK  # the form again, with its error
        assert "_auth_user_id" not in client.session
    # The failure that reaches the limit locks the username at this address.
    assert client.post(login, {"username": "ops", "password": "wrong"}).status_code == HTTPStatus.TOO_MANY_REQUESTS
    locked = client.post(login, {"username": "ops", "password": "the-right-password"})
    assert locked.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "_auth_user_id" not in client.session
    attempt = AccessAttempt.objects.get(username="ops")
    assert attempt.failures_since_start >= settings.AXES_FAILURE_LIMIT
    assert AccessFailureLog.objects.filter(username="ops").count() >= settings.AXES_FAILURE_LIMIT
    assert "wrong" not in str(attempt.post_data)  # the password is not kept


@pytest.mark.django_db
def test_another_user_is_not_locked_out(client, django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "the-right-password")
    django_user_model.objects.create_superuser("dev", "dev@example.com", "another-right-password")
    login = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        client.post(login, {"username": "ops", "password": "wrong"})
    response = client.post(login, {"username": "dev", "password": "another-right-password"})
    assert response.status_code == HTTPStatus.FOUND
    assert client.session["_auth_user_id"]
