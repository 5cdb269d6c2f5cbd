"""report.py: the HTML a sales admin opens, checked in headless Chromium and as text."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path

import pytest
from browser import dump_dom, requires_chromium, text_by_id
from test_audit import DAY, NOW, ORG, sample_day

from activity_sync import audit, lake
from activity_sync.report import (
    MAX_DIFFERENCES_SHOWN,
    fmt_pct,
    hour_chart,
    render_index,
    render_report,
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
    assert text["metric-individual-mode-tasks"] == "67"
    assert text["metric-change-pct"] == "-89.6%"
    assert text["metric-relations"] == "69"
    assert text["metric-rejected-recipients"] == "5"
    assert text["metric-dead-lettered"] == "1"
    assert text["metric-reconciliation"] == "Skipped"
    assert "10:00 UTC fell back to individual mode" in text["alerts"]
    assert "alice@acme.com 3 5 4 63* -92.1% 63 3 1" in text["senders"]
    assert "10:00 individual (fallback)" in text["hours"]


def test_the_report_fetches_nothing_from_elsewhere(document: dict) -> None:
    html = render_report(document)
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html, re.I)
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html, re.I)
    assert references and all(ref.startswith("data:image/png;base64,") for ref in references)
    assert "url(" not in html and "@import" not in html


def test_the_chart_is_an_embedded_png(document: dict) -> None:
    uri = hour_chart(document["hours"])
    png = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (900, 320)


def test_text_from_outside_is_escaped(document: dict) -> None:
    doc = copy.deepcopy(document)
    doc["senders"][0]["sender"] = "<script>alert(1)</script>@evil.com"
    doc["alerts"][0]["message"] = "<img src=x onerror=alert(1)>"
    html = render_report(doc)
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@evil.com" in html


def test_the_sender_estimate_is_labelled_when_it_differs_from_the_exact_total(
    document: dict,
) -> None:
    html = render_report(document)
    assert "63*" in html
    assert "senders sum to\n69" in html or "senders sum to 69" in " ".join(html.split())


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
    assert {"report.html", "audit_index.html"} <= {t.name for t in templates.iterdir()}


def test_the_list_of_reports_escapes_what_it_read_from_the_lake(document: dict) -> None:
    row = {
        "org_id": "<b>acme</b>",
        "day": DAY,
        "headline": document["headline"],
        "alerts": 1,
        "generated_at": document["generated_at"],
    }
    html = render_index([row])
    assert "<b>acme" not in html and "&lt;b&gt;acme&lt;/b&gt;" in html
    assert f'href="reports/&lt;b&gt;acme&lt;/b&gt;/{DAY}"' in html
    assert "No audit reports yet." in render_index([])
