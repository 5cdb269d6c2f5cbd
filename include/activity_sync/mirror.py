"""Keep a local copy of the CRM objects the planner matches against, with its history.

Each object is a Delta Lake table (``<crm folder>/<Object>/``, written with the
``deltalake`` package): every refresh that changed something commits a new version, and
any earlier version can be read back. That is what lets a re-run of an hour plan against
the CRM as it stood when the hour first ran (:func:`versions_for_hour`, the pin kept by
``plan_basis``), while the latest version is what a first run or a re-plan uses.

Incremental on ``SystemModstamp``: each refresh asks only for rows changed since the newest
one already held, through ``queryAll`` so that deleted rows come back (with IsDeleted) and
leave the mirror; the changes are merged into the table (one commit, only the touched
files rewritten). The watermark is read from the table itself, so there is no separate
state to lose or to disagree with the data. A first pull goes through Bulk API 2.0 (a
handful of calls for any size) and overwrites the table as a new version; small
incremental pulls use REST.

``queryAll`` sees a deleted row only while it is in the Recycle Bin, which Salesforce
empties after 15 days. A mirror last refreshed longer ago than that may have missed
deletions for good, so it is pulled again in full. When it was refreshed is kept in each
commit's metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from activity_sync import lake
from activity_sync.crm import OBJECTS, Crm, normalise, read_crm
from activity_sync.errors import ActivitySyncError
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
# Commit metadata key: when the refresh that wrote a version ran (UTC, ISO).
REFRESHED_AT = "activity_sync.refreshed_at"
# Concurrent runs (a backfill beside the hourly run) may commit to one table at once;
# Delta refuses the later commit, which then reads the table again and retries.
COMMIT_ATTEMPTS = 4


class MirrorError(ActivitySyncError, RuntimeError):
    """The mirror's history cannot give what was asked (no table, an unknown version)."""


def table_path(folder: Any, object_name: str) -> Any:
    """The Delta table of one object inside the org's CRM folder."""
    return folder / object_name


def _typed(frame: pd.DataFrame, object_name: str, columns: list[str]) -> pd.DataFrame:
    """Rows typed as the CRM reader types them, whatever the source.

    Bulk CSV writes a null as an empty cell and REST as JSON null: both become null. A
    query that found nothing has no columns at all, hence the reindex.
    """
    frame = frame.reindex(columns=columns)
    return normalise(frame.where(frame.ne("")), object_name, columns)


