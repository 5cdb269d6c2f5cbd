"""The field model every object is built from: Field, SObject and the system fields.

A leaf of the data model, apart from the objects themselves, so that ``crm_objects`` and
``activity_objects`` define their objects with it and ``objects`` gathers them. Fields marked
``shared_only`` exist only while Shared Activities is on, the way Salesforce adds
``TaskWhoIds``/``WhoCount`` and the TaskRelation object when the setting is enabled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Describe's "soapType" per field type, so that clients mapping types find the usual values.
_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "email": "xsd:string",
    "textarea": "xsd:string",
    "picklist": "xsd:string",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "junctionidlist": "tns:JunctionIdListNames",
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str
    length: int = 0
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    default: Any = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    external_id: bool = False
    picklist: tuple[str, ...] = ()
    # SQL expression of a derived field (stored as a generated column).
    formula: str | None = None
    shared_only: bool = False
    # Fields that have no column (TaskWhoIds is a view of the relation rows).
    stored: bool = True
    describe_type: str | None = None
    custom: bool = False
    # One live record per value (Salesforce's "Unique"); compared with case unless not.
    unique: bool = False
    case_sensitive: bool = False
    # A restricted picklist takes only its values; some only from an API version on, and
    # some never through the API.
    restricted: bool = False
    value_since: tuple[tuple[str, float], ...] = ()
    not_settable: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        """Must be given on create: Salesforce's REQUIRED_FIELD_MISSING.

        A checkbox never is: one left out is defaulted (false, unless a rule derives it).
        """
        return (
            self.createable
            and not self.nillable
            and self.default is None
            and self.type != "boolean"
        )

    def describe(self) -> dict[str, Any]:
        kind = self.describe_type or self.type
        return {
            "name": self.name,
            "label": self.label,
            "type": kind,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length,
            "byteLength": self.length * 3,
            "precision": 18 if self.type == "double" else 0,
            "scale": 2 if self.type == "double" else 0,
            "digits": 9 if self.type == "int" else 0,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "defaultedOnCreate": self.default is not None
            or self.name == "Id"
            or (self.type == "boolean" and self.createable),
            "calculated": self.formula is not None,
            "custom": self.custom,
            "externalId": self.external_id,
            "idLookup": self.external_id or self.name == "Id",
            "unique": self.unique,
            "caseSensitive": self.case_sensitive,
            "filterable": self.type not in ("textarea", "junctionidlist"),
            "sortable": self.type not in ("textarea", "junctionidlist"),
            "groupable": self.type not in ("textarea", "double", "datetime", "junctionidlist"),
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "value": v}
                for v in self.picklist
            ],
            "defaultValue": self.default if isinstance(self.default, str | bool) else None,
            "autoNumber": False,
            "restrictedPicklist": self.restricted,
        }


@dataclass(frozen=True)
class SObject:
    name: str
    key_prefix: str
    label: str
    label_plural: str
    fields: tuple[Field, ...]
    shared_only: bool = False
    updateable: bool = True
    upsertable: bool = True
    # (child object, its field, relationship name, cascade delete, only with Shared Activities)
    child_relationships: tuple[tuple[str, str, str, bool, bool], ...] = ()
    field_map: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_map", {f.name: f for f in self.fields})

    @property
    def stored_fields(self) -> list[Field]:
        return [f for f in self.fields if f.stored]


def system_fields() -> tuple[Field, ...]:
    """Id and audit fields that every object carries."""
    user = ("User",)
    return (
        Field("Id", "id", "Record ID", 18, createable=False, updateable=False, nillable=False),
        Field(
            "IsDeleted", "boolean", "Deleted", createable=False, updateable=False, nillable=False
        ),
        Field("CreatedDate", "datetime", "Created Date", createable=False, updateable=False),
        Field(
            "CreatedById",
            "reference",
            "Created By ID",
            18,
            False,
            False,
            reference_to=user,
            relationship_name="CreatedBy",
        ),
        Field(
            "LastModifiedDate", "datetime", "Last Modified Date", createable=False, updateable=False
        ),
        Field(
            "LastModifiedById",
            "reference",
            "Last Modified By ID",
            18,
            False,
            False,
            reference_to=user,
            relationship_name="LastModifiedBy",
        ),
        Field("SystemModstamp", "datetime", "System Modstamp", createable=False, updateable=False),
    )


def owner() -> Field:
    """OwnerId: a User, the running user unless given."""
    return Field(
        "OwnerId",
        "reference",
        "Owner ID",
        18,
        nillable=False,
        default="$user",
        reference_to=("User",),
        relationship_name="Owner",
    )


def read_only(name: str, kind: str, label: str, **kw: Any) -> Field:
    """A field the API reads but never writes; ``kw`` as for ``Field``."""
    return Field(name, kind, label, createable=False, updateable=False, **kw)
