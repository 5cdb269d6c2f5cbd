"""Where each step reads and writes: one partition per org and hour (DESIGN.md data flow).

Every step overwrites its partition whole, so a retry, re-run or backfill of an hour is
repeatable. Paths are built on whatever root is given (a ``pathlib.Path`` in tests, an
``ObjectStoragePath`` for ``file://``, ``s3://`` or ``gs://`` in Airflow).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
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


def is_local(path: Any) -> bool:
    return getattr(path, "protocol", "file") in ("file", "local", "")


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
