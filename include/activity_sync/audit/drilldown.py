"""Drill-downs for RevOps: who was not synced because Salesforce does not know them, and
which exclusions kept people off Tasks.

- *Unmatched*: addresses rejected as ``unmatched`` (no Contact, no unconverted Lead), the
  most frequent first, and the same by domain: the people and companies to add to
  Salesforce.
- *Exclusions that fired*: each ``excluded`` rejection traced to the setting that caused
  it: the address itself, its domain or a parent domain in ``exclusions``, or the
  automated mailboxes of ``exclude_system_addresses``. A rejection no current setting
  explains (the settings changed since) is counted as such.

Only addresses are read; no subject or body is.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from activity_sync.schema import SYSTEM_LOCAL_PARTS
from activity_sync.settings import Settings

TOP = 10
SYSTEM_RULE = "automated mailboxes (exclude_system_addresses)"
UNEXPLAINED_RULE = "(no current setting: the settings changed since)"


def _addresses(rejected: pd.DataFrame, reason: str) -> pd.DataFrame:
    rows = rejected[rejected["reason"].eq(reason) & rejected["email"].notna()]
    email = rows["email"].astype(str).str.strip().str.lower()
    return pd.DataFrame(
        {
            "email": email,
            "domain": email.str.extract(r"@([^@]*)$", expand=False),
            "event_id": rows["event_id"],
        }
    )


def _top(frame: pd.DataFrame, by: str, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most rejected values of ``by``: rejections and distinct addresses."""
    if frame.empty:
        return []
    grouped = frame.groupby(by).agg(rejections=("email", "size"), addresses=("email", "nunique"))
    grouped = grouped.reset_index().sort_values(
        ["rejections", by], ascending=[False, True], kind="stable"
    )
    return [
        {by: value, "rejections": int(n), "addresses": int(k)}
        for value, n, k in grouped.head(limit)[[by, "rejections", "addresses"]].itertuples(
            index=False
        )
    ]


def unmatched(rejected: pd.DataFrame, limit: int = TOP) -> dict[str, Any]:
    """The top unmatched addresses and domains of the day.

    Args:
        rejected: the day's ``rejected.parquet`` rows (``DayInputs.rejected``).
        limit: how many of each to list.

    Returns:
        ``addresses`` and ``domains`` (each ``{email|domain, rejections, addresses}``, most
        rejections first), and the day's totals ``rejections``, ``distinct_addresses`` and
        ``distinct_domains``.
    """
    frame = _addresses(rejected, "unmatched")
    return {
        "rejections": len(frame),
        "distinct_addresses": int(frame["email"].nunique()),
        "distinct_domains": int(frame["domain"].nunique()),
        "addresses": _top(frame, "email", limit),
        "domains": _top(frame, "domain", limit),
    }


def _rule_of(frame: pd.DataFrame, settings: Settings) -> pd.Series:
    """The setting that excluded each address (R4), the most specific one first."""
    rule = pd.Series(UNEXPLAINED_RULE, index=frame.index, dtype=object)
    if settings.exclude_system_addresses:
        local = frame["email"].str.extract(r"^([^@+]*)", expand=False)
        rule = rule.mask(local.isin(SYSTEM_LOCAL_PARTS), SYSTEM_RULE)
    # Shorter domains first, so a listed subdomain wins over its parent.
    for domain in sorted(settings.excluded_domains, key=len):
        covered = frame["domain"].eq(domain) | frame["domain"].str.endswith("." + domain)
        rule = rule.mask(covered, domain)
    return rule.mask(frame["email"].isin(settings.excluded_addresses), frame["email"])


def exclusions_fired(
    rejected: pd.DataFrame, settings: Settings | None, limit: int = TOP
) -> list[dict[str, Any]]:
    """Each exclusion that kept someone off a Task today, with how often.

    Args:
        rejected: the day's ``rejected.parquet`` rows.
        settings: the org's settings; None lists every exclusion as unexplained.
        limit: how many addresses to name per rule.

    Returns:
        ``{rule, rejections, addresses, examples}`` per rule that fired, most first;
        ``examples`` are up to ``limit`` of the addresses it excluded.
    """
    frame = _addresses(rejected, "excluded")
    if frame.empty:
        return []
    frame["rule"] = _rule_of(frame, settings) if settings else UNEXPLAINED_RULE
    grouped = frame.groupby("rule").agg(
        rejections=("email", "size"),
        addresses=("email", "nunique"),
        examples=("email", lambda e: sorted(set(e))[:limit]),
    )
    grouped = grouped.reset_index().sort_values(
        ["rejections", "rule"], ascending=[False, True], kind="stable"
    )
    return [
        {"rule": r, "rejections": int(n), "addresses": int(k), "examples": list(x)}
        for r, n, k, x in grouped[["rule", "rejections", "addresses", "examples"]].itertuples(
            index=False
        )
    ]
