"""The audit log's hash chain: every writer extends it, concurrent writers do not fork it, and
`audit_verify` finds an edited row, a removed row, a cut tail and a rewritten chain, walking the
log a chunk at a time; beat runs it and the admin warns while it fails. Runs on SQLite and
PostgreSQL (there the tampering is done as the owner, with the triggers disabled)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import tracemalloc
from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directory import audit, audit_chain, tasks
from directory.models import AuditChainHead, AuditEvent, AuditVerification
from tests.audit_helpers import AUDIT_TABLE, tamper

SHARED = {"source": audit.Source.WORKER, "actor": "", "pool_id": "us-east-1_chain", "correlation_id": "run-1"}


def _rows(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "action": "updated",
            "object_type": "user",
            "object_id": f"user{i:05d}",
            "object_repr": f"User {i} Zoë\ttab",
            "changes": {"email": [f"old{i}@example.com", f"new{i}@example.com"], "attributes.custom:n": [i, i + 1]},
            "detail": {"sub": f"sub-{i}", "at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)},
        }
        for i in range(start, start + n)
    ]


def _write_log(n_bulk: int = 40) -> list[int]:
    """A log written through every writer path: `record`, `record_many`, `copy_many` (COPY on
    PostgreSQL), and a COPY batch built apart from its writing as the pull's writer thread does."""
    audit.record(action="requested", object_type="pool", object_id="p1", source="admin", actor="ann",
                 changes={"mfa": ["OFF", "ON"]}, detail={"operation": "pool.update"}, outcome="pending")
    audit.record_many([audit.build(action="created", object_type="group", object_id=f"g{i}", source="sync",
                                   changes={"name": [None, f"g{i}"]}) for i in range(3)])
    audit.copy_many(_rows(n_bulk), **SHARED)
    if connection.vendor == "postgresql":
        batch = audit.copy_text(_rows(5, start=n_bulk), **SHARED)
        with transaction.atomic():
            audit.copy_write(batch)
    return list(AuditEvent.objects.order_by("id").values_list("id", flat=True))


# --------------------------------------------------------------------------- an untouched log


@pytest.mark.django_db
def test_every_writer_extends_the_chain_and_thousands_of_events_verify(capsys):
    ids = _write_log(n_bulk=3000)
    events = list(AuditEvent.objects.order_by("id"))
    assert events[0].prev_hash == audit_chain.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(events, events[1:], strict=False))
    assert len({event.hash for event in events}) == len(events)
    head = AuditChainHead.objects.get()
    assert (head.last_event_id, head.last_hash) == (ids[-1], events[-1].hash)

    call_command("audit_verify")
    assert f"audit chain intact: {len(ids):,} events through row {ids[-1]}" in capsys.readouterr().out
    result = AuditVerification.objects.get()
    assert (result.ok, result.events, result.last_event_id, result.source) == (True, len(ids), ids[-1], "command")


@pytest.mark.django_db
def test_an_empty_log_verifies():
    report = audit_chain.verify()
    assert report.ok and report.events == 0


