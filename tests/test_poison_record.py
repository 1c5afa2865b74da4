"""One user whose attribute holds a NUL character (which PostgreSQL cannot store) no longer blocks
a pool: the whole pool is mirrored, the value kept with U+FFFD in its place, the user named in the
sync run, and the next pull finds nothing to change."""

from __future__ import annotations

import pytest

from directory.models import CognitoUser, UserPool
from directory.sync.pull import pull_pool
from tests.cognito_helpers import create_pool, create_user

pytestmark = pytest.mark.django_db


def test_a_nul_character_in_one_user_does_not_block_the_pool(cognito):
    pool_id = create_pool(cognito, name="poisoned")
    for i in range(130):
        create_user(cognito, pool_id, f"user{i:03d}", email=f"user{i:03d}@example.com", name=f"User {i}")
    create_user(cognito, pool_id, "mallory", email="mallory@example.com", name="Mal\x00lory")
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")

    run = pull_pool(pool=pool)
    assert run.status == "succeeded", run.error
    assert CognitoUser.objects.filter(pool=pool).count() == 131
    mallory = CognitoUser.objects.get(pool=pool, username="mallory")
    assert mallory.name == "Mal\ufffdlory" and mallory.attributes["name"] == "Mal\ufffdlory"
    assert run.summary["nul_replaced"] == {"users": 1, "first": ["mallory"]}

    again = pull_pool(pool=pool)
    assert again.status == "succeeded", again.error
    assert (again.created, again.updated, again.removed) == (0, 0, 0)
