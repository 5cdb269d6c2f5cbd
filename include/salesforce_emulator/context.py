"""The context a write runs in: who writes, when, and what the org looks like at that moment.

A leaf module: ``dml`` and ``activity_relations`` both take a ``WriteContext`` and neither
needs the other's module to name it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from salesforce_emulator.objects import OrgShape
    from salesforce_emulator.store import Store


# The user a request runs as when its session is not the integration user's (a session
# opened with the test control ``POST /__emulator/users/{id}/session``): Salesforce stamps
# each write with the user whose session made it, as CreatedById / LastModifiedById
# ("ID of the User who last modified this record",
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/system_fields.htm).
ACTING_USER: ContextVar[str | None] = ContextVar("acting_user", default=None)


@dataclass(frozen=True)
class WriteContext:
    """One write's view of the org, fixed for the whole batch (one ``now`` for every row).

    ``api_version`` is the version the client called (None: the newest): some values are
    only accepted from a version on.
    """

    store: Store
    shape: OrgShape
    user_id: str
    now: str
    api_version: float | None = None
