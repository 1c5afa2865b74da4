"""An app client's integration panel: the ids and URLs an app needs, and ready-to-paste configuration
(Amplify JS v6, a `.env`). In local mode they point at the emulator. Never a client secret."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from ..models import AppClient
from .messagelog import emulator_endpoint

# Pool sign-in identifiers -> Amplify v6's `loginWith` keys.
LOGIN_WITH = {"email": "email", "phone_number": "phone", "username": "username"}


def cognito_issuer(region: str, pool_id: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"


def local_endpoint() -> str:
    """The emulator's URL when the admin runs in local mode against it, else ""."""
    endpoint = emulator_endpoint()
    if settings.COGNITO_LOCAL_MODE and endpoint.startswith(("http://", "https://")):
        return endpoint
    return ""


def amplify_config(*, pool_id: str, client_id: str, login_with: dict[str, bool], endpoint: str) -> str:
    """Amplify JS v6's `Amplify.configure` call for this client (`userPoolEndpoint` in local mode)."""
    login = ", ".join(f"{key}: true" for key in login_with)
    cognito = [
        f"userPoolId: {json.dumps(pool_id)},",
        f"userPoolClientId: {json.dumps(client_id)},",
        f"loginWith: {{ {login} }}," if login else "",
    ]
    if endpoint:
        cognito.append(f"userPoolEndpoint: {json.dumps(endpoint)}, // the local emulator: remove for Cognito")
    inner = "\n".join(f"      {line}" for line in cognito if line)
    return (
        'import { Amplify } from "aws-amplify";\n\n'
        "Amplify.configure({\n  Auth: {\n    Cognito: {\n" + inner + "\n    },\n  },\n});"
    )


def env_file(*, region: str, pool_id: str, client_id: str, issuer: str, jwks_url: str, endpoint: str,
             has_secret: bool) -> str:
    lines = [
        f"COGNITO_REGION={region}",
        f"COGNITO_USER_POOL_ID={pool_id}",
        f"COGNITO_CLIENT_ID={client_id}",
        f"COGNITO_ISSUER={issuer}",
        f"COGNITO_JWKS_URL={jwks_url}",
    ]
    if endpoint:
        lines += ["# Local emulator (boto3 and the AWS CLI read this one):",
                  f"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER={endpoint}"]
    if has_secret:
        lines.append("# This client has a secret: keep it server-side (it is shown only when the client is created).")
    return "\n".join(lines)


def integration_context(client: AppClient) -> dict[str, Any]:
    """What the panel shows: region, pool id, client id, issuer, JWKS URL, the Amplify and `.env`
    snippets, whether they point at the emulator, and whether the client has a secret (never the secret)."""
    pool = client.pool
    endpoint = local_endpoint()
    issuer = f"{endpoint}/{pool.pool_id}" if endpoint else cognito_issuer(pool.region, pool.pool_id)
    jwks_url = f"{issuer}/.well-known/jwks.json"
    login_with = {LOGIN_WITH[i]: True for i in pool.sign_in_identifiers if i in LOGIN_WITH}
    return {
        "region": pool.region,
        "pool_id": pool.pool_id,
        "client_id": client.client_id,
        "issuer": issuer,
        "jwks_url": jwks_url,
        "endpoint": endpoint,
        "cognito_issuer": cognito_issuer(pool.region, pool.pool_id),
        "has_secret": client.has_secret,
        "amplify": amplify_config(
            pool_id=pool.pool_id, client_id=client.client_id, login_with=login_with, endpoint=endpoint
        ),
        "env": env_file(
            region=pool.region, pool_id=pool.pool_id, client_id=client.client_id, issuer=issuer,
            jwks_url=jwks_url, endpoint=endpoint, has_secret=client.has_secret,
        ),
    }
