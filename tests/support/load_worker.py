"""Plans over the emulator's Contacts, a load run in a process of its own, and helpers.

``synthetic_plan`` builds a plan the way the planner would (1 to 5 Contacts a Task, Related
To the primary's Account) without events, so a test can choose its size. ``load_in_process``
is the target of a ``multiprocessing`` "spawn" process: it opens its own client from the
emulator's connection details, waits at a barrier so that two loads start together, loads
and reports its summary and dead letter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activity_sync.load import LoadOptions
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import REJECTED_COLUMNS, RELATION_COLUMNS, TASK_COLUMNS, Plan, task_key
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT


def quick(**overrides: Any) -> LoadOptions:
    """Load options for tests: short waits between row retries."""
    return LoadOptions(row_retry_wait=0.05, **overrides)


def held_everywhere(client: SalesforceClient) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tasks and people on them, archived ones included (queryAll, deleted ones left out)."""
    tasks = client.query(
        f"SELECT Id, {EXT}, IsArchived FROM Task WHERE IsDeleted = false", include_deleted=True
    )
    relations = client.query(
        "SELECT TaskId, RelationId FROM TaskRelation WHERE IsWhat = false AND IsDeleted = false",
        include_deleted=True,
    )
    return tasks, relations


def synthetic_plan(
    contacts: pd.DataFrame,
    n_tasks: int,
    seed: int,
    *,
    org_id: str = "acme",
    activity_date: str = "2026-11-26",
    subject: str = "Email: proof",
    description: str = "A body,\nwith a comma and a line break.",
) -> Plan:
    """``n_tasks`` Tasks over ``contacts`` (Id, AccountId), 1 to 5 people each."""
    rng = np.random.default_rng(seed)
    contacts = contacts.dropna(subset=["AccountId"]).reset_index(drop=True)
    sizes = rng.integers(1, 6, n_tasks)
    picks = rng.integers(0, len(contacts), sizes.sum())
    people = pd.DataFrame(
        {
            "task": np.repeat(np.arange(n_tasks), sizes),
            "RelationId": contacts["Id"].to_numpy()[picks],
        }
    ).drop_duplicates(["task", "RelationId"])
    people["position"] = people.groupby("task").cumcount()
    primary = people[people["position"] == 0].set_index("task")["RelationId"]
    account = contacts.set_index("Id")["AccountId"]
    event_ids = [f"e{seed}-{i}" for i in range(n_tasks)]
    keys = np.asarray([task_key(org_id, e, "b0", None) for e in event_ids], dtype=object)
    tasks = pd.DataFrame(
        {
            "task_key": keys,
            "org_id": org_id,
            "event_id": event_ids,
            "event_type": "sent",
            "WhoId": primary.to_numpy(),
            "WhatId": account.loc[primary.to_numpy()].to_numpy(),
            "OwnerId": None,
            "Subject": subject,
            "Description": description,
            "ActivityDate": activity_date,
            "Status": "Completed",
            "TaskSubtype": "Email",
            "who_count": people.groupby("task").size().to_numpy(),
            "batch_index": 0,
        },
        columns=TASK_COLUMNS,
    )
    relations = pd.DataFrame(
        {
            "task_key": keys[people["task"].to_numpy()],
            "RelationId": people["RelationId"].to_numpy(),
            "position": people["position"].to_numpy(),
            "is_primary": people["position"].to_numpy() == 0,
        },
        columns=RELATION_COLUMNS,
    )
    return Plan(tasks, relations, pd.DataFrame(columns=REJECTED_COLUMNS), {})


def load_in_process(
    info: dict[str, Any], plan_dir: str, ledger_dir: str, barrier: Any, out: Any
) -> None:
    """Load the plan in ``plan_dir`` with a client of this process's own, once the barrier
    lets every competing process go; put ``(summary, dead_letter records, Tasks that took
    more than one job)`` on ``out``."""
    from activity_sync.job_ledger import LakeJobLedger
    from activity_sync.load import LoadOptions, load_plan
    from activity_sync.plan import read_plan
    from activity_sync.salesforce import SalesforceClient
    from salesforce_emulator.process import EmulatorInfo, trusting_session

    emulator = EmulatorInfo.from_json(info)

    def connect():
        from simple_salesforce import Salesforce

        return Salesforce(
            instance_url=emulator.instance_url,
            session_id=emulator.access_token,
            session=trusting_session(emulator.ca_file),
            version=emulator.api_version,
        )

    client = SalesforceClient(connect, poll_wait=0.05, backoff=0.05)
    plan = read_plan(Path(plan_dir))
    barrier.wait(timeout=60)
    result = load_plan(
        plan, client, LoadOptions(row_retry_wait=0.1), LakeJobLedger(Path(ledger_dir))
    )
    raced = int(result.task_results["attempts"].gt(1).sum())
    out.put((result.summary, result.dead_letter.to_dict("records"), raced))
