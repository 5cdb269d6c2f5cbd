"""The activity objects: Task, TaskRelation, Event, EventRelation, and their constants.

Apart from the CRM objects because the activities carry the rules this emulator exists for
(Shared Activities' relation rows, the Activity key, archiving); the modules enforcing them
import these constants through ``objects``.
"""

from __future__ import annotations

from salesforce_emulator.ids import (
    EVENT_PREFIX,
    EVENT_RELATION_PREFIX,
    TASK_PREFIX,
    TASK_RELATION_PREFIX,
)
from salesforce_emulator.sobject import Field, SObject, owner, read_only, system_fields

# The product's key: a custom field of Activity, so Task and Event both carry it and one
# value names one activity of either kind ("Activities share the same custom fields":
# https://help.salesforce.com/s/articleView?id=sf.customize_activities.htm).
TASK_EXTERNAL_ID = "Activity_Sync_Key__c"
# Set on Tasks and Events that Salesforce has archived (see ``retention``).
ARCHIVED_COLUMN = "IsArchived"

# Activity object -> (its relation object, the relation's parent field, the junction field).
ACTIVITIES = {
    "Task": ("TaskRelation", "TaskId", "TaskWhoIds"),
    "Event": ("EventRelation", "EventId", "EventWhoIds"),
}
RELATION_OBJECTS = {rel: (activity, parent) for activity, (rel, parent, _) in ACTIVITIES.items()}
# An EventRelation row relates a person or record to its Event only where this flag is
# true; the others are invitees alone (see ``relation_rows``). TaskRelation rows all do.
PARENT_FLAG = {"EventRelation": "IsParent"}
# A Task relates to one Lead or up to this many Contacts (TaskRelation docs).
MAX_CONTACTS_PER_ACTIVITY = 50
WHO_OBJECTS = ("Contact", "Lead")
WHAT_OBJECTS = ("Account", "Opportunity")


def _archived() -> Field:
    return read_only(ARCHIVED_COLUMN, "boolean", "Archived", nillable=False, default=False)


def _activity_fields(junction: str) -> tuple[Field, ...]:
    """Fields shared by Task and Event, including the Shared Activities ones."""
    return (
        Field(
            "WhoId", "reference", "Name ID", 18, reference_to=WHO_OBJECTS, relationship_name="Who"
        ),
        Field(
            "WhatId",
            "reference",
            "Related To ID",
            18,
            reference_to=WHAT_OBJECTS,
            relationship_name="What",
        ),
        Field("Subject", "string", "Subject", 255, describe_type="combobox"),
        Field("Description", "textarea", "Description", 32000),
        owner(),
        read_only(
            "AccountId",
            "reference",
            "Account ID",
            length=18,
            reference_to=("Account",),
            relationship_name="Account",
        ),
        read_only("WhoCount", "int", "Relation Count", shared_only=True),
        read_only("WhatCount", "int", "Related To Count", shared_only=True),
        Field(
            junction,
            "junctionidlist",
            "Contact or Lead IDs",
            shared_only=True,
            stored=False,
            reference_to=WHO_OBJECTS,
        ),
    )


def _activity_key() -> Field:
    """The external-ID field on Activity, the same on Task and Event.

    The README has users create it Unique and External ID, without "Treat "ABC" and "abc"
    as duplicate values": so it is case-sensitive.
    """
    return Field(
        TASK_EXTERNAL_ID,
        "string",
        "Activity Sync Key",
        80,
        external_id=True,
        custom=True,
        unique=True,
        case_sensitive=True,
    )


TASK = SObject(
    "Task",
    TASK_PREFIX,
    "Task",
    "Tasks",
    (
        *system_fields(),
        *_activity_fields("TaskWhoIds"),
        Field("ActivityDate", "date", "Due Date Only"),
        Field(
            "Status",
            "picklist",
            "Status",
            255,
            nillable=False,
            default="Not Started",
            picklist=(
                "Not Started",
                "In Progress",
                "Completed",
                "Waiting on someone else",
                "Deferred",
            ),
        ),
        Field(
            "Priority",
            "picklist",
            "Priority",
            255,
            nillable=False,
            default="Normal",
            picklist=("High", "Normal", "Low"),
        ),
        Field("Type", "picklist", "Type", 255, picklist=("Call", "Email", "Meeting", "Other")),
        # "Restricted picklist", "This field isn't updateable", "LinkedIn —Available in API
        # version 56.0 and later", "The Cadence subtype is an internal value used by Sales
        # Engagement, and can't be set manually" (Task, Object Reference:
        # https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm).
        Field(
            "TaskSubtype",
            "picklist",
            "Task Subtype",
            255,
            updateable=False,
            picklist=("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"),
            restricted=True,
            value_since=(("LinkedIn", 56.0),),
            not_settable=("Cadence",),
        ),
        read_only(
            "IsClosed", "boolean", "Closed", nillable=False, formula="\"Status\" = 'Completed'"
        ),
        _archived(),
        _activity_key(),
    ),
    child_relationships=(
        ("TaskRelation", "TaskId", "TaskRelations", True, True),
        ("TaskWhoRelation", "TaskId", "TaskWhoRelations", True, True),
    ),
)


