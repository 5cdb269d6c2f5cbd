"""Which Bulk ingest jobs a load submitted, written down before any data is uploaded.

A load task can die at any point: killed by a timeout, a worker lost, an exception. Its
jobs live on in Salesforce, and the retry must not send the same rows in a second job
while the first one still runs (two live jobs over the same keys race: one loses with
``DUPLICATE_VALUE`` or locks). So each job id is recorded the moment the job is created,
and a new load first settles the jobs of earlier attempts that did not finish.

Each load attempt writes its own small JSON file, so two runs of the same hour never
overwrite each other's record. A file is rewritten whole (staged, then renamed) after
every job, and marked finished when its load returned.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

_SUFFIX = ".json"


@dataclass(frozen=True)
class JobEntry:
    """One ingest job as recorded: what it was sent, so a retry can recognise its rows."""

    job_id: str
    object_name: str
    operation: str
    digest: str  # SHA-256 of the uploaded CSV
    rows: int


class JobLedger:
    """An in-memory record: a load that keeps no history (tests, benchmarks, one-offs)."""

    def __init__(self) -> None:
        self.entries: list[JobEntry] = []

    def record(self, entry: JobEntry) -> None:
        """Write ``entry`` down; called between creating a job and uploading its data."""
        self.entries.append(entry)

    def unfinished(self) -> list[JobEntry]:
        """The jobs of earlier attempts that did not finish (none kept in memory)."""
        return []

    def finish(self) -> None:
        """Mark this attempt finished: every job it made is terminal and accounted for."""


class LakeJobLedger(JobLedger):
    """The record kept in the lake, one file per load attempt, in ``folder``.

    Args:
        folder: a ``pathlib.Path`` or ``ObjectStoragePath`` (the hour's loaded partition's
            job folder, ``lake.job_folder``).
    """

    def __init__(self, folder: Any) -> None:
        super().__init__()
        self.folder = folder
        started = datetime.now(UTC)
        self.name = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        self.started = started.isoformat()
        self.finished = False

    def record(self, entry: JobEntry) -> None:
        super().record(entry)
        self._write()

    def finish(self) -> None:
        self.finished = True
        self._write()

    def _write(self) -> None:
        document = {
            "attempt": self.name,
            "started": self.started,
            "finished": self.finished,
            "jobs": [asdict(e) for e in self.entries],
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f".{self.name}.{uuid.uuid4().hex}.tmp"
        with staging.open("w") as fh:
            fh.write(json.dumps(document, indent=1))
        staging.rename(self.folder / f"{self.name}{_SUFFIX}")

    def unfinished(self) -> list[JobEntry]:
        """The jobs recorded by other attempts that are not marked finished.

        Files are replaced whole (staged, then renamed), so a reader sees a complete
        version; one that still cannot be read (damaged, or not ours) is reported and
        skipped.
        """
        if not self.folder.exists():
            return []
        found: list[JobEntry] = []
        for path in sorted(self.folder.iterdir(), key=lambda p: p.name):
            if not path.name.endswith(_SUFFIX) or path.name == f"{self.name}{_SUFFIX}":
                continue
            try:
                with path.open("r") as fh:
                    document = json.loads(fh.read())
                if document.get("finished"):
                    continue
                found += [JobEntry(**job) for job in document["jobs"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("job record %s is unreadable, skipped: %s", path.name, exc)
        return found