def _soql_datetime(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").floor("s").strftime("%Y-%m-%dT%H:%M:%SZ")


def _open(uri: str, version: int | None = None) -> DeltaTable | None:
    """The table at ``uri`` (at ``version``, default the latest), None if there is none."""
    try:
        return DeltaTable(uri, version=version)
    except TableNotFoundError:
        return None


def _histories(folder: Any) -> dict[str, list[tuple[int, pd.Timestamp]]]:
    """Every object's versions with their refresh times (:func:`_refreshed_times`); empty
    for a CRM folder of snapshot files, which has no history (:func:`read_mirror`).

    Raises:
        MirrorError: some objects have a table and others none (a refresh that failed
            half way: the next one completes it).
    """
    out = {}
    for name in MIRRORED:
        with lake.delta_location(table_path(folder, name)) as uri:
            table = _open(uri)
            if table is not None:
                out[name] = _refreshed_times(table)
    missing = sorted(set(MIRRORED) - set(out))
    if out and missing:
        raise MirrorError(f"the CRM mirror in {folder} has no table for {missing}: refresh it")
    return out


def _refreshed_times(table: DeltaTable) -> list[tuple[int, pd.Timestamp]]:
    """``(version, refreshed at)`` of every version held, oldest first.

    The refresh's own clock (``now``) where the commit recorded it, else the commit's time.
    """
    out = []
    for entry in table.history():
        stamp = entry.get(REFRESHED_AT)
        when = pd.Timestamp(stamp) if stamp else pd.Timestamp(entry["timestamp"], unit="ms")
        out.append((int(entry["version"]), when.tz_localize("UTC") if when.tz is None else when))
    return sorted(out)


def _legacy(folder: Any, object_name: str) -> tuple[pd.DataFrame, pd.Timestamp] | None:
    """A mirror file of the version before Delta (``<Object>.parquet``): its rows and
    refresh time, so the first Delta refresh continues from it instead of starting over."""
    path = folder / f"{object_name}.parquet"
    if not path.exists():
        return None
    with path.open("rb") as fh:
        table = pq.read_table(fh)
    metadata = table.schema.metadata or {}
    current = table.to_pandas()
    stamp = metadata.get(REFRESHED_AT.encode())
    refreshed = (
        pd.Timestamp(stamp.decode())
        if stamp
        else pd.to_datetime(current["SystemModstamp"], utc=True).max()
    )
    return current, refreshed


def refresh_object(
    client: SalesforceClient, object_name: str, folder: Any, now: datetime | None = None
) -> dict[str, Any]:
    """Bring the object's table in ``folder`` up to date; returns what changed.

    Args:
        client: the org's Salesforce.
        object_name: one of :data:`MIRRORED`.
        folder: the org's CRM folder (a Path or an ObjectStoragePath).
        now: the time of this refresh (default: the clock); recorded in the commit.

    Returns:
        ``mode`` (``full`` or ``incremental``), ``reason`` for a full pull, rows
        ``fetched``, ``deleted``, held (``rows``) and the table ``version`` now current.
    """
    now = now or datetime.now(UTC)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            with lake.delta_location(table_path(folder, object_name), write=True) as uri:
                return _refresh_once(client, object_name, folder, uri, now)
        except CommitFailedError as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.warning("CRM mirror %s: concurrent commit, refreshing again: %s", object_name, exc)
    raise AssertionError("unreachable")


def _refresh_once(
    client: SalesforceClient, object_name: str, folder: Any, uri: str, now: datetime
) -> dict[str, Any]:
    deletable = object_name not in NOT_DELETABLE
    columns = [*MIRRORED[object_name], "SystemModstamp", *(["IsDeleted"] if deletable else [])]
    held = [c for c in columns if c != "IsDeleted"]
    soql = f"SELECT {', '.join(columns)} FROM {object_name}"
    table = _open(uri)
    current = pd.DataFrame(columns=held)
    refreshed = pd.NaT
    if table is not None:
        current = table.to_pandas()
        refreshed = _refreshed_times(table)[-1][1]
    elif (legacy := _legacy(folder, object_name)) is not None:
        current, refreshed = legacy
    reason = "no mirror yet" if table is None and current.empty else ""
    watermark = pd.to_datetime(current["SystemModstamp"], utc=True).max()
    if not reason and deletable and pd.notna(refreshed) and now - refreshed > FULL_PULL_AFTER:
        reason = (
            f"last refreshed {refreshed.isoformat()}, more than {FULL_PULL_AFTER.days} "
            f"days ago: deletions may have left the Recycle Bin ({RECYCLE_BIN_DAYS} days)"
        )
    elif not reason and pd.notna(watermark):
        # ">=" and a merge on Id: rows sharing the watermark second are not lost.
        soql += f" WHERE SystemModstamp >= {_soql_datetime(watermark)}"
    if reason:
        changed = client.bulk_query(soql, include_deleted=deletable)
    else:
        changed = client.query(soql, include_deleted=deletable)
    changed = _typed(changed, object_name, columns)
    if not deletable:
        changed["IsDeleted"] = False
    deleted = int(changed["IsDeleted"].sum())
    commit = CommitProperties(custom_metadata={REFRESHED_AT: now.isoformat()})
    if reason or table is None:
        live = changed if reason else pd.concat([current, changed], ignore_index=True)
        live = live.drop_duplicates("Id", keep="last")
        live = _typed(live[~live["IsDeleted"].astype("boolean").fillna(False)], object_name, held)
        live = live.sort_values("Id", kind="stable").reset_index(drop=True)
        write_deltalake(uri, _arrow(live), mode="overwrite", commit_properties=commit)
    elif not changed.empty:
        updates = {c: f"s.{c}" for c in held}
        (
            table.merge(
                _arrow(changed.drop_duplicates("Id", keep="last")),
                predicate="t.Id = s.Id",
                source_alias="s",
                target_alias="t",
                commit_properties=commit,
            )
            .when_matched_delete(predicate="s.IsDeleted")
            .when_matched_update(updates=updates)
            .when_not_matched_insert(updates=updates, predicate="NOT s.IsDeleted")
            .execute()
        )
    after = DeltaTable(uri)
    stats = {
        "mode": "full" if reason else "incremental",
        "fetched": len(changed),
        "deleted": deleted,
        "rows": len(after.to_pandas(columns=["Id"])),
        "version": after.version(),
    }
    if reason:
        stats["reason"] = reason
    log.info("CRM mirror %s: %s", object_name, stats)
    return stats


def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)


