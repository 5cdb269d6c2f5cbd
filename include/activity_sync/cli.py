"""The command line: plan an interval from files, or explain one event of it.

    python -m activity_sync plan --events FILE --crm DIR --settings FILE --out DIR
    python -m activity_sync explain --event-id ID --events FILE --crm DIR --settings FILE

Exit 0 on success; exit 2 with one line on stderr naming the input that cannot be used
(a missing or unreadable file, a bad settings key, a CRM object or column missing, an
event_id not in the file). Bad rows are never such an error: they are rejected rows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from activity_sync.crm import read_crm
from activity_sync.errors import ActivitySyncError
from activity_sync.events import read_events
from activity_sync.explain import explain
from activity_sync.plan import add_rejections, plan, write_plan
from activity_sync.settings import load_settings

UNUSABLE_INPUT = 2


class OutputError(ActivitySyncError, OSError):
    """The plan folder cannot be written."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except ActivitySyncError as exc:
        print(f"activity-sync: error: {exc}", file=sys.stderr)
        return UNUSABLE_INPUT


def _plan(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings)
    events, malformed = read_events(args.events)
    crm = read_crm(args.crm)
    planned = plan(events, crm, settings, salesforce_shared_activities=args.shared)
    planned = add_rejections(planned, malformed)
    try:
        write_plan(planned, args.out)
    except OSError as exc:
        raise OutputError(f"cannot write the plan to {args.out}: {exc}") from exc
    s = planned.summary
    print(
        f"planned {s['events']} events into {s['tasks']} Tasks ({s['shared_tasks']} shared, "
        f"{s['individual_tasks']} individual; individual mode would make "
        f"{s['individual_mode_tasks']}) with {s['relations']} relations; "
        f"{s['salesforce_events']} Salesforce Events for meetings (individual mode would make "
        f"{s['individual_mode_salesforce_events']} Tasks) with {s['event_relations']} "
        "relations; "
        f"rejected {s['events_rejected']} events; addresses excluded "
        f"{s['recipients_excluded']}, unmatched {s['recipients_unmatched']}; "
        f"mode {s['mode']} ({s['mode_reason']}); wrote {args.out}"
    )
    return 0


def _explain(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings)
    events, _ = read_events(args.events)
    crm = read_crm(args.crm)
    text = explain(args.event_id, events, crm, settings, salesforce_shared_activities=args.shared)
    print(text, end="")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m activity_sync",
        description="Plan email activity into Salesforce Tasks (Shared Activities).",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def inputs(command: argparse.ArgumentParser) -> None:
        command.add_argument("--events", required=True, help="events file, .jsonl or .parquet")
        command.add_argument("--crm", required=True, help="CRM snapshot folder")
        command.add_argument("--settings", required=True, help="org settings JSON file")
        command.add_argument(
            "--salesforce-shared-activities",
            dest="shared",
            type=_on_off,
            default=True,
            metavar="on|off",
            help="whether the Salesforce org has Shared Activities enabled (default on)",
        )

    planning = commands.add_parser("plan", help="write the plan folder of an interval")
    inputs(planning)
    planning.add_argument("--out", required=True, help="plan folder to (over)write")
    planning.set_defaults(command=_plan)

    explaining = commands.add_parser("explain", help="show which Tasks one event became")
    explaining.add_argument("--event-id", required=True)
    inputs(explaining)
    explaining.set_defaults(command=_explain)
    return parser


def _on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")
    return value == "on"
