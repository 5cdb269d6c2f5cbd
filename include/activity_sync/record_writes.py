"""Writing records through sObject Collections, with results shaped as a Bulk job's.

For the rows a Bulk CSV cannot carry: a text that is exactly ``#N/A`` (Bulk's null
marker, with no documented escape) would arrive as null there, while JSON tells the text
from a null. :class:`RecordWrites` is mixed into
:class:`~activity_sync.salesforce.SalesforceClient`, which brings the counted, retried
HTTP call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from activity_sync.bulk import (
    RESULT_CREATED,
    RESULT_ERROR,
    RESULT_ID,
    IngestResult,
    JobState,
)

if TYPE_CHECKING:
    import requests
    from simple_salesforce import Salesforce

T = TypeVar("T")

# Records per sObject Collections call:
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm
COLLECTION_MAX = 200


class RecordWrites:
    """Upserts and updates of a few records per call, for one org's client (a mixin)."""

    if TYPE_CHECKING:
        sf: Salesforce

        def _retrying(self, what: str, fn: Callable[[], T]) -> T: ...

        def _http(self, method: str, url: str, kind: str, **kwargs: Any) -> requests.Response: ...

    def upsert_records(
        self,
        object_name: str,
        external_id_field: str,
        rows: pd.DataFrame,
        clearable: tuple[str, ...] = (),
    ) -> IngestResult:
        """Upsert rows through sObject Collections (REST), results shaped as an ingest job's.

        For rows a Bulk CSV cannot carry: a text that is exactly :data:`~activity_sync.bulk.BULK_NULL` would
        arrive as null there, while JSON tells the text from a null. The cells mean what
        they mean in a Bulk CSV: an empty ``clearable`` cell clears the field (JSON null),
        any other empty cell leaves it as it is (left out). One call per 200 rows, so only
        for the few rows that need it; upserting by key is idempotent, so a call whose
        answer was lost is simply sent again.
        """
        url = f"{self.sf.base_url}composite/sobjects/{object_name}/{external_id_field}"
        return self._collection_write(object_name, url, rows, clearable)

    def update_records(
        self, object_name: str, rows: pd.DataFrame, clearable: tuple[str, ...] = ()
    ) -> IngestResult:
        """:meth:`upsert_records`, as updates of the records in the ``Id`` column."""
        url = f"{self.sf.base_url}composite/sobjects"
        return self._collection_write(object_name, url, rows, clearable)

    def _collection_write(
        self, object_name: str, url: str, rows: pd.DataFrame, clearable: tuple[str, ...]
    ) -> IngestResult:
        cells = rows.astype(object).where(rows.notna() & rows.ne(""), None)
        records = [
            {k: v for k, v in record.items() if v is not None or k in clearable}
            for record in cells.to_dict("records")
        ]
        answers: list[dict[str, Any]] = []
        for start in range(0, len(records), COLLECTION_MAX):
            chunk = records[start : start + COLLECTION_MAX]
            payload = {
                "allOrNone": False,
                "records": [{"attributes": {"type": object_name}, **r} for r in chunk],
            }
            answers += self._retrying(
                f"write {len(chunk)} {object_name} records",
                lambda payload=payload: self._http(
                    "PATCH", url, "collection_write", json=payload
                ).json(),
            )
        return _collection_result(rows, answers)


def _collection_result(rows: pd.DataFrame, answers: list[dict[str, Any]]) -> IngestResult:
    """sObject Collections answers (one per row, in order) as an ingest job's result files."""
    sent = rows.reset_index(drop=True).astype(object)
    sent = sent.where(sent.notna(), "")
    answer = pd.DataFrame(answers, index=sent.index).reindex(
        columns=["id", "success", "created", "errors"]
    )
    ok = answer["success"].fillna(False).astype(bool)
    first_error = answer["errors"].map(lambda e: (e or [{}])[0])
    error = (
        first_error.str.get("statusCode").fillna("UNKNOWN_EXCEPTION")
        + ":"
        + first_error.str.get("message").fillna("")
        + ":"
        + first_error.map(lambda e: ",".join(e.get("fields") or []) or "--")
    )
    created = answer.loc[ok, "created"].map({True: "true"}).fillna("false")
    successful = pd.concat(
        [pd.DataFrame({RESULT_ID: answer.loc[ok, "id"], RESULT_CREATED: created}), sent[ok]],
        axis=1,
    )
    failed = pd.concat(
        [
            pd.DataFrame({RESULT_ID: answer.loc[~ok, "id"].fillna(""), RESULT_ERROR: error[~ok]}),
            sent[~ok],
        ],
        axis=1,
    )
    return IngestResult("", JobState.JOB_COMPLETE, successful, failed, pd.DataFrame())
