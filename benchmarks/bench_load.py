"""How many Salesforce API calls a load costs, and how long it takes (not a test).

Starts the local Salesforce with the demo org, builds plans of N Tasks over its Contacts
(1 to 5 Contacts each, Related To the primary's Account, as the planner would), loads
each through ``load_plan`` twice — a first load and a re-run of the same hour — and
reports the API calls the emulator counted, the Bulk jobs, and the wall time. The claim
to check: calls grow with the number of Bulk jobs, not with rows.

    .venv/bin/python benchmarks/bench_load.py [--tasks 1000 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from activity_sync.load import LoadOptions, load_plan
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import RELATION_COLUMNS, TASK_COLUMNS, Plan, task_key
from salesforce_emulator import process


def synthetic_plan(contacts: pd.DataFrame, n_tasks: int, seed: int) -> Plan:
    rng = np.random.default_rng(seed)
    contacts = contacts.dropna(subset=["AccountId"]).reset_index(drop=True)
    sizes = rng.integers(1, 6, n_tasks)
    picks = rng.integers(0, len(contacts), sizes.sum())
    task_of = np.repeat(np.arange(n_tasks), sizes)
    position = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    people = pd.DataFrame(
        {"task": task_of, "position": position, "RelationId": contacts["Id"].to_numpy()[picks]}
    ).drop_duplicates(["task", "RelationId"])
    people["position"] = people.groupby("task").cumcount()
    primary = people[people["position"] == 0].set_index("task")["RelationId"]
    account = contacts.set_index("Id")["AccountId"]
    keys = [task_key("bench", f"e{seed}-{i}", "b0", None) for i in range(n_tasks)]
    who_count = people.groupby("task").size()
    tasks = pd.DataFrame(
        {
            "task_key": keys,
            "org_id": "bench",
            "event_id": [f"e{seed}-{i}" for i in range(n_tasks)],
            "event_type": "sent",
            "WhoId": primary.to_numpy(),
            "WhatId": account.loc[primary.to_numpy()].to_numpy(),
            "OwnerId": None,
            "Subject": "Email: benchmark",
            "Description": "A body,\nwith a comma and a line break.",
            "ActivityDate": "2026-11-26",
            "Status": "Completed",
            "TaskSubtype": "Email",
            "who_count": who_count.to_numpy(),
            "batch_index": 0,
        },
        columns=TASK_COLUMNS,
    )
    relations = pd.DataFrame(
        {
            "task_key": np.asarray(keys, dtype=object)[people["task"].to_numpy()],
            "RelationId": people["RelationId"].to_numpy(),
            "position": people["position"].to_numpy(),
            "is_primary": people["position"].to_numpy() == 0,
        },
        columns=RELATION_COLUMNS,
    )
    return Plan(tasks, relations, pd.DataFrame(), {})


def measure(emulator, client: SalesforceClient, plan: Plan, label: str) -> None:
    before = emulator.stats()["api"]["api_calls"]
    jobs_before = client.bulk_jobs
    started = time.perf_counter()
    result = load_plan(plan, client, LoadOptions())
    seconds = time.perf_counter() - started
    calls = emulator.stats()["api"]["api_calls"] - before
    s = result.summary
    print(
        f"{label:<24} tasks {len(plan.tasks):>7,}  relations+ {s['relations_planned']:>7,}  "
        f"created {s['tasks_created']:>7,}  updated {s['tasks_updated']:>7,}  "
        f"inserted {s['relations_inserted']:>7,}  existing {s['relations_existing']:>7,}  "
        f"dead {s['dead_letter']:>3}  API calls {calls:>4}  bulk jobs {client.bulk_jobs - jobs_before:>2}  "
        f"{seconds:6.1f} s  ({len(plan.tasks) / seconds:,.0f} Tasks/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[1_000, 100_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, process.start(Path(tmp), seed="demo") as emulator:
        client = SalesforceClient(emulator.simple_salesforce, poll_wait=0.2)
        contacts = client.query("SELECT Id, AccountId FROM Contact")
        for seed, n in enumerate(args.tasks):
            plan = synthetic_plan(contacts, n, seed)
            measure(emulator, client, plan, f"first load of {n:,}")
            measure(emulator, client, plan, f"re-run of {n:,}")


if __name__ == "__main__":
    main()
