"""Where each step reads and writes: one partition per org and hour (docs/outputs.md).

Every step overwrites its partition whole, so a retry, re-run or backfill of an hour is
repeatable. Paths are built on whatever root is given (a ``pathlib.Path`` in tests, an
``ObjectStoragePath`` for ``file://``, ``s3://`` or ``gs://`` in Airflow). This module is
the one place that knows the layout: ``<root>/<area>/org_id=<org>/date=<YYYY-MM-DD>/hour=<HH>/``
and the names of the files in each folder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

EVENTS, PLAN, LOADED, SYNC = "events", "plan", "loaded", "sync"
AREAS = (EVENTS, PLAN, LOADED, SYNC)
CRM, AUDIT, LEDGER = "crm", "audit", "ledger"

# The files of each area's folder (docs/outputs.md describes their columns).
EVENTS_FILE = "events.parquet"
MALFORMED_FILE = "rejected.parquet"  # events area: lines the reader could not parse
PLAN_SUMMARY = "summary.json"
PLAN_TASKS = "tasks.parquet"
PLAN_RELATIONS = "task_relations.parquet"
PLAN_SALESFORCE_EVENTS = "events.parquet"  # R14: Salesforce Events, not email events
PLAN_EVENT_RELATIONS = "event_relations.parquet"
PLAN_REJECTED = "rejected.parquet"
PLAN_BASIS = "basis.json"  # what the plan was made against (plan_basis.py)
PLAN_PREVIEW = "preview.json"  # a dry run: what loading it would create/update/delete
TASK_RESULTS = "task_results.parquet"
RELATION_RESULTS = "relation_results.parquet"
EVENT_RESULTS = "event_results.parquet"  # R14: one row per planned Salesforce Event
EVENT_RELATION_RESULTS = "event_relation_results.parquet"
DEAD_LETTER = "dead_letter.parquet"
LOAD_SUMMARY = "load_summary.json"
REMOVALS = "removals.parquet"  # loaded area: Tasks a re-plan deleted or kept (converge.py)
# loaded area: one JSON file per load attempt naming its Bulk jobs (job_ledger.py)
JOB_LEDGER = "bulk_jobs"
SYNC_OUTCOME = "outcome.json"  # sync area: how the org's hour ended in its latest run
AUDIT_DOCUMENT = "audit.json"
AUDIT_COUNTS = "counts.parquet"
AUDIT_REPORT = "report.html"
AUDIT_NOTIFIED = "notified.json"

_ORG, _DATE, _HOUR = "org_id=", "date=", "hour="


def partition(root: Any, area: str, org_id: str, start: datetime) -> Any:
    """The folder of one org's hour in ``area`` (events, plan or loaded)."""
    return day_folder(root, area, org_id, f"{start:%Y-%m-%d}") / f"{_HOUR}{start:%H}"


def day_folder(root: Any, area: str, org_id: str, day: str) -> Any:
    """The folder holding one org's hour partitions of ``day`` (``YYYY-MM-DD``) in ``area``."""
    if area not in AREAS:
        raise ValueError(f"unknown lake area {area!r}; expected one of {AREAS}")
    return root / area / f"{_ORG}{org_id}" / f"{_DATE}{day}"


def hour_folders(root: Any, area: str, org_id: str, day: str) -> list[tuple[int, Any]]:
    """``(hour, folder)`` of every hour partition of ``day`` in ``area``, earliest first."""
    folder = day_folder(root, area, org_id, day)
    if not folder.exists():
        return []
    found = []
    for child in folder.iterdir():
        hour = child.name.removeprefix(_HOUR)
        if child.name.startswith(_HOUR) and hour.isdigit():
            found.append((int(hour), child))
    return sorted(found, key=lambda item: item[0])


def days(root: Any, area: str, org_id: str) -> list[str]:
    """The days (``YYYY-MM-DD``) that have a folder of one org in ``area``, earliest first."""
    folder = root / area / f"{_ORG}{org_id}"
    if not folder.exists():
        return []
    return sorted(c.name.removeprefix(_DATE) for c in folder.iterdir() if c.name.startswith(_DATE))


def landing_hour(landing_root: Any, org_id: str, hour: datetime) -> Any:
    """Raw JSON Lines as they arrived, one folder per arrival hour."""
    return landing_root / f"{_ORG}{org_id}" / f"{_DATE}{hour:%Y-%m-%d}" / f"{_HOUR}{hour:%H}"


def crm_folder(root: Any, org_id: str) -> Any:
    """One org's CRM mirror: a Delta table per object, a version per refresh (mirror.py)."""
    return root / CRM / f"{_ORG}{org_id}"


