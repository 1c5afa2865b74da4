"""The mirror: Cognito user pools, app clients, groups and users, plus sync runs and the audit log."""

from __future__ import annotations

import re
import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

# A username Cognito made up (a UUID, the user's `sub`), which tells an operator nothing.
OPAQUE_USERNAME = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


class UserStatus(models.TextChoices):
    UNCONFIRMED = "UNCONFIRMED"
    CONFIRMED = "CONFIRMED"
    FORCE_CHANGE_PASSWORD = "FORCE_CHANGE_PASSWORD"
    RESET_REQUIRED = "RESET_REQUIRED"
    EXTERNAL_PROVIDER = "EXTERNAL_PROVIDER"
    ARCHIVED = "ARCHIVED"
    COMPROMISED = "COMPROMISED"
    UNKNOWN = "UNKNOWN"


class MfaConfiguration(models.TextChoices):
    OFF = "OFF"
    ON = "ON", "ON (required)"
    OPTIONAL = "OPTIONAL"


class UserPool(models.Model):
    """One Cognito user pool and its settings, as DescribeUserPool returned them."""

    pool_id = models.CharField(max_length=55, unique=True)
    region = models.CharField(max_length=32, db_index=True)
    name = models.CharField(max_length=128, db_index=True)
    arn = models.CharField(max_length=2048, blank=True)
    status = models.CharField(max_length=32, blank=True)
    # Sign-in identifiers.
    username_attributes = models.JSONField(default=list, blank=True)
    alias_attributes = models.JSONField(default=list, blank=True)
    username_case_sensitive = models.BooleanField(null=True)
    # Attribute schema (standard and custom), and what Cognito verifies.
    schema = models.JSONField(default=list, blank=True)
    auto_verified_attributes = models.JSONField(default=list, blank=True)
    # Policies.
    password_policy = models.JSONField(default=dict, blank=True)
    mfa_configuration = models.CharField(max_length=16, choices=MfaConfiguration.choices, default=MfaConfiguration.OFF)
    admin_create_user_config = models.JSONField(default=dict, blank=True)
    allow_admin_create_user_only = models.BooleanField(default=False)
    temporary_password_validity_days = models.PositiveIntegerField(null=True, blank=True)
    verification_message_template = models.JSONField(default=dict, blank=True)
    email_configuration = models.JSONField(default=dict, blank=True)
    sms_configuration = models.JSONField(default=dict, blank=True)
    lambda_config = models.JSONField(default=dict, blank=True)
    user_attribute_update_settings = models.JSONField(default=dict, blank=True)
    account_recovery_setting = models.JSONField(default=dict, blank=True)
    device_configuration = models.JSONField(default=dict, blank=True)
    # GetUserPoolMfaConfig's methods (authenticator app, SMS, e-mail); the mode is mfa_configuration.
    mfa_methods = models.JSONField(default=dict, blank=True)
    deletion_protection = models.CharField(max_length=16, blank=True)
    user_pool_tier = models.CharField(max_length=16, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    estimated_number_of_users = models.PositiveIntegerField(default=0)
    remote_created_at = models.DateTimeField(null=True, blank=True)
    remote_modified_at = models.DateTimeField(null=True, blank=True)
    # Mirror bookkeeping.
    raw = models.JSONField(default=dict, blank=True, help_text="DescribeUserPool's UserPool record.")
    content_hash = models.CharField(max_length=64, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Scheduling: blank = COGNITO_SYNC_INTERVAL_MINUTES, 0 = never on a schedule (manual syncs still work).
    sync_interval_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Minutes between scheduled pulls. Blank: the default from settings; 0: off."
    )
    # A lease, not a lock held by a connection: a worker that dies stops renewing it and it expires.
    sync_lock_token = models.CharField(max_length=64, blank=True, editable=False)
    sync_lock_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Gone from Cognito (deleted here, or no longer found by discovery): the row stays, without its
    # users, groups and clients, so the pool's history (audit, sync runs, changes) stays browsable.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)
    deleted_reason = models.CharField(max_length=256, blank=True, editable=False)

    class Meta:
        ordering = ["name", "pool_id"]
        verbose_name = "user pool"
        permissions = [
            ("sync_userpool", "Can start a sync of a user pool"),
            ("edit_messages_userpool", "Can edit a pool's message templates"),
            ("discover_userpool", "Can discover user pools in Cognito"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.pool_id})"

    @property
    def is_gone(self) -> bool:
        return self.deleted_at is not None

    @property
    def required_attributes(self) -> list[str]:
        return [a["Name"] for a in self.schema if a.get("Required")]

    @property
    def custom_attributes(self) -> list[str]:
        return [a["Name"] for a in self.schema if a["Name"].startswith("custom:")]

    @property
    def sign_in_identifiers(self) -> list[str]:
        if self.username_attributes:
            return list(self.username_attributes)
        return ["username", *self.alias_attributes]


class AppClient(models.Model):
    """An app client of a pool. Whether it has a secret is kept; the secret never is."""

    pool = models.ForeignKey(UserPool, on_delete=models.CASCADE, related_name="app_clients")
    client_id = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=128)
    has_secret = models.BooleanField(default=False)
    explicit_auth_flows = models.JSONField(default=list, blank=True)
    refresh_token_validity = models.PositiveIntegerField(null=True, blank=True)
    access_token_validity = models.PositiveIntegerField(null=True, blank=True)
    id_token_validity = models.PositiveIntegerField(null=True, blank=True)
    token_validity_units = models.JSONField(default=dict, blank=True)
    auth_session_validity = models.PositiveIntegerField(null=True, blank=True)
    read_attributes = models.JSONField(default=list, blank=True)
    write_attributes = models.JSONField(default=list, blank=True)
    callback_urls = models.JSONField(default=list, blank=True)
    logout_urls = models.JSONField(default=list, blank=True)
    default_redirect_uri = models.CharField(max_length=1024, blank=True)
    allowed_oauth_flows = models.JSONField(default=list, blank=True)
    allowed_oauth_scopes = models.JSONField(default=list, blank=True)
    allowed_oauth_flows_user_pool_client = models.BooleanField(default=False)
    supported_identity_providers = models.JSONField(default=list, blank=True)
    prevent_user_existence_errors = models.CharField(max_length=16, blank=True)
    enable_token_revocation = models.BooleanField(null=True)
    enable_propagate_additional_user_context_data = models.BooleanField(null=True)
    remote_created_at = models.DateTimeField(null=True, blank=True)
    remote_modified_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True, help_text="DescribeUserPoolClient's record, ClientSecret removed.")
    content_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["pool", "name"]
        verbose_name = "app client"

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"


