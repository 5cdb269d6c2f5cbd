"""Keep a local copy of the CRM objects the planner matches against.

Incremental on ``SystemModstamp``: each refresh asks only for rows changed since the newest
one already held, through ``queryAll`` so that deleted rows come back (with IsDeleted) and
leave the mirror. The watermark is read from the mirror file itself, so there is no
separate state to lose or to disagree with the data. A first pull goes through Bulk API
2.0 (a handful of calls for any size); small incremental pulls use REST.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pandas as pd

from activity_sync.crm import OBJECTS, normalise
from activity_sync.salesforce import SalesforceClient

log = logging.getLogger(__name__)

# Salesforce object -> the contract columns the planner reads; crm.OBJECTS is the source.
MIRRORED: dict[str, tuple[str, ...]] = {sobject: columns for sobject, columns in OBJECTS.values()}
# User rows are deactivated, never deleted: the object has no IsDeleted field.
NOT_DELETABLE = {"User"}


def _typed(frame: pd.DataFrame, object_name: str, columns: list[str]) -> pd.DataFrame:
    """Rows typed as the CRM reader types them, whatever the source.

    Bulk CSV writes a null as an empty cell and REST as JSON null: both become null. A
    query that found nothing has no columns at all, hence the reindex.
    """
    frame = frame.reindex(columns=columns)
    return normalise(frame.where(frame.ne("")), object_name, columns)


def _soql_datetime(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").floor("s").strftime("%Y-%m-%dT%H:%M:%SZ")


def refresh_object(client: SalesforceClient, object_name: str, folder: Any) -> dict[str, Any]:
    """Bring ``folder/<object>.parquet`` up to date; returns what changed."""
    target = folder / f"{object_name}.parquet"
    deletable = object_name not in NOT_DELETABLE
    columns = [*MIRRORED[object_name], "SystemModstamp", *(["IsDeleted"] if deletable else [])]
    soql = f"SELECT {', '.join(columns)} FROM {object_name}"
    if target.exists():
        with target.open("rb") as fh:
            current = pd.read_parquet(fh)
        watermark = current["SystemModstamp"].max()
        # ">=" and a de-duplication below: rows sharing the watermark second are not lost.
        if pd.notna(watermark):
            soql += f" WHERE SystemModstamp >= {_soql_datetime(watermark)}"
        changed = client.query(soql, include_deleted=deletable)
        mode = "incremental"
    else:
        current = pd.DataFrame(columns=[c for c in columns if c != "IsDeleted"])
        changed = client.bulk_query(soql, include_deleted=deletable)
        mode = "full"
    changed = _typed(changed, object_name, columns)
    deleted = changed["Id"][changed["IsDeleted"]] if deletable else pd.Series(dtype=object)
    live = changed[~changed["IsDeleted"]].drop(columns="IsDeleted") if deletable else changed
    merged = pd.concat(
        [current[~current["Id"].isin(changed["Id"])], live] if not current.empty else [live],
        ignore_index=True,
    )
    merged = _typed(merged, object_name, [c for c in columns if c != "IsDeleted"])
    merged = merged.sort_values("Id", kind="stable").reset_index(drop=True)
    folder.mkdir(parents=True, exist_ok=True)
    # A unique staging name: concurrent backfill runs may refresh the same mirror.
    staging = folder / f".{object_name}.{uuid.uuid4().hex}.tmp"
    with staging.open("wb") as fh:
        merged.to_parquet(fh, index=False)
    staging.rename(target)
    stats = {"mode": mode, "fetched": len(changed), "deleted": len(deleted), "rows": len(merged)}
    log.info("CRM mirror %s: %s", object_name, stats)
    return stats


def refresh_crm(client: SalesforceClient, folder: Any) -> dict[str, dict[str, Any]]:
    """Refresh every contract object (:func:`refresh_object`); stats by Salesforce object."""
    return {name: refresh_object(client, name, folder) for name in MIRRORED}
