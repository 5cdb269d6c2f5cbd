"""Does Salesforce hold what was planned? Query the day's Tasks back, by key, and diff (R13).

The day's plans name their Tasks by key (R11), so the Tasks are read back by key, in
chunks: exactly the Tasks the day's plans hold, whatever date a Task carries. Then the
TaskRelation rows of the Tasks found are read in chunks of Ids. Queries are cut by SOQL
length, not by row, and switch to Bulk API 2.0 query jobs for big days, so the calls grow
with chunks, not records.

Extra Tasks cannot be found by key. They are looked for by date: every Task carrying our
key prefix whose ActivityDate is one of the dates, in the org's time zone, that the UTC day
overlaps. Most of those belong to the neighbouring days' plans (an org west of UTC has the
evening of its local day in the next UTC day); they are counted, not compared, so the
report can say why Salesforce shows more Tasks on a date than the day planned.

All queries run as ``queryAll``, so the Tasks of an old day, which Salesforce has
archived, are found.

Differences, each listed by key:

- *missing*: a planned Task no Salesforce Task carries the key of; a planned person not
  related to a Task that exists (the Task's WhoId counts: Salesforce keeps the primary
  there, and without Shared Activities there is no TaskRelation at all). Relations of a
  missing Task are not listed again.
- *extra*: a Task with our prefix, dated on the scanned dates, that no plan partition of
  the neighbouring days holds (a Task an earlier plan of an hour made, which a re-plan no
  longer holds); a TaskRelation on a planned Task that no plan put there.
- *duplicated*: a second Task with the same key (Salesforce enforces a unique external
  id, but an admin or an import can break it), or a second TaskRelation for the same
  Task and person. The copy the load reported (else the lowest Id) is the one kept; the
  others are listed.

Salesforce Events (R14) are reconciled the same way, beside the Tasks: by ``event_key``,
our other Events on the scanned dates, and the EventRelation rows that relate their people
(``IsParent`` true; a person merely invited is not a relation).

It assumes one Salesforce org per tenant: another tenant's Tasks in the same org would
carry our prefix too and show as extra.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from simple_salesforce.format import format_soql

from activity_sync.activity_kinds import SALESFORCE_EVENTS, TASKS, ActivityKind
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import EVENT_KEY_PREFIX, TASK_KEY_PREFIX
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD

log = logging.getLogger(__name__)

# The reconciliation's status in audit.json; SKIPPED when the audit ran without Salesforce.
OK, DIFFERENCES, SKIPPED = "ok", "differences", "skipped"
DIFFERENCE_COLUMNS = [
    "object",
    "kind",
    "task_key",
    "event_key",
    "Id",
    "TaskId",
    "EventId",
    "RelationId",
    "cause",
]
# Each object's name in the counts' keys ("missing_tasks", "extra_event_relations", ...).
_COUNTED_AS = {
    TASKS.object_name: "tasks",
    TASKS.relation_object: "relations",
    SALESFORCE_EVENTS.object_name: "salesforce_events",
    SALESFORCE_EVENTS.relation_object: "event_relations",
}
_LABELS = {
    "tasks": "Tasks",
    "relations": "TaskRelations",
    "salesforce_events": "Salesforce Events",
    "event_relations": "EventRelations",
}
COUNT_LABELS = {
    f"{kind}_{counted}": f"{kind} {label}"
    for counted, label in _LABELS.items()
    for kind in ("missing", "extra", "duplicated")
}
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Every query runs as queryAll (archived activities included) and leaves the Recycle Bin out.
LIVE = " AND IsDeleted = false"
TASK_FIELDS = ["Id", "task_key", "ActivityDate", "WhoId"]


@dataclass(frozen=True)
class ReconcileOptions:
    """Which activities are ours (external-ID field, key prefixes) and how queries are cut."""

    external_id_field: str = DEFAULT_EXTERNAL_ID_FIELD
    key_prefix: str = TASK_KEY_PREFIX
    event_key_prefix: str = EVENT_KEY_PREFIX
    # More planned Tasks than one REST page (2,000) -> Bulk API 2.0 query jobs.
    bulk_threshold: int = 2_000
    # Characters of IN (...) values per query: a REST query travels in the URL, a Bulk
    # query in a body capped at 100,000 characters of SOQL.
    rest_in_chars: int = 8_000
    bulk_in_chars: int = 90_000


@dataclass
class SalesforceDay:
    """What Salesforce returned of one kind; activity frames have Id, the key (task_key or
    event_key), ActivityDate and WhoId."""

    tasks: pd.DataFrame  # the activities carrying a planned key
    relations: pd.DataFrame  # Id, TaskId or EventId, RelationId: the people of those
    relations_available: bool = True
    # Activities with our prefix on the scanned dates whose key the day did not plan.
    dated: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TASK_FIELDS))


@dataclass
class PlannedDay:
    """One kind's planned rows and load results of the hours to reconcile."""

    planned: pd.DataFrame
    relations: pd.DataFrame
    results: pd.DataFrame
    relation_results: pd.DataFrame


