"""A local Cognito for development: moto's server behind shims for what it lacks, plus demo data (never in prod)."""

from .demo import ALL_STATUSES, ESHOP_VERIFICATION_HTML, seed_demo
from .latency import LATENCY_VARIABLE, LatencyMiddleware, latency_ms
from .protocol import ACCOUNT_ID, target
from .quota import QUOTA_PATH, quota_mode
from .server import EmulatorMiddleware, build_app, set_user_status, start_server
from .shims import MESSAGE_LOG, SHIMS, MessageLog, mask_destination

__all__ = [
    "ACCOUNT_ID",
    "ALL_STATUSES",
    "ESHOP_VERIFICATION_HTML",
    "LATENCY_VARIABLE",
    "MESSAGE_LOG",
    "QUOTA_PATH",
    "SHIMS",
    "EmulatorMiddleware",
    "LatencyMiddleware",
    "MessageLog",
    "build_app",
    "latency_ms",
    "mask_destination",
    "quota_mode",
    "seed_demo",
    "set_user_status",
    "start_server",
    "target",
]
