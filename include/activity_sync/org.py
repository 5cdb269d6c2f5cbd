"""What the Salesforce org allows right now (R1, R12), and whether we may spend API calls.

Detected every run, never cached: an admin can switch Shared Activities off or drop the
external-ID field between two hours, and the next hour must notice.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from activity_sync.errors import ActivitySyncError
from activity_sync.salesforce import SalesforceClient

log = logging.getLogger(__name__)


class OrgSetupError(ActivitySyncError, RuntimeError):
    """The org lacks something the product needs; the message says how to fix it."""


@dataclass(frozen=True)
class OrgCapabilities:
    """What one run found: Shared Activities on or off, and the key field's exact name."""

    shared_activities: bool
    external_id_field: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_capabilities(client: SalesforceClient, external_id_field: str) -> OrgCapabilities:
    """Read Task's describe: TaskWhoIds exists only while Shared Activities is on.

    The describe is the cheap, permission-light signal (one call); the authoritative
    ActivitiesSettings needs Modify All Data, which a sync user should not hold.

    Args:
        client: the org's Salesforce.
        external_id_field: the Task field loads upsert on, in any letter case.

    Returns:
        :class:`OrgCapabilities` with the field's name as Salesforce spells it.

    Raises:
        OrgSetupError: the field is missing or not marked External ID; the message says
            how to create it.
    """
    fields = {f["name"].lower(): f for f in client.describe("Task")["fields"]}
    shared = "taskwhoids" in fields
    ext = fields.get(external_id_field.lower())
    if ext is None or not ext.get("externalId"):
        problem = "does not exist" if ext is None else "is not marked External ID"
        raise OrgSetupError(
            f"Task field {external_id_field} {problem}. Create it in Salesforce: Setup > Object "
            "Manager > Activity > Fields & Relationships > New > Text (length 80), check "
            "'Unique' and 'External ID', name it "
            f"{external_id_field.removesuffix('__c')}, and give the sync user edit access. "
            "Loads are upserts on this field; without it a re-run would duplicate Tasks."
        )
    if not shared:
        log.warning("Salesforce org has Shared Activities off: this run plans individual Tasks")
    return OrgCapabilities(shared_activities=shared, external_id_field=ext["name"])


@dataclass(frozen=True)
class ApiBudget:
    """Today's API requests against the share of them this product may spend."""

    used: int
    limit: int
    share: float

    @property
    def allowance(self) -> int:
        return int(self.limit * self.share)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.allowance

    def describe(self) -> str:
        return (
            f"{self.used:,} of {self.limit:,} daily API requests used; "
            f"this product may use {self.share:.0%} ({self.allowance:,})"
        )


def api_budget(client: SalesforceClient, share: float) -> ApiBudget:
    """The org's DailyApiRequests (one ``limits`` call) with ``share`` in (0, 1] ours."""
    limit = client.limits()["DailyApiRequests"]
    return ApiBudget(
        used=int(limit["Max"]) - int(limit["Remaining"]), limit=int(limit["Max"]), share=share
    )
