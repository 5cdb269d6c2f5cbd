"""What an hour is planned against, pinned so that a re-run reproduces the plan.

An hour's plan depends on the CRM mirror, the org's settings and whether Salesforce has
Shared Activities on (R12). The first run of an hour records all three in the lake
(``sync/…/plan_basis.json``): the mirror as table versions (``mirror.py``), the settings
and the detected mode as values. A later run of the same hour (a retry, a Clear, a
backfill) plans against that record, so the same events give the same Tasks and keys and
nothing churns. A re-plan (``replan``) plans against today's mirror, settings and mode
instead, and replaces the record: Salesforce then holds the re-planned hour, and that is
what a later plain re-run must reproduce.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from activity_sync import lake, mirror
from activity_sync.settings import Settings, parse_settings

BASIS_FILE = "plan_basis.json"


class BasisSource(StrEnum):
    """Why an hour was planned against its basis (``summary.json``'s ``basis``)."""

    FIRST_RUN = "first_run"  # nothing pinned yet: the mirror as it stood at the hour's end
    PINNED = "pinned"  # a re-run: the basis its first run recorded
    REPLAN = "replan"  # re-planned: today's mirror, settings and mode


@dataclass(frozen=True)
class PlanBasis:
    """One hour's planning inputs, as recorded.

    Attributes:
        crm_versions: the mirror's table version per Salesforce object.
        settings: the org's settings (``Settings.to_dict``).
        salesforce_shared_activities: what detection said (R1, R12).
        recorded_at: when this basis was recorded (UTC, ISO).
        source: the :class:`BasisSource` it was recorded under.
    """

    crm_versions: dict[str, int]
    settings: dict[str, Any]
    salesforce_shared_activities: bool
    recorded_at: str
    source: str

    def org_settings(self) -> Settings:
        return parse_settings(self.settings)


def basis_path(root: Any, org_id: str, start: datetime) -> Any:
    return lake.partition(root, lake.SYNC, org_id, start) / BASIS_FILE


def read_basis(root: Any, org_id: str, start: datetime) -> PlanBasis | None:
    """The basis pinned for the hour, or None if it never ran (or the record is unreadable,
    which is then treated like an hour that never ran)."""
    path = basis_path(root, org_id, start)
    try:
        with path.open("r", encoding="utf-8") as reader:
            return PlanBasis(**json.load(reader))
    except (OSError, ValueError, TypeError):
        return None


def write_basis(root: Any, org_id: str, start: datetime, basis: PlanBasis) -> None:
    """Record the basis (staged, then renamed: a reader never sees half a file)."""
    path = basis_path(root, org_id, start)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{BASIS_FILE}.{uuid.uuid4().hex}.tmp"
    with staging.open("w", encoding="utf-8") as writer:
        json.dump(asdict(basis), writer, indent=2, sort_keys=True)
    staging.rename(path)


def choose_basis(
    root: Any,
    org_id: str,
    start: datetime,
    end: datetime,
    *,
    settings: Settings,
    salesforce_shared_activities: bool,
    replan: bool,
    now: datetime | None = None,
) -> tuple[PlanBasis, bool]:
    """The basis to plan the hour against, and whether it must be recorded now.

    Args:
        root, org_id, start, end: the hour.
        settings, salesforce_shared_activities: today's (used by a first run and a re-plan).
        replan: plan against today's mirror, settings and mode, whatever is pinned.
        now: the clock, for ``recorded_at``.

    Returns:
        ``(basis, new)``: ``new`` when nothing was pinned or a re-plan replaces it; the
        caller records it once the plan is written.
    """
    now = now or datetime.now(UTC)
    folder = lake.crm_folder(root, org_id)
    pinned = None if replan else read_basis(root, org_id, start)
    if pinned is not None:
        return PlanBasis(**{**asdict(pinned), "source": BasisSource.PINNED}), False
    versions = mirror.current_versions(folder) if replan else mirror.versions_for_hour(folder, end)
    basis = PlanBasis(
        crm_versions=versions,
        settings=settings.to_dict(),
        salesforce_shared_activities=salesforce_shared_activities,
        recorded_at=now.isoformat(),
        source=BasisSource.REPLAN if replan else BasisSource.FIRST_RUN,
    )
    return basis, True
