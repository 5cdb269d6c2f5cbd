"""Records through the REST API: JSON bodies in, record JSON out, Salesforce's error shapes.

Shared by the single-record resources (``rest.py``) and sObject Collections
(``composite.py``), so that a record is read, written and refused the same way through both.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from salesforce_emulator.objects import OrgShape
from salesforce_emulator.protocol import ApiError, not_found
from salesforce_emulator.query import Compiled, json_row_sql
from salesforce_emulator.records import Incoming, RowErrors
from salesforce_emulator.store import Store, quote_ident

# Records per sObject Collections call; describe's ``maxBatchSize`` says the same.
COLLECTION_LIMIT = 200


def record_error(code: str, message: str, fields: str | None) -> dict[str, Any]:
    """One record's error in a collection answer (``statusCode``, not ``errorCode``)."""
    return {
        "statusCode": code,
        "message": message,
        "fields": [f for f in (fields or "").split(", ") if f],
    }


def api_error(errors: RowErrors, row: Any) -> ApiError:
    """The error of ``row`` as the whole answer of a single-record call."""
    fields = [f for f in (errors.fields[row] or "").split(", ") if f]
    return ApiError(400, errors.code[row], errors.message[row], fields)


def object_name(shape: OrgShape, name: str) -> str:
    """The canonical name of a visible object; 404 as Salesforce answers for unknown types."""
    canonical = shape.resolve_object(name)
    if canonical is None:
        raise not_found()
    return canonical


def incoming(shape: OrgShape, obj: str, records: list[Any]) -> tuple[Incoming, RowErrors]:
    """JSON records of ``obj`` as a column frame; an unknown field fails its record.

    Returns the frame and its per-row errors (INVALID_FIELD for unknown fields). A record
    that is not an object, a junction field or a nested value fails the whole request.
    """
    clean: list[dict[str, Any]] = []
    unknown: list[str | None] = []
    for record in records:
        if not isinstance(record, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
        row, bad = {}, None
        for key, value in record.items():
            if key == "attributes":
                continue
            f = shape.resolve_field(obj, key)
            if f is None:
                bad = bad or key
                continue
            if f.type == "junctionidlist":
                raise ApiError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"{f.name} cannot be written to the emulator; insert "
                    f"{obj}Relation rows instead",
                    [f.name],
                )
            if isinstance(value, dict | list):
                raise ApiError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of {f.type} from {type(value).__name__} "
                    f"value for field {f.name}",
                )
            row[f.name] = value
        clean.append(row)
        unknown.append(bad)
    columns = sorted({k for r in clean for k in r})
    inc = Incoming.from_json(clean, columns)
    errors = RowErrors(inc.index)
    bad = pd.Series(unknown, index=inc.index, dtype=object)
    errors.add(
        bad.notna(),
        "INVALID_FIELD",
        "No such column '" + bad.astype(str) + f"' on sobject of type {obj}",
        "",
    )
    return inc, errors


def record_json(
    store: Store,
    shape: OrgShape,
    obj: str,
    ids: list[str],
    fields: list[str] | None,
    version: str,
) -> list[dict[str, Any] | None]:
    """Records of ``obj`` by Id as the API shows them, every visible field or ``fields``.

    One entry per Id in ``ids``, in order: None where the record is missing or deleted.
    """
    types = shape.column_types(obj)
    if fields:
        resolved = []
        for name in fields:
            f = shape.resolve_field(obj, name.strip())
            if f is None or not f.stored:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}"
                )
            resolved.append(f.name)
        names = list(dict.fromkeys(["Id", *resolved]))
    else:
        names = list(types)
    compiled = Compiled(
        obj,
        names,
        {n: types[n] for n in names},
        f"SELECT {', '.join(quote_ident(n) for n in names)} FROM {quote_ident(obj)} "
        "WHERE IsDeleted = 0 AND Id IN (SELECT value FROM json_each(?))",
        [json.dumps(ids)],
        False,
    )
    found = {}
    for (text,) in store.read(json_row_sql(compiled, version), compiled.params):
        record = json.loads(text)
        found[record["Id"]] = record
    return [found.get(i) for i in ids]


def external_field(shape: OrgShape, obj: str, name: str) -> str:
    """The canonical name of an external-ID field (or Id) of ``obj``; 404 otherwise."""
    f = shape.resolve_field(obj, name)
    if f is None or not (f.external_id or f.name == "Id"):
        raise unknown_external_field(name)
    return f.name


def unknown_external_field(name: str) -> ApiError:
    """Salesforce's 404 for a path segment that is neither an Id nor an external-ID field."""
    return ApiError(
        404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}"
    )
