"""Settings, read from the environment (and `.env`) with django-environ."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("COGNITO_ADMIN_VAR_DIR", BASE_DIR / "var"))

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

TESTING = "pytest" in sys.modules or env.bool("DJANGO_TESTING", default=False)

# `make run` in local mode writes what management commands need (the emulator's endpoint, region and
# throwaway credentials, DEBUG, its secret key) to var/local.env, so that `manage.py cognito_sync` works
# from a plain shell too. It overrides nothing, and is ignored as a whole where the environment (or
# .env) already says how to reach Cognito, and in tests.
LOCAL_ENV_FILE = VAR_DIR / "local.env"
AWS_CONFIGURED_BY = (
    "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_PROFILE",
)
_aws_configured = any(os.environ.get(key) for key in AWS_CONFIGURED_BY) or os.environ.get(
    "COGNITO_LOCAL_MODE", ""
).strip().lower() in {"0", "false", "no", "off"}
if LOCAL_ENV_FILE.is_file() and not TESTING and not _aws_configured:
    env.read_env(str(LOCAL_ENV_FILE))

# https://docs.djangoproject.com/en/5.2/ref/settings/#debug
DEBUG = env.bool("DJANGO_DEBUG", default=False)

# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
# No default outside local development and tests: production must set it.
if DEBUG or TESTING:
    SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-development-only-not-secret")
else:
    SECRET_KEY = env("DJANGO_SECRET_KEY")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Django's admin with the project's AdminSite (the directory home): cognito_admin/admin_site.py.
    "cognito_admin.apps.DirectoryAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # runserver leaves static files to WhiteNoise, so `make run` serves them as production does.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "directory",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's CSS/JS under gunicorn (docker-compose) without a front proxy.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A NUL character or a year past 9999 in a parameter is a 400 naming it, not a 500.
    "cognito_admin.middleware.RefuseUnusableParameters",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # https://django-csp.readthedocs.io/ — no site-wide policy (CONTENT_SECURITY_POLICY is unset);
    # views that show operator-authored HTML (the message editor) set theirs with csp.decorators.csp.
    "csp.middleware.CSPMiddleware",
    # https://django-axes.readthedocs.io/ — last, so it sees the login view's outcome.
    "axes.middleware.AxesMiddleware",
]

# Login throttling and a record of failed logins (django-axes): after AXES_FAILURE_LIMIT wrong
# passwords for one username from one address, that pair is locked out for the cool-off time.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("DJANGO_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("DJANGO_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True

# Production security (https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/): off by
# default so `make run` works over plain http on 127.0.0.1; README "Configuration" lists the values
# with which `manage.py check --deploy` is clean.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=False)
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# An operator's session lasts a working day, not Django's two weeks.
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=8 * 3600)

ROOT_URLCONF = "cognito_admin.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The admin's warning while the audit chain's latest verification failed.
                "directory.admin.audit.audit_chain_alarm",
            ],
        },
    },
]

WSGI_APPLICATION = "cognito_admin.wsgi.application"

# Database -------------------------------------------------------------------
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-db-url
# SQLite is the embedded default. Web, worker and beat share the file, so it runs in
# WAL mode with a busy timeout and IMMEDIATE transactions (Django 5.1+), otherwise
# concurrent writers get "database is locked".
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    if DATABASES["default"]["NAME"] != ":memory:":
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # A file, not :memory:, so that tests can share the test database with worker processes.
    # One per test process, so parallel runs do not share (and destroy) each other's.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The same database as its owner, when the app's own role (DATABASE_URL) may not change the
# schema or rewrite the audit log: `migrate --database owner` and `db_app_role` connect with it;
# web, worker and beat never do. Unset (the single-user setup), DATABASE_URL's role does both.
if env("DATABASE_OWNER_URL", default=""):
    DATABASES["owner"] = {**env.db("DATABASE_OWNER_URL"), "CONN_MAX_AGE": 0, "TEST": {"MIRROR": "default"}}
    if any(DATABASES["owner"].get(key) != DATABASES["default"].get(key) for key in ("ENGINE", "HOST", "PORT", "NAME")):
        raise ImproperlyConfigured("DATABASE_OWNER_URL must name the same database as DATABASE_URL")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# https://whitenoise.readthedocs.io/ — compressed, cache-busting names after collectstatic.
# With DEBUG on (and in tests) WhiteNoise serves the apps' static folders directly: no collectstatic.
WHITENOISE_USE_FINDERS = DEBUG or TESTING
WHITENOISE_AUTOREFRESH = DEBUG or TESTING
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not (DEBUG or TESTING)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # A 403 (PermissionDenied) is logged as one line: Django would add the exception's traceback.
    "filters": {"forbidden_one_line": {"()": "cognito_admin.log_filters.ForbiddenWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "werkzeug": {"level": "WARNING"},
        "django.request": {"filters": ["forbidden_one_line"]},
    },
}

# Celery -----------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# kombu's filesystem:// transport is the embedded default: it carries tasks between
# processes on one machine with no server. Production and CI use Redis.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=TESTING)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A worker killed mid-task must give the task back (tasks are idempotent).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Each worker also listens on a queue of its own, so a pull can hand its partitions to
# the other workers that are up (directory.outbox.start_pull_helpers).
CELERY_WORKER_DIRECT = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # visibility_timeout must exceed the longest task (a large pool's pull), or the
    # task is delivered twice; the restore settings bring a dead worker's task back
    # in seconds instead of ~90 s.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600),
        "unacked_restore_interval": 2,
        "unacked_restore_throttle": 1,
    }

# https://django-celery-beat.readthedocs.io/
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Default minutes between scheduled pulls of a pool; each pool can override it in the admin
# (blank: this default, 0: never on a schedule).
COGNITO_SYNC_INTERVAL_MINUTES = env.int("COGNITO_SYNC_INTERVAL_MINUTES", default=15)
# Recovery from a killed worker, chosen together: a pull's lease (UserPool.sync_lock_*) is renewed
# every third of COGNITO_SYNC_LEASE_SECONDS by a heartbeat thread, and a change being applied is
# touched every quarter of COGNITO_APPLYING_STALE_SECONDS; the sweeper, every
# COGNITO_OUTBOX_SWEEP_SECONDS, restarts a pull whose lease expired and re-sends a change nobody
# touched. 15 + 5 seconds: a worker killed mid-pull or mid-apply is recovered within 30 s, whatever
# the broker's visibility timeout. On SQLite the lease is renewed only between batches (one writer),
# so it is longer there.
_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
COGNITO_SYNC_LEASE_SECONDS = env.int("COGNITO_SYNC_LEASE_SECONDS", default=15 if _POSTGRES else 120)
COGNITO_APPLYING_STALE_SECONDS = env.int("COGNITO_APPLYING_STALE_SECONDS", default=15)
CELERY_BEAT_SCHEDULE = {
    # Every minute: enqueue a pull of each pool whose own interval has passed.
    "sync-all-pools": {
        "task": "directory.tasks.sync_all_pools",
        "schedule": timedelta(seconds=60),
    },
    # The sweeper: re-sends changes whose message was lost or whose worker died, and restarts
    # pulls whose worker died.
    "sweep-outbox": {
        "task": "directory.tasks.sweep_outbox",
        "schedule": timedelta(seconds=env.int("COGNITO_OUTBOX_SWEEP_SECONDS", default=5)),
    },
    # Writes the attribute-search texts pulls queued (a pull does it as it ends; this is the net).
    "catch-up-search": {
        "task": "directory.tasks.catch_up_search",
        "schedule": timedelta(minutes=1),
    },
    # Deletes test users whose expiry has passed (through the outbox, audited).
    "expire-test-users": {
        "task": "directory.tasks.expire_test_users",
        "schedule": timedelta(minutes=10),
    },
}
# Walks the audit log's hash chain and stores the outcome the admin warns from (0 = never).
COGNITO_AUDIT_VERIFY_MINUTES = env.int("COGNITO_AUDIT_VERIFY_MINUTES", default=60)
if COGNITO_AUDIT_VERIFY_MINUTES > 0:
    CELERY_BEAT_SCHEDULE["verify-audit-log"] = {
        "task": "directory.tasks.verify_audit_log",
        "schedule": timedelta(minutes=COGNITO_AUDIT_VERIFY_MINUTES),
    }

# Lists the pools of every region in COGNITO_REGIONS: new ones are registered and pulled, pools
# Cognito no longer has are marked gone (0 = never; the pools list's "Discover pools" still works).
COGNITO_DISCOVERY_INTERVAL_MINUTES = env.int("COGNITO_DISCOVERY_INTERVAL_MINUTES", default=15)
# Concurrent AdminCreateUser / group calls of one restore job (all under the shared request budget).
COGNITO_RESTORE_THREADS = env.int("COGNITO_RESTORE_THREADS", default=8)
if COGNITO_DISCOVERY_INTERVAL_MINUTES > 0:
    CELERY_BEAT_SCHEDULE["discover-pools"] = {
        "task": "directory.tasks.discover_pools",
        "schedule": timedelta(minutes=COGNITO_DISCOVERY_INTERVAL_MINUTES),
    }

# Cognito ------------------------------------------------------------------------
# boto3 is configured the standard way (credential chain, AWS_REGION,
# AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER); these only say which regions to scan.
COGNITO_REGIONS = env.list(
    "COGNITO_REGIONS",
    default=[os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"],
)
# Set by `make run` when it starts the local emulator (enables the emulator-only views).
COGNITO_LOCAL_MODE = env.bool("COGNITO_LOCAL_MODE", default=False)
# Users written per bulk statement during a pull.
COGNITO_SYNC_BATCH_SIZE = env.int("COGNITO_SYNC_BATCH_SIZE", default=500)
# Batches a pull writes at once on PostgreSQL, each on a writer thread with its own connection.
COGNITO_SYNC_WRITERS = env.int("COGNITO_SYNC_WRITERS", default=2)
# A pull lists users in partitions by `sub` prefix, several at once under the ListUsers budget:
# "auto" (one listing under 2,000 users, 16 up to 500,000, 256 beyond), or a fixed 1, 16 or 256.
COGNITO_SYNC_PARTITIONS = env("COGNITO_SYNC_PARTITIONS", default="auto")
# Listings one worker runs at once (partitions of users, or groups' memberships).
COGNITO_SYNC_THREADS = env.int("COGNITO_SYNC_THREADS", default=16)
# A pull whose predecessor failed or was killed less than this long ago takes over the
# partitions it finished instead of listing them again (0: always start afresh).
COGNITO_SYNC_RESUME_MINUTES = env.int("COGNITO_SYNC_RESUME_MINUTES", default=60)
# Hand partitions to the other Celery workers that are up (besides this worker's threads),
# for pools of at least COGNITO_SYNC_FANOUT_MIN_USERS users.
COGNITO_SYNC_FANOUT = env.bool("COGNITO_SYNC_FANOUT", default=True)
COGNITO_SYNC_FANOUT_MIN_USERS = env.int("COGNITO_SYNC_FANOUT_MIN_USERS", default=100_000)

# The shared request budget (directory/ratelimit.py): token buckets per account, region and
# Cognito quota category, 80 % of Cognito's default quotas unless overridden, e.g.
# "UserList=20,UserUpdate=15"; "off" disables it.
# https://docs.aws.amazon.com/cognito/latest/developerguide/quotas.html#category_operations
COGNITO_RATE_LIMITS = env("COGNITO_RATE_LIMITS", default="")
# Where the buckets live: this Redis, else the broker when it is Redis, else in-process.
COGNITO_RATE_LIMIT_REDIS_URL = env("COGNITO_RATE_LIMIT_REDIS_URL", default="")
COGNITO_RATE_LIMIT_PREFIX = env("COGNITO_RATE_LIMIT_PREFIX", default="cognito-admin:ratelimit")
# Share of a category's rate a pull may use while pushes or operators are waiting.
COGNITO_RATE_LIMIT_PULL_SHARE = env.float("COGNITO_RATE_LIMIT_PULL_SHARE", default=0.7)
# Seconds a call may wait for a token before it fails as throttled (a push is retried later).
COGNITO_RATE_LIMIT_MAX_WAIT = env.float("COGNITO_RATE_LIMIT_MAX_WAIT", default=60.0)
# The account in the budget's keys; set it when deployments for several accounts share a Redis.
COGNITO_ACCOUNT_ID = env("COGNITO_ACCOUNT_ID", default="")
# Database alias that sync progress is written through. A pull commits batch by batch
# (each batch's rows with their audit events); on PostgreSQL a second connection keeps
# SyncRun progress visible to the admin even while a batch's transaction is open.
COGNITO_SYNC_PROGRESS_DB = "default"
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not TESTING:
    DATABASES["progress"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
    COGNITO_SYNC_PROGRESS_DB = "progress"
