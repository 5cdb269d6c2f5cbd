"""The REST API: versions, describe, records, external-ID upsert, collections, query, limits.

Paths, status codes and bodies follow Salesforce's REST API (see ``salesforce_api.md`` §3):
201 with ``{"id", "success", "errors"}`` on create, 204 on update and delete, 201/200/300 on
upsert by external ID, errors as a JSON array with ``errorCode`` (collections use
``statusCode`` per record), 404 ``NOT_FOUND`` for objects hidden by the org's settings.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from salesforce_emulator import dml
from salesforce_emulator.ids import PREFIX_LENGTH, to_18_one
from salesforce_emulator.objects import (
    ALL_OBJECTS,
    PREFIX_TO_OBJECT,
    describe_sobject,
    global_entry,
)
from salesforce_emulator.org import Org
from salesforce_emulator.protocol import ApiError, Request, Response, Route, not_found
from salesforce_emulator.query import (
    Compiled,
    QueryLocatorError,
    QueryService,
    json_row_sql,
    page_size_from,
)
from salesforce_emulator.records import Incoming, RowErrors
from salesforce_emulator.soql import SoqlError
from salesforce_emulator.store import quote_ident
from salesforce_emulator.usage import Usage

COLLECTION_LIMIT = 200
API_VERSIONS = [f"{v}.0" for v in range(31, 63)]
_SEASONS = ("Winter", "Spring", "Summer")


class _Rollback(Exception):
    """Raised inside a transaction to undo an allOrNone collection that had a failure."""


def _version_label(version: str) -> str:
    major = int(float(version))
    index = major - 31
    year = 15 + (index + 1) // 3
    return f"{_SEASONS[(index + 1) % 3]} '{year:02d}"


def _record_error(code: str, message: str, fields: str | None) -> dict[str, Any]:
    return {
        "statusCode": code,
        "message": message,
        "fields": [f for f in (fields or "").split(", ") if f],
    }


def _api_error(errors: RowErrors, row: Any) -> ApiError:
    fields = [f for f in (errors.fields[row] or "").split(", ") if f]
    return ApiError(400, errors.code[row], errors.message[row], fields)


class RestApi:
    """The REST resources over ``org``; ``queries`` keeps query cursors, ``usage`` the limits."""

    def __init__(self, org: Org, queries: QueryService, usage: Usage) -> None:
        self.org = org
        self.queries = queries
        self.usage = usage

    # --------------------------------------------------------------------- helpers

    def object_name(self, name: str) -> str:
        """The canonical name of a visible object; 404 as Salesforce answers for unknown types."""
        canonical = self.org.shape.resolve_object(name)
        if canonical is None:
            raise not_found()
        return canonical

    def incoming(
        self, obj: str, records: list[Any], *, allow_id: bool = False
    ) -> tuple[Incoming, RowErrors]:
        """Records as a column frame; unknown fields fail their record (INVALID_FIELD)."""
        shape = self.org.shape
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

    def record_json(self, obj: str, ids: list[str], fields: list[str] | None, version: str):
        """Records by Id as dicts (None where missing or deleted), every field or ``fields``."""
        shape = self.org.shape
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
        for (text,) in self.org.store.read(json_row_sql(compiled, version), compiled.params):
            record = json.loads(text)
            found[record["Id"]] = record
        return [found.get(i) for i in ids]

    def external_field(self, obj: str, name: str) -> str:
        f = self.org.shape.resolve_field(obj, name)
        if f is None or not (f.external_id or f.name == "Id"):
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {name}",
            )
        return f.name

    def matching_ids(self, obj: str, field: str, value: str) -> list[str]:
        rows = self.org.store.read(
            f"SELECT Id FROM {quote_ident(obj)} WHERE IsDeleted = 0 AND {quote_ident(field)} = ? "
            "ORDER BY rowid",
            (to_18_one(value) or value if field == "Id" else value,),
        )
        return [r[0] for r in rows]

    def record_id(self, obj: str, raw: str) -> str:
        """An Id in a record path; anything else is read as an unknown external-ID field."""
        canonical = to_18_one(raw)
        if canonical is None or canonical[:PREFIX_LENGTH] != ALL_OBJECTS[obj].key_prefix:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {raw}",
            )
        return canonical

    def write(self, operation, obj: str, inc: Incoming, errors: RowErrors, *extra) -> dml.Outcome:
        with self.org.store.transaction() as db:
            return operation(self.org.context(), db, obj, inc, *extra, errors)

    # ------------------------------------------------------------------- resources

    def versions(self, req: Request) -> Response:
        return Response.json(
            200,
            [
                {"label": _version_label(v), "url": f"/services/data/v{v}", "version": v}
                for v in API_VERSIONS
            ],
        )

    def resources(self, req: Request, version: str) -> Response:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite")
        listing = {name: f"{base}/{name}" for name in names}
        listing["jobs"] = f"{base}/jobs"
        return Response.json(200, listing)

    def limits(self, req: Request, version: str) -> Response:
        return Response.json(200, self.usage.limits())

    def describe_global(self, req: Request, version: str) -> Response:
        objects = self.org.shape.objects()
        return Response.json(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_LIMIT,
                "sobjects": [global_entry(o, version) for o in objects.values()],
            },
        )

    def sobject_info(self, req: Request, version: str, object: str) -> Response:
        obj = ALL_OBJECTS[self.object_name(object)]
        return Response.json(200, {"objectDescribe": global_entry(obj, version), "recentItems": []})

    def describe(self, req: Request, version: str, object: str) -> Response:
        obj = ALL_OBJECTS[self.object_name(object)]
        return Response.json(200, describe_sobject(obj, self.org.shape, version))

    # --------------------------------------------------------------------- records

    def create(self, req: Request, version: str, object: str) -> Response:
        obj = self.object_name(object)
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        inc, errors = self.incoming(obj, [body])
        if not errors.ok.iloc[0]:
            raise _api_error(errors, 0)
        outcome = self.write(dml.insert, obj, inc, errors)
        if not errors.ok.iloc[0]:
            raise _api_error(errors, 0)
        return Response.json(201, {"id": outcome.ids.iloc[0], "success": True, "errors": []})

    def get_record(self, req: Request, version: str, object: str, id: str) -> Response:
        obj = self.object_name(object)
        record_id = self.record_id(obj, id)
        fields = req.query.get("fields")
        record = self.record_json(obj, [record_id], fields.split(",") if fields else None, version)
        if record[0] is None:
            raise not_found()
        return Response.json(200, record[0])

    def update_record(self, req: Request, version: str, object: str, id: str) -> Response:
        obj = self.object_name(object)
        record_id = self.record_id(obj, id)
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        inc, errors = self.incoming(obj, [body])
        if not errors.ok.iloc[0]:
            raise _api_error(errors, 0)
        inc.set("Id", record_id)
        self.write(dml.update, obj, inc, errors)
        if not errors.ok.iloc[0]:
            if (
                errors.code.iloc[0] == "INVALID_CROSS_REFERENCE_KEY"
                and errors.fields.iloc[0] == "Id"
            ):
                raise not_found()
            raise _api_error(errors, 0)
        return Response.empty(204)

    def delete_record(self, req: Request, version: str, object: str, id: str) -> Response:
        obj = self.object_name(object)
        record_id = self.record_id(obj, id)
        return self._delete_ids(obj, [record_id])

    def _delete_ids(self, obj: str, ids: list[str]) -> Response:
        series = pd.Series(ids, dtype=object)
        errors = RowErrors(series.index)
        with self.org.store.transaction() as db:
            dml.delete(self.org.context(), db, obj, series, errors)
        if not errors.ok.all():
            code = errors.code.dropna().iloc[0]
            if code == "INVALID_CROSS_REFERENCE_KEY":
                raise not_found()
            raise ApiError(
                404 if code == "ENTITY_IS_DELETED" else 400, code, errors.message.dropna().iloc[0]
            )
        return Response.empty(204)

    def get_by_external(
        self, req: Request, version: str, object: str, field: str, value: str
    ) -> Response:
        obj = self.object_name(object)
        name = self.external_field(obj, field)
        ids = self.matching_ids(obj, name, value)
        if not ids:
            raise not_found()
        if len(ids) > 1:
            return _ambiguous(version, obj, ids)
        fields = req.query.get("fields")
        return Response.json(
            200, self.record_json(obj, ids, fields.split(",") if fields else None, version)[0]
        )

    def upsert_record(
        self, req: Request, version: str, object: str, field: str, value: str
    ) -> Response:
        obj = self.object_name(object)
        if not ALL_OBJECTS[obj].upsertable:
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method 'PATCH' not allowed for {obj}.")
        name = self.external_field(obj, field)
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        ids = self.matching_ids(obj, name, value)
        if len(ids) > 1:
            return _ambiguous(version, obj, ids)
        inc, errors = self.incoming(obj, [{**body, name: value}])
        if not errors.ok.iloc[0]:
            raise _api_error(errors, 0)
        outcome = self.write(dml.upsert, obj, inc, errors, name)
        if not errors.ok.iloc[0]:
            raise _api_error(errors, 0)
        created = bool(outcome.created.iloc[0])
        return Response.json(
            201 if created else 200,
            {"id": outcome.ids.iloc[0], "success": True, "errors": [], "created": created},
        )

    def delete_by_external(
        self, req: Request, version: str, object: str, field: str, value: str
    ) -> Response:
        obj = self.object_name(object)
        name = self.external_field(obj, field)
        ids = self.matching_ids(obj, name, value)
        if not ids:
            raise not_found()
        if len(ids) > 1:
            return _ambiguous(version, obj, ids)
        return self._delete_ids(obj, ids)

    # ----------------------------------------------------------------------- query

    def query(self, req: Request, version: str, include_deleted: bool = False) -> Response:
        text = req.query.get("q")
        if not text:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            page = self.queries.first_page(
                self.org.shape,
                text,
                include_deleted=include_deleted,
                version=version,
                page_size=page_size_from(req.headers.get("Sforce-Query-Options")),
            )
        except SoqlError as err:
            raise ApiError(400, err.error_code, err.message) from err
        return Response.raw_json(200, page)

    def query_all(self, req: Request, version: str) -> Response:
        return self.query(req, version, include_deleted=True)

    def query_more(self, req: Request, version: str, locator: str) -> Response:
        try:
            page = self.queries.next_page(
                locator, page_size_from(req.headers.get("Sforce-Query-Options"))
            )
        except QueryLocatorError as err:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator") from err
        return Response.raw_json(200, page)

    # ----------------------------------------------------------------- collections

    def _collection_body(self, req: Request) -> tuple[bool, list[Any]]:
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must have a records list")
        records = body["records"]
        if len(records) > COLLECTION_LIMIT:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into "
                "this call",
            )
        return bool(body.get("allOrNone", False)), records

    def _run_collection(
        self,
        groups: list[tuple[str | None, list[int]]],
        size: int,
        all_or_none: bool,
        step,
    ) -> list[dict[str, Any]]:
        """Run ``step(db, obj, positions)`` per object group, results in input order."""
        results: list[dict[str, Any] | None] = [None] * size
        failed = False
        try:
            with self.org.store.transaction() as db:
                for obj, positions in groups:
                    for pos, result in zip(positions, step(db, obj, positions), strict=True):
                        results[pos] = result
                        failed = failed or not result["success"]
                if all_or_none and failed:
                    raise _Rollback
        except _Rollback:
            rolled = _record_error(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using "
                "AllOrNone header",
                None,
            )
            for i, result in enumerate(results):
                if result["success"]:
                    results[i] = {"success": False, "errors": [rolled]}
                else:
                    result.pop("id", None)
                    result.pop("created", None)
        return results

    @staticmethod
    def _results(outcome: dml.Outcome, errors: RowErrors, upsert: bool) -> list[dict[str, Any]]:
        out = []
        for row in errors.code.index:
            if errors.code[row] is None or pd.isna(errors.code[row]):
                item = {"id": outcome.ids[row], "success": True, "errors": []}
            else:
                item = {
                    "success": False,
                    "errors": [
                        _record_error(errors.code[row], errors.message[row], errors.fields[row])
                    ],
                }
                if outcome.ids[row] is not None and not pd.isna(outcome.ids[row]):
                    item["id"] = outcome.ids[row]
            if upsert:
                item["created"] = bool(outcome.created[row])
            out.append(item)
        return out

    def _group_by_type(self, records: list[Any]) -> list[tuple[str | None, list[int]]]:
        groups: dict[str | None, list[int]] = {}
        for i, record in enumerate(records):
            kind = record.get("attributes", {}).get("type") if isinstance(record, dict) else None
            obj = self.org.shape.resolve_object(kind) if isinstance(kind, str) else None
            groups.setdefault(obj, []).append(i)
        return list(groups.items())

    def _bad_type(self, positions: list[int]) -> list[dict[str, Any]]:
        error = _record_error(
            "INVALID_TYPE", "sObject type is missing, unknown or not supported", None
        )
        return [{"success": False, "errors": [error]} for _ in positions]

    def collection_create(self, req: Request, version: str) -> Response:
        all_or_none, records = self._collection_body(req)

        def step(db, obj, positions):
            if obj is None:
                return self._bad_type(positions)
            inc, errors = self.incoming(obj, [records[p] for p in positions])
            outcome = dml.insert(self.org.context(), db, obj, inc, errors)
            return self._results(outcome, errors, upsert=False)

        return Response.json(
            200, self._run_collection(self._group_by_type(records), len(records), all_or_none, step)
        )

    def collection_update(self, req: Request, version: str) -> Response:
        all_or_none, records = self._collection_body(req)

        def step(db, obj, positions):
            if obj is None:
                return self._bad_type(positions)
            inc, errors = self.incoming(obj, [records[p] for p in positions])
            if "Id" not in inc.values:
                inc.set("Id", None, False)
            outcome = dml.update(self.org.context(), db, obj, inc, errors)
            return self._results(outcome, errors, upsert=False)

        return Response.json(
            200, self._run_collection(self._group_by_type(records), len(records), all_or_none, step)
        )

    def collection_upsert(self, req: Request, version: str, object: str, field: str) -> Response:
        obj = self.object_name(object)
        name = self.external_field(obj, field)
        all_or_none, records = self._collection_body(req)

        def step(db, obj_name, positions):
            inc, errors = self.incoming(obj, [records[p] for p in positions])
            outcome = dml.upsert(self.org.context(), db, obj, inc, name, errors)
            return self._results(outcome, errors, upsert=True)

        return Response.json(
            200,
            self._run_collection(
                [(obj, list(range(len(records))))], len(records), all_or_none, step
            ),
        )

    def collection_delete(self, req: Request, version: str) -> Response:
        ids = [i for i in req.query.get("ids", "").split(",") if i]
        if len(ids) > COLLECTION_LIMIT:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
            )
        all_or_none = req.query.get("allOrNone", "false").lower() == "true"
        groups: dict[str | None, list[int]] = {}
        for i, raw in enumerate(ids):
            canonical = to_18_one(raw)
            obj = PREFIX_TO_OBJECT.get(canonical[:PREFIX_LENGTH]) if canonical else None
            if obj is not None and obj not in self.org.shape.objects():
                obj = None
            groups.setdefault(obj, []).append(i)

        def step(db, obj, positions):
            if obj is None:
                error = _record_error("MALFORMED_ID", "malformed id", None)
                return [{"success": False, "errors": [error]} for _ in positions]
            series = pd.Series([ids[p] for p in positions], dtype=object)
            errors = RowErrors(series.index)
            outcome = dml.delete(self.org.context(), db, obj, series, errors)
            return self._results(outcome, errors, upsert=False)

        return Response.json(
            200, self._run_collection(list(groups.items()), len(ids), all_or_none, step)
        )

    def collection_retrieve(self, req: Request, version: str, object: str) -> Response:
        obj = self.object_name(object)
        if req.method == "POST":
            body = req.json()
            if not isinstance(body, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
            raw_ids, fields = body.get("ids") or [], body.get("fields") or []
        else:
            raw_ids = [i for i in req.query.get("ids", "").split(",") if i]
            fields = [f for f in req.query.get("fields", "").split(",") if f]
        if not fields:
            raise ApiError(400, "MISSING_ARGUMENT", "fields parameter must be specified")
        ids = [to_18_one(str(i)) or str(i) for i in raw_ids]
        return Response.json(200, self.record_json(obj, ids, fields, version))

    def routes(self) -> list[Route]:
        """Every REST resource; literal segments before placeholders in the same place."""
        base = "/services/data/{version}"
        sobject = f"{base}/sobjects/{{object}}"
        composite = f"{base}/composite/sobjects"
        return [
            Route("GET", "/services/data", self.versions),
            Route("GET", base, self.resources),
            Route("GET", f"{base}/limits", self.limits),
            Route("GET", f"{base}/sobjects", self.describe_global),
            Route("GET", sobject, self.sobject_info),
            Route("POST", sobject, self.create),
            Route("GET", f"{sobject}/describe", self.describe),
            Route("GET", f"{sobject}/{{id}}", self.get_record),
            Route("PATCH", f"{sobject}/{{id}}", self.update_record),
            Route("DELETE", f"{sobject}/{{id}}", self.delete_record),
            Route("GET", f"{sobject}/{{field}}/{{value}}", self.get_by_external),
            Route("PATCH", f"{sobject}/{{field}}/{{value}}", self.upsert_record),
            Route("DELETE", f"{sobject}/{{field}}/{{value}}", self.delete_by_external),
            Route("GET", f"{base}/query", self.query),
            Route("GET", f"{base}/queryAll", self.query_all),
            Route("GET", f"{base}/query/{{locator}}", self.query_more),
            Route("GET", f"{base}/queryAll/{{locator}}", self.query_more),
            Route("POST", composite, self.collection_create),
            Route("PATCH", composite, self.collection_update),
            Route("DELETE", composite, self.collection_delete),
            Route("GET", f"{composite}/{{object}}", self.collection_retrieve),
            Route("POST", f"{composite}/{{object}}", self.collection_retrieve),
            Route("PATCH", f"{composite}/{{object}}/{{field}}", self.collection_upsert),
        ]


def _ambiguous(version: str, obj: str, ids: list[str]) -> Response:
    """Salesforce's 300 Multiple Choices for an external id that matches several records."""
    return Response.json(300, [f"/services/data/v{version}/sobjects/{obj}/{i}" for i in ids])
