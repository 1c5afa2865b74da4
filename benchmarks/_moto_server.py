"""The Cognito emulator in its own process, with pools filled by injecting users into moto's backend.

Run by the benchmarks (not by hand):
`python benchmarks/_moto_server.py [--latency-ms N] [--quota] NAME=COUNT ...`. It prints one JSON
line {"endpoint": ..., "pools": {NAME: POOL_ID}} once ready, then serves until killed.
AdminCreateUser over HTTP manages ~320 users/s; building CognitoIdpUser objects in the server's
process does 100,000 in a few seconds. One user in a hundred is put in a group "staff", so a
pull also lists memberships. `--latency-ms` and `--quota` are the emulator's own modes
(`cognito_emulator --latency-ms N --quota`): each Cognito call answered N ms late, and Cognito's
request rates enforced with its throttling answer (counted at GET /_emulator/quota).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cognito_admin.settings")


def _fast_pagination() -> None:
    """moto finds a page token's position by testing every item in Python, and ListUsers copies
    (and, with a filter, tests) the pool's every user on every page: listing 100,000 users costs
    O(n^2) in the server (minutes). Cognito does not behave like that; keep moto's answers
    identical but find each page in O(page)."""
    from operator import attrgetter

    from moto.utilities.paginator import Paginator

    original = Paginator.paginate
    # The position of every item, by unique value, for each listing being paged (rebuilt
    # whenever the listed collection changes shape); the filtered listings of a partitioned
    # pull are paged side by side.
    positions: dict[tuple, dict[str, int]] = {}

    def paginate(self, results):
        token = self._parsed_token
        if not (token and len(self._unique_attributes) == 1 and results and hasattr(results[0], "__dict__")):
            return original(self, results)
        attr = self._unique_attributes[0]
        key = (attr, len(results), id(results[0]), id(results[-1]))
        index = positions.get(key)
        if index is None:
            if len(positions) > 512:
                positions.clear()
            index = positions[key] = {str(v): i for i, v in enumerate(map(attrgetter(attr), results))}
        start = index.get(token["uniqueAttributes"])
        if start is None:
            return original(self, results)
        end = min(start + self._max_results, len(results))
        next_token = self._build_next_token(results[end]) if end < len(results) else None
        return results[start:end], next_token

    Paginator.paginate = paginate

    # Hand the paginator the same list (whole, or filtered) while the pool's size does not change.
    from moto.cognitoidp.models import CognitoIdpBackend
    from moto.cognitoidp.utils import PAGINATION_MODEL
    from moto.utilities.paginator import paginate as moto_paginate

    unwrapped = CognitoIdpBackend.list_users.__wrapped__
    lists: dict[tuple[str, str], tuple[int, list]] = {}
    lock = threading.Lock()

    def list_users(self, user_pool_id: str, filt: str):
        users = self.describe_user_pool(user_pool_id).users
        with lock:
            cached = lists.get((user_pool_id, filt or ""))
        if cached is None or cached[0] != len(users):
            listed = unwrapped(self, user_pool_id, filt) if filt else list(users.values())
            cached = (len(users), listed)
            with lock:
                lists[(user_pool_id, filt or "")] = cached
        return cached[1]

    CognitoIdpBackend.list_users = moto_paginate(pagination_model=PAGINATION_MODEL)(list_users)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--quota", action="store_true")
    parser.add_argument("pools", nargs="*", metavar="NAME=COUNT")
    args = parser.parse_args()
    _fast_pagination()
    import boto3
    from moto.cognitoidp.models import CognitoIdpUser

    import emulator
    from emulator.protocol import cognito_backend

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = emulator.start_server(port=0, quota=args.quota, latency=args.latency_ms)
    client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint)
    pools = {}
    for spec in args.pools:
        name, count = spec.split("=")
        pool_id = client.create_user_pool(
            PoolName=name,
            Schema=[
                {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
                {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
            ],
        )["UserPool"]["Id"]
        client.create_group(UserPoolId=pool_id, GroupName="staff", Precedence=1)
        pool = cognito_backend("us-east-1").user_pools[pool_id]
        group = pool.groups["staff"]
        for i in range(int(count)):
            attributes = [
                {"Name": "email", "Value": f"user{i}@example.com"},
                {"Name": "email_verified", "Value": "true"},
                {"Name": "name", "Value": f"Zoë Ångström {i}"},
            ]
            if i % 3 == 0:
                attributes.append({"Name": "phone_number", "Value": f"+1555{i:07d}"})
            user = CognitoIdpUser(pool_id, f"user{i:07d}", None, "CONFIRMED", attributes)
            pool.users[user.username] = user
            if i % 100 == 0:
                group.users.add(user)
                user.groups.add(group)
        pools[name] = pool_id
    if args.quota:  # the setup's own calls are not the benchmark's
        import urllib.request

        urllib.request.urlopen(  # noqa: S310 - loopback
            urllib.request.Request(f"{server.endpoint}{emulator.QUOTA_PATH}", method="DELETE"), timeout=10
        ).read()
    print(json.dumps({"endpoint": server.endpoint, "pools": pools}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