@pytest.mark.django_db
def test_verification_streams_the_log_in_chunks_with_flat_memory():
    def verify_measured() -> tuple[int, int]:
        tracemalloc.start()
        with CaptureQueriesContext(connection) as queries:
            report = audit_chain.verify(chunk_size=500)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert report.ok, report.problem
        return peak, sum(AUDIT_TABLE in q["sql"] and "LIMIT" in q["sql"] for q in queries.captured_queries)

    audit.copy_many(_rows(2000), **SHARED)
    small_peak, small_reads = verify_measured()
    audit.copy_many(_rows(8000, start=2000), **SHARED)
    large_peak, large_reads = verify_measured()
    # Five times the log: five times the chunked reads ...
    assert (small_reads, large_reads) == (2000 // 500, 10000 // 500)
    # ... and the same memory: one chunk at a time, whatever the log's length.
    assert large_peak < small_peak * 1.3, (small_peak, large_peak)


# --------------------------------------------------------------------------- tampering


def _verify_fails() -> AuditVerification:
    with pytest.raises(CommandError, match="audit chain broken"):
        call_command("audit_verify")
    result = AuditVerification.objects.order_by("-id").first()
    assert not result.ok
    return result


@pytest.mark.django_db(transaction=True)
def test_an_edited_row_is_detected():
    ids = _write_log()
    victim = ids[10]
    tamper([f"UPDATE {AUDIT_TABLE} SET object_repr = 'someone else' WHERE id = {victim}"])
    result = _verify_fails()
    assert result.broken_event_id == victim
    assert "content does not match its hash" in result.problem
    assert result.events == 10  # the rows before it verified


@pytest.mark.django_db(transaction=True)
def test_an_edited_json_value_is_detected():
    ids = _write_log()
    victim = ids[20]
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    changes = json.dumps({"email": ["old@example.com", "attacker@example.com"]})
    tamper([f"UPDATE {AUDIT_TABLE} SET changes = '{changes}'{cast} WHERE id = {victim}"])
    assert _verify_fails().broken_event_id == victim


@pytest.mark.django_db(transaction=True)
def test_a_row_edited_with_its_own_hash_recomputed_breaks_the_next_link():
    ids = _write_log()
    victim = AuditEvent.objects.get(pk=ids[5])
    victim.object_repr = "rewritten"
    forged = audit_chain.link(victim.prev_hash, audit_chain.event_digest(victim))
    tamper([f"UPDATE {AUDIT_TABLE} SET object_repr = 'rewritten', hash = '{forged}' WHERE id = {victim.pk}"])
    result = _verify_fails()
    assert result.broken_event_id == ids[6]
    assert f"its previous hash is not row {ids[5]}'s hash" in result.problem


@pytest.mark.django_db(transaction=True)
def test_a_deleted_row_is_detected():
    ids = _write_log()
    tamper([f"DELETE FROM {AUDIT_TABLE} WHERE id = {ids[7]}"])
    result = _verify_fails()
    assert result.broken_event_id == ids[8]
    assert f"previous hash is not row {ids[6]}'s hash" in result.problem
    assert f"(id {ids[7]} is not in the log)" in result.problem


@pytest.mark.django_db(transaction=True)
def test_a_truncated_tail_is_detected():
    ids = _write_log()
    tamper([f"DELETE FROM {AUDIT_TABLE} WHERE id > {ids[-6]}"])
    result = _verify_fails()
    assert result.broken_event_id == ids[-1]
    assert f"the log ends at row {ids[-6]}, but the chain head is row {ids[-1]}" in result.problem
    assert result.events == len(ids) - 5


@pytest.mark.django_db(transaction=True)
def test_a_truncated_tail_with_the_head_rewritten_is_caught_by_the_last_verification():
    _write_log()
    call_command("audit_verify")  # verifies through the newest row
    audit.copy_many(_rows(5, start=900), **SHARED)
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    keep = AuditEvent.objects.get(pk=ids[-9])
    # Cut the last nine rows and point the head at the new last one: the chain itself is intact.
    tamper([
        f"DELETE FROM {AUDIT_TABLE} WHERE id > {keep.pk}",
        f"UPDATE directory_auditchainhead SET last_event_id = {keep.pk}, last_hash = '{keep.hash}'",
    ])
    result = _verify_fails()
    assert result.broken_event_id == ids[-6]  # the newest row the previous verification saw
    assert f"row {ids[-6]}, verified on" in result.problem and "is missing" in result.problem


@pytest.mark.django_db(transaction=True)
def test_an_emptied_log_is_detected():
    _write_log()
    tamper([f"DELETE FROM {AUDIT_TABLE}"])
    assert "the log is empty, but the chain head is row" in _verify_fails().problem


@pytest.mark.django_db(transaction=True)
def test_a_row_inserted_outside_the_writer_is_detected():
    ids = _write_log()
    last = AuditEvent.objects.get(pk=ids[-1])
    # A forged row with well-formed links (its previous hash is the last row's, its own hash is
    # right for its content), slipped in by plain INSERT, then a genuine append.
    last.actor = "mallory"
    forged_hash = audit_chain.link(last.hash, audit_chain.event_digest(last))
    columns = "created_at, source, action, object_type, object_id, object_repr, pool_id, changes, detail, outcome, " \
        "correlation_id"
    tamper([
        f"INSERT INTO {AUDIT_TABLE} ({columns}, actor, prev_hash, hash) SELECT {columns}, 'mallory', '{last.hash}', "
        f"'{forged_hash}' FROM {AUDIT_TABLE} WHERE id = {last.pk}"
    ])
    forged_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    assert audit_chain.verify().ok  # beyond the chain head: not part of the chain yet
    genuine = audit.record(action="requested", object_type="user", object_id="after", source="admin")
    result = _verify_fails()
    assert (forged_id, result.broken_event_id) == (genuine.pk - 1, genuine.pk)
    assert f"its previous hash is not row {forged_id}'s hash" in result.problem


# --------------------------------------------------------------------------- concurrent writers


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_do_not_fork_the_chain():
    """Web requests, workers and a pull's COPY batches appending at once: each append waits for the
    previous one's transaction, so every row links to the one committed before it."""
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(kind: str) -> None:
        try:
            start.wait()
            for i in range(15):
                with transaction.atomic():
                    if kind == "copy":
                        audit.copy_many(_rows(20, start=i * 20), **SHARED)
                    else:
                        audit.record(action="requested", object_type="user", object_id=f"{kind}{i}", source=kind)
                    time.sleep(0.002)  # hold the transaction open: an unserialised append would fork here
        except BaseException as exc:  # noqa: BLE001 - reported on the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(kind,)) for kind in ("admin", "worker", "command", "copy")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    report = audit_chain.verify()
    assert report.ok, report.problem
    assert report.events == AuditEvent.objects.count() == 3 * 15 + 15 * 20


# --------------------------------------------------------------------------- canonical content


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e16, 1e23, -0.0, 1e-7, 1500.0, 2.5e300])
    | st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6).filter(
        lambda k: "\x00" not in k and not any(0xD800 <= ord(c) <= 0xDFFF for c in k)), children, max_size=3),
    max_leaves=10,
)


