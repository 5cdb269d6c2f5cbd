"""The audit report a sales admin reads: one self-contained HTML page per org and day.

Rendered from the ``audit.json`` document alone, so a report can be re-rendered from any
stored audit. No script, stylesheet, font or image is fetched: the CSS is inline and the
chart is a base64 PNG, so the file can be mailed, archived or opened offline. Every value
is HTML-escaped (sender addresses and error messages come from outside). The pages are
Jinja templates in ``templates/``, shipped as package data: the report and the UI
plugin's list of reports.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from typing import Any

import jinja2

from activity_sync.schema import REASONS

SHARED_COLOUR = "#2563eb"
INDIVIDUAL_COLOUR = "#f97316"
COUNTERFACTUAL_COLOUR = "#9ca3af"
MAX_DIFFERENCES_SHOWN = 200


def fmt_int(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{int(value):,}"


def fmt_pct(value: Any) -> str:
    """Signed, one decimal, ASCII minus (so the figure can be searched and copied)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):+.1f}%"


def hour_chart(hours: list[Mapping[str, Any]]) -> str:
    """Tasks per hour, coloured by the mode in force, beside what individual mode makes.

    Returns a ``data:`` URI of a PNG. matplotlib is imported here, not at module level,
    so the UI plugin (which only formats numbers from this module) stays light.
    """
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
    fig = Figure(figsize=(9, 3.2), dpi=100)
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
                color="#b91c1c",
            )
    ax.set_xticks(xs, [f"{x:02d}" for x in xs], fontsize=7)
    ax.set_xlabel("Hour (UTC)")
    ax.set_ylabel("Tasks")
    ax.set_ylim(0, top * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(
        handles=[
            Patch(color=SHARED_COLOUR, label="Tasks made, shared mode"),
            Patch(color=INDIVIDUAL_COLOUR, label="Tasks made, individual mode"),
            Patch(color=COUNTERFACTUAL_COLOUR, label="Individual mode would make"),
        ],
        fontsize=7,
        frameon=False,
        loc="upper left",
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# Autoescaped: sender addresses, alert messages and Salesforce errors come from outside.
# The report is strict (a key missing from the document is a bug); the list of reports
# renders whatever each stored audit.json holds.
_LOADER = jinja2.PackageLoader("activity_sync", "templates")
_REPORT = jinja2.Environment(loader=_LOADER, autoescape=True, undefined=jinja2.StrictUndefined)
_INDEX = jinja2.Environment(loader=_LOADER, autoescape=True)


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
    return _REPORT.get_template("report.html").render(
        doc=document,
        h=document["headline"],
        rec=reconciliation,
        differences=differences[:MAX_DIFFERENCES_SHOWN],
        hidden=max(0, len(differences) - MAX_DIFFERENCES_SHOWN),
        chart=hour_chart(document["hours"]),
        sender_individual=sum(r["individual_mode_tasks"] for r in document["senders"]),
        reasons=REASONS,
        n=fmt_int,
        pct=fmt_pct,
    )


def render_index(rows: list[Mapping[str, Any]]) -> str:
    """The UI plugin's list of reports (``templates/audit_index.html``).

    Args:
        rows: one per report, newest first: ``org_id``, ``day``, ``headline`` (from
            ``audit.json``) and ``alerts`` (how many).

    Returns:
        A complete HTML page linking each report.
    """
    return _INDEX.get_template("audit_index.html").render(rows=rows, n=fmt_int, pct=fmt_pct)
