"""What the loader writes and reports, per kind of activity (R11, R14).

A Task and a Salesforce Event are loaded the same way, on different objects and fields:
an :class:`ActivityKind` names them, and the outputs' columns and statuses are spelled
once here for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from activity_sync.schema import SALESFORCE_EVENT_COLUMNS, TASK_COLUMNS

TASK, TASK_RELATION = "Task", "TaskRelation"
SALESFORCE_EVENT, EVENT_RELATION = "Event", "EventRelation"

# The plan's Salesforce fields are the ones spelled as Salesforce spells them (WhoId, ...);
# the lower-case columns (task_key, who_count, ...) are the plan's own bookkeeping.
TASK_FIELDS = [c for c in TASK_COLUMNS if c[0].isupper()]
SALESFORCE_EVENT_FIELDS = [c for c in SALESFORCE_EVENT_COLUMNS if c[0].isupper()]
# Fields an update must be able to clear; Bulk API treats an empty cell as "leave as is".
CLEARABLE = ("WhatId", "Description")
BULK_TRUE, BULK_FALSE = "true", "false"
# Fields Salesforce lets an insert set but no update change.
CREATE_ONLY = ("TaskSubtype",)
# EventRelation's flag: true relates the person to the Event; false would only invite.
IS_PARENT = "IsParent"
# EventRelation's other flag: true invites the person (an invitation made in Salesforce).
IS_INVITEE = "IsInvitee"


@dataclass(frozen=True)
class ActivityKind:
    """The objects and fields one kind of planned activity is loaded with.

    Attributes:
        object_name, relation_object, parent_field: the activity, its relation object and
            the relation's field naming the activity (Task, TaskRelation, TaskId).
        key: the plan's key column, held in Salesforce by the external-ID field.
        fields: the plan's columns sent to Salesforce as they are.
        clearable: fields an update must be able to clear (sent as ``#N/A`` when empty).
        create_only: fields an upsert may set on create but not on update.
        parent_flag: the relation's checkbox that makes a row relate its person (set true
            on insert, read back with existing rows); None where every row relates.
        parent_failed: ``relation_results.status`` of a relation whose activity failed.
    """

    object_name: str
    relation_object: str
    parent_field: str
    key: str
    fields: tuple[str, ...]
    clearable: tuple[str, ...]
    create_only: tuple[str, ...]
    parent_flag: str | None
    parent_failed: str

    @property
    def pair(self) -> list[str]:
        """The columns naming one relation: the activity's Id and the person's."""
        return [self.parent_field, "RelationId"]

    @property
    def parent_failed_code(self) -> str:
        """The dead letter's ``error_code`` of a relation whose activity failed."""
        return self.parent_failed.upper()


TASKS = ActivityKind(
    TASK,
    TASK_RELATION,
    "TaskId",
    "task_key",
    tuple(TASK_FIELDS),
    CLEARABLE,
    CREATE_ONLY,
    None,
    "task_failed",
)
# R14. Location may be cleared like the Description; EventSubtype is, like TaskSubtype,
# "not updateable" (Event, Object Reference); an EventRelation row relates its person only
# with IsParent true ("Related contacts or lead (IsParent is set to true)", EventRelation).
SALESFORCE_EVENTS = ActivityKind(
    SALESFORCE_EVENT,
    EVENT_RELATION,
    "EventId",
    "event_key",
    tuple(SALESFORCE_EVENT_FIELDS),
    (*CLEARABLE, "Location"),
    ("EventSubtype",),
    IS_PARENT,
    "salesforce_event_failed",
)

TASK_RESULT_COLUMNS = [
    "task_key",
    "Id",
    "created",
    "success",
    "error_code",
    "error_message",
    "attempts",
]
RELATION_RESULT_COLUMNS = [
    "task_key",
    "TaskId",
    "RelationId",
    "position",
    "status",
    "error_code",
    "error_message",
]
DEAD_LETTER_COLUMNS = [
    "object",
    "task_key",
    "event_key",
    "RelationId",
    "error_code",
    "error_message",
    "attempts",
]


class RelationStatus(StrEnum):
    """What became of one planned relation (``relation_results.status``)."""

    PRIMARY = "primary"  # the activity's WhoId: Salesforce relates it, nothing to insert
    INSERTED = "inserted"
    EXISTING = "existing"  # already held, or reported DUPLICATE_VALUE by the insert
    RELATED = "related"  # an Event's invitee row, made to relate (IsParent set true)
    FAILED = "failed"  # refused for good: in the dead letter
    TASK_FAILED = TASKS.parent_failed  # its Task did not load, so it could not be made
    SALESFORCE_EVENT_FAILED = SALESFORCE_EVENTS.parent_failed  # the same for an Event


def result_columns(kind: ActivityKind) -> list[str]:
    """``task_results`` columns, or ``event_results`` ones keyed by event_key."""
    return [kind.key, *TASK_RESULT_COLUMNS[1:]]


def relation_result_columns(kind: ActivityKind) -> list[str]:
    """``relation_results`` columns, or ``event_relation_results`` ones."""
    return [kind.key, kind.parent_field, *RELATION_RESULT_COLUMNS[2:]]
