"""The org's data model: which objects exist, their fields, and what describe says about them.

One definition drives everything else: the SQLite tables (one per object, one column per
field), value checks on writes, SOQL column types and the describe JSON. The field model is
``sobject`` and the CRM objects are ``crm_objects``; the rest of the package imports them
from here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from salesforce_emulator.crm_objects import (
    ACCOUNT,
    CONTACT,
    LEAD,
    OPPORTUNITY,
    OPPORTUNITY_CONTACT_ROLE,
    USER,
)
from salesforce_emulator.ids import (
    EVENT_PREFIX,
    EVENT_RELATION_PREFIX,
    TASK_PREFIX,
    TASK_RELATION_PREFIX,
)
from salesforce_emulator.sobject import Field, SObject, owner, read_only, system_fields

__all__ = [
    "ACTIVITIES",
    "ALL_OBJECTS",
    "ARCHIVED_COLUMN",
    "MAX_CONTACTS_PER_ACTIVITY",
    "PARENT_FLAG",
    "PREFIX_TO_OBJECT",
    "RELATION_OBJECTS",
    "TASK_EXTERNAL_ID",
    "Field",
    "OrgShape",
    "SObject",
    "describe_sobject",
    "global_entry",
]

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
# true; the others are invitees alone (see ``event_relations``). TaskRelation rows all do.
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
# ``event_relations``.
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

ALL_OBJECTS: dict[str, SObject] = {
    o.name: o
    for o in (
        USER,
        ACCOUNT,
        CONTACT,
        LEAD,
        OPPORTUNITY,
        OPPORTUNITY_CONTACT_ROLE,
        TASK,
        TASK_RELATION,
        EVENT,
        EVENT_RELATION,
    )
}
PREFIX_TO_OBJECT = {o.key_prefix: o.name for o in ALL_OBJECTS.values()}


@dataclass(frozen=True)
class OrgShape:
    """What the org currently looks like from the API: depends on switchable settings.

    ``task_external_id_unique`` false is an org whose key field is External ID but not
    Unique (a user skipped the README's step): then two Tasks may share a key.
    """

    shared_activities: bool = True
    task_external_id_field: bool = True
    task_external_id_unique: bool = True

    def objects(self) -> dict[str, SObject]:
        return {n: o for n, o in ALL_OBJECTS.items() if self.shared_activities or not o.shared_only}

    def fields(self, obj: str) -> dict[str, Field]:
        """Visible fields of ``obj`` by canonical name."""
        fields = {
            f.name: f
            for f in ALL_OBJECTS[obj].fields
            if (self.shared_activities or not f.shared_only)
            and (
                self.task_external_id_field
                or not (obj in ACTIVITIES and f.name == TASK_EXTERNAL_ID)
            )
        }
        if obj in ACTIVITIES and TASK_EXTERNAL_ID in fields and not self.task_external_id_unique:
            fields[TASK_EXTERNAL_ID] = replace(fields[TASK_EXTERNAL_ID], unique=False)
        return fields

    def column_types(self, obj: str) -> dict[str, str]:
        """Field -> type of the stored, visible fields: what SOQL may select and filter on."""
        return {n: f.type for n, f in self.fields(obj).items() if f.stored}

    def resolve_field(self, obj: str, name: str) -> Field | None:
        """Fields are case-insensitive in every Salesforce API."""
        fields = self.fields(obj)
        if name in fields:
            return fields[name]
        lowered = name.lower()
        return next((f for n, f in fields.items() if n.lower() == lowered), None)

    def resolve_object(self, name: str) -> str | None:
        lowered = name.lower()
        return next((n for n in self.objects() if n.lower() == lowered), None)


def describe_sobject(obj: SObject, shape: OrgShape, version: str) -> dict[str, Any]:
    """The ``/sobjects/<Object>/describe`` body."""
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    children = [
        {
            "childSObject": child,
            "field": fk,
            "relationshipName": rel,
            "cascadeDelete": cascade,
            "deprecatedAndHidden": False,
            "restrictedDelete": False,
            "junctionIdListNames": [ACTIVITIES[obj.name][2]]
            if child.endswith("WhoRelation")
            else [],
            "junctionReferenceTo": [],
        }
        for child, fk, rel, cascade, shared_only in obj.child_relationships
        if shape.shared_activities or not shared_only
    ]
    return {
        **global_entry(obj, version),
        "fields": [f.describe() for f in shape.fields(obj.name).values()],
        "childRelationships": children,
        "recordTypeInfos": [],
        "supportedScopes": [{"label": "All", "name": "everything"}],
        "urls": {
            **global_entry(obj, version)["urls"],
            "uiDetailTemplate": None,
            "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
        },
    }


def global_entry(obj: SObject, version: str) -> dict[str, Any]:
    """One object's entry in the global describe (``/sobjects``)."""
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "name": obj.name,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "keyPrefix": obj.key_prefix,
        "custom": False,
        "createable": True,
        "updateable": obj.updateable,
        "deletable": True,
        "queryable": True,
        "retrieveable": True,
        "searchable": not obj.shared_only,
        "triggerable": not obj.shared_only,
        "undeletable": not obj.shared_only,
        "replicateable": True,
        "layoutable": not obj.shared_only,
        "mergeable": obj.name in ("Account", "Contact", "Lead"),
        "activateable": False,
        "customSetting": False,
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "hasSubtypes": False,
        "isSubtype": False,
        "urls": {
            "sobject": base,
            "describe": f"{base}/describe",
            "rowTemplate": f"{base}/{{ID}}",
        },
    }
