"""Benchmark of the vectorised planner (plan.plan) on a synthetic org and interval.

    .venv/bin/python benchmarks/bench_plan.py                     # 1,000,000 events
    .venv/bin/python benchmarks/bench_plan.py --events 200000     # smaller
    .venv/bin/python benchmarks/bench_plan.py --reference 2000    # also time reference.plan
    .venv/bin/python benchmarks/bench_plan.py --no-meetings       # email activity only

The org is scaled to the interval as in production-sized tenants: per 1,000,000 events,
1,000,000 Contacts, 200,000 Leads, 100,000 Accounts, 300,000 Opportunities and 500,000
contact roles. About 60% of events carry recipients (1-120 each, skewed, mean about 4);
the rest are engagement events with an actor. A few percent of addresses are unknown,
excluded, invalid or Bcc, and a few events are broken on purpose, so every path runs.
Generation is vectorised (numpy + Arrow) and timed apart from planning; peak RSS is
sampled while plan() runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc

from activity_sync.crm import Crm
from activity_sync.plan import plan
from activity_sync.schema import SUMMARY_KEYS, Plan
from activity_sync.settings import Settings

ORG = "acme"
RECIPIENT_TYPES = [("sent", 0.55), ("internal_reply", 0.03), ("meeting", 0.02)]
ACTOR_TYPES = [
    ("reply", 0.05),
    ("open", 0.20),
    ("click", 0.10),
    ("download", 0.03),
    ("bounce", 0.02),
]
SETTINGS = Settings(org_id=ORG, exclusions=("competitor.com", "ceo@acme.com"))


@dataclass
class Interval:
    events: pd.DataFrame
    crm: Crm
    recipients: int


def _text(values: np.ndarray | pa.Array) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _join(*parts: str | pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _ids(prefix: str, n: int) -> pa.Array:
    """Salesforce-shaped 18-character Ids: key prefix, then a zero-padded number."""
    return _join(prefix, pc.utf8_lpad(_text(np.arange(n)), 15, "0"))


def _pick(rng: np.random.Generator, choices: list[tuple[str, float]], n: int) -> np.ndarray:
    names, weights = zip(*choices, strict=True)
    weights = np.array(weights) / sum(weights)
    return np.array(names, dtype=object)[rng.choice(len(names), n, p=weights)]


def generate_crm(rng: np.random.Generator, n_events: int) -> tuple[Crm, dict[str, pa.Array]]:
    scale = n_events / 1_000_000
    n_contacts, n_leads = max(int(1_000_000 * scale), 50), max(int(200_000 * scale), 10)
    n_accounts, n_opps = max(int(100_000 * scale), 5), max(int(300_000 * scale), 15)
    n_roles, n_users = max(int(500_000 * scale), 25), 500

    account_ids = _ids("001", n_accounts)
    domains = _join("a", _text(np.arange(n_accounts)), ".example.com")
    contact_account = rng.integers(0, n_accounts, n_contacts)
    contact_email = _join("c", _text(np.arange(n_contacts)), "@", domains.take(contact_account))
    # 1% of Contacts share another's address (R5 tie-break); 2% are typed in upper case.
    shared = rng.random(n_contacts) < 0.01
    crm_email = contact_email.take(
        np.where(shared, rng.integers(0, n_contacts, n_contacts), np.arange(n_contacts))
    )
    crm_email = pc.if_else(rng.random(n_contacts) < 0.02, pc.utf8_upper(crm_email), crm_email)
    no_account = rng.random(n_contacts) < 0.05
    modified = pd.Timestamp("2023-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 86400 * 500, n_contacts), unit="s"
    )
    contacts = pd.DataFrame(
        {
            "Id": _ids("003", n_contacts).to_pandas(),
            "Email": crm_email.to_pandas(),
            "AccountId": account_ids.take(contact_account).to_pandas().mask(no_account),
            "LastModifiedDate": modified,
        }
    )
    lead_email = _join(
        "l", _text(np.arange(n_leads)), "@prospect", _text(np.arange(n_leads) % 997), ".io"
    )
    leads = pd.DataFrame(
        {
            "Id": _ids("00Q", n_leads).to_pandas(),
            "Email": lead_email.to_pandas(),
            "IsConverted": rng.random(n_leads) < 0.3,
            "LastModifiedDate": modified[:n_leads] if n_leads <= n_contacts else modified[0],
        }
    )
    user_email = _join("u", _text(np.arange(n_users)), "@acme.com")
    users = pd.DataFrame(
        {
            "Id": _ids("005", n_users).to_pandas(),
            "Email": user_email.to_pandas(),
            "IsActive": rng.random(n_users) < 0.9,
        }
    )
    opportunities = pd.DataFrame(
        {
            "Id": _ids("006", n_opps).to_pandas(),
            "AccountId": account_ids.take(rng.integers(0, n_accounts, n_opps)).to_pandas(),
            "Name": _join("Deal ", _text(np.arange(n_opps))).to_pandas(),
            "IsClosed": rng.random(n_opps) < 0.4,
            "CloseDate": "2024-12-31",
            "OwnerId": users["Id"].to_numpy()[rng.integers(0, n_users, n_opps)],
        }
    )
    contact_roles = pd.DataFrame(
        {
            "Id": _ids("00K", n_roles).to_pandas(),
            "OpportunityId": opportunities["Id"].to_numpy()[rng.integers(0, n_opps, n_roles)],
            "ContactId": contacts["Id"].to_numpy()[rng.integers(0, n_contacts, n_roles)],
        }
    )
    accounts = pd.DataFrame(
        {
            "Id": account_ids.to_pandas(),
            "Name": _join("Account ", _text(np.arange(n_accounts))).to_pandas(),
        }
    )
    crm = Crm.from_frames(
        contacts=contacts,
        leads=leads,
        accounts=accounts,
        opportunities=opportunities,
        contact_roles=contact_roles,
        users=users,
    )
    return crm, {"contact": contact_email, "lead": lead_email, "user": user_email}


def _addresses(rng: np.random.Generator, n: int, emails: dict[str, pa.Array]) -> pa.Array:
    """n addresses: mostly Contacts, some Leads, unknown, excluded and invalid ones."""
    kind = rng.choice(5, n, p=[0.80, 0.08, 0.05, 0.04, 0.03])
    order = np.argsort(kind, kind="stable")
    sizes = np.bincount(kind, minlength=5)
    contact = emails["contact"].take(rng.integers(0, len(emails["contact"]), sizes[0]))
    contact = pc.if_else(rng.random(sizes[0]) < 0.05, pc.utf8_upper(contact), contact)
    parts = [
        contact,
        emails["lead"].take(rng.integers(0, len(emails["lead"]), sizes[1])),
        _join(
            "someone",
            _text(rng.integers(0, 10**6, sizes[2])),
            "@unknown",
            _text(rng.integers(0, 999, sizes[2])),
            ".net",
        ),
        pc.choose(
            pa.array(rng.integers(0, 3, sizes[3]), pa.int8()),
            _join("rival", _text(rng.integers(0, 999, sizes[3])), "@eu.competitor.com"),
            _join("noreply+", _text(rng.integers(0, 999, sizes[3])), "@a1.example.com"),
            pa.array(["ceo@acme.com"] * sizes[3]),
        ),
        _join("not an address ", _text(rng.integers(0, 999, sizes[4]))),
    ]
    inverse = np.empty(n, np.int64)
    inverse[order] = np.arange(n)
    return pa.concat_arrays([p.cast(pa.string()) for p in parts]).take(inverse)


def generate(n_events: int, seed: int = 7, *, meetings: bool = True) -> Interval:
    """The interval; without ``meetings`` their share is 0 (the same random draws, so the
    other events are those of the run with meetings)."""
    rng = np.random.default_rng(seed)
    crm, emails = generate_crm(rng, n_events)
    kinds = [(t, w if meetings or t != "meeting" else 0.0) for t, w in RECIPIENT_TYPES]
    types = _pick(rng, kinds + ACTOR_TYPES, n_events)
    has_recipients = np.isin(types, [t for t, _ in RECIPIENT_TYPES])

    # Recipient counts: mostly a few (geometric), now and then a long list up to 120.
    counts = np.minimum(rng.geometric(0.3, n_events), 120)
    long_list = rng.random(n_events) < 0.01
    counts[long_list] = rng.integers(20, 121, long_list.sum())
    counts[~has_recipients] = 0
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    total = int(offsets[-1])
    field = pa.array(
        np.array(["to", "cc", "bcc"], dtype=object)[rng.choice(3, total, p=[0.72, 0.2, 0.08])]
    )
    struct = pa.StructArray.from_arrays(
        [_addresses(rng, total, emails), field], names=["email", "field"]
    )
    recipients = pa.ListArray.from_arrays(pa.array(offsets), struct, mask=pa.array(~has_recipients))
    actor = pc.if_else(
        pa.array(has_recipients), pa.nulls(n_events, pa.string()), _addresses(rng, n_events, emails)
    )

    event_id = _join("ev-", _text(np.arange(n_events))).to_numpy(zero_copy_only=False)
    seconds = pa.array(np.datetime64("2024-05-01T10:00:00", "s") + rng.integers(0, 3600, n_events))
    occurred = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
    senders = emails["user"].take(rng.integers(0, len(emails["user"]), n_events))
    org = np.full(n_events, ORG, dtype=object)
    # A few broken events: repeated ids, another org, no offset, an unknown type.
    broken = rng.choice(n_events, max(n_events // 1000, 4), replace=False)
    quarter = np.array_split(broken, 4)
    event_id[quarter[0]] = event_id[np.maximum(quarter[0] - 1, 0)]
    org[quarter[1]] = "globex"
    occurred = pc.if_else(
        pa.array(np.isin(np.arange(n_events), quarter[2])), "2024-05-01 10:00", occurred
    )
    types[quarter[3]] = "call"
    text = _text(np.arange(n_events) % 5000)
    table = pa.table(
        {
            "event_id": pa.array(event_id, pa.string()),
            "org_id": pa.array(org, pa.string()),
            "type": pa.array(types, pa.string()),
            "occurred_at": occurred,
            "sender": senders,
            "actor": actor,
            "recipients": recipients,
            "subject": _join("Quarterly pricing, proposal ", text),
            "body": _join(
                "Hi all, following up on our call about proposal ", text, ". Best, the team"
            ),
            "thread_id": _join("t-", text),
            "message_id": _join("m-", _text(np.arange(n_events))),
            "url": pa.array(
                np.where(types == "click", "https://acme.com/pricing", None), pa.string()
            ),
            "filename": pa.array(np.where(types == "download", "proposal.pdf", None), pa.string()),
        }
    )
    events = table.to_pandas(
        types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None
    )
    return Interval(events, crm, total)


class PeakRss:
    """Samples this process's RSS every 5 ms while the block runs."""

    def __enter__(self) -> PeakRss:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.before = self.peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-meetings", action="store_true", help="email activity only: no meeting events"
    )
    parser.add_argument(
        "--reference",
        type=int,
        nargs="?",
        const=50_000,
        metavar="N",
        help="also time reference.plan and plan on N events (default 50,000) of an org scaled to N",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    interval = generate(args.events, args.seed, meetings=not args.no_meetings)
    generated = time.perf_counter() - started
    print(
        f"generated {args.events:,} events ({interval.recipients:,} recipients), "
        f"{len(interval.crm.contacts):,} Contacts, {len(interval.crm.opportunities):,} Opportunities "
        f"in {generated:.1f} s"
    )
    load = os.getloadavg()[0]
    with PeakRss() as rss:
        started, cpu = time.perf_counter(), time.process_time()
        result = plan(interval.events, interval.crm, SETTINGS)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    s = result.summary
    print(
        f"plan(): {seconds:.2f} s wall ({cpu:.2f} s CPU; load average {load:.1f} on "
        f"{os.cpu_count()} cores before), {args.events / seconds:,.0f} events/s, "
        f"{interval.recipients / seconds:,.0f} recipients/s"
    )
    print(
        f"  -> {s['tasks']:,} tasks ({s['shared_tasks']:,} shared; individual mode would make "
        f"{s['individual_mode_tasks']:,}), {s['relations']:,} relations, {len(result.rejected):,} rejected"
    )
    print(
        f"  -> {s['salesforce_events']:,} Salesforce Events for meetings (individual mode would "
        f"make {s['individual_mode_salesforce_events']:,} Tasks), {s['event_relations']:,} relations"
    )
    print(
        f"peak RSS while planning: {_gib(rss.peak)} (before: {_gib(rss.before)}); "
        f"process peak (ru_maxrss): {_gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}"
    )
    if args.reference:
        compare_with_reference(args.reference, args.seed)
    return 0


def compare_with_reference(n: int, seed: int) -> None:
    try:
        from activity_sync import reference
    except ImportError:
        print("reference: include/activity_sync/reference.py is not there yet")
        return
    interval = generate(n, seed)
    started = time.perf_counter()
    ours = plan(interval.events, interval.crm, SETTINGS)
    fast = time.perf_counter() - started
    started = time.perf_counter()
    theirs = reference.plan(interval.events, interval.crm, SETTINGS)
    slow = time.perf_counter() - started
    print(
        f"reference on {n:,} events: reference.plan {slow:.2f} s, plan {fast:.3f} s, "
        f"speed-up {slow / fast:,.0f}x (same plan: {_same(ours, theirs)})"
    )


def _same(ours: Plan, theirs: Plan) -> bool:
    """Equal Tasks, Salesforce Events, their relations and counts, compared as plain
    values (None for null)."""

    def rows(frame: pd.DataFrame) -> list[list[object]]:
        values = frame.astype(object)
        return values.where(values.notna(), None).values.tolist()

    counts = [*SUMMARY_KEYS, "mode"]
    return (
        rows(ours.tasks) == rows(theirs.tasks)
        and rows(ours.relations) == rows(theirs.relations)
        and rows(ours.salesforce_events) == rows(theirs.salesforce_events)
        and rows(ours.event_relations) == rows(theirs.event_relations)
        and [ours.summary[k] for k in counts] == [theirs.summary[k] for k in counts]
    )


if __name__ == "__main__":
    sys.exit(main())
