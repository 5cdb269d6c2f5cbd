"""The audit report a sales admin reads: one self-contained HTML page per org and day.

Rendered from the ``audit.json`` document alone, so a report can be re-rendered from any
stored audit. No script, stylesheet, font or image is fetched: the CSS is inline and the
chart is a base64 PNG, so the file can be mailed, archived or opened offline. Every value
is HTML-escaped (sender addresses and error messages come from outside).
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


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Activity audit · {{ doc.org_id }} · {{ doc.date }}</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827;
         margin: 0 auto; max-width: 1100px; padding: 24px; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }
  .muted { color: #6b7280; }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px;
           margin: 16px 0; padding: 0; }
  .card { border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 12px; margin: 0; }
  .card dt { color: #6b7280; font-size: 12px; }
  .card dd { margin: 2px 0 0; font-size: 22px; font-weight: 600; }
  .card dd small { font-size: 12px; font-weight: 400; color: #6b7280; display: block; }
  .ok { color: #15803d; } .bad { color: #b91c1c; }
  .alerts { list-style: none; padding: 0; }
  .alerts li { border-left: 4px solid #f59e0b; background: #fffbeb; padding: 8px 12px; margin: 6px 0; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #f3f4f6; vertical-align: top; }
  th { background: #f9fafb; font-weight: 600; }
  td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
  .mode-individual { color: #c2410c; font-weight: 600; }
  img.chart { max-width: 100%; height: auto; }
  code { font-size: 12px; }
</style>
</head>
<body>
<h1>Activity audit: {{ doc.org_id }} · {{ doc.date }}</h1>
<p class="muted">Generated {{ doc.generated_at }}.
{%- if doc.compared_with %} Compared with {{ doc.compared_with }}.{% endif %}
Day = lake partition date (UTC hours).</p>

<dl class="cards" id="headline">
  <div class="card"><dt>Events</dt><dd id="metric-events">{{ n(h.events) }}
    <small>{{ n(h.events_received) }} received, {{ n(h.events_rejected) }} rejected
    {%- if h.events_redelivered %}, {{ n(h.events_redelivered) }} delivered again in a later hour{% endif %}</small></dd></div>
  <div class="card"><dt>Tasks created</dt><dd id="metric-tasks-loaded">{{ n(h.tasks_loaded) }}
    <small>of {{ n(h.tasks) }} planned</small></dd></div>
  <div class="card"><dt>Individual mode would have made</dt>
    <dd id="metric-individual-mode-tasks">{{ n(h.individual_mode_tasks) }}</dd></div>
  <div class="card"><dt>Change (planned vs individual mode)</dt>
    <dd id="metric-change-pct">{{ pct(h.change_pct) }}</dd></div>
  <div class="card"><dt>TaskRelations (people on Tasks)</dt>
    <dd id="metric-relations">{{ n(h.relations) }}</dd></div>
  <div class="card"><dt>Rejected recipients</dt>
    <dd id="metric-rejected-recipients">{{ n(h.rejected_recipients) }}</dd></div>
  <div class="card"><dt>Dead-lettered rows</dt>
    <dd id="metric-dead-lettered" class="{{ 'bad' if h.dead_lettered else '' }}">{{ n(h.dead_lettered) }}</dd></div>
  <div class="card"><dt>Reconciliation with Salesforce</dt>
    <dd id="metric-reconciliation" class="{{ {'ok': 'ok', 'differences': 'bad'}.get(h.reconciliation, '') }}">
      {{- {'ok': 'OK', 'differences': 'Differences', 'skipped': 'Skipped'}.get(h.reconciliation, h.reconciliation) -}}
    </dd></div>
</dl>

<h2>Alerts</h2>
{% if doc.alerts %}
<ul class="alerts" id="alerts">
{% for a in doc.alerts %}  <li data-kind="{{ a.kind }}"><strong>{{ a.kind | replace('_', ' ') }}</strong>: {{ a.message }}</li>
{% endfor %}</ul>
{% else %}
<p class="ok" id="alerts">No alerts.</p>
{% endif %}

<h2>Tasks per hour</h2>
<img class="chart" alt="Bar chart of Tasks per hour in shared and individual mode" src="{{ chart }}">
<table id="hours">
<thead><tr><th>Hour (UTC)</th><th>Mode</th><th>Why</th><th class="n">Events</th><th class="n">Tasks</th>
<th class="n">Individual mode</th><th class="n">Change</th><th>Load</th><th class="n">Dead-lettered</th></tr></thead>
<tbody>
{% for r in doc.hours %}<tr><td>{{ '%02d' % r.hour }}:00</td>
<td class="mode-{{ r.mode }}">{{ r.mode }}{% if r.fallback %} (fallback){% endif %}</td><td>{{ r.mode_reason }}</td>
<td class="n">{{ n(r.events) }}</td><td class="n">{{ n(r.tasks) }}</td><td class="n">{{ n(r.individual_mode_tasks) }}</td>
<td class="n">{{ pct(r.change_pct) }}</td><td>{{ r.load_state | replace('_', ' ') }}</td><td class="n">{{ n(r.dead_lettered) }}</td></tr>
{% else %}<tr><td colspan="9" class="muted">No hour of this day was planned.</td></tr>
{% endfor %}</tbody>
</table>

<h2>Per sender</h2>
<table id="senders">
<thead><tr><th>Sender</th><th class="n">Events</th><th class="n">Tasks</th><th class="n">Loaded</th>
<th class="n">Individual mode</th><th class="n">Change</th><th class="n">TaskRelations</th>
<th class="n">Rejected</th><th class="n">Dead-lettered</th></tr></thead>
<tbody>
{% for r in doc.senders %}<tr><td>{{ r.sender }}</td><td class="n">{{ n(r.events) }}</td>
<td class="n">{{ n(r.tasks) }}</td><td class="n">{{ n(r.tasks_loaded) }}</td>
<td class="n">{{ n(r.individual_mode_tasks) }}{% if r.individual_mode_estimated %}*{% endif %}</td>
<td class="n">{{ pct(r.change_pct) }}</td><td class="n">{{ n(r.relations) }}</td>
<td class="n">{{ n(r.rejected) }}</td><td class="n">{{ n(r.dead_lettered) }}</td></tr>
{% else %}<tr><td colspan="9" class="muted">No events.</td></tr>
{% endfor %}</tbody>
</table>
<p class="muted">* Per sender, the Tasks individual mode would have made count one Task per
Contact on each shared Task copy. That is exact unless one email went to Contacts whose
Accounts or Opportunity roles differ from the primary Contact's; the day's total above is
the planner's exact figure{% if sender_individual != h.individual_mode_tasks %} (senders sum to
{{ n(sender_individual) }}){% endif %}.</p>

<h2>Rejected by reason</h2>
<table id="rejected">
<thead><tr><th>Reason</th><th>Meaning</th><th class="n">Rows</th></tr></thead>
<tbody>
{% for reason, count in h.rejected_by_reason.items() %}<tr><td><code>{{ reason }}</code></td>
<td>{{ reasons.get(reason, '') }}</td><td class="n">{{ n(count) }}</td></tr>
{% else %}<tr><td colspan="3" class="muted">Nothing was rejected.</td></tr>
{% endfor %}</tbody>
</table>

<h2>Reconciliation with Salesforce</h2>
{% if rec.status == 'skipped' %}
<p class="muted" id="reconciliation">Not run for this audit.</p>
{% else %}
<p id="reconciliation" class="{{ 'ok' if rec.status == 'ok' else 'bad' }}">{{ rec.summary }}.</p>
<p class="muted">{{ n(rec.tasks_found) }} Tasks found for {{ n(rec.tasks_expected) }} planned;
{{ n(rec.relations_found) }} TaskRelations read for {{ n(rec.relations_expected) }} planned
(people checked in {{ rec.relations_checked_in }}); {{ n(rec.api_calls) }} API calls.</p>
{% if differences %}
<table id="differences">
<thead><tr><th>Object</th><th>Difference</th><th>Key</th><th>Salesforce Id</th><th>Person</th><th>Cause</th></tr></thead>
<tbody>
{% for d in differences %}<tr><td>{{ d.object }}</td><td>{{ d.kind }}</td><td><code>{{ d.task_key or '' }}</code></td>
<td><code>{{ d.Id or d.TaskId or '' }}</code></td><td><code>{{ d.RelationId or '' }}</code></td><td>{{ d.cause }}</td></tr>
{% endfor %}</tbody>
</table>
{% if hidden %}<p class="muted">{{ n(hidden) }} more differences are listed in audit.json.</p>{% endif %}
{% endif %}
{% endif %}

<h2>How to read this</h2>
<ul class="muted">
<li>Shared mode relates one Task to up to 50 Contacts, so it makes fewer Tasks than
individual mode (one Task per person). The change is (Tasks − individual mode) ÷ individual mode.</li>
<li>An hour falls back to individual mode when Salesforce has Shared Activities off while
the tenant setting has it on.</li>
<li>Day-over-day alert: Tasks moved more than {{ doc.options.change_threshold_pct }}% and
today's events, at yesterday's Tasks per event of each type, do not explain it.</li>
</ul>
</body>
</html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False)
_COMPILED = _ENV.from_string(_TEMPLATE)


def render_report(document: Mapping[str, Any]) -> str:
    """The report of one ``audit.json`` document."""
    reconciliation = document.get("reconciliation") or {"status": "skipped"}
    differences = reconciliation.get("differences") or []
    return _COMPILED.render(
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