def ledger_folder(root: Any, org_id: str) -> Any:
    """One org's ledger of what the loads wrote: a Delta table (ledger.py)."""
    return root / LEDGER / f"{_ORG}{org_id}"


def audit_root(root: Any) -> Any:
    """The folder under which every org's daily audits lie."""
    return root / AUDIT


def audit_folder(root: Any, org_id: str, day: str) -> Any:
    """The outputs of one org's audit of ``day`` (``YYYY-MM-DD``)."""
    return audit_root(root) / f"{_ORG}{org_id}" / f"{_DATE}{day}"


def audit_folders(root: Any) -> Iterator[tuple[str, str, Any]]:
    """``(org_id, day, folder)`` for every audit folder, as named on disk (unvalidated).

    Callers that take org and day from outside (the UI plugin) check both themselves.
    """
    top = audit_root(root)
    if not top.exists():
        return
    for org_dir in top.iterdir():
        if not org_dir.name.startswith(_ORG):
            continue
        for day_dir in org_dir.iterdir():
            if day_dir.name.startswith(_DATE):
                yield org_dir.name.removeprefix(_ORG), day_dir.name.removeprefix(_DATE), day_dir


def is_local(path: Any) -> bool:
    return getattr(path, "protocol", "file") in ("file", "local", "")


def protocol(path: Any) -> str:
    """The store a lake path is on: ``file``, ``s3``, ``gs``, ..."""
    name = getattr(path, "protocol", "file")
    return name[0] if isinstance(name, tuple | list) else name


# Object stores the ``deltalake`` package reaches itself (credentials from the
# environment, as it reads them); a lake elsewhere has its tables staged locally.
DELTA_NATIVE = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


@contextmanager
def delta_location(path: Any, *, write: bool = False) -> Iterator[str]:
    """Where ``deltalake`` is to open the Delta table at lake path ``path``.

    A local path or a URL ``deltalake`` reaches itself is given as it is. On another store
    (an fsspec-only protocol) the table is copied to a temporary folder and, when
    ``write``, the files it gained are uploaded afterwards: a Delta table only ever adds
    files (data files and one log file per version), so that is the whole change.
    """
    if is_local(path):
        yield str(_local_path(path))
        return
    if protocol(path) in DELTA_NATIVE:
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="activity-sync-delta-") as tmp:
        local = Path(tmp) / "table"
        before = set(_download_tree(path, local))
        yield str(local)
        if write:
            for file in sorted(local.rglob("*")):
                relative = file.relative_to(local).as_posix()
                if file.is_file() and relative not in before:
                    target = path / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with file.open("rb") as reader, target.open("wb") as writer:
                        shutil.copyfileobj(reader, writer)


def _download_tree(path: Any, local: Path) -> Iterator[str]:
    """Copy the folder ``path`` with everything under it to ``local``; yields the relative
    paths of the files copied."""
    local.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return
    for child in path.iterdir():
        if child.is_dir():
            for relative in _download_tree(child, local / child.name):
                yield f"{child.name}/{relative}"
        else:
            _copy(child, local / child.name)
            yield child.name


def _local_path(path: Any) -> Path:
    return Path(str(getattr(path, "path", path)))


def _copy(src: Any, dst: Any) -> None:
    with src.open("rb") as reader, dst.open("wb") as writer:
        shutil.copyfileobj(reader, writer)


@contextmanager
def local_copy(path: Any) -> Iterator[Path]:
    """A local view of a lake file or folder: the path itself on local disk, else a download.

    The readers (pandas, pyarrow, the planner's) want local paths; a lake on S3 or GCS is
    fetched to a temporary folder first. Folders are copied one level deep, as the lake's
    partitions are.
    """
    if is_local(path):
        yield _local_path(path)
        return
    with tempfile.TemporaryDirectory(prefix="activity-sync-") as tmp:
        target = Path(tmp) / path.name
        if path.is_dir():
            target.mkdir()
            for child in path.iterdir():
                if child.is_file():
                    _copy(child, target / child.name)
        else:
            _copy(path, target)
        yield target


@contextmanager
def local_output(path: Any) -> Iterator[Path]:
    """A local folder whose files become the lake folder ``path`` (uploaded when remote)."""
    if is_local(path):
        folder = _local_path(path)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="activity-sync-") as tmp:
        yield Path(tmp)
        path.mkdir(parents=True, exist_ok=True)
        for child in Path(tmp).iterdir():
            _copy(child, path / child.name)
