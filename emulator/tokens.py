"""Tokens as Cognito issues them: RS256 ID and access tokens with Cognito's claims, signed by a key
per pool that the pool's JWKS publishes, and refresh tokens; validity per app client.

JWTs are made with joserfc (already moto's JOSE library, maintained, RFC 7515-7519 complete),
so nothing here builds a signature by hand.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from .protocol import CognitoError, attrs_of, find_user

# TokenValidityUnits' defaults, and Cognito's default validities in those units.
_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
_DEFAULTS = {"AccessToken": (1, "hours"), "IdToken": (1, "hours"), "RefreshToken": (30, "days")}
_VALIDITY_KEY = {
    "AccessToken": "AccessTokenValidity",
    "IdToken": "IdTokenValidity",
    "RefreshToken": "RefreshTokenValidity",
}
# Standard attributes Cognito puts in the ID token as JSON booleans / numbers, not strings.
_BOOLEAN_ATTRIBUTES = {"email_verified", "phone_number_verified"}
_NUMBER_ATTRIBUTES = {"updated_at"}


def validity_seconds(client: Any, token: str) -> int:
    """A client's AccessToken / IdToken / RefreshToken validity in seconds (TokenValidityUnits honoured)."""
    config = client.extended_config
    default_value, default_unit = _DEFAULTS[token]
    value = config.get(_VALIDITY_KEY[token])
    unit = (config.get("TokenValidityUnits") or {}).get(token) or default_unit
    if not value:
        value, unit = default_value, default_unit
    return int(value) * _UNIT_SECONDS.get(unit, 3600)


def signing_key(pool: Any) -> RSAKey:
    """The pool's RS256 key, made on first use and kept with the pool (so the state file keeps it)."""
    stored = getattr(pool, "emulator_signing_key", None)
    if stored is None:
        kid = base64url_id(f"{pool.id}:{secrets.token_hex(8)}")
        key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})
        stored = key.as_dict(private=True)
        pool.emulator_signing_key = stored
    return RSAKey.import_key(stored)


def base64url_id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:43]


def jwks(pool: Any) -> dict[str, Any]:
    """The pool's public keys, as /<pool id>/.well-known/jwks.json serves them."""
    public = signing_key(pool).as_dict(private=False)
    return {"keys": [{k: public[k] for k in ("alg", "e", "kid", "kty", "n", "use")}]}


def issuer(base_url: str, pool: Any) -> str:
    return f"{base_url.rstrip('/')}/{pool.id}"


def _claim_value(name: str, value: str) -> Any:
    if name in _BOOLEAN_ATTRIBUTES:
        return value.lower() == "true"
    if name in _NUMBER_ATTRIBUTES and value.isdigit():
        return int(value)
    return value


def _group_claims(pool: Any, user: Any) -> dict[str, Any]:
    groups = sorted(user.groups, key=lambda g: (g.precedence is None, g.precedence or 0, g.group_name))
    if not groups:
        return {}
    claims: dict[str, Any] = {"cognito:groups": [g.group_name for g in groups]}
    roles = [g.role_arn for g in groups if g.role_arn]
    if roles:
        claims["cognito:roles"] = roles
        claims["cognito:preferred_role"] = roles[0]
    return claims


