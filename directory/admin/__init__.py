"""The operator UI: ModelAdmins for the mirror, registered on the default admin site."""

from . import audit, clients, groups, pools, runs, users  # noqa: F401 - registers the ModelAdmins

from . import bulkjobs  # noqa: F401 isort: skip - registers BulkJobAdmin
from . import changes  # noqa: F401 isort: skip - registers PendingChangeAdmin
from . import accounts, checks, schedules  # noqa: F401 isort: skip - the action check; guarded third-party admins
