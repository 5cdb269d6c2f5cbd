"""What a run's closing task says about the tasks that failed before it.

Each DAG ends in one task that runs whatever happened before it (trigger rule
``all_done``): the hourly ``summary`` and the audit's ``raise_alerts``. It fails when an
earlier task failed, naming that task and its error, so a run is red exactly when
something failed, and a healthy run shows no skipped watcher task. A task records its
error as it fails (``airflow_adapter.recording_failure``), since a later task cannot read
another task's log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The keys of one recorded failure (the value of the ``failure`` XCom).
TASK, ERROR = "task", "error"


def describe_error(exc: BaseException) -> str:
    """An exception as one line for the closing message: its type and its message."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def failure_record(task: str, exc: BaseException) -> dict[str, str]:
    """The ``failure`` XCom of a task that raised ``exc``; ``task`` names it for people
    (a mapped task with its label: ``audit [acme 2026-11-20]``)."""
    return {TASK: task, ERROR: describe_error(exc)}


def failed_tasks_message(failures: Iterable[Mapping[str, str | None]]) -> str:
    """ "task window failed: IntervalError: …; task … failed: …" for the closing task.

    Args:
        failures: one record per failed task (``failure_record``); ``error`` None when the
            task recorded none (its worker was killed): the message then points to its log.
    """
    parts = [
        f"task {f[TASK]} failed: {f[ERROR]}"
        if f.get(ERROR)
        else f"task {f[TASK]} failed; its log says why"
        for f in failures
    ]
    return "; ".join(parts)


def audit_failures(
    targets: Sequence[Mapping[str, str]] | None,
    audited: int,
    recorded: Sequence[Mapping[str, str | None]],
) -> list[Mapping[str, str | None]]:
    """Which tasks of an audit run failed, for ``failed_tasks_message``.

    Args:
        targets: what the ``targets`` task returned, None when it failed (its mapped
            ``audit`` tasks then never ran).
        audited: how many mapped ``audit`` tasks returned a result.
        recorded: the failure records the run's tasks pushed (``targets`` or ``audit``).

    Returns:
        The recorded failures, plus one record without an error for ``targets`` if it
        failed without recording one, or for the audits that failed without recording.
    """
    failures = list(recorded)
    if targets is None:
        if not any(f[TASK] == "targets" for f in failures):
            failures.append({TASK: "targets", ERROR: None})
        return failures
    silent = len(targets) - audited - len(failures)
    if silent > 0:
        failures.append({TASK: f"audit ({silent} mapped task(s))", ERROR: None})
    return failures


def as_records(pulled: Any) -> list[dict[str, Any]]:
    """An ``xcom_pull`` of every map index as a list: Airflow returns one value bare, none
    as None."""
    if pulled is None:
        return []
    return [pulled] if isinstance(pulled, Mapping) else [p for p in pulled if p]
