"""The REST API: versions, describe, records, external-ID upsert, query, limits.

Paths, status codes and bodies follow Salesforce's REST API (see ``salesforce_api.md`` §3):
201 with ``{"id", "success", "errors"}`` on create, 204 on update and delete, 201/200/300 on
upsert by external ID, errors as a JSON array with ``errorCode``, 404 ``NOT_FOUND`` for
objects hidden by the org's settings. sObject Collections are in ``composite.py``.
"""

from __future__ import annotations

import pandas as pd

from salesforce_emulator import dml
from salesforce_emulator.ids import PREFIX_LENGTH, to_18_one
from salesforce_emulator.objects import (
    ALL_OBJECTS,
    describe_sobject,
    global_entry,
)
from salesforce_emulator.org import Org
from salesforce_emulator.protocol import ApiError, Request, Response, Route, not_found
from salesforce_emulator.query import (
    QueryLocatorError,
    QueryService,
    page_size_from,
)
from salesforce_emulator.records import Incoming, RowErrors
from salesforce_emulator.rest_records import (
    COLLECTION_LIMIT,
    api_error,
    external_field,
    incoming,
    object_name,
    record_json,
    unknown_external_field,
)
from salesforce_emulator.soql import SoqlError
from salesforce_emulator.store import quote_ident
from salesforce_emulator.usage import Usage

API_VERSIONS = [f"{v}.0" for v in range(31, 63)]
_SEASONS = ("Winter", "Spring", "Summer")


def _version_label(version: str) -> str:
    major = int(float(version))
    index = major - 31
    year = 15 + (index + 1) // 3
    return f"{_SEASONS[(index + 1) % 3]} '{year:02d}"


class RestApi:
    """The REST resources over ``org``; ``queries`` keeps query cursors, ``usage`` the limits."""

    def __init__(self, org: Org, queries: QueryService, usage: Usage) -> None:
        self.org = org
        self.queries = queries
        self.usage = usage

    # --------------------------------------------------------------------- helpers

    def matching_ids(self, obj: str, field: str, value: str) -> list[str]:
        """Records found by an external ID, as upsert finds them (``dml.match_keys``)."""
        if field == "Id":
            rows = self.org.store.read(
                f"SELECT Id FROM {quote_ident(obj)} WHERE IsDeleted = 0 AND Id = ?",
                (to_18_one(value) or value,),
            )
            return [r[0] for r in rows]
        f = self.org.shape.fields(obj)[field]
        with self.org.store.lock:
            found = dml.match_keys(self.org.store.conn, obj, f, pd.Series([value]))
        return found["Id"].tolist()

    def record_id(self, obj: str, raw: str) -> str:
        """An Id in a record path; anything else is read as an unknown external-ID field."""
        canonical = to_18_one(raw)
        if canonical is None or canonical[:PREFIX_LENGTH] != ALL_OBJECTS[obj].key_prefix:
            raise unknown_external_field(raw)
        return canonical

    def write(
        self, operation, version: str, obj: str, inc: Incoming, errors: RowErrors, *extra
    ) -> dml.Outcome:
        with self.org.store.transaction() as db:
            return operation(self.org.context(version), db, obj, inc, *extra, errors)

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
        obj = ALL_OBJECTS[object_name(self.org.shape, object)]
        return Response.json(200, {"objectDescribe": global_entry(obj, version), "recentItems": []})

    def describe(self, req: Request, version: str, object: str) -> Response:
        obj = ALL_OBJECTS[object_name(self.org.shape, object)]
        return Response.json(200, describe_sobject(obj, self.org.shape, version))

    # --------------------------------------------------------------------- records

    def create(self, req: Request, version: str, object: str) -> Response:
        obj = object_name(self.org.shape, object)
        body = req.json_object()
        inc, errors = incoming(self.org.shape, obj, [body])
        if not errors.ok.iloc[0]:
            raise api_error(errors, 0)
        outcome = self.write(dml.insert, version, obj, inc, errors)
        if not errors.ok.iloc[0]:
            raise api_error(errors, 0)
        return Response.json(201, {"id": outcome.ids.iloc[0], "success": True, "errors": []})

    def get_record(self, req: Request, version: str, object: str, id: str) -> Response:
        obj = object_name(self.org.shape, object)
        record_id = self.record_id(obj, id)
        fields = req.query.get("fields")
        record = record_json(
            self.org.store,
            self.org.shape,
            obj,
            [record_id],
            fields.split(",") if fields else None,
            version,
        )
        if record[0] is None:
            raise not_found()
        return Response.json(200, record[0])

    def update_record(self, req: Request, version: str, object: str, id: str) -> Response:
        obj = object_name(self.org.shape, object)
        record_id = self.record_id(obj, id)
        body = req.json_object()
        inc, errors = incoming(self.org.shape, obj, [body])
        if not errors.ok.iloc[0]:
            raise api_error(errors, 0)
        inc.set("Id", record_id)
        self.write(dml.update, version, obj, inc, errors)
        if not errors.ok.iloc[0]:
            if (
                errors.code.iloc[0] == "INVALID_CROSS_REFERENCE_KEY"
                and errors.fields.iloc[0] == "Id"
            ):
                raise not_found()
            raise api_error(errors, 0)
        return Response.empty(204)

    def delete_record(self, req: Request, version: str, object: str, id: str) -> Response:
        obj = object_name(self.org.shape, object)
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
        obj = object_name(self.org.shape, object)
        name = external_field(self.org.shape, obj, field)
        ids = self.matching_ids(obj, name, value)
        if not ids:
            raise not_found()
        if len(ids) > 1:
            return _ambiguous(version, obj, ids)
        fields = req.query.get("fields")
        return Response.json(
            200,
            record_json(
                self.org.store,
                self.org.shape,
                obj,
                ids,
                fields.split(",") if fields else None,
                version,
            )[0],
        )

    def upsert_record(
        self, req: Request, version: str, object: str, field: str, value: str
    ) -> Response:
        obj = object_name(self.org.shape, object)
        if not ALL_OBJECTS[obj].upsertable:
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method 'PATCH' not allowed for {obj}.")
        name = external_field(self.org.shape, obj, field)
        body = req.json_object()
        ids = self.matching_ids(obj, name, value)
        if len(ids) > 1:
            return _ambiguous(version, obj, ids)
        inc, errors = incoming(self.org.shape, obj, [{**body, name: value}])
        if not errors.ok.iloc[0]:
            raise api_error(errors, 0)
        outcome = self.write(dml.upsert, version, obj, inc, errors, name)
        if not errors.ok.iloc[0]:
            raise api_error(errors, 0)
        created = bool(outcome.created.iloc[0])
        return Response.json(
            201 if created else 200,
            {"id": outcome.ids.iloc[0], "success": True, "errors": [], "created": created},
        )

    def delete_by_external(
        self, req: Request, version: str, object: str, field: str, value: str
    ) -> Response:
        obj = object_name(self.org.shape, object)
        name = external_field(self.org.shape, obj, field)
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
                now=self.org.clock.now(),
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

    def routes(self) -> list[Route]:
        """Every REST resource; literal segments before placeholders in the same place."""
        base = "/services/data/{version}"
        sobject = f"{base}/sobjects/{{object}}"
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
        ]


def _ambiguous(version: str, obj: str, ids: list[str]) -> Response:
    """Salesforce's 300 Multiple Choices for an external id that matches several records."""
    return Response.json(300, [f"/services/data/v{version}/sobjects/{obj}/{i}" for i in ids])
