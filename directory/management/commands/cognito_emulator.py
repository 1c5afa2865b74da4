"""`cognito_emulator`: a local Cognito (moto + shims) on 127.0.0.1 (or --host), its state kept under
the var directory across restarts, optionally seeded and mirrored."""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

import emulator
from directory import gateway


def _default_port() -> int:
    return int(os.environ.get("COGNITO_EMULATOR_PORT") or 9229)


def state_path():
    """Where the emulator keeps its pools, users, tokens and message log between runs."""
    return settings.VAR_DIR / "cognito-emulator" / "state.json"


def _milliseconds(text: str) -> float:
    try:
        return emulator.latency_ms(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of milliseconds, 0 or more (got {text!r})") from None


class Command(BaseCommand):
    help = "Run a local Cognito emulator (127.0.0.1 unless --host) until interrupted (dev tool)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=None, help="Port (default: $COGNITO_EMULATOR_PORT or 9229).")
        parser.add_argument(
            "--host", default="127.0.0.1",
            help="Address to listen on (default 127.0.0.1; 0.0.0.0 exposes the emulator to the network).",
        )
        parser.add_argument("--seed", choices=["demo"], help="Create demo pools, clients, groups and users.")
        parser.add_argument(
            "--mirror", action="store_true", help="Then run cognito_discover to pull the pools into the mirror."
        )
        parser.add_argument(
            "--reset", action="store_true",
            help="Start afresh: forget the state kept under the var directory (then --seed demo seeds anew).",
        )
        parser.add_argument(
            "--quota",
            action="store_true",
            default=None,
            help="Enforce Cognito's request-rate quotas (TooManyRequestsException past them); "
            "default: $COGNITO_EMULATOR_QUOTA.",
        )
        parser.add_argument(
            "--latency-ms",
            type=_milliseconds,
            default=None,
            metavar="N",
            help="Answer every Cognito call N ms late, as a distant Cognito does (default: "
            "$COGNITO_EMULATOR_LATENCY_MS, else 0).",
        )

    def handle(self, *args: Any, port: int | None = None, seed: str | None = None, mirror: bool = False, **options):
        port = _default_port() if port is None else port
        host = options.get("host") or "127.0.0.1"
        path = state_path()
        try:
            latency = emulator.latency_ms(options.get("latency_ms"))
        except ValueError as exc:  # a bad $COGNITO_EMULATOR_LATENCY_MS
            raise CommandError(str(exc)) from exc
        try:
            server = emulator.start_server(
                port=port, host=host, quota=options.get("quota"), state_path=path, reset=options.get("reset", False),
                latency=latency,
            )
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc
        except ValueError as exc:
            raise CommandError(f"cannot read the emulator state {path}: {exc} (--reset starts afresh)") from exc

        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.stdout.write(f"Cognito emulator listening on {server.endpoint}")
            if server.restored is None:
                self.stdout.write(f"State kept in {path} (new)")
            else:
                self.stdout.write(f"State kept in {path} ({server.restored} pools restored)")
            if emulator.quota_mode(options.get("quota")):
                self.stdout.write("Quota mode: Cognito's request rates enforced (TooManyRequestsException past them)")
            if latency:
                self.stdout.write(f"Latency mode: every Cognito call answered {latency:g} ms late")
            self.stdout.flush()
            # A wildcard address is not one to connect to: this process talks to it on loopback.
            wildcard = host in {"0.0.0.0", "::"}  # noqa: S104 - a comparison, not a bind
            self._point_boto3_at(f"http://127.0.0.1:{server.port}" if wildcard else server.endpoint)
            if seed == "demo":
                self._seed()
            if mirror:
                self._mirror()
            # Event.wait with a timeout keeps the main thread responsive to signals.
            while not stop.wait(0.5):
                pass
            self.stdout.write("Cognito emulator stopping")
        finally:
            server.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _point_boto3_at(self, endpoint: str) -> None:
        # moto accepts any credentials; fake ones keep boto3 from searching for real ones.
        if not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
            os.environ["AWS_ACCESS_KEY_ID"] = "testing"
            os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
        os.environ["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] = endpoint
        gateway.reset_clients()

    def _seed(self) -> None:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        started = time.monotonic()
        summary = emulator.seed_demo(gateway.get_client(region))
        self.stdout.write(f"Seeded demo data in {region} ({time.monotonic() - started:.1f} s):")
        for name, info in summary.items():
            state = "created" if info["created"] else "already there"
            clients = ", ".join(info["clients"])
            self.stdout.write(f"  {name:<13} {info['pool_id']}  users: {info['users']:<4} clients: {clients} ({state})")
        self.stdout.flush()

    def _mirror(self) -> None:
        try:
            call_command("cognito_discover", stdout=self.stdout, stderr=self.stderr)
        except Exception as exc:  # noqa: BLE001 - the emulator keeps serving whatever the mirror does
            # CommandError, an ImportError while cognito_discover is being written, a failed pull...
            hint = " (has `manage.py migrate` been run?)" if isinstance(exc, DatabaseError) else ""
            self.stderr.write(f"cognito_discover failed: {type(exc).__name__}: {exc}{hint}")
        self.stdout.flush()
