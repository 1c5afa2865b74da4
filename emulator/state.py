"""The emulator's state on disk: every pool (settings, clients, groups, users with their password
verifiers, tokens, signing key) and the message log, in one JSON file under the var directory.

Written atomically (a temporary file, fsync, rename) when something changed — checked every
few seconds — and on shutdown; read back on start, so a restart changes nothing a client or
the mirror can see. moto's objects are rebuilt field by field (moto is pinned; a file from
another layout version is refused rather than half-read).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from joserfc import jwk
from moto.cognitoidp.models import (
    CognitoIdpGroup,
    CognitoIdpIdentityProvider,
    CognitoIdpUser,
    CognitoIdpUserPool,
    CognitoIdpUserPoolAttribute,
    CognitoIdpUserPoolClient,
    CognitoIdpUserPoolDomain,
    CognitoResourceServer,
    UserStatus,
    cognitoidp_backends,
)
from moto.cognitoidp.utils import flatten_attrs
from moto.utilities.utils import load_resource

from . import tokens
from .messages import MESSAGE_LOG
from .protocol import ACCOUNT_ID, STATE_LOCK, cognito_backend, status_of

log = logging.getLogger(__name__)
VERSION = 1
SAVE_EVERY_SECONDS = 2.0

_POOL_FIELDS = ("id", "arn", "name", "status", "extended_config", "mfa_config", "sms_mfa_config", "token_mfa_config")
_USER_FIELDS = (
    "id",
    "user_pool_id",
    "username",
    "enabled",
    "attributes",
    "sms_mfa_enabled",
    "software_token_mfa_enabled",
    "token_verified",
    "preferred_mfa_setting",
)
_USER_EXTRAS = ("emulator_verifier", "emulator_temporary_until", "emulator_code")
_DATES = ("creation_date", "last_modified_date", "create_date")


def _dates(obj: Any) -> dict[str, str]:
    return {name: getattr(obj, name).isoformat() for name in _DATES if isinstance(getattr(obj, name, None), datetime)}


def _restore_dates(obj: Any, data: dict[str, Any]) -> None:
    for name in _DATES:
        if name in data:
            setattr(obj, name, datetime.fromisoformat(data[name]))


def _new(cls: type, data: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(data)
    return obj


def dump_pool(pool: Any) -> dict[str, Any]:
    # Calls moto answers itself run without the state lock: every collection is copied before use.
    tokens.prune(pool)
    users = []
    for user in list(pool.users.values()):
        record = {name: getattr(user, name) for name in _USER_FIELDS}
        record.update({name: getattr(user, name, None) for name in _USER_EXTRAS})
        record["status"] = status_of(user)
        record["groups"] = sorted(g.group_name for g in user.groups)
        record["password"] = None  # clear-text passwords are never written (verifiers are)
        record.update(_dates(user))
        users.append(record)
    return {
        **{name: getattr(pool, name) for name in _POOL_FIELDS},
        # E-mail MFA (pool_config.py): moto's pool has no such attribute.
        "email_mfa_config": getattr(pool, "email_mfa_config", None),
        **_dates(pool),
        "schema_attributes": [dict(a.__dict__) for a in list(pool.schema_attributes.values())],
        "clients": [
            {
                "id": c.id,
                "user_pool_id": c.user_pool_id,
                "secret": c.secret,
                "generate_secret": c.generate_secret,
                "extended_config": c.extended_config,
            }
            for c in list(pool.clients.values())
        ],
        "groups": [
            {
                "user_pool_id": g.user_pool_id,
                "group_name": g.group_name,
                "description": g.description,
                "role_arn": g.role_arn,
                "precedence": g.precedence,
                **_dates(g),
            }
            for g in list(pool.groups.values())
        ],
        "users": users,
        "identity_providers": [
            {"name": p.name, "extended_config": p.extended_config, **_dates(p)}
            for p in list(pool.identity_providers.values())
        ],
        "resource_servers": [dict(r.__dict__) for r in list(pool.resource_servers.values())],
        "refresh_tokens": {t: list(v) for t, v in list(pool.refresh_tokens.items()) if v},
        "refresh_meta": dict(getattr(pool, "emulator_refresh_meta", {})),
        "access_tokens": {t: list(v) for t, v in list(pool.access_tokens.items())},
        "access_exp": dict(getattr(pool, "emulator_access_exp", {})),
        "signing_key": getattr(pool, "emulator_signing_key", None),
    }


_MOTO_KEY: list[Any] = []


def _moto_key() -> Any:
    """The key moto signs its own tokens with (each of its pools holds one)."""
    if not _MOTO_KEY:
        _MOTO_KEY.append(jwk.RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json")))
    return _MOTO_KEY[0]


def load_pool(account_id: str, region: str, data: dict[str, Any]) -> Any:
    pool = _new(CognitoIdpUserPool, {"account_id": account_id, "region": region})
    for name in _POOL_FIELDS:
        setattr(pool, name, data[name])
    pool.email_mfa_config = data.get("email_mfa_config")
    _restore_dates(pool, data)
    pool.schema_attributes = {a["name"]: _new(CognitoIdpUserPoolAttribute, a) for a in data["schema_attributes"]}
    pool.clients = {c["id"]: _new(CognitoIdpUserPoolClient, c) for c in data["clients"]}
    pool.groups = {}
    for record in data["groups"]:
        group = _new(CognitoIdpGroup, {k: v for k, v in record.items() if k not in _DATES})
        _restore_dates(group, record)
        group.users = set()
        pool.groups[group.group_name] = group
    pool.users = {}
    for record in data["users"]:
        fields = {k: v for k, v in record.items() if k not in (*_DATES, "groups", "status")}
        user = _new(CognitoIdpUser, fields)
        _restore_dates(user, record)
        status = record["status"]
        user.status = UserStatus[status] if status in UserStatus.__members__ else status
        user.attribute_lookup = flatten_attrs(user.attributes)
        user.confirmation_code = None
        user.groups = set()
        for name in record["groups"]:
            if name in pool.groups:
                user.groups.add(pool.groups[name])
                pool.groups[name].users.add(user)
        pool.users[user.username] = user
    pool.identity_providers = {}
    for record in data["identity_providers"]:
        provider = _new(
            CognitoIdpIdentityProvider, {"name": record["name"], "extended_config": record["extended_config"]}
        )
        _restore_dates(provider, record)
        pool.identity_providers[provider.name] = provider
    pool.resource_servers = {r["identifier"]: _new(CognitoResourceServer, r) for r in data["resource_servers"]}
    pool.refresh_tokens = {t: tuple(v) for t, v in data["refresh_tokens"].items()}
    pool.emulator_refresh_meta = dict(data["refresh_meta"])
    pool.access_tokens = {t: tuple(v) for t, v in data["access_tokens"].items()}
    pool.emulator_access_exp = dict(data["access_exp"])
    pool.id_tokens = {}
    if data.get("signing_key"):
        pool.emulator_signing_key = data["signing_key"]
    pool.json_web_key = _moto_key()
    return pool


def dump() -> dict[str, Any]:
    """Everything, as one JSON-able dict (under the state lock: one consistent snapshot)."""
    with STATE_LOCK:
        regions = {}
        for region, backend in list(cognitoidp_backends[ACCOUNT_ID].items()):
            if region == "global" or not (backend.user_pools or backend.user_pool_domains):
                continue
            regions[region] = {
                "pools": [dump_pool(p) for p in list(backend.user_pools.values())],
                "domains": [
                    {"user_pool_id": d.user_pool_id, "domain": d.domain, "custom_domain_config": d.custom_domain_config}
                    for d in list(backend.user_pool_domains.values())
                ],
            }
        return {"version": VERSION, "regions": regions, "messages": MESSAGE_LOG.dump()}


def load(data: dict[str, Any]) -> int:
    """Replace the emulator's pools and message log with `data`; returns the number of pools."""
    if data.get("version") != VERSION:
        raise ValueError(f"state file version {data.get('version')!r}, expected {VERSION}")
    count = 0
    with STATE_LOCK:
        for region, content in data["regions"].items():
            backend = cognito_backend(region)
            backend.user_pools.clear()
            backend.user_pool_domains.clear()
            for record in content["pools"]:
                pool = load_pool(ACCOUNT_ID, region, record)
                backend.user_pools[pool.id] = pool
                count += 1
            for record in content["domains"]:
                backend.user_pool_domains[record["domain"]] = _new(CognitoIdpUserPoolDomain, record)
        MESSAGE_LOG.load(data.get("messages") or {})
    return count


def write_atomically(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)  # it holds password verifiers, client secrets and refresh tokens
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class StateStore:
    """The state file: loaded on start, saved by a daemon thread when marked dirty, and on stop."""

    def __init__(self, path: Path, interval: float = SAVE_EVERY_SECONDS) -> None:
        self.path = Path(path)
        self.interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.saves = 0

    def load(self) -> int | None:
        """Pools restored from the file, or None when there is no file."""
        if not self.path.exists():
            return None
        return load(json.loads(self.path.read_text()))

    def reset(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def mark_dirty(self) -> None:
        self._dirty.set()

    def save(self) -> None:
        self._dirty.clear()
        write_atomically(self.path, json.dumps(dump(), default=str, ensure_ascii=False).encode())
        self.saves += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cognito-emulator-state", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self._dirty.is_set():
                try:
                    self.save()
                except Exception:  # keep serving; the next change or the shutdown tries again
                    log.exception("could not write the emulator state to %s", self.path)
                    self._dirty.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.save()
