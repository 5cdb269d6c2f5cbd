"""report.py: the HTML a sales admin opens, checked in headless Chromium and as text."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path

import pytest
from audit_days import DAY, NOW, ORG, meeting_hour, sample_day
from browser import dump_dom, requires_chromium, text_by_id

from activity_sync import audit, lake
from activity_sync.report import (
    MAX_DIFFERENCES_SHOWN,
    _chart_figure,
    fewer,
    fmt_pct,
    hour_chart,
    render_index,
    render_report,
    savings,
    when,
)


@pytest.fixture
def document(tmp_path: Path) -> dict:
    sample_day(tmp_path)
    return audit.run_audit(tmp_path, ORG, DAY, now=NOW).document


@requires_chromium
def test_chromium_renders_the_headline_numbers_of_the_report(tmp_path: Path) -> None:
    sample_day(tmp_path)
    audit.run_audit(tmp_path, ORG, DAY, now=NOW)
    report = lake.audit_folder(tmp_path, ORG, DAY) / lake.AUDIT_REPORT
    dom = dump_dom(report.as_uri())
    text = text_by_id(dom)
    assert text["metric-events"].startswith("5 ")
    assert text["metric-tasks-loaded"] == "6 of 7 planned"
    assert text["metric-savings"].startswith("89.6% fewer Tasks than one per person")
    assert text["metric-savings-detail"] == "7 Tasks where one per person makes 67"
    assert text["metric-relations"].startswith("69 ")
    assert text["metric-rejected-recipients"] == "5 1 not in Salesforce"
    assert text["metric-dead-lettered"] == "1 dead-lettered rows"
    assert text["metric-reconciliation"] == "Skipped"
    assert text["metric-coverage"].startswith("2 of 24 not synced: 00:00–09:00 UTC")
    assert text["verdict"].startswith("Incomplete: 20 of 24 hours not synced")
    assert "10:00 UTC fell back to individual mode" in text["alerts"]
    assert "alice@acme.com 3 5 4 63* 92.1% fewer 0 0 0 3 1" in text["senders"]
    assert "10:00 UTC synced individual: fallback, Salesforce org has" in text["hours"]
    assert text["subtitle"].startswith("Fri 20 Nov 2026, 00:00–24:00 UTC. Report made Sat 21 Nov")


def test_the_report_fetches_nothing_from_elsewhere(document: dict) -> None:
    html = render_report(document)
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html, re.I)
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html, re.I)
    assert references and all(ref.startswith("data:image/png;base64,") for ref in references)
    assert "url(" not in html and "@import" not in html


def test_the_chart_is_an_embedded_png(document: dict) -> None:
    uri = hour_chart(document["hours"], document["hour_labels"])
    png = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (900, 340)


def test_the_chart_legend_does_not_overlap_the_bars(document: dict) -> None:
    """The legend sits above the plot: no bar, however tall, can run under it."""
    hours = [dict(h, tasks=1000, individual_mode_tasks=1000) for h in document["hours"]]
    fig = _chart_figure(hours, document["hour_labels"], {0, 1})
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    (ax,) = fig.axes
    bars = [p.get_window_extent(renderer) for p in ax.patches if p.get_height() > 0]
    assert bars and not any(box.overlaps(bar) for bar in bars)
    assert box.y0 >= ax.get_window_extent(renderer).y1
    missing = [t for t in ax.get_xticklabels() if t.get_color() == "#b91c1c"]
    assert [t.get_text() for t in missing] == ["00", "01"]


def test_text_from_outside_is_escaped(document: dict) -> None:
    doc = copy.deepcopy(document)
    doc["senders"][0]["sender"] = "<script>alert(1)</script>@evil.com"
    doc["alerts"][0]["message"] = "<img src=x onerror=alert(1)>"
    html = render_report(doc)
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@evil.com" in html


def test_the_sender_estimate_is_labelled(document: dict) -> None:
    html = render_report(document)
    assert "63*" in html
    assert "* Estimated: one Task per person" in html


def test_no_table_repeats_a_column() -> None:
    from importlib.resources import files

    template = (files("activity_sync") / "templates" / "report.html").read_text()
    for table in re.findall(r"<thead><tr>(.*?)</tr></thead>", template, re.S):
        headers = re.findall(r"<th[^>]*>(.*?)</th>", table)
        assert len(headers) == len(set(headers)), headers


def test_figures_read_as_sentences_and_times_for_people() -> None:
    assert savings(-58.66) == "58.7% fewer Tasks than one per person"
    assert savings(12) == "12.0% more Tasks than one per person"
    assert savings(0.01) == "as many Tasks as one per person"
    assert savings(None) == "no Tasks to compare"
    assert (fewer(-92.06), fewer(None)) == ("92.1% fewer", "–")
    assert when("2026-11-21T00:30:00+00:00") == "Sat 21 Nov 2026, 00:30 UTC"


def test_a_long_list_of_differences_is_cut_and_says_where_the_rest_is(document: dict) -> None:
    doc = copy.deepcopy(document)
    row = {
        "object": "Task",
        "kind": "missing",
        "task_key": "as1_x",
        "Id": None,
        "TaskId": None,
        "RelationId": None,
        "cause": "deleted or changed in Salesforce after the load",
    }
    doc["reconciliation"] = {
        "status": "differences",
        "summary": "250 missing Tasks",
        "tasks_found": 0,
        "tasks_expected": 250,
        "relations_found": 0,
        "relations_expected": 0,
        "relations_checked_in": "TaskRelation",
        "dates_scanned": [DAY],
        "other_days_tasks": 0,
        "api_calls": 2,
        "differences": [row] * 250,
    }
    doc["headline"]["reconciliation"] = "differences"
    html = render_report(doc)
    assert html.count("<td>missing</td>") == MAX_DIFFERENCES_SHOWN
    assert "50 more differences are listed in audit.json" in html
    assert 'id="metric-reconciliation" class="bad">Differences' in html


def test_percentages_are_signed_with_one_decimal() -> None:
    assert (fmt_pct(-89.56), fmt_pct(12), fmt_pct(None), fmt_pct(float("nan"))) == (
        "-89.6%",
        "+12.0%",
        "–",
        "–",
    )


def test_the_templates_are_package_data_of_the_installed_package() -> None:
    from importlib.resources import files

    templates = files("activity_sync") / "templates"
    names = {t.name for t in templates.iterdir()}
    assert {"report.html", "audit_index.html", "audit_missing.html", "_style.html"} <= names


def test_the_list_of_reports_escapes_what_it_read_from_the_lake(document: dict) -> None:
    row = {
        "org_id": "<b>acme</b>",
        "day": DAY,
        "headline": document["headline"],
        "coverage": document["coverage"],
        "alerts": 1,
        "generated_at": document["generated_at"],
    }
    chosen = {"org": "<i>x</i>", "from": "", "to": ""}
    html = render_index([row], ["<b>acme</b>"], chosen, 1)
    assert "<b>acme" not in html and "&lt;b&gt;acme&lt;/b&gt;" in html
    assert f'href="reports/&lt;b&gt;acme&lt;/b&gt;/{DAY}"' in html
    assert "<i>x" not in html
    assert "No audit reports yet." in render_index([], [], {"org": "", "from": "", "to": ""}, 0)
    assert "No report matches the filter." in render_index([], ["a"], chosen, 3)


def test_the_list_shows_coverage_naming_the_missing_hours(document: dict) -> None:
    row = {
        "org_id": ORG,
        "day": DAY,
        "headline": document["headline"],
        "coverage": document["coverage"],
        "alerts": 2,
    }
    html = " ".join(render_index([row], [ORG], {"org": "", "from": "", "to": ""}, 1).split())
    assert '<td class="bad">2 of 24: not synced 00:00–09:00 UTC, 11:00–22:00 UTC</td>' in html
    assert "89.6% fewer" in html


@requires_chromium
def test_r14_the_report_shows_salesforce_events_made_next_to_tasks(tmp_path: Path) -> None:
    sample_day(tmp_path)
    meeting_hour(tmp_path, failed=True)
    audit.run_audit(tmp_path, ORG, DAY, now=NOW)
    report = lake.audit_folder(tmp_path, ORG, DAY) / lake.AUDIT_REPORT
    text = text_by_id(dump_dom(report.as_uri()))
    assert text["metric-salesforce-events-loaded"] == (
        "1 of 2 planned, with 6 people; one per person makes 6 Tasks for these meetings"
    )
    assert text["metric-tasks-loaded"] == "6 of 7 planned", "meetings made Events are no Tasks"
    assert "carol@acme.com 1 0 0 0 – 1 1 5 0 0" in text["senders"]
    assert "meeting 2 0 0.00 2" in text["types"]
    assert "11:00 UTC synced shared 2 0 0 – 2 6 1" in text["hours"]


def test_r14_a_report_of_an_audit_from_before_salesforce_events_still_renders(
    document: dict,
) -> None:
    doc = copy.deepcopy(document)
    for name in ("salesforce_events", "salesforce_events_loaded", "event_relations"):
        doc["headline"].pop(name)
        for row in doc["senders"]:
            row.pop(name)
    html = render_report(doc)
    assert 'id="metric-salesforce-events-loaded">0' in html
