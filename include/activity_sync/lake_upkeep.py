"""Upkeep of one org's Delta tables in the lake: the CRM mirror and the ledger.

Every hour adds a version to each: a mirror table is rewritten by its refresh, the ledger
gains a file per load. Left alone, a month is hundreds of small ledger files (slower
lookups) and a copy of every CRM object per hour (a large org's Contacts many times
over). Once a day (the audit of the org's day calls :func:`tidy`):

- the ledger's small files are compacted (``optimize.compact``);
- files that went out of use longer ago than the history are deleted (``vacuum``);
- a checkpoint is written, and log entries older than the history dropped (Delta's
  ``logRetentionDuration``, set to the history).

The history is what re-runs replay: an hour re-run within it plans against the mirror as
the hour first saw it; an older one finds its version gone, and ``replan: true`` plans it
against today's CRM instead (mirror.MirrorError says so). Default 30 days, or
``ACTIVITY_SYNC_HISTORY_DAYS``.

A lake on a store ``deltalake`` cannot reach itself (an fsspec-only protocol, whose
tables are staged in a temporary copy) is left as it is: deletions there would not
reach the store.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from activity_sync import lake
from activity_sync.errors import ActivitySyncError
from activity_sync.mirror import MIRRORED, table_path

log = logging.getLogger(__name__)

HISTORY_ENV = "ACTIVITY_SYNC_HISTORY_DAYS"
DEFAULT_HISTORY = timedelta(days=30)
LOG_RETENTION = "delta.logRetentionDuration"


class HistorySettingError(ActivitySyncError, ValueError):
    """``ACTIVITY_SYNC_HISTORY_DAYS`` is not a whole number of days of at least 1."""


def history() -> timedelta:
    """The history to keep: ``ACTIVITY_SYNC_HISTORY_DAYS`` days, default 30."""
    raw = os.environ.get(HISTORY_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_HISTORY
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise HistorySettingError(f"{HISTORY_ENV}={raw!r}: give a whole number of days, 1 or more")
    return timedelta(days=days)


def _tidy_table(path: Any, keep: timedelta, compact: bool) -> dict[str, int] | None:
    with lake.delta_location(path, write=True) as uri:
        try:
            table = DeltaTable(uri)
        except TableNotFoundError:
            return None
        compacted = table.optimize.compact() if compact else {}
        # Vacuum by the log's remove entries (when each file went out of use), so it
        # runs before anything can clean the log.
        table.vacuum(
            retention_hours=int(keep.total_seconds() // 3600),
            dry_run=False,
            enforce_retention_duration=False,
        )
        retention = f"interval {int(keep.total_seconds())} seconds"
        if table.metadata().configuration.get(LOG_RETENTION) != retention:
            table.alter.set_table_properties({LOG_RETENTION: retention})
        table.create_checkpoint()
        table.cleanup_metadata()
        version = table.version()
    return {
        "files_compacted": int(compacted.get("numFilesRemoved", 0)),
        "version": version,
    }


def tidy(root: Any, org_id: str, keep: timedelta | None = None) -> dict[str, Any]:
    """Compact, checkpoint and vacuum one org's ledger and mirror tables.

    Args:
        root: the lake root.
        org_id: the org.
        keep: the history to keep (default :func:`history`).

    Returns:
        Per table (``ledger``, and each mirrored object's name): the files compacted and
        the version after the upkeep; ``skipped`` with the reason when the lake's store is not one ``deltalake``
        reaches itself.
    """
    keep = history() if keep is None else keep
    folder = lake.ledger_folder(root, org_id)
    if not lake.is_local(folder) and lake.protocol(folder) not in lake.DELTA_NATIVE:
        return {
            "skipped": f"the lake's store ({lake.protocol(folder)}) is not one deltalake reaches"
        }
    tables = {"ledger": (folder, True)} | {
        name: (table_path(lake.crm_folder(root, org_id), name), False) for name in MIRRORED
    }
    out: dict[str, Any] = {}
    for name, (path, compact) in tables.items():
        try:
            done = _tidy_table(path, keep, compact)
        except DeltaError as exc:
            # A load committing to the table at the same moment: tomorrow's upkeep.
            log.warning("lake upkeep of %s %s left for the next day: %s", org_id, name, exc)
            out[name] = {"skipped": str(exc)}
            continue
        if done is not None:
            out[name] = done
    log.info("lake upkeep %s (history %d days): %s", org_id, keep.days, out)
    return out
