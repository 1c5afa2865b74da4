"""A local Cognito for development: moto's server behind shims for what it lacks or gets wrong,
state kept on disk, plus demo data (never in prod)."""

from .demo import ALL_STATUSES, DEMO_PASSWORD, ESHOP_VERIFICATION_HTML, demo_sign_ins, seed_demo
from .latency import LATENCY_VARIABLE, LatencyMiddleware, latency_ms
from .protocol import ACCOUNT_ID, target
from .quota import QUOTA_PATH, quota_mode
from .server import EmulatorMiddleware, build_app, set_user_status, start_server
from .shims import MESSAGE_LOG, SHIMS, MessageLog, mask_destination
from .state import StateStore

__all__ = [
    "ACCOUNT_ID",
    "ALL_STATUSES",
    "DEMO_PASSWORD",
    "ESHOP_VERIFICATION_HTML",
    "LATENCY_VARIABLE",
    "MESSAGE_LOG",
    "QUOTA_PATH",
    "SHIMS",
    "EmulatorMiddleware",
    "LatencyMiddleware",
    "MessageLog",
    "StateStore",
    "build_app",
    "demo_sign_ins",
    "latency_ms",
    "mask_destination",
    "quota_mode",
    "seed_demo",
    "set_user_status",
    "start_server",
    "target",
]