def _prefix(kind: ActivityKind, options: ReconcileOptions) -> str:
    return options.event_key_prefix if kind is SALESFORCE_EVENTS else options.key_prefix


def _relating(kind: ActivityKind) -> str:
    """SOQL for the relation rows that relate a person (not a record, not a mere invitee)."""
    return "IsWhat = false" + (f" AND {kind.parent_flag} = true" if kind.parent_flag else "")


def _chunks(values: list[str], budget: int) -> Iterator[list[str]]:
    """Equal slices whose quoted, comma-joined length stays within ``budget``.

    Ids and keys have (nearly) one length, so the longest value sets the slice size.
    """
    if not values:
        return
    size = max(1, budget // (max(map(len, values)) + 3))
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _blank_to_null(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Bulk CSV returns '' for null; REST returns None. Make both None, all as text."""
    frame = frame.reindex(columns=columns).astype(object)
    return frame.where(frame.notna() & frame.ne(""), None)


class _Reader:
    """Runs the queries of one reconciliation, by REST or Bulk, and counts nothing itself."""

    def __init__(self, client: SalesforceClient, bulk: bool, options: ReconcileOptions) -> None:
        self.client = client
        self.bulk = bulk
        self.budget = options.bulk_in_chars if bulk else options.rest_in_chars

    def query(self, soql: str) -> pd.DataFrame:
        """Run ``soql`` (which must exclude deleted rows) as ``queryAll``: Salesforce
        archives Tasks whose ActivityDate is a year old, and only ``queryAll`` returns
        archived activities and their relations (SOQL "ALL ROWS" / ``queryAll``:
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_queryall.htm).
        """
        run = self.client.bulk_query if self.bulk else self.client.query
        return run(soql, include_deleted=True)

    def query_in(self, template: str, values: Iterable[str], columns: list[str]) -> pd.DataFrame:
        frames = [
            self.query(format_soql(template, chunk))
            for chunk in _chunks(sorted(set(values)), self.budget)
        ]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=columns)
        return _blank_to_null(pd.concat(frames, ignore_index=True), columns)


def _is_invalid_type(exc: Exception) -> bool:
    """The relation object, or its relating flag, does not exist: Shared Activities is off
    (TaskRelation is gone; EventRelation stays, for invitees, without IsParent)."""
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    return isinstance(exc, SalesforceMalformedRequest) and any(
        code in str(exc.content) for code in ("INVALID_TYPE", "INVALID_FIELD")
    )


def fetch(
    client: SalesforceClient,
    planned_keys: Iterable[str],
    dates: Iterable[str],
    options: ReconcileOptions,
    kind: ActivityKind = TASKS,
) -> SalesforceDay:
    """Read the planned Tasks by key, our other Tasks on ``dates``, and the relations.

    Args:
        client: the org's Salesforce.
        planned_keys: the task_keys (event_keys) of the hours being reconciled.
        dates: ActivityDates (YYYY-MM-DD) on which to look for activities no plan holds.
        options: the external-ID field, the key prefixes and query sizes.
        kind: Tasks, or Salesforce Events (R14).
    """
    ext = options.external_id_field
    if not _FIELD_NAME.fullmatch(ext):
        raise ValueError(f"external id field {ext!r} is not a Salesforce field name")
    keys = sorted(set(planned_keys))
    days = sorted({date.fromisoformat(str(d)) for d in dates})
    reader = _Reader(client, len(keys) > options.bulk_threshold, options)
    columns = ["Id", ext, "ActivityDate", "WhoId"]
    select = f"SELECT Id, {ext}, ActivityDate, WhoId FROM {kind.object_name}"
    prefix = _prefix(kind, options)

    tasks = reader.query_in(select + f" WHERE {ext} IN {{}}{LIVE}", keys, columns)
    dated = pd.DataFrame(columns=columns)
    if days:
        soql = select + f" WHERE {ext} LIKE '{{:like}}%' AND ActivityDate IN {{}}{LIVE}"
        dated = _blank_to_null(reader.query(format_soql(soql, prefix, days)), columns)
    tasks = tasks.rename(columns={ext: kind.key}).reset_index(drop=True)
    dated = dated.rename(columns={ext: kind.key})
    # SOQL's LIKE ignores case; our prefix is exact.
    dated = dated[dated[kind.key].fillna("").str.startswith(prefix)]
    dated = dated[~dated[kind.key].isin(keys)].reset_index(drop=True)

    relation_columns = ["Id", kind.parent_field, "RelationId"]
    try:
        relations = reader.query_in(
            f"SELECT Id, {kind.parent_field}, RelationId FROM {kind.relation_object} "
            f"WHERE {_relating(kind)} AND {kind.parent_field} IN {{}}{LIVE}",
            tasks["Id"],
            relation_columns,
        )
        available = True
    except Exception as exc:
        if not _is_invalid_type(exc):
            raise
        # No Shared Activities, no relation object: WhoId is the only relation.
        log.warning("%s is not queryable (Shared Activities off): %s", kind.relation_object, exc)
        relations, available = pd.DataFrame(columns=relation_columns), False
    return SalesforceDay(tasks, relations, available, dated)


def _differences(object_name: str, kind: str, frame: pd.DataFrame, cause: Any) -> pd.DataFrame:
    out = frame.reindex(columns=DIFFERENCE_COLUMNS).astype(object)
    out["object"] = object_name
    out["kind"] = kind
    out["cause"] = cause
    return out


def _latest(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The last hour's result of each key (a key re-planned in a later hour was re-loaded)."""
    if "hour" in results:
        results = results.sort_values("hour", kind="stable")
    return results.drop_duplicates(keys, keep="last")


def compare(
    planned_tasks: pd.DataFrame,
    planned_relations: pd.DataFrame,
    task_results: pd.DataFrame,
    relation_results: pd.DataFrame,
    salesforce: SalesforceDay,
    known_keys: set[str],
    kind: ActivityKind = TASKS,
) -> pd.DataFrame:
    """Every difference between the plans and Salesforce, as DIFFERENCE_COLUMNS rows.

    The frames are of one ``kind``: Tasks and TaskRelations, or Salesforce Events and the
    EventRelation rows relating their people.
    """
    key, parent = kind.key, kind.parent_field
    name, relation_name = kind.object_name, kind.relation_object
    planned = pd.Index(planned_tasks[key].dropna().unique(), dtype=object)
    known_keys = set(known_keys) | set(planned)
    results = _latest(task_results, [key]).set_index(key)
    # Ids and keys compare as text; an empty frame would otherwise be float-typed.
    sf = salesforce.tasks.astype({c: object for c in ("Id", key, "WhoId")})
    sf = sf[sf[key].isin(planned)].copy()
    sf_relations = salesforce.relations.astype(object)

    # Which copy of a key is "the" activity: the one the load reported, else the lowest Id.
    sf["loaded_id"] = sf[key].map(results["Id"]) if len(results) else None
    sf["rank"] = (sf["Id"] != sf["loaded_id"]).astype(int)
    sf = sf.sort_values([key, "rank", "Id"], kind="stable")
    surplus = sf.duplicated(key, keep="first")
    kept = sf[~surplus].set_index(key)
    parts = [_differences(name, "duplicated", sf[surplus], f"another {name} carries the same key")]

    missing = pd.DataFrame({key: planned[~planned.isin(kept.index)]})
    success = missing[key].map(results["success"]) if len(results) else None
    code = missing[key].map(results["error_code"]) if len(results) else None
    missing["Id"] = missing[key].map(results["Id"]) if len(results) else None
    cause = pd.Series("not loaded: no load result for its hour", index=missing.index)
    if success is not None:
        failed = success.notna() & ~success.fillna(False).astype(bool)
        cause = cause.mask(failed, "load failed: " + code.fillna("unknown error").astype(str))
        cause = cause.mask(
            success.fillna(False).astype(bool), "deleted or changed in Salesforce after the load"
        )
    parts.append(_differences(name, "missing", missing, cause))

    extra = salesforce.dated[~salesforce.dated[key].isin(known_keys)]
    parts.append(_differences(name, "extra", extra, "no plan holds this key"))

    # Relations, only on planned activities that exist.
    ids = kept["Id"].reindex(planned).dropna()
    wanted = planned_relations[planned_relations[key].isin(ids.index)][
        [key, "RelationId"]
    ].drop_duplicates()
    wanted = wanted.assign(**{parent: wanted[key].map(ids).astype(object)})
    rows = sf_relations[sf_relations[parent].isin(ids)]
    who = kept.loc[ids.index, ["Id", "WhoId"]].dropna()
    present = pd.concat(
        [
            rows[[parent, "RelationId"]],
            who.rename(columns={"Id": parent, "WhoId": "RelationId"}),
        ]
    ).drop_duplicates()
    pair = [parent, "RelationId"]
    marked = wanted.merge(present.assign(_found=True), on=pair, how="left")
    gone = marked[marked["_found"].isna()].drop(columns="_found")
    rel_results = _latest(relation_results, [key, "RelationId"])
    gone = gone.merge(
        rel_results[[key, "RelationId", "status", "error_code"]],
        on=[key, "RelationId"],
        how="left",
    )
    relation_cause = pd.Series("removed in Salesforce after the load", index=gone.index)
    relation_cause = relation_cause.mask(gone["status"].isna(), "not loaded")
    relation_cause = relation_cause.mask(
        gone["status"].eq(kind.parent_failed), f"not loaded: its {name} failed to load then"
    )
    relation_cause = relation_cause.mask(
        gone["status"].eq("failed"),
        "load failed: " + gone["error_code"].fillna("unknown error").astype(str),
    )
    parts.append(_differences(relation_name, "missing", gone, relation_cause))

    key_of = pd.Series(ids.index, index=ids.to_numpy())
    unplanned = rows.merge(wanted[pair].assign(_planned=True), on=pair, how="left")
    unplanned = unplanned[unplanned["_planned"].isna()].drop_duplicates(pair)
    parts.append(
        _differences(
            relation_name,
            "extra",
            unplanned.assign(**{key: unplanned[parent].map(key_of)}),
            f"no plan relates this person to the {name}",
        )
    )
    doubled = rows[rows.duplicated(pair, keep="first")]
    parts.append(
        _differences(
            relation_name,
            "duplicated",
            doubled.assign(**{key: doubled[parent].map(key_of)}),
            f"the same person is related to the {name} twice",
        )
    )
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[DIFFERENCE_COLUMNS]


def count_differences(differences: pd.DataFrame) -> dict[str, int]:
    label = differences["kind"] + "_" + differences["object"].map(_COUNTED_AS)
    found = label.value_counts()
    return {name: int(found.get(name, 0)) for name in COUNT_LABELS}


def describe_counts(counts: dict[str, int]) -> str:
    """``{"missing_tasks": 1, "extra_relations": 2}`` -> "1 missing Task, 2 extra TaskRelations"."""
    return ", ".join(
        f"{n:,} {COUNT_LABELS[name] if n != 1 else COUNT_LABELS[name].removesuffix('s')}"
        for name, n in counts.items()
        if n
    )


def _dates(kind: ActivityKind, planned: pd.DataFrame) -> pd.Series:
    """The ActivityDates Salesforce gives the planned activities: a Task's own, an
    Event's start date (its ActivityDate, or the date of its StartDateTime)."""
    if kind is TASKS:
        return planned["ActivityDate"].dropna()
    start = planned["StartDateTime"].astype("string").str.slice(0, 10)
    return planned["ActivityDate"].astype("string").fillna(start).dropna()


def reconcile(
    client: SalesforceClient,
    planned_tasks: pd.DataFrame,
    planned_relations: pd.DataFrame,
    task_results: pd.DataFrame,
    relation_results: pd.DataFrame,
    known_keys: Callable[[], set[str]],
    options: ReconcileOptions | None = None,
    *,
    extra_dates: Iterable[str] | None = None,
    salesforce_events: PlannedDay | None = None,
) -> dict[str, Any]:
    """Query Salesforce back and diff it with the plans: the reconciliation of audit.json.

    Args:
        client: the org's Salesforce.
        planned_tasks, planned_relations: the plans' Tasks and TaskRelations of the hours
            that should be in Salesforce by now.
        task_results, relation_results: what the loads of those hours reported (which
            copy of a duplicated Task is the one kept).
        known_keys: every task_key and event_key the plans of the neighbouring days hold.
            It is called after Salesforce was read: every activity found then was planned
            (plans are written before loads), so reading the plans afterwards cannot
            mistake one that an hour loaded in the meantime for an extra one.
        options: the external-ID field, the key prefixes and query sizes.
        extra_dates: the ActivityDates on which to look for extra activities (the audit
            gives the local dates the UTC day overlaps); default: the planned ones' dates.
        salesforce_events: the same for Salesforce Events and their relations (R14); None
            (plans from before R14) reconciles Tasks alone.

    Returns:
        ``status`` (``ok`` or ``differences``), ``counts`` per kind of difference, a
        one-line ``summary``; ``tasks_expected`` and ``tasks_found`` (distinct planned keys,
        and how many of them Salesforce holds), ``relations_expected`` and
        ``relations_found``, and the same for ``salesforce_events`` and
        ``event_relations``; ``dates_scanned`` and ``other_days_tasks`` (Tasks of ours on
        those dates that other days' plans hold); the API calls and Bulk jobs used; and
        every difference as a ``DIFFERENCE_COLUMNS`` record.
    """
    options = options or ReconcileOptions()
    calls, jobs = client.total_calls, client.bulk_jobs
    days = {
        TASKS: PlannedDay(planned_tasks, planned_relations, task_results, relation_results),
        SALESFORCE_EVENTS: salesforce_events,
    }
    if extra_dates is None:
        extra_dates = pd.concat(
            [_dates(kind, day.planned) for kind, day in days.items() if day is not None]
        )
    dates = sorted({str(d) for d in extra_dates})
    # Salesforce Events are read even when none was planned: ours on those dates are extra.
    found = {
        kind: fetch(client, day.planned[kind.key], dates, options, kind)
        for kind, day in days.items()
        if day is not None
    }
    known = set(known_keys())
    parts = [
        compare(
            day.planned, day.relations, day.results, day.relation_results, found[kind], known, kind
        )
        for kind, day in days.items()
        if kind in found
    ]
    differences = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    counts = count_differences(differences)
    result: dict[str, Any] = {
        "status": DIFFERENCES if len(differences) else OK,
        "counts": counts,
        "summary": describe_counts(counts)
        or "Salesforce holds every planned activity and relation",
    }
    for kind, (activities, relations) in (
        (TASKS, ("tasks", "relations")),
        (SALESFORCE_EVENTS, ("salesforce_events", "event_relations")),
    ):
        day, held = days[kind], found.get(kind)
        planned = set(day.planned[kind.key].dropna()) if day else set()
        people = day.relations[[kind.key, "RelationId"]].drop_duplicates() if day else []
        result[f"{activities}_expected"] = len(planned)
        result[f"{activities}_found"] = (
            int(held.tasks[kind.key].drop_duplicates().isin(planned).sum()) if held else 0
        )
        result[f"{relations}_expected"] = len(people)
        result[f"{relations}_found"] = len(held.relations) if held else 0
    result.update(
        {
            "relations_checked_in": (
                "TaskRelation" if found[TASKS].relations_available else "WhoId"
            ),
            "dates_scanned": dates,
            "other_days_tasks": int(found[TASKS].dated["task_key"].isin(known).sum()),
            "api_calls": client.total_calls - calls,
            "bulk_jobs": client.bulk_jobs - jobs,
            "differences": differences.where(differences.notna(), None).to_dict("records"),
        }
    )
    log.info("reconciliation: %s", {k: v for k, v in result.items() if k != "differences"})
    return result
