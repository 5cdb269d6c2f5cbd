"""The audit report a sales admin reads: one self-contained HTML page per org and day.

Rendered from the ``audit.json`` document alone, so a report can be re-rendered from any
stored audit. No script, stylesheet, font or image is fetched: the CSS is inline and the
chart is a base64 PNG, so the file can be mailed, archived or opened offline. Every value
is HTML-escaped (sender addresses and error messages come from outside), and the document
holds addresses and counts, never a subject or a body. The pages are Jinja templates in
``templates/``, shipped as package data: the report, the UI plugin's list of reports and
its "no such report" page, which share one stylesheet.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jinja2

from activity_sync.schema import REASONS

SHARED_COLOUR = "#2563eb"
INDIVIDUAL_COLOUR = "#f97316"
COUNTERFACTUAL_COLOUR = "#9ca3af"
MISSING_COLOUR = "#b91c1c"
MAX_DIFFERENCES_SHOWN = 200
# Where the UI plugin puts its link back to the list; a mailed report keeps the comment.
NAV_MARKER = "<!-- activity-audit:nav -->"
# The verdict's levels, worst first.
BAD, WARN, GOOD = "bad", "warn", "ok"
# Reasons that leave a whole event out, as opposed to one recipient of it.
EVENT_REASONS = (
    "malformed",
    "missing_field",
    "invalid_field",
    "unknown_type",
    "wrong_org",
    "duplicate_event",
)


def fmt_int(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{int(value):,}"


def fmt_pct(value: Any) -> str:
    """Signed, one decimal, ASCII minus (so the figure can be searched and copied)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):+.1f}%"


