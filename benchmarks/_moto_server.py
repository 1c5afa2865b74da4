"""A moto Cognito server in its own process, with pools filled by injecting users into moto's backend.

Run by the benchmarks (not by hand): `python benchmarks/_moto_server.py NAME=COUNT ...`.
It prints one JSON line {"endpoint": ..., "pools": {NAME: POOL_ID}} once ready, then
serves until killed. AdminCreateUser over HTTP manages ~320 users/s; building
CognitoIdpUser objects in the server's process does 100,000 in a few seconds.
One user in a hundred is put in a group "staff", so a pull also lists memberships.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _fast_pagination() -> None:
    """moto finds a page token's position by testing every item in Python, so listing
    100,000 users costs O(n^2) in the server (minutes). Cognito does not behave like that;
    look the position up with C-level loops instead, keeping moto's answers identical."""
    from operator import attrgetter

    from moto.utilities.paginator import Paginator

    original = Paginator.paginate
    # The position of every item, by unique value, for the listing being paged (rebuilt
    # whenever the listed collection changes shape).
    cache: dict[str, object] = {"key": None, "index": {}}

    def paginate(self, results):
        token = self._parsed_token
        if not (token and len(self._unique_attributes) == 1 and results and hasattr(results[0], "__dict__")):
            return original(self, results)
        attr = self._unique_attributes[0]
        key = (attr, len(results), id(results[0]), id(results[-1]))
        if cache["key"] != key:
            cache["index"] = {str(v): i for i, v in enumerate(map(attrgetter(attr), results))}
            cache["key"] = key
        start = cache["index"].get(token["uniqueAttributes"])
        if start is None:
            return original(self, results)
        end = min(start + self._max_results, len(results))
        next_token = self._build_next_token(results[end]) if end < len(results) else None
        return results[start:end], next_token

    Paginator.paginate = paginate

    # ListUsers without a filter copies the pool's whole user dict on every page (O(n) a
    # page); hand the paginator the same list while the pool's size does not change.
    from moto.cognitoidp.models import CognitoIdpBackend
    from moto.cognitoidp.utils import PAGINATION_MODEL
    from moto.utilities.paginator import paginate as moto_paginate

    unfiltered = CognitoIdpBackend.list_users.__wrapped__
    lists: dict[str, tuple[int, list]] = {}

    def list_users(self, user_pool_id: str, filt: str):
        if filt:
            return unfiltered(self, user_pool_id, filt)
        users = self.describe_user_pool(user_pool_id).users
        cached = lists.get(user_pool_id)
        if cached is None or cached[0] != len(users):
            cached = lists[user_pool_id] = (len(users), list(users.values()))
        return cached[1]

    CognitoIdpBackend.list_users = moto_paginate(pagination_model=PAGINATION_MODEL)(list_users)


def main() -> None:
    _fast_pagination()
    import boto3
    from moto.cognitoidp.models import CognitoIdpUser, cognitoidp_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=endpoint)
    pools = {}
    for spec in sys.argv[1:]:
        name, count = spec.split("=")
        pool_id = client.create_user_pool(
            PoolName=name,
            Schema=[
                {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
                {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
            ],
        )["UserPool"]["Id"]
        client.create_group(UserPoolId=pool_id, GroupName="staff", Precedence=1)
        backend = cognitoidp_backends["123456789012"]["us-east-1"]
        pool = backend.user_pools[pool_id]
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
    print(json.dumps({"endpoint": endpoint, "pools": pools}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
