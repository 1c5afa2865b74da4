"""Shared fixtures: a moto Cognito server on 127.0.0.1, boto3 pointed at it, service checks."""

from __future__ import annotations

import logging
import os
import socket
import urllib.request
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest

# Never reach real AWS from tests, whatever the developer's environment holds.
for _key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_key, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_REGION"] = "us-east-1"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY"] = "HASH"


def _allow_test_flush() -> None:
    """Transactional tests end with Django's flush. On SQLite that is a DELETE, which the audit
    log's append-only trigger refuses unless the flush is marked as such; on PostgreSQL a
    TRUNCATE, which the app's own role may not do: it runs as the owner (`as_owner`)."""
    from django.core.management.commands import flush

    original = flush.Command.handle

    def handle(self, *args, **options):
        from directory.audit import unlocked

        with unlocked(), as_owner(options.get("database") or "default"):
            return original(self, *args, **options)

    flush.Command.handle = handle


_allow_test_flush()


# The app's own database role (DATABASE_URL) and the owner (DATABASE_OWNER_URL) --------------------
# With both set (as .ci/run does), the tests run as the app's role, like web and workers do; the
# test database is created, migrated, granted (`db_app_role`), flushed and dropped as the owner.


def owner_settings() -> dict | None:
    """The owner's connection settings when DATABASE_OWNER_URL is set, else None (one role does all)."""
    from django.conf import settings

    return settings.DATABASES.get("owner")


@contextmanager
def as_owner(alias: str = "default"):
    """Connect `alias` with the owner's credentials for the duration (no-op without an owner)."""
    from django.db import connections

    owner = owner_settings()
    if owner is None or alias != "default":
        yield
        return
    connection = connections[alias]
    app = connection.settings_dict["USER"], connection.settings_dict["PASSWORD"]
    connection.close()
    connection.settings_dict["USER"], connection.settings_dict["PASSWORD"] = owner["USER"], owner["PASSWORD"]
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["USER"], connection.settings_dict["PASSWORD"] = app