class CognitoGroup(models.Model):
    """A group of a pool."""

    pool = models.ForeignKey(UserPool, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=128)
    description = models.CharField(max_length=2048, blank=True)
    precedence = models.PositiveIntegerField(null=True, blank=True)
    role_arn = models.CharField(max_length=2048, blank=True)
    remote_created_at = models.DateTimeField(null=True, blank=True)
    remote_modified_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["pool", "precedence", "name"]
        # Apart from Django's own groups (the admin's permissions), which sit under Administration.
        verbose_name = "Cognito group"
        constraints = [models.UniqueConstraint(fields=["pool", "name"], name="directory_group_unique_per_pool")]

    def __str__(self) -> str:
        return self.name


class CognitoUser(models.Model):
    """A user of a pool: typed columns for what operators search, every attribute in `attributes`."""

    pool = models.ForeignKey(UserPool, on_delete=models.CASCADE, related_name="users")
    username = models.CharField(max_length=128)
    sub = models.CharField(max_length=64, blank=True)
    email = models.CharField(max_length=2048, blank=True)
    email_verified = models.BooleanField(default=False)
    phone_number = models.CharField(max_length=32, blank=True)
    phone_number_verified = models.BooleanField(default=False)
    name = models.CharField(max_length=2048, blank=True)
    status = models.CharField(max_length=32, choices=UserStatus.choices, default=UserStatus.UNKNOWN)
    enabled = models.BooleanField(default=True)
    attributes = models.JSONField(default=dict, blank=True)
    mfa_options = models.JSONField(default=list, blank=True)
    remote_created_at = models.DateTimeField(null=True, blank=True)
    remote_modified_at = models.DateTimeField(null=True, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    # Local bookkeeping a pull never touches: test users created here, and when a beat task deletes them.
    is_test_user = models.BooleanField(default=False)
    test_user_expires_at = models.DateTimeField(null=True, blank=True)
    groups = models.ManyToManyField(CognitoGroup, through="GroupMembership", related_name="users", blank=True)

    class Meta:
        ordering = ["pool", "username"]
        # Apart from Django's own users (the admin's logins), which sit under Administration.
        verbose_name = "Cognito user"
        permissions = [
            ("enable_cognitouser", "Can enable or disable users"),
            ("reset_password_cognitouser", "Can reset users' passwords"),
            ("confirm_cognitouser", "Can confirm users' sign-up"),
            ("verify_cognitouser", "Can mark users' e-mail or phone verified"),
            ("group_cognitouser", "Can add users to and remove users from groups"),
            ("delete_in_cognito_cognitouser", "Can delete users in Cognito"),
            ("resend_code_cognitouser", "Can resend codes and invitations"),
            ("export_cognitouser", "Can export users as CSV"),
            ("create_test_user_cognitouser", "Can create test users"),
            ("backup_cognitouser", "Can back up a pool's users and download the file"),
            ("restore_cognitouser", "Can restore users from a backup into a pool"),
        ]
        constraints = [models.UniqueConstraint(fields=["pool", "username"], name="directory_user_unique_per_pool")]
        # Every index here is paid for by each user a pull writes; each serves an admin
        # query at a million rows (benchmarks/admin_1m.py) and none repeats another. An exact
        # sub or phone number is found through `attributes` (PostgreSQL's GIN jsonb_path_ops
        # index of migration 0010, `selectors.attribute_equals`), not an index of its own.
        indexes = [
            # Status first, then the changelist's order: a status filter reads its page in
            # index order instead of sorting every match (also serves pool + status).
            models.Index(fields=["status", "pool", "username"], name="directory_user_status_list"),
            # LIKE 'prefix%' can use these on PostgreSQL whatever the collation (ignored on SQLite);
            # the pattern operator classes serve exact matches (e-mail =) as well.
            models.Index(fields=["email"], name="directory_user_email_prefix", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["username"], name="directory_user_username_prefix", opclasses=["varchar_pattern_ops"]),
            # Disabled users (few) in the changelist's order. The name-prefix search index,
            # UPPER(name) text_pattern_ops, is PostgreSQL-only: created by migration 0004.
            models.Index(fields=["pool", "username"], name="directory_user_disabled_list", condition=Q(enabled=False)),
            # The expiry sweep's test users (few): a normal user costs this index nothing.
            models.Index(
                fields=["test_user_expires_at"], name="directory_user_test_expiry", condition=Q(is_test_user=True)
            ),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def label(self) -> str:
        """How an operator knows the user: the username, unless it is an opaque UUID (pools that sign in
        by e-mail or phone make the `sub` the username), then the e-mail or the phone number."""
        if self.username == self.sub or OPAQUE_USERNAME.fullmatch(self.username):
            return self.email or self.phone_number or self.username
        return self.username


class UserSearchText(models.Model):
    """A user's attribute values as one text (`sub` left out, one value a line), which pg_trgm's GIN
    index serves for the attribute search's starts-with and contains (`directory.search_index`).

    Kept apart from the user row so that a pull's writes do not pay for the trigram index: on
    PostgreSQL a trigger on the user table writes this row in the same transaction as the user's,
    except in a pull's batches, which queue their users in `SearchBacklog` instead. It goes with
    its user (ON DELETE CASCADE, added by migration 0015). Unused on SQLite."""

    user = models.OneToOneField(
        CognitoUser, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    text = models.TextField()

    class Meta:
        db_table = "directory_usersearch"
        verbose_name = "user search text"

    def __str__(self) -> str:
        return f"search text of user {self.pk}"


class SearchBacklog(models.Model):
    """A pull's batch of users whose `UserSearchText` it left to be written after it
    (`search_index.catch_up`), by pool and usernames: one row a batch (a batch knows its users'
    names before its new rows have ids, and one row costs the write less than one a user). Until
    the catch-up the attribute search checks these users directly. No foreign key: a user removed
    meanwhile is simply not found again."""

    pool_id = models.BigIntegerField()
    usernames = models.JSONField(default=list)

    class Meta:
        verbose_name = "search backlog entry"
        verbose_name_plural = "search backlog"

    def __str__(self) -> str:
        return f"{len(self.usernames)} users of pool {self.pool_id} queued for the search"


class GroupMembership(models.Model):
    """A user's membership of a group."""

    group = models.ForeignKey(CognitoGroup, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(CognitoUser, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        verbose_name = "group membership"
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="directory_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.group_id}"


class SyncRun(models.Model):
    """One pull of one pool: progress while it runs, counts and the reason when it ends."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"

    pool = models.ForeignKey(UserPool, on_delete=models.CASCADE, related_name="sync_runs")
    correlation_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.CharField(max_length=16, default="worker")
    actor = models.CharField(max_length=150, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    phase = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    pages = models.PositiveIntegerField(default=0)
    seen = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="Counts per kind of object.")
    # The pool's first pull: one `imported` audit event per kind of object instead of one per object.
    baseline = models.BooleanField(default=False)
    # An unfinished run whose finished partitions this one took over instead of listing them again.
    resumed_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resumed_by", editable=False
    )
    # The highest user row id when the user listing began (carried by a resumed run): only
    # rows up to it can be removed as gone from Cognito.
    user_horizon = models.PositiveBigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "sync run"
        indexes = [
            # A pool's newest run, and its newest of a status (the directory home, the pool list).
            models.Index(fields=["pool", "status", "-started_at"], name="directory_syncrun_pool_status"),
            models.Index(fields=["pool", "-started_at"], name="directory_syncrun_pool_latest"),
        ]

    def __str__(self) -> str:
        return f"sync of {self.pool_id} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"

    @property
    def duration(self):
        if self.finished_at and self.started_at:
            return self.finished_at - self.started_at
        return None


class SyncPartition(models.Model):
    """One listing of a pull: users whose `sub` starts with `key` (a hex prefix; blank: the whole
    pool), or the members of the group named `key`. A work item that a thread of the pull's
    worker, or a helper task on another worker, claims, lists and completes on its own."""

    class Kind(models.TextChoices):
        USERS = "users"
        MEMBERSHIPS = "memberships"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="partitions")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    key = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Done by an earlier, unfinished run that this one resumes: not listed again.
    carried = models.BooleanField(default=False)
    # Who lists it now ("host:pid:token") and until when the claim holds without a renewal;
    # for a pending partition waiting to be retried, the time before which nobody takes it.
    owner = models.CharField(max_length=128, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    pages = models.PositiveIntegerField(default=0)
    seen = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # The stored user rows this listing saw (a zlib-compressed bitmap of row ids), kept until
    # the run's removal sweep has used it; empty for memberships (their sweep is per group).
    seen_ids = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["run", "kind", "key"]
        verbose_name = "sync partition"
        constraints = [
            models.UniqueConstraint(fields=["run", "kind", "key"], name="directory_syncpartition_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key or '(all)'} of run {self.run_id} ({self.status})"


class AuditEvent(models.Model):
    """One change, wherever it came from. Append-only: database triggers refuse UPDATE and DELETE.

    It holds no foreign keys on purpose: deleting a pool or an operator must not
    cascade into (or rewrite) the audit log, so objects are named by their remote ids.
    """

    class Source(models.TextChoices):
        ADMIN = "admin"
        SYNC = "sync"
        WORKER = "worker"
        COMMAND = "command"
        DISCOVERY = "discovery"

    class Outcome(models.TextChoices):
        OK = "ok"
        FAILED = "failed"
        CONFLICT = "conflict"
        PENDING = "pending"

    class Action(models.TextChoices):
        """Every audit action, named once. Not bound to the field as `choices`: the column stays
        free text, so an action added later needs no migration and old rows stay readable."""

        # An operator's change on its way through the outbox.
        REQUESTED = "requested"
        APPLIED = "applied"
        FAILED = "failed"
        CONFLICT = "conflict"
        RETRIED = "retried"
        DISCARDED = "discarded"
        # Calls made inside the request.
        RESEND_CODE = "resend_code"
        TEST_SEND = "test_send"
        # What a pull (or a test-user creation) found or made in Cognito.
        CREATED = "created"
        UPDATED = "updated"
        DELETED = "deleted"
        GROUP_ADDED = "group_added"
        GROUP_REMOVED = "group_removed"
        GROUP_ADD_FAILED = "group_add_failed"
        SYNC_FAILED = "sync_failed"
        # A pool's first pull: its baseline, one event per kind of object (counts, the run).
        IMPORTED = "imported"
        TEMPLATE_VERSION = "template_version"
        BACKUP_DOWNLOADED = "backup_downloaded"
        # Local bookkeeping.
        BULK_REQUESTED = "bulk_requested"
        BULK_FINISHED = "bulk_finished"
        SCHEDULE_CHANGED = "schedule_changed"
        EXPIRED = "expired"
        # Discovery: a pool first seen in Cognito, or seen again after it was marked gone.
        DISCOVERED = "discovered"
        REAPPEARED = "reappeared"

    # Set by `audit.build` (not auto_now_add, which would overwrite it at save): the hash covers it.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, blank=True, help_text="Operator username; blank for the system.")
    source = models.CharField(max_length=16, choices=Source.choices)
    action = models.CharField(max_length=32, db_index=True)
    object_type = models.CharField(max_length=32, db_index=True)
    object_id = models.CharField(max_length=256, db_index=True)
    object_repr = models.CharField(max_length=256, blank=True)
    pool_id = models.CharField(max_length=55, blank=True, db_index=True)
    changes = models.JSONField(default=dict, blank=True, help_text="field -> [before, after]")
    detail = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OK)
    correlation_id = models.CharField(max_length=64, blank=True, db_index=True)
    # The hash chain (directory/audit_chain.py): `hash` is SHA-256 over `prev_hash` (the previous
    # event's `hash`) and the digest of this row's content, so an edited, removed or inserted row
    # breaks the chain at that point.
    prev_hash = models.CharField(max_length=64, default="", editable=False)
    hash = models.CharField(max_length=64, default="", editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit event"

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_id}"

    @property
    def actor_display(self) -> str:
        return self.actor or "system"


class AuditChainHead(models.Model):
    """The audit chain's newest link (one row): the last event's id and hash, moved on by every
    append in the same transaction. A log that ends before it has lost its tail."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_event_id = models.BigIntegerField()
    last_hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = "audit chain head"

    def __str__(self) -> str:
        return f"audit chain head: event {self.last_event_id}"


class AuditVerification(models.Model):
    """One walk of the audit chain (`manage.py audit_verify`, or beat): its outcome and how far it got."""

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=16, help_text="command or beat")
    ok = models.BooleanField()
    events = models.BigIntegerField(default=0, help_text="Events checked.")
    last_event_id = models.BigIntegerField(null=True, blank=True, help_text="The newest event verified.")
    last_hash = models.CharField(max_length=64, blank=True)
    broken_event_id = models.BigIntegerField(null=True, blank=True, help_text="The first event whose link is broken.")
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "audit verification"

    def __str__(self) -> str:
        return f"audit verification {self.started_at:%Y-%m-%d %H:%M}: {'ok' if self.ok else 'BROKEN'}"


class BulkJob(models.Model):
    """A bulk action on a selection of users, expanded into pending changes by a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Operation(models.TextChoices):
        """What a bulk job does to each user (or, for test users, to each row). Unbound, like
        AuditEvent.Action."""

        ENABLE = "enable"
        DISABLE = "disable"
        RESET_PASSWORD = "reset_password"
        CONFIRM_SIGN_UP = "confirm_sign_up"
        MARK_EMAIL_VERIFIED = "mark_email_verified"
        DELETE = "delete"
        ADD_TO_GROUP = "add_to_group"
        REMOVE_FROM_GROUP = "remove_from_group"
        RESEND_CODE = "resend_code"
        CREATE_TEST_USERS = "create_test_users"
        # A pool's users, groups and memberships written to a file (BackupChunk rows), and such a file
        # restored into a pool.
        BACKUP_USERS = "backup_users"
        RESTORE_USERS = "restore_users"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    pool = models.ForeignKey(UserPool, on_delete=models.CASCADE, related_name="bulk_jobs")
    operation = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    user_ids = models.JSONField(default=list, blank=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    results = models.JSONField(default=dict, blank=True, help_text="Per-item outcomes (never a secret).")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "bulk job"

    def __str__(self) -> str:
        return f"{self.operation} on {self.total} user(s)"


class BackupChunk(models.Model):
    """A piece of a backup job's file, in order: what the export wrote (`output`), or the uploaded file
    a restore reads (`input`). In the database, so that web and workers on other hosts share it and it
    goes with its job; never a password or a secret (there is none to export)."""

    class Kind(models.TextChoices):
        INPUT = "input"
        OUTPUT = "output"

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="backup_chunks")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    seq = models.PositiveIntegerField()
    data = models.TextField()

    class Meta:
        ordering = ["job", "kind", "seq"]
        verbose_name = "backup chunk"
        constraints = [models.UniqueConstraint(fields=["job", "kind", "seq"], name="directory_backupchunk_unique")]

    def __str__(self) -> str:
        return f"{self.kind} chunk {self.seq} of job {self.job_id}"


class PendingChange(models.Model):
    """The outbox: one operator change on its way to Cognito. Never holds a secret."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPLYING = "applying"
        APPLIED = "applied"
        FAILED = "failed"
        CONFLICT = "conflict"
        DISCARDED = "discarded"

    ACTIVE = (Status.PENDING, Status.APPLYING)

    class Operation(models.TextChoices):
        """Every outbox operation, named once (the push's handlers are keyed by these). Not
        bound to the field as `choices`, for the same reason as AuditEvent.Action."""

        USER_UPDATE_ATTRIBUTES = "user.update_attributes"
        USER_SET_ENABLED = "user.set_enabled"
        USER_DELETE = "user.delete"
        USER_RESET_PASSWORD = "user.reset_password"
        USER_CONFIRM_SIGN_UP = "user.confirm_sign_up"
        USER_ADD_TO_GROUP = "user.add_to_group"
        USER_REMOVE_FROM_GROUP = "user.remove_from_group"
        USER_RESEND_CODE = "user.resend_code"
        # Made inside the request (the temporary password may rest nowhere); audited, never queued.
        USER_CREATE_TEST_USER = "user.create_test_user"
        GROUP_CREATE = "group.create"
        GROUP_UPDATE = "group.update"
        GROUP_DELETE = "group.delete"
        CLIENT_UPDATE = "client.update"
        POOL_UPDATE = "pool.update"
        POOL_UPDATE_MESSAGES = "pool.update_messages"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    pool = models.ForeignKey(UserPool, on_delete=models.CASCADE, related_name="pending_changes")
    object_type = models.CharField(max_length=32)
    object_key = models.CharField(max_length=256, help_text="Username, group name, client id or pool id.")
    operation = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True, help_text="Desired values; never a secret.")
    before = models.JSONField(default=dict, blank=True, help_text="Mirror values the change was based on.")
    fields = models.JSONField(default=list, blank=True, help_text="Mirror fields a pull must not overwrite.")
    base_version = models.CharField(max_length=64, blank=True, help_text="Content hash the change was based on.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    throttled = models.PositiveIntegerField(default=0, help_text="Throttling answers seen while applying.")
    last_error = models.TextField(blank=True)
    remote_values = models.JSONField(default=dict, blank=True, help_text="Cognito's values at a conflict.")
    actor = models.CharField(max_length=150, blank=True)
    correlation_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey(BulkJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "pending change"
        indexes = [
            models.Index(fields=["status", "created_at"], name="directory_change_status"),
            models.Index(fields=["pool", "object_type", "object_key"], name="directory_change_object"),
            # Changes applied per hour (the directory home's push throughput).
            models.Index(fields=["applied_at"], name="directory_change_applied",
                         condition=Q(applied_at__isnull=False)),
        ]
        permissions = [
            ("retry_pendingchange", "Can retry a failed or conflicting change"),
            ("discard_pendingchange", "Can discard a pending change"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.object_key} ({self.status})"


class TemplateVersion(models.Model):
    """One saved set of a pool's message templates: who, when, the whole set, and the push's outcome."""

    class Source(models.TextChoices):
        INITIAL = "initial", "First seen"
        OPERATOR = "operator", "Saved in the editor"
        RESTORE = "restore", "Restored"
        SYNC = "sync", "Changed in Cognito (pull)"

    pool = models.ForeignKey(UserPool, on_delete=models.CASCADE, related_name="template_versions")
    number = models.PositiveIntegerField(help_text="1, 2, 3 … per pool.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    templates = models.JSONField(default=dict, help_text="The message editor's fields, by Cognito's names.")
    content_hash = models.CharField(max_length=64)
    restored_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    change = models.ForeignKey(
        PendingChange, null=True, blank=True, on_delete=models.SET_NULL, related_name="template_versions"
    )

    class Meta:
        ordering = ["pool", "-number"]
        verbose_name = "template version"
        constraints = [models.UniqueConstraint(fields=["pool", "number"], name="directory_templateversion_unique")]

    def __str__(self) -> str:
        return f"{self.pool.name} templates v{self.number}"

    @property
    def outcome(self) -> str:
        if self.change_id is None:
            return "in Cognito" if self.source in (self.Source.SYNC, self.Source.INITIAL) else "not pushed"
        return self.change.status