def _relation_fields(
    parent: str, activity: str, people: tuple[str, ...] = WHO_OBJECTS, *, shared_only: bool = False
) -> tuple[Field, ...]:
    """Fields of a relation row; ``shared_only`` hides the Shared Activities ones when off."""
    return (
        Field(
            parent,
            "reference",
            f"{activity} ID",
            18,
            updateable=False,
            nillable=False,
            reference_to=(activity,),
            relationship_name=activity,
        ),
        Field(
            "RelationId",
            "reference",
            "Relation ID",
            18,
            updateable=False,
            nillable=False,
            reference_to=people + WHAT_OBJECTS,
            relationship_name="Relation",
        ),
        Field(
            "IsWhat",
            "boolean",
            "Is What",
            updateable=False,
            nillable=False,
            default=False,
            shared_only=shared_only,
        ),
        read_only(
            "AccountId",
            "reference",
            "Account ID",
            length=18,
            reference_to=("Account",),
            relationship_name="Account",
            shared_only=shared_only,
        ),
    )


TASK_RELATION = SObject(
    "TaskRelation",
    TASK_RELATION_PREFIX,
    "Task Relation",
    "Task Relations",
    (*system_fields(), *_relation_fields("TaskId", "Task")),
    shared_only=True,
    updateable=False,
    upsertable=False,
)

# Event and EventRelation as the Object Reference describes them
# (https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-event.html,
# .../object-eventrelation.html); how their values must agree is ``event_times`` and
# ``relation_rows``.
EVENT = SObject(
    "Event",
    EVENT_PREFIX,
    "Event",
    "Events",
    (
        *system_fields(),
        *_activity_fields("EventWhoIds"),
        # Required in effect (a start, and an end or a duration), but each may be left out
        # when another field says the same: ``event_times`` checks and derives them.
        Field("StartDateTime", "datetime", "Start Date Time"),
        Field("EndDateTime", "datetime", "End Date Time"),
        Field("ActivityDateTime", "datetime", "Due Date Time"),
        Field("ActivityDate", "date", "Due Date Only"),
        Field("DurationInMinutes", "int", "Duration"),
        Field("IsAllDayEvent", "boolean", "All-Day Event", nillable=False, default=False),
        Field("Location", "string", "Location", 255),
        Field("Type", "picklist", "Type", 255, picklist=("Call", "Email", "Meeting", "Other")),
        _archived(),
        # "This field isn't updateable" (Event, Object Reference).
        Field(
            "EventSubtype",
            "picklist",
            "Event Subtype",
            40,
            updateable=False,
            default="Event",
            picklist=("Event",),
        ),
        _activity_key(),
    ),
    child_relationships=(("EventRelation", "EventId", "EventRelations", True, True),),
)

# EventRelation exists without Shared Activities too, for invitees (Users, Contacts, Leads);
# its Who/What flags and AccountId only with it ("IsInvitee is visible when Shared
# Activities is enabled", "AccountId is visible when Shared Activities is enabled":
# http://www.salesforce.com/us/developer/docs/api/Content/sforce_api_objects_eventattendee.htm).
# Calls: create, delete, query, queryAll, retrieve, update, upsert; EventId and RelationId
# "can't be changed after [they've] been specified".
EVENT_RELATION = SObject(
    "EventRelation",
    EVENT_RELATION_PREFIX,
    "Event Relation",
    "Event Relations",
    (
        *system_fields(),
        *_relation_fields("EventId", "Event", ("User", *WHO_OBJECTS), shared_only=True),
        # Both defaulted per row by ``relation_rows``: IsParent as IsWhat, IsInvitee as not
        # IsParent.
        Field("IsParent", "boolean", "Is Parent", nillable=False, shared_only=True),
        Field("IsInvitee", "boolean", "Is Invitee", nillable=False, shared_only=True),
        Field(
            "Status",
            "picklist",
            "Status",
            40,
            default="New",
            picklist=("New", "Accepted", "Declined"),
        ),
        Field("Response", "string", "Response", 255),
        Field("RespondedDate", "datetime", "Response Date"),
    ),
)