_app_role: list[tuple[str, str]] = []  # the app's (user, password) while the owner sets up


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Create and migrate the test database as the owner (`django_db_setup` switches back)."""
    from django.db import connections

    owner = owner_settings()
    if owner is not None:
        default = connections["default"].settings_dict
        _app_role.append((default["USER"], default["PASSWORD"]))
        default["USER"], default["PASSWORD"] = owner["USER"], owner["PASSWORD"]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, then (with an owner) the app role's grants on the test database, and the
    tests connect as the app's role; the test database is dropped as the owner."""
    from django.db import connections

    from directory.management.commands.db_app_role import app_role_problems, grant_app_role

    if owner_settings() is None:
        yield
        return
    default = connections["default"]
    owner = default.settings_dict["USER"], default.settings_dict["PASSWORD"]
    role, password = _app_role[0]
    with django_db_blocker.unblock(), default.cursor() as cursor:
        grant_app_role(cursor, role=role, password=password)
        assert app_role_problems(cursor, role=role) == []
    default.close()
    default.settings_dict["USER"], default.settings_dict["PASSWORD"] = role, password
    yield
    connections.close_all()  # the test database is dropped next: no session may be left on it
    default.settings_dict["USER"], default.settings_dict["PASSWORD"] = owner

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, reason: str) -> None:
    """Skip locally when a real service is missing; fail under CI, where it must be there."""
    message = f"{name} is required for this test: {reason}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        url = "redis://127.0.0.1:6379/0"
    parsed = urlparse(url)
    if not _port_open(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        require_service("Redis", f"nothing answers at {url}")
    return url


@pytest.fixture(scope="session")
def moto_server():
    """moto's server in a thread on a free loopback port; boto3 is pointed at it by env."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER")
    os.environ["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] = endpoint
    from directory import gateway

    gateway.reset_clients()
    yield endpoint
    server.stop()
    if previous is None:
        os.environ.pop("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", None)
    else:
        os.environ["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] = previous
    gateway.reset_clients()


@pytest.fixture
def cognito(moto_server):
    """A boto3 cognito-idp client on a freshly reset moto server."""
    import boto3

    req = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - loopback only
    return boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=moto_server)


@pytest.fixture(autouse=True)
def _sync_progress_on_default_connection(settings):
    settings.COGNITO_SYNC_PROGRESS_DB = "default"


# Fixtures several test modules share -------------------------------------------------------------


@pytest.fixture
def browser():
    """Debian's Chromium, headless, through Playwright (never a browser Playwright downloads)."""
    from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        require_service("Chromium", f"{CHROMIUM} is missing (apt-get install -y chromium)")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def eshop(cognito):
    """A pool shaped like the e-shop walkthrough, plus settings that must survive a template push."""
    from directory.models import UserPool
    from directory.sync.pull import pull_pool
    from emulator import ESHOP_VERIFICATION_HTML
    from tests.cognito_helpers import ESHOP_LAMBDA, create_pool

    pool_id = create_pool(
        cognito,
        name="eshop-fcj",
        email_username=True,
        LambdaConfig=ESHOP_LAMBDA,
        UserPoolTags={"team": "shop"},
        DeletionProtection="ACTIVE",
        AccountRecoverySetting={"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]},
        UserAttributeUpdateSettings={"AttributesRequireVerificationBeforeUpdate": ["email"]},
        EmailConfiguration={"EmailSendingAccount": "COGNITO_DEFAULT"},
        VerificationMessageTemplate={
            "DefaultEmailOption": "CONFIRM_WITH_CODE",
            "EmailSubject": "Account verification code",
            "EmailMessage": ESHOP_VERIFICATION_HTML,
        },
        AdminCreateUserConfig={
            "AllowAdminCreateUserOnly": False,
            "InviteMessageTemplate": {
                "EmailSubject": "Welcome",
                "EmailMessage": "Hi {username}, {####}",
                "SMSMessage": "Hi {username}, {####}",
            },
        },
    )
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    pool.refresh_from_db()
    return pool


@pytest.fixture
def sent_requests():
    """Every UpdateUserPool request the gateway sends while the test runs (parameters, deep-copied)."""
    import copy

    from directory import gateway
    from tests.cognito_helpers import UPDATE_EVENT

    requests: list[dict] = []
    client = gateway.get_client("us-east-1")

    def capture(params, **kwargs):
        requests.append(copy.deepcopy(params))

    client.meta.events.register(UPDATE_EVENT, capture)
    yield requests
    client.meta.events.unregister(UPDATE_EVENT, capture)


@pytest.fixture
def emu(cognito, monkeypatch):
    """The emulator (moto + shims) on a free port, boto3 and the gateway pointed at it.

    `cognito` reset moto's in-process backends, which this server shares with the session's moto server."""
    import boto3

    import emulator
    from directory import gateway

    server = emulator.start_server(port=0)
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", server.endpoint)
    gateway.reset_clients()
    emulator.MESSAGE_LOG.clear()
    client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint)
    yield client
    server.stop()
    gateway.reset_clients()


# A private broker and real Celery workers (tests/procs.py) ------------------------------------------


@pytest.fixture
def redis_binary() -> str:
    from tests import procs

    binary = procs.redis_server_binary()
    if binary is None:
        require_service("redis-server", "the cross-process tests start and stop their own Redis broker")
    return binary


@pytest.fixture
def broker(redis_binary, tmp_path):
    """A private redis-server for this test only (never the machine's Redis on 6379)."""
    from tests import procs

    server = procs.RedisServer(tmp_path, binary=redis_binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _reset_broker_pools() -> None:
    import kombu.pools

    from cognito_admin import celery_app

    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def celery_to(broker, settings, monkeypatch):
    """Point this process's Celery app (the producer side: outbox.enqueue_change, delay())
    at the private broker, non-eager, failing fast when the broker is down."""
    from cognito_admin import celery_app

    overrides = {
        "broker_url": broker.url,
        "task_always_eager": False,
        "task_publish_retry": False,
        "broker_connection_timeout": 1,
        "broker_connection_retry": False,
        "broker_connection_max_retries": 0,
        # max_retries=0: kombu's connection (default_channel) would otherwise retry for ~2 s
        # per publish while the broker is down.
        "broker_transport_options": {
            "visibility_timeout": 10,
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
            "max_retries": 0,
        },
    }
    # Read before Django's settings change below: the app's configuration comes from them lazily,
    # so reading it afterwards would "restore" the overridden values.
    previous = {key: celery_app.conf.get(key) for key in overrides}
    settings.CELERY_BROKER_URL = broker.url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    # Celery reads the CELERY_BROKER_URL environment variable before its own configuration
    # (CI sets it to the machine's Redis), so it must point at the private broker too.
    monkeypatch.setenv("CELERY_BROKER_URL", broker.url)
    celery_app.conf.update(overrides)
    _reset_broker_pools()
    try:
        yield broker
    finally:
        celery_app.conf.update(previous)
        _reset_broker_pools()
        # Later tests run eagerly again, on the default broker.
        assert {key: celery_app.conf.get(key) for key in overrides} == previous

