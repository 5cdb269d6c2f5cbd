"""The org's data model: which objects exist, their fields, and what describe says about them.

One definition drives everything else: the SQLite tables (one per object, one column per
field), value checks on writes, SOQL column types and the describe JSON. The field model is
``sobject``, the objects are ``crm_objects`` and ``activity_objects``; this module gathers
them into the registry and is where the rest of the package imports them from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from salesforce_emulator.activity_objects import (
    ACTIVITIES,
    ARCHIVED_COLUMN,
    EVENT,
    EVENT_RELATION,
    MAX_CONTACTS_PER_ACTIVITY,
    PARENT_FLAG,
    RELATION_OBJECTS,
    TASK,
    TASK_EXTERNAL_ID,
    TASK_RELATION,
)
from salesforce_emulator.crm_objects import (
    ACCOUNT,
    CONTACT,
    LEAD,
    OPPORTUNITY,
    OPPORTUNITY_CONTACT_ROLE,
    USER,
)
from salesforce_emulator.sobject import Field, SObject

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
