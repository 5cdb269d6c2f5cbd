"""The local Salesforce of scripts/stack.py: one emulator per Salesforce connection that the
orgs file (ACTIVITY_SYNC_ORGS) names, and generated demo events landed for its orgs.

Used by ``up`` only, with the venv: it imports the emulator and the product.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stack_processes import Layout, StackError, spawn, tail

EMULATOR_PREFIX = "emulator-"


def org_connections() -> dict[str, str]:
    """Each org of the orgs file (ACTIVITY_SYNC_ORGS) and its Salesforce connection id."""
    from activity_sync.tenants import load_orgs

    return {org.org_id: org.salesforce_conn_id for org in load_orgs()}


def seed_for(seed: str, index: int) -> str:
    """The emulator seed of the ``index``-th connection: ``demo``, ``demo:1``, ``demo:2``..."""
    if index == 0:
        return seed
    name, _, number = seed.partition(":")
    return f"{name}:{int(number or 0) + index}"


# --- the emulators -------------------------------------------------------------


def start_emulator(layout: Layout, conn_id: str, port: int, seed: str, env: dict[str, str]):
    """The emulator of one connection as a daemon; returns an EmulatorProcess handle."""
    from salesforce_emulator import process

    data_dir = layout.emulator / conn_id
    data_dir.mkdir(parents=True, exist_ok=True)
    ready_file = data_dir / "connection.json"
    ready_file.unlink(missing_ok=True)
    name = f"{EMULATOR_PREFIX}{conn_id}"
    argv = [sys.executable, "-m", "salesforce_emulator", "serve", "--data-dir", str(data_dir)]
    argv += ["--port", str(port), "--seed", seed]
    # Its stdout carries one "ready" line for a parent that stays; this one reads the file.
    proc = spawn(layout, name, argv, env)
    deadline = time.monotonic() + 90
    while not ready_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise StackError(f"the emulator {name} did not start:\n{tail(layout.log(name))}")
        time.sleep(0.2)
    info = process.EmulatorInfo.from_json(json.loads(ready_file.read_text(encoding="utf-8")))
    emulator = process.EmulatorProcess(proc, info, layout.log(name))
    emulator.stats()  # TLS, token and store all answer
    return emulator


# --- demo events --------------------------------------------------------------------


def last_complete_hours(now: datetime, count: int) -> list[datetime]:
    """The ``count`` whole UTC hours before ``now``, oldest first."""
    top = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=n) for n in range(count, 0, -1)]


def land_events(
    lake: Path,
    connect: Callable[[], Any],
    hours: list[datetime],
    *,
    org_id: str,
    sends: int = 1500,
) -> int:
    """Land generated email activity that *arrived* in ``hours`` (UTC); returns the count.

    The CRM is mirrored from the org first so the events address its real Contacts, Leads
    and Users. Whole days are generated (``sends`` messages a day, one seed per day, so a
    re-run lands the same files) and cut to the arrival hours asked for; the day before
    the first hour is included for its late arrivals. Each landed hour file is replaced.
    """
    import pandas as pd

    from activity_sync.crm import read_crm
    from activity_sync.lake import crm_folder
    from activity_sync.mirror import refresh_crm
    from activity_sync.salesforce import SalesforceClient
    from activity_sync.tenants import load_orgs
    from demo_data.generate import generate_day, write_landing

    if not hours:
        return 0
    org = next((o for o in load_orgs() if o.org_id == org_id), None)
    if org is None or "://" in org.landing:
        raise StackError(f"org {org_id!r} with a local landing folder is not in the orgs file")
    crm_dir = crm_folder(lake, org_id)
    refresh_crm(SalesforceClient(connect, poll_wait=0.2), crm_dir)
    crm = read_crm(crm_dir)
    first, last = min(hours).date() - timedelta(days=1), max(hours).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    events = pd.concat(
        [
            generate_day(crm, org_id=org_id, day=day, seed=day.toordinal(), sends=sends)
            for day in days
        ],
        ignore_index=True,
    )
    arrived = pd.to_datetime(events["arrived_at"], utc=True, format="ISO8601").dt.floor("h")
    wanted = arrived.isin(pd.DatetimeIndex([pd.Timestamp(h) for h in hours]))
    write_landing(events[wanted], lake / org.landing, org_id)
    return int(wanted.sum())
