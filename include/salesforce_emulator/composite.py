"""sObject Collections: up to 200 records per call, created, updated, upserted, deleted, read.

``/composite/sobjects`` answers 200 with one result per record, in input order, each with
``statusCode`` errors; records of several types are written type by type in one
transaction, and ``allOrNone`` rolls all of them back when one fails.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from salesforce_emulator import dml
from salesforce_emulator.ids import PREFIX_LENGTH, to_18_one
from salesforce_emulator.objects import PREFIX_TO_OBJECT
from salesforce_emulator.org import Org
from salesforce_emulator.protocol import ApiError, Request, Response, Route
from salesforce_emulator.records import RowErrors
from salesforce_emulator.rest_records import (
    COLLECTION_LIMIT,
    external_field,
    incoming,
    object_name,
    record_error,
    record_json,
)


class _Rollback(Exception):
    """Raised inside a transaction to undo an allOrNone collection that had a failure."""


def _too_many() -> ApiError:
    return ApiError(
        400,
        "EXCEEDED_ID_LIMIT",
        f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
    )


class Collections:
    """The ``/composite/sobjects`` resources over ``org``."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def _collection_body(self, req: Request) -> tuple[bool, list[Any]]:
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must have a records list")
        records = body["records"]
        if len(records) > COLLECTION_LIMIT:
            raise _too_many()
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
            rolled = record_error(
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
                        record_error(errors.code[row], errors.message[row], errors.fields[row])
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
        error = record_error(
            "INVALID_TYPE", "sObject type is missing, unknown or not supported", None
        )
        return [{"success": False, "errors": [error]} for _ in positions]

    def create(self, req: Request, version: str) -> Response:
        all_or_none, records = self._collection_body(req)

        def step(db, obj, positions):
            if obj is None:
                return self._bad_type(positions)
            inc, errors = incoming(self.org.shape, obj, [records[p] for p in positions])
            outcome = dml.insert(self.org.context(version), db, obj, inc, errors)
            return self._results(outcome, errors, upsert=False)

        return Response.json(
            200, self._run_collection(self._group_by_type(records), len(records), all_or_none, step)
        )

    def update(self, req: Request, version: str) -> Response:
        all_or_none, records = self._collection_body(req)

        def step(db, obj, positions):
            if obj is None:
                return self._bad_type(positions)
            inc, errors = incoming(self.org.shape, obj, [records[p] for p in positions])
            if "Id" not in inc.values:
                inc.set("Id", None, False)
            outcome = dml.update(self.org.context(version), db, obj, inc, errors)
            return self._results(outcome, errors, upsert=False)

        return Response.json(
            200, self._run_collection(self._group_by_type(records), len(records), all_or_none, step)
        )

    def upsert(self, req: Request, version: str, object: str, field: str) -> Response:
        obj = object_name(self.org.shape, object)
        name = external_field(self.org.shape, obj, field)
        all_or_none, records = self._collection_body(req)

        def step(db, obj_name, positions):
            inc, errors = incoming(self.org.shape, obj, [records[p] for p in positions])
            outcome = dml.upsert(self.org.context(version), db, obj, inc, name, errors)
            return self._results(outcome, errors, upsert=True)

        return Response.json(
            200,
            self._run_collection(
                [(obj, list(range(len(records))))], len(records), all_or_none, step
            ),
        )

    def delete(self, req: Request, version: str) -> Response:
        ids = [i for i in req.query.get("ids", "").split(",") if i]
        if len(ids) > COLLECTION_LIMIT:
            raise _too_many()
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
                error = record_error("MALFORMED_ID", "malformed id", None)
                return [{"success": False, "errors": [error]} for _ in positions]
            series = pd.Series([ids[p] for p in positions], dtype=object)
            errors = RowErrors(series.index)
            outcome = dml.delete(self.org.context(version), db, obj, series, errors)
            return self._results(outcome, errors, upsert=False)

        return Response.json(
            200, self._run_collection(list(groups.items()), len(ids), all_or_none, step)
        )

    def retrieve(self, req: Request, version: str, object: str) -> Response:
        obj = object_name(self.org.shape, object)
        if req.method == "POST":
            body = req.json_object()
            raw_ids, fields = body.get("ids") or [], body.get("fields") or []
        else:
            raw_ids = [i for i in req.query.get("ids", "").split(",") if i]
            fields = [f for f in req.query.get("fields", "").split(",") if f]
        if not fields:
            raise ApiError(400, "MISSING_ARGUMENT", "fields parameter must be specified")
        ids = [to_18_one(str(i)) or str(i) for i in raw_ids]
        return Response.json(
            200, record_json(self.org.store, self.org.shape, obj, ids, fields, version)
        )

    def routes(self) -> list[Route]:
        """Every ``/composite/sobjects`` route."""
        base = "/services/data/{version}/composite/sobjects"
        return [
            Route("POST", base, self.create),
            Route("PATCH", base, self.update),
            Route("DELETE", base, self.delete),
            Route("GET", f"{base}/{{object}}", self.retrieve),
            Route("POST", f"{base}/{{object}}", self.retrieve),
            Route("PATCH", f"{base}/{{object}}/{{field}}", self.upsert),
        ]