def _stored(text: str) -> str:
    """JSON text as the database gives it back (PostgreSQL's jsonb rewrites it; SQLite keeps it)."""
    if connection.vendor != "postgresql":
        return text
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb::text", [text])
        return cursor.fetchone()[0]


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.dictionaries(st.sampled_from(["changes", "n", "Zoë", "x y"]), JSON, max_size=4))
def test_what_is_hashed_is_what_the_database_gives_back(value):
    # The ORM paths (record, record_many) store json.dumps; the COPY path stores its own text.
    assert audit_chain.canonical_of(value) == audit_chain.canonical_text(_stored(json.dumps(value)))
    text, hashed = audit._scrubbed(value)
    assert hashed == audit_chain.canonical_text(_stored(text))


# --------------------------------------------------------------------------- beat and the admin


def test_verification_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["verify-audit-log"]
    assert entry["task"] == "directory.tasks.verify_audit_log"
    assert entry["schedule"] == dt.timedelta(minutes=settings.COGNITO_AUDIT_VERIFY_MINUTES)


@pytest.mark.django_db(transaction=True)
def test_beat_task_stores_the_outcome_and_the_admin_warns_until_a_walk_passes(admin_client):
    ids = _write_log()
    assert tasks.verify_audit_log.delay().get() is True
    index, log = reverse("admin:index"), reverse("admin:directory_auditevent_changelist")
    assert b"audit-chain-alarm" not in admin_client.get(index).content

    tamper([f"UPDATE {AUDIT_TABLE} SET actor = 'nobody' WHERE id = {ids[3]}"])
    assert tasks.verify_audit_log.delay().get() is False
    assert AuditVerification.objects.order_by("-id").first().source == "beat"
    for url in (index, log):
        response = admin_client.get(url)
        assert response.status_code == HTTPStatus.OK
        text = response.content.decode()
        assert 'id="audit-chain-alarm"' in text, url
        assert f"row {ids[3]}: its content does not match its hash" in text
    assert b"audit-chain-alarm" not in admin_client.get(reverse("admin:directory_userpool_changelist")).content

    # Put back (as an investigation would), a walk passes and the warning goes.
    tamper([f"UPDATE {AUDIT_TABLE} SET actor = '' WHERE id = {ids[3]}"])
    assert tasks.verify_audit_log.delay().get() is True
    assert b"audit-chain-alarm" not in admin_client.get(index).content
    verifications = admin_client.get(reverse("admin:directory_auditverification_changelist"))
    assert verifications.status_code == HTTPStatus.OK
