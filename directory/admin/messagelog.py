"""Local mode only: the messages the emulator would have sent for a pool (invitations, codes), read from
its message log over HTTP. HTML bodies are shown only inside `<iframe sandbox srcdoc>`."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from csp.decorators import csp
from django.conf import settings
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.template.response import TemplateResponse

MESSAGES_PATH = "/_emulator/messages"  # must match emulator.shims.MESSAGES_PATH
MESSAGES_SHOWN = 200
# No scripts and no remote loads, in the page and in the sandboxed frames (which inherit it).
PAGE_CSP = {
    "default-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
}


def emulator_endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "").rstrip("/")


def fetch_messages(pool_id: str, *, username: str = "", timeout: float = 5) -> list[dict[str, Any]]:
    """The emulator's messages for a pool, newest first. Raises OSError/ValueError when it cannot be read."""
    endpoint = emulator_endpoint()
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER does not point at the emulator")
    query = urllib.parse.urlencode({k: v for k, v in {"pool_id": pool_id, "username": username}.items() if v})
    with urllib.request.urlopen(f"{endpoint}{MESSAGES_PATH}?{query}", timeout=timeout) as response:  # noqa: S310
        return json.load(response)["messages"]


# Who may read the codes and temporary passwords in the log: operators who could send one anyway.
SEE_CODES = ("directory.resend_code_cognitouser", "directory.create_test_user_cognitouser")
HIDDEN = "••••••"


def may_see_codes(user) -> bool:
    return any(user.has_perm(permission) for permission in SEE_CODES)


def without_codes(message: dict[str, Any]) -> dict[str, Any]:
    """The message with its code or temporary password blanked out, wherever it appears."""
    code = str(message.get("code") or "")
    if not code:
        return message
    hidden = {**message, "code": HIDDEN}
    for key in ("subject", "body"):
        if isinstance(hidden.get(key), str):
            hidden[key] = hidden[key].replace(code, HIDDEN)
    return hidden


@csp(PAGE_CSP)
def messages_sent_view(model_admin, request, object_id):
    """`userpool/<pk>/messages-sent/` (`?username=` narrows to one user, `?format=json` answers JSON)."""
    if not settings.COGNITO_LOCAL_MODE:
        raise Http404("The emulator's message log exists only in local mode (COGNITO_LOCAL_MODE).")
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    pool = model_admin.get_object(request, unquote(object_id))
    if pool is None:
        raise Http404(f"No user pool with primary key {object_id!r}.")
    username = request.GET.get("username", "").strip()
    error = ""
    try:
        found = fetch_messages(pool.pool_id, username=username)
    except (OSError, ValueError, KeyError) as exc:
        found = []
        error = f"The emulator's message log could not be read at {emulator_endpoint() or '(no endpoint)'}: {exc}"
    if not may_see_codes(request.user):
        # View-only staff see that a message went out, not the code or password that signs a user in.
        found = [without_codes(message) for message in found]
    if request.GET.get("format") == "json":
        return JsonResponse({"pool_id": pool.pool_id, "messages": found, "error": error}, status=502 if error else 200)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Messages sent by the emulator for {pool.name or pool.pool_id}",
        "subtitle": None,
        "opts": model_admin.opts,
        "original": pool,
        "sent": found[:MESSAGES_SHOWN],
        "more": max(len(found) - MESSAGES_SHOWN, 0),
        "username": username,
        "error": error,
        "endpoint": emulator_endpoint(),
    }
    return TemplateResponse(request, "admin/directory/userpool/messages_sent.html", context)
