"""Where each step reads and writes: one partition per org and hour (DESIGN.md data flow).

Every step overwrites its partition whole, so a retry, re-run or backfill of an hour is
repeatable. Paths are built on whatever root is given (a ``pathlib.Path`` in tests, an
``ObjectStoragePath`` for ``file://``, ``s3://`` or ``gs://`` in Airflow).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

AREAS = ("events", "plan", "loaded")


def partition(root: Any, area: str, org_id: str, start: datetime) -> Any:
    if area not in AREAS:
        raise ValueError(f"unknown lake area {area!r}; expected one of {AREAS}")
    return root / area / f"org_id={org_id}" / f"date={start:%Y-%m-%d}" / f"hour={start:%H}"


def landing_hour(landing_root: Any, org_id: str, hour: datetime) -> Any:
    """Raw JSON Lines as they arrived, one folder per arrival hour."""
    return landing_root / f"org_id={org_id}" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"


def crm_folder(root: Any, org_id: str) -> Any:
    return root / "crm" / f"org_id={org_id}"


def audit_folder(root: Any, org_id: str, day: str) -> Any:
    return root / "audit" / f"org_id={org_id}" / f"date={day}"