def _sign(pool: Any, claims: dict[str, Any]) -> str:
    key = signing_key(pool)
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def id_token_claims(pool: Any, client: Any, user: Any, *, iss: str, auth_time: int, origin_jti: str) -> dict:
    now = int(time.time())
    readable = set(client.extended_config.get("ReadAttributes") or [])
    claims: dict[str, Any] = {}
    for name, value in attrs_of(user).items():
        if name == "sub" or (readable and name not in readable):
            continue
        claims[name] = _claim_value(name, value)
    claims.update(
        {
            "sub": user.id,
            **_group_claims(pool, user),
            "iss": iss,
            "cognito:username": user.username,
            "origin_jti": origin_jti,
            "aud": client.id,
            "event_id": str(uuid.uuid4()),
            "token_use": "id",
            "auth_time": auth_time,
            "exp": now + validity_seconds(client, "IdToken"),
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
    )
    return claims


def access_token_claims(pool: Any, client: Any, user: Any, *, iss: str, auth_time: int, origin_jti: str) -> dict:
    now = int(time.time())
    return {
        "sub": user.id,
        **{k: v for k, v in _group_claims(pool, user).items() if k == "cognito:groups"},
        "iss": iss,
        "client_id": client.id,
        "origin_jti": origin_jti,
        "event_id": str(uuid.uuid4()),
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": auth_time,
        "exp": now + validity_seconds(client, "AccessToken"),
        "iat": now,
        "jti": str(uuid.uuid4()),
        "username": user.username,
    }


def access_expiry(pool: Any) -> dict[str, int]:
    """Access token -> its `exp` (moto's access_tokens table has no room for it)."""
    expiry = getattr(pool, "emulator_access_exp", None)
    if expiry is None:
        expiry = pool.emulator_access_exp = {}
    return expiry


def _refresh_meta(pool: Any) -> dict[str, dict[str, Any]]:
    meta = getattr(pool, "emulator_refresh_meta", None)
    if meta is None:
        meta = pool.emulator_refresh_meta = {}
    return meta


def issue(pool: Any, client: Any, user: Any, *, iss: str, refresh: bool = True) -> dict[str, Any]:
    """An AuthenticationResult for a successful sign-in (with a new refresh token unless `refresh`
    is False). Access tokens are also registered where moto's token calls (GetUser …) look."""
    auth_time = int(time.time())
    origin_jti = str(uuid.uuid4())
    result = _tokens(pool, client, user, iss=iss, auth_time=auth_time, origin_jti=origin_jti)
    if refresh:
        token = secrets.token_urlsafe(96)
        # moto's table (its GlobalSignOut / AdminUserGlobalSignOut revoke entries there) + ours.
        pool.refresh_tokens[token] = (client.id, user.username, origin_jti)
        _refresh_meta(pool)[token] = {
            "auth_time": auth_time,
            "expires": auth_time + validity_seconds(client, "RefreshToken"),
        }
        result["RefreshToken"] = token
    return result


def _tokens(pool: Any, client: Any, user: Any, *, iss: str, auth_time: int, origin_jti: str) -> dict[str, Any]:
    access_claims = access_token_claims(pool, client, user, iss=iss, auth_time=auth_time, origin_jti=origin_jti)
    access = _sign(pool, access_claims)
    id_token = _sign(pool, id_token_claims(pool, client, user, iss=iss, auth_time=auth_time, origin_jti=origin_jti))
    pool.access_tokens[access] = (client.id, user.username)
    access_expiry(pool)[access] = access_claims["exp"]
    return {
        "AccessToken": access,
        "ExpiresIn": validity_seconds(client, "AccessToken"),
        "TokenType": "Bearer",
        "IdToken": id_token,
    }


def refresh(pool: Any, client: Any, token: str, *, iss: str) -> tuple[Any, dict[str, Any]]:
    """New ID and access tokens for a refresh token of this client (no new refresh token, as Cognito)."""
    entry = pool.refresh_tokens.get(token)
    meta = _refresh_meta(pool).get(token)
    if not entry or not meta or entry[0] != client.id:
        raise CognitoError("NotAuthorizedException", "Invalid Refresh Token")
    if meta["expires"] < time.time():
        raise CognitoError("NotAuthorizedException", "Refresh Token has expired")
    _, username, origin_jti = entry
    user = find_user(pool, username, missing="Invalid Refresh Token")
    if not user.enabled:
        raise CognitoError("NotAuthorizedException", "User is disabled.")
    return user, _tokens(pool, client, user, iss=iss, auth_time=int(meta["auth_time"]), origin_jti=origin_jti)


def prune(pool: Any) -> None:
    """Drop expired refresh tokens and access tokens (before the state is written)."""
    now = time.time()
    meta = _refresh_meta(pool)
    for token in [t for t, m in list(meta.items()) if m["expires"] < now or pool.refresh_tokens.get(t) is None]:
        meta.pop(token, None)
        pool.refresh_tokens.pop(token, None)
    for token in [t for t in list(pool.refresh_tokens) if t not in meta]:
        pool.refresh_tokens.pop(token, None)  # moto's own (tokens it made before the emulator's shims)
    expiry = access_expiry(pool)
    for token in list(pool.access_tokens):
        if expiry.get(token, 0) < now:  # expired, or moto's own (made before the emulator's shims)
            pool.access_tokens.pop(token, None)
            expiry.pop(token, None)
    for token in [t for t in list(expiry) if t not in pool.access_tokens]:
        expiry.pop(token, None)  # signed out