def fewer(value: Any) -> str:
    """A change against one Task per person, in words: "58.7% fewer", "12.0% more", "the same"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    change = float(value)
    if round(change, 1) == 0:
        return "the same"
    return f"{abs(change):.1f}% {'fewer' if change < 0 else 'more'}"


def savings(value: Any) -> str:
    """The headline figure: "58.7% fewer Tasks than one per person"."""
    words = fewer(value)
    if words == "–":
        return "no Tasks to compare"
    if words == "the same":
        return "as many Tasks as one per person"
    return f"{words} Tasks than one per person"


def when(stamp: str | None) -> str:
    """An ISO timestamp for people: "Sat 21 Nov 2026, 00:30 UTC"."""
    if not stamp:
        return "–"
    moment = datetime.fromisoformat(stamp)
    zone = moment.tzname() or "UTC"
    return f"{moment:%a %d %b %Y, %H:%M} {zone}"


def long_day(day: str) -> str:
    """YYYY-MM-DD as "Fri 20 Nov 2026"."""
    return f"{datetime.fromisoformat(day):%a %d %b %Y}"


def verdict(document: Mapping[str, Any]) -> tuple[str, str]:
    """The report's answer in one sentence, and how bad it is (``BAD``, ``WARN``, ``GOOD``).

    Missing hours and reconciliation differences are ``BAD`` (Salesforce lacks what it
    should hold); other alerts, or hours still in progress, are ``WARN``.
    """
    coverage = document["coverage"]
    expected, synced = len(coverage["expected"]), len(coverage["synced"])
    reconciliation = (document.get("reconciliation") or {}).get("status")
    problems = []
    if coverage["missing"]:
        missing = len(coverage["missing"])
        problems.append(f"{missing} of {expected} hours not synced ({coverage['missing_text']})")
    if reconciliation == "differences":
        problems.append(
            f"Salesforce differs from the plans: {document['reconciliation']['summary']}"
        )
    if problems:
        return BAD, "Incomplete: " + "; ".join(problems) + "."
    hours = f"{synced} of {expected} hours synced" + ("" if coverage["day_over"] else " so far")
    if coverage["in_progress"]:
        hours += f", {len(coverage['in_progress'])} in progress"
    if reconciliation == "ok":
        held = "Task"
        if document["reconciliation"].get("salesforce_events_expected"):
            held = "Task and Salesforce Event"  # R14: meetings were planned as Events
        checked, level = f"Salesforce holds every planned {held}", GOOD
    else:
        checked, level = "not checked against Salesforce", WARN
    if document["alerts"]:
        return WARN, f"{hours}; {checked}; {len(document['alerts'])} alert(s) below."
    return level, f"{hours}; {checked}."


def _chart_figure(hours: list[Mapping[str, Any]], labels: list[Mapping[str, Any]], missing):
    """The figure of ``hour_chart``, kept apart so its layout can be checked."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    by_hour = {int(h["hour"]): h for h in hours}
    xs = list(range(24))
    tasks = [by_hour.get(x, {}).get("tasks", 0) for x in xs]
    individual = [by_hour.get(x, {}).get("individual_mode_tasks", 0) for x in xs]
    colours = [
        INDIVIDUAL_COLOUR if by_hour.get(x, {}).get("mode") == "individual" else SHARED_COLOUR
        for x in xs
    ]
    fig = Figure(figsize=(9, 3.4), dpi=100)
    ax = fig.add_subplot()
    width = 0.4
    ax.bar([x - width / 2 for x in xs], tasks, width, color=colours)
    ax.bar([x + width / 2 for x in xs], individual, width, color=COUNTERFACTUAL_COLOUR)
    top = max([*tasks, *individual, 1])
    for x in xs:
        if by_hour.get(x, {}).get("fallback"):
            ax.annotate(
                "fallback",
                (x, max(tasks[x], individual[x]) + top * 0.02),
                ha="center",
                va="bottom",
                fontsize=7,
                color=MISSING_COLOUR,
            )
    ax.set_xticks(xs, [labels[x]["local"][:2] for x in xs], fontsize=7)
    for x, tick in zip(xs, ax.get_xticklabels(), strict=True):
        if x in missing:
            tick.set_color(MISSING_COLOUR)
            tick.set_fontweight("bold")
    zone = "UTC" if labels[0]["label"].endswith(" UTC") else "local time"
    ax.set_xlabel(f"Hour ({zone}; red: not synced)", fontsize=8)
    ax.set_ylabel("Tasks")
    ax.set_ylim(0, top * 1.12)
    ax.spines[["top", "right"]].set_visible(False)
    # Above the plot, never over the bars.
    fig.legend(
        handles=[
            Patch(color=SHARED_COLOUR, label="Tasks made, shared"),
            Patch(color=INDIVIDUAL_COLOUR, label="Tasks made, one per person (fallback)"),
            Patch(color=COUNTERFACTUAL_COLOUR, label="One Task per person would make"),
        ],
        fontsize=7,
        frameon=False,
        loc="upper center",
        ncol=3,
        bbox_to_anchor=(0.5, 1.0),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def hour_chart(hours: list[Mapping[str, Any]], labels: list[Mapping[str, Any]], missing=()) -> str:
    """Tasks per hour, coloured by the mode in force, beside what one per person makes.

    Args:
        hours: the document's ``hours``.
        labels: the document's ``hour_labels`` (the x axis is in the org's time zone).
        missing: UTC hours not synced; their labels are red.

    Returns a ``data:`` URI of a PNG. matplotlib is imported here, not at module level,
    so the UI plugin (which only formats numbers from this module) stays light.
    """
    buffer = io.BytesIO()
    _chart_figure(hours, labels, set(missing)).savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# Autoescaped: sender addresses, alert messages and Salesforce errors come from outside.
# The report is strict (a key missing from the document is a bug); the list of reports
# renders whatever each stored audit.json holds.
_LOADER = jinja2.PackageLoader("activity_sync", "templates")
_REPORT = jinja2.Environment(loader=_LOADER, autoescape=True, undefined=jinja2.StrictUndefined)
_INDEX = jinja2.Environment(loader=_LOADER, autoescape=True)
_HELPERS = {"n": fmt_int, "pct": fmt_pct, "fewer": fewer, "savings": savings, "when": when}


def render_report(document: Mapping[str, Any]) -> str:
    """The report of one audit (``templates/report.html``).

    Args:
        document: an ``audit.json`` document, as ``audit.run_audit`` builds it.

    Returns:
        A complete HTML page; at most ``MAX_DIFFERENCES_SHOWN`` reconciliation differences
        are listed, with a note saying how many more ``audit.json`` holds.
    """
    reconciliation = document.get("reconciliation") or {"status": "skipped"}
    differences = reconciliation.get("differences") or []
    rejected = document["headline"]["rejected_by_reason"]
    level, sentence = verdict(document)
    return _REPORT.get_template("report.html").render(
        doc=document,
        h=document["headline"],
        cov=document["coverage"],
        labels=document["hour_labels"],
        rec=reconciliation,
        differences=differences[:MAX_DIFFERENCES_SHOWN],
        hidden=max(0, len(differences) - MAX_DIFFERENCES_SHOWN),
        chart=hour_chart(
            document["hours"], document["hour_labels"], document["coverage"]["missing"]
        ),
        verdict_level=level,
        verdict=sentence,
        day=long_day(document["date"]),
        event_rejections={r: n for r, n in rejected.items() if r in EVENT_REASONS},
        recipient_rejections={r: n for r, n in rejected.items() if r not in EVENT_REASONS},
        reasons=REASONS,
        nav_marker=NAV_MARKER,
        **_HELPERS,
    )


def render_index(
    rows: list[Mapping[str, Any]], orgs: list[str], chosen: Mapping[str, str], total: int
) -> str:
    """The UI plugin's list of reports (``templates/audit_index.html``).

    Args:
        rows: one per report shown, newest first: ``org_id``, ``day``, and from its
            ``audit.json`` the ``headline``, ``coverage`` and ``alerts`` (how many).
        orgs: every org that has a report (the filter's choices).
        chosen: the filter as given: ``org``, ``from`` and ``to`` (empty: any).
        total: how many reports there are before filtering.

    Returns:
        A complete HTML page linking each report.
    """
    return _INDEX.get_template("audit_index.html").render(
        rows=rows, orgs=orgs, chosen=chosen, total=total, **_HELPERS
    )


def render_missing(org_id: str, day: str) -> str:
    """The page for a report that does not exist (yet)."""
    return _INDEX.get_template("audit_missing.html").render(org_id=org_id, day=day)


def render_not_found(home: str) -> str:
    """The page for an address the Activity audit does not have; ``home`` links its list."""
    return _INDEX.get_template("audit_not_found.html").render(home=home)
