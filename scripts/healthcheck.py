"""Container healthcheck: exit 0 when the URL answers with any HTTP status below 500."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def main(url: str) -> int:
    try:
        urllib.request.urlopen(url, timeout=5)  # noqa: S310 - the container's own port
    except urllib.error.HTTPError as exc:  # 4xx (e.g. a Host not in ALLOWED_HOSTS) still means "up"
        return 0 if exc.code < 500 else 1
    except OSError as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/admin/login/"))
