"""The CRM snapshot the planner matches events against (its columns: docs/outputs.md, the CRM mirror).

One frame per Salesforce object with the contract columns only, in dtypes the rules can
rely on whatever wrote the snapshot: text as pandas' Arrow-backed ``str`` with NaN for no
value (never ""), flags as bool, LastModifiedDate as tz-aware UTC. Both planners read the
same normalised frames, so a quirk of CSV versus Parquet cannot make them disagree; and
the text stays in Arrow memory, which the vectorised planner reads without a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from activity_sync.errors import ActivitySyncError

# Crm field -> (Salesforce object, contract columns): the one statement of the CRM contract.
# The mirror pulls exactly these columns and the tests build snapshots from them.
OBJECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "contacts": ("Contact", ("Id", "Email", "AccountId", "LastModifiedDate")),
    "leads": ("Lead", ("Id", "Email", "IsConverted", "LastModifiedDate")),
    "accounts": ("Account", ("Id", "Name")),
    "opportunities": (
        "Opportunity",
        ("Id", "AccountId", "Name", "IsClosed", "CloseDate", "OwnerId"),
    ),
    "contact_roles": ("OpportunityContactRole", ("Id", "OpportunityId", "ContactId")),
    "users": ("User", ("Id", "Email", "IsActive")),
}
# IsDeleted and SystemModstamp are not in the contract: the mirror reads them to stay
# incremental, through the same normaliser.
FLAGS = frozenset({"IsConverted", "IsClosed", "IsActive", "IsDeleted"})
DATES = frozenset({"LastModifiedDate", "SystemModstamp"})
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class CrmError(ActivitySyncError, ValueError):
    """An unusable CRM snapshot; the message names the object and file or column."""


@dataclass(frozen=True)
class Crm:
    """The six objects the rules read; build it with :meth:`from_frames` or :func:`read_crm`."""

    contacts: pd.DataFrame
    leads: pd.DataFrame
    accounts: pd.DataFrame
    opportunities: pd.DataFrame
    contact_roles: pd.DataFrame
    users: pd.DataFrame

    @classmethod
    def from_frames(cls, **frames: pd.DataFrame) -> Crm:
        """Validate and normalise one frame per object; an object not given is empty.

        Extra columns are dropped. A missing contract column, or a flag or date column
        holding something that is not one, raises :class:`CrmError` naming it.
        """
        unknown = sorted(set(frames) - set(OBJECTS))
        if unknown:
            raise CrmError(f"unknown CRM object {unknown[0]!r}; expected one of {list(OBJECTS)}")
        normalised = {}
        for name, (sobject, columns) in OBJECTS.items():
            frame = frames.get(name)
            if frame is None:
                frame = pd.DataFrame({column: [] for column in columns})
            normalised[name] = normalise(frame, sobject, columns)
        return cls(**normalised)


def read_crm(folder: str | Path) -> Crm:
    """The CRM snapshot in ``folder``: per object a Delta table ``<Object>/`` (the mirror's,
    its latest version), else ``<Object>.parquet``, else ``<Object>.csv``.

    Args:
        folder: holds one table or file per Salesforce object of :data:`OBJECTS` (the CRM
            mirror, or an export made by hand).

    Returns:
        A :class:`Crm` of normalised frames (see :meth:`Crm.from_frames`).

    Raises:
        CrmError: the folder or an object's file is missing or unreadable, or a column is
            missing or holds a value of the wrong kind; the message names object and column.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CrmError(f"CRM folder {folder} does not exist")
    frames = {}
    for name, (sobject, _) in OBJECTS.items():
        parquet, csv = folder / f"{sobject}.parquet", folder / f"{sobject}.csv"
        delta = folder / sobject
        if (delta / "_delta_log").is_dir():
            from deltalake import DeltaTable

            frames[name] = DeltaTable(str(delta)).to_pandas()
            continue
        if not parquet.is_file() and not csv.is_file():
            raise CrmError(f"CRM object {sobject}: neither {csv} nor {parquet} exists")
        path = parquet if parquet.is_file() else csv
        try:
            if path is parquet:
                frames[name] = pq.read_table(path).to_pandas()
            else:
                # Everything as text: Salesforce Ids and flags must not be guessed at.
                frames[name] = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise CrmError(f"CRM object {sobject}: cannot read {path}: {exc}") from exc
    return Crm.from_frames(**frames)


def normalise(frame: pd.DataFrame, sobject: str, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` of one object's rows, typed as the module docstring says, fresh index.

    Whatever wrote the rows (a snapshot file, a Bulk CSV, a REST answer): text becomes
    Arrow-backed ``str`` with NaN for null or "", flags bool, dates UTC. A missing column,
    or a flag or date that is not one, raises :class:`CrmError` naming object, column and
    value.
    """
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise CrmError(f"CRM object {sobject} has no column {missing[0]!r}")
    out = {}
    for column in columns:
        values = frame[column]
        where = f"CRM object {sobject} column {column!r}"
        if column in FLAGS:
            out[column] = _flags(values, where)
        elif column in DATES:
            out[column] = _dates(values, where)
        else:
            out[column] = _text(values)
    return pd.DataFrame(out)


def _text(values: pd.Series) -> pd.Series:
    """Text with NaN for null or empty: an empty Id or Email is no value at all."""
    text = values.astype(TEXT).reset_index(drop=True)
    return text.mask(text == "")


def _flags(values: pd.Series, where: str) -> pd.Series:
    """Booleans from bool, 0/1 or "true"/"false" text (any case); null counts as false."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return pd.Series(values.fillna(False).to_numpy(dtype=bool))
    text = values.astype(pd.StringDtype("pyarrow")).str.strip().str.lower()
    known = text.isna() | text.isin(_TRUE | _FALSE)
    if not known.all():
        raise CrmError(f"{where} holds {values[~known].iloc[0]!r}, not a true/false flag")
    return pd.Series(text.isin(_TRUE).to_numpy(dtype=bool))


def _dates(values: pd.Series, where: str) -> pd.Series:
    """UTC timestamps in microseconds; a naive one is taken to be UTC, as Salesforce stores them."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values.dt.tz_localize("UTC")
    else:
        parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
        bad = parsed.isna() & values.notna()
        if bad.any():
            raise CrmError(f"{where} holds {values[bad].iloc[0]!r}, not a timestamp")
    return parsed.dt.as_unit("us").reset_index(drop=True)