def refresh_crm(
    client: SalesforceClient, folder: Any, now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Refresh every contract object (:func:`refresh_object`); stats by Salesforce object."""
    now = now or datetime.now(UTC)
    return {name: refresh_object(client, name, folder, now) for name in MIRRORED}


def current_versions(folder: Any) -> dict[str, int]:
    """The latest version of every object's table, by Salesforce object (none for a
    snapshot of files)."""
    return {name: times[-1][0] for name, times in _histories(folder).items()}


def versions_for_hour(folder: Any, end: datetime) -> dict[str, int]:
    """The versions an hour that never ran plans against: the CRM as it stood at its end.

    Per object, the first version refreshed at or after ``end`` (the nearest to the CRM at
    the end of the hour: a refresh pulls every change up to its own time); when every
    version is older (the hour has just ended), the latest. A history that starts after
    ``end`` gives its oldest version: nothing older is held.
    """
    out = {}
    when = pd.Timestamp(end).tz_convert("UTC")
    for name, times in _histories(folder).items():
        after = [version for version, at in times if at >= when]
        out[name] = after[0] if after else times[-1][0]
    return out


def read_mirror(folder: Any, versions: Mapping[str, int] | None = None) -> Crm:
    """The CRM as the mirror held it at ``versions`` (by Salesforce object; default latest).

    A folder without Delta tables is read as a snapshot of files (``crm.read_crm``): an
    org whose CRM is exported by hand, or tests; it has no versions to pin.

    Raises:
        MirrorError: a table or version is not there (vacuumed away, or never written).
        CrmError: a column is missing or holds a value of the wrong kind.
    """
    if not _histories(folder):
        # No Delta tables: a snapshot exported by hand (one file per object), no history.
        with lake.local_copy(folder) as snapshot:
            return read_crm(snapshot)
    frames = {}
    for field, (sobject, _) in OBJECTS.items():
        version = (versions or {}).get(sobject)
        with lake.delta_location(table_path(folder, sobject)) as uri:
            if version is None:
                table = _open(uri)
                if table is None:
                    raise MirrorError(
                        f"the CRM mirror has no {sobject} table in {folder}: refresh it"
                    )
                frames[field] = table.to_pandas()
                continue
            # A version older than the history kept has lost its log entry (the table
            # is "not found" at it) or its files (vacuumed): deltalake's own errors.
            try:
                frames[field] = DeltaTable(uri, version=version).to_pandas()
            except (OSError, ValueError, TableNotFoundError) as exc:
                raise MirrorError(
                    f"the CRM mirror's {sobject} table has no version {version} any more "
                    "(older than the history the lake keeps, ACTIVITY_SYNC_HISTORY_DAYS): "
                    "run the hour with replan: true to plan it against today's CRM; "
                    f"{exc}"
                ) from exc
    return Crm.from_frames(**frames)
