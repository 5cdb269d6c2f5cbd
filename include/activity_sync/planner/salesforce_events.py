"""R14's plan frames: events.parquet and event_relations.parquet.

The meetings planned as Salesforce Events went through the same units (batches of 50
Contacts, a Lead on its own) and Opportunity fan-out as Tasks (``rules.py``); here each
such record gets its event_key and the Event fields: the meeting's times, all-day flag and
location from ``meeting_fields.py``, Subject, Description and OwnerId as for a Task.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from activity_sync.planner.arrow import STRING, repeated_string, to_pandas
from activity_sync.planner.keys import digest_order, hex_keys, task_digests
from activity_sync.planner.lookups import PersonDirectory
from activity_sync.planner.meeting_fields import MeetingTimes, datetime_text
from activity_sync.planner.rules import PlannedEvents, RelatedTasks, TaskUnits, member_table
from activity_sync.schema import (
    EVENT_KEY_DOMAIN,
    EVENT_KEY_PREFIX,
    EVENT_RELATION_COLUMNS,
    SALESFORCE_EVENT_COLUMNS,
    SALESFORCE_EVENT_SUBTYPE,
)
from activity_sync.settings import Settings


def salesforce_event_frames(
    records: RelatedTasks,
    units: TaskUnits,
    planned: PlannedEvents,
    directory: PersonDirectory,
    settings: Settings,
    times: MeetingTimes,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The events and event_relations frames in canonical order (event_key, then position).

    Args:
        records: one row per Salesforce Event (a unit of a meeting and its WhatId).
        units, planned, directory, settings: as ``rules.task_frames`` takes them.
        times: the meetings' Event times, per input row.
    """
    event = units.event[records.unit]
    digests = task_digests(
        settings.org_id,
        planned.event_id.take(pa.array(event)),
        units.key_part.take(pa.array(records.unit)),
        records.what_id,
        domain=EVENT_KEY_DOMAIN,
    )
    order = digest_order(digests)
    key = hex_keys(digests[order], EVENT_KEY_PREFIX)
    unit = records.unit[order]
    row = event[order]
    take_row = pa.array(row)
    start, end, all_day = times.start[row], times.end[row], times.all_day[row]
    first_day = np.datetime_as_string(times.first_day[row], unit="D")
    table = pa.table(
        {
            "event_key": key,
            "org_id": repeated_string(settings.org_id, len(unit)),
            "event_id": planned.event_id.take(take_row),
            "WhoId": directory.person_id.take(pa.array(units.who[unit])),
            "WhatId": records.what_id.take(pa.array(order)),
            "OwnerId": planned.owner_id.take(take_row),
            "Subject": planned.subject.take(take_row),
            "Description": planned.description.take(take_row),
            "StartDateTime": datetime_text(start),
            "EndDateTime": datetime_text(end),
            "DurationInMinutes": pa.array((end - start).astype(np.int64), pa.int64()),
            "IsAllDayEvent": pa.array(all_day),
            "ActivityDate": pa.array(first_day, STRING, mask=~all_day),
            "Location": times.location.take(take_row),
            "EventSubtype": repeated_string(SALESFORCE_EVENT_SUBTYPE, len(unit)),
            "who_count": pa.array(units.who_count[unit], pa.int64()),
            "batch_index": pa.array(units.batch_index[unit], pa.int64()),
        }
    )
    relations = member_table("event_key", key, unit, units, directory)
    return (
        to_pandas(table, SALESFORCE_EVENT_COLUMNS),
        to_pandas(relations, EVENT_RELATION_COLUMNS),
    )
