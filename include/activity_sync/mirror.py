"""Keep a local copy of the CRM objects the planner matches against.

Incremental on ``SystemModstamp``: each refresh asks only for rows changed since the newest
one already held, through ``queryAll`` so that deleted rows come back (with IsDeleted) and
leave the mirror. The watermark is read from the mirror file itself, so there is no
separate state to lose or to disagree with the data. A first pull goes through Bulk API
2.0 (a handful of calls for any size); small incremental pulls use REST.

``queryAll`` sees a deleted row only while it is in the Recycle Bin, which Salesforce
empties after 15 days. A mirror last refreshed longer ago than that may have missed
deletions for good, so it is pulled again in full. When it was refreshed is kept in the
file's own metadata.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from activity_sync.crm import OBJECTS, normalise
from activity_sync.salesforce import SalesforceClient

log = logging.getLogger(__name__)

# Salesforce object -> the contract columns the planner reads; crm.OBJECTS is the source.
MIRRORED: dict[str, tuple[str, ...]] = {sobject: columns for sobject, columns in OBJECTS.values()}
# User rows are deactivated, never deleted: the object has no IsDeleted field.
NOT_DELETABLE = {"User"}
# Deleted records stay in the Recycle Bin, visible to queryAll, for 15 days
# (https://help.salesforce.com/s/articleView?id=sf.home_delete.htm); a day's margin for
# the bin being emptied early and for refreshes that straddle the limit.
RECYCLE_BIN_DAYS = 15
FULL_PULL_AFTER = timedelta(days=RECYCLE_BIN_DAYS - 1)
# Parquet metadata key: when the mirror file was last brought up to date (UTC, ISO).
REFRESHED_AT = b"activity_sync.refreshed_at"


def _typed(frame: pd.DataFrame, object_name: str, columns: list[str]) -> pd.DataFrame:
    """Rows typed as the CRM reader types them, whatever the source.

    Bulk CSV writes a null as an empty cell and REST as JSON null: both become null. A
    query that found nothing has no columns at all, hence the reindex.
    """
    frame = frame.reindex(columns=columns)
    return normalise(frame.where(frame.ne("")), object_name, columns)


def _soql_datetime(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").floor("s").strftime("%Y-%m-%dT%H:%M:%SZ")


def _last_refreshed(current: pd.DataFrame, metadata: dict[bytes, bytes] | None) -> pd.Timestamp:
    """When the mirror was last refreshed: from its metadata, else (a file written before
    this was recorded) the newest SystemModstamp it holds, which can only be earlier."""
    if metadata and REFRESHED_AT in metadata:
        return pd.Timestamp(metadata[REFRESHED_AT].decode())
    return pd.to_datetime(current["SystemModstamp"], utc=True).max()


def refresh_object(
    client: SalesforceClient, object_name: str, folder: Any, now: datetime | None = None
) -> dict[str, Any]:
    """Bring ``folder/<object>.parquet`` up to date; returns what changed.

    Args:
        client: the org's Salesforce.
        object_name: one of :data:`MIRRORED`.
        folder: the org's CRM folder (a Path or an ObjectStoragePath).
        now: the time of this refresh (default: the clock); it is recorded in the file.

    Returns:
        ``mode`` (``full`` or ``incremental``), ``reason`` for a full pull, rows
        ``fetched``, ``deleted`` and held (``rows``).
    """
    now = now or datetime.now(UTC)
    target = folder / f"{object_name}.parquet"
    deletable = object_name not in NOT_DELETABLE
    columns = [*MIRRORED[object_name], "SystemModstamp", *(["IsDeleted"] if deletable else [])]
    soql = f"SELECT {', '.join(columns)} FROM {object_name}"
    current = pd.DataFrame(columns=[c for c in columns if c != "IsDeleted"])
    reason = "no mirror yet"
    if target.exists():
        with target.open("rb") as fh:
            table = pq.read_table(fh)
        current = table.to_pandas()
        refreshed = _last_refreshed(current, table.schema.metadata)
        watermark = current["SystemModstamp"].max()
        if deletable and pd.notna(refreshed) and pd.Timestamp(now) - refreshed > FULL_PULL_AFTER:
            reason = (
                f"last refreshed {refreshed.isoformat()}, more than {FULL_PULL_AFTER.days} "
                f"days ago: deletions may have left the Recycle Bin ({RECYCLE_BIN_DAYS} days)"
            )
            current = current.iloc[:0]
        elif pd.notna(watermark):
            # ">=" and a de-duplication below: rows sharing the watermark second are not lost.
            soql += f" WHERE SystemModstamp >= {_soql_datetime(watermark)}"
            reason = ""
        else:
            reason = ""
    if reason:
        changed = client.bulk_query(soql, include_deleted=deletable)
        mode = "full"
    else:
        changed = client.query(soql, include_deleted=deletable)
        mode = "incremental"
    changed = _typed(changed, object_name, columns)
    deleted = changed["Id"][changed["IsDeleted"]] if deletable else pd.Series(dtype=object)
    live = changed[~changed["IsDeleted"]].drop(columns="IsDeleted") if deletable else changed
    merged = pd.concat(
        [current[~current["Id"].isin(changed["Id"])], live] if not current.empty else [live],
        ignore_index=True,
    )
    merged = _typed(merged, object_name, [c for c in columns if c != "IsDeleted"])
    merged = merged.sort_values("Id", kind="stable").reset_index(drop=True)
    _write(merged, folder, object_name, now)
    stats = {"mode": mode, "fetched": len(changed), "deleted": len(deleted), "rows": len(merged)}
    if mode == "full":
        stats["reason"] = reason
    log.info("CRM mirror %s: %s", object_name, stats)
    return stats


def _write(merged: pd.DataFrame, folder: Any, object_name: str, now: datetime) -> None:
    """Replace the mirror file, stamped with ``now``; staged under a unique name and
    renamed, since concurrent backfill runs may refresh the same mirror."""
    table = pa.Table.from_pandas(merged, preserve_index=False)
    stamped = {**(table.schema.metadata or {}), REFRESHED_AT: now.isoformat().encode()}
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{object_name}.{uuid.uuid4().hex}.tmp"
    with staging.open("wb") as fh:
        pq.write_table(table.replace_schema_metadata(stamped), fh)
    staging.rename(folder / f"{object_name}.parquet")


def refresh_crm(
    client: SalesforceClient, folder: Any, now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Refresh every contract object (:func:`refresh_object`); stats by Salesforce object."""
    now = now or datetime.now(UTC)
    return {name: refresh_object(client, name, folder, now) for name in MIRRORED}
