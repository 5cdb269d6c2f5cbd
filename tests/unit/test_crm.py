"""The CRM snapshot reader: one file per object, normalised dtypes, errors naming the gap."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activity_sync.crm import OBJECTS, Crm, CrmError, read_crm
from activity_sync.errors import ActivitySyncError

HEADERS = {sobject: ",".join(columns) for sobject, columns in OBJECTS.values()}


def write_csv_snapshot(folder, **rows: list[str]) -> None:
    """Every object as a CSV with its header; ``rows`` gives data lines per object."""
    folder.mkdir(exist_ok=True)
    for sobject, header in HEADERS.items():
        lines = [header, *rows.get(sobject, [])]
        (folder / f"{sobject}.csv").write_text("\n".join(lines) + "\n")


def test_csv_ids_flags_and_dates_are_read_as_written(tmp_path):
    write_csv_snapshot(
        tmp_path,
        Contact=["0030001,Ann@Client.com,0010001,2024-03-01T10:00:00.000+0000"],
        Lead=["00Q0001,hal@prospect.io,TRUE,2024-01-01", "00Q0002,ida@prospect.io,false,"],
        User=["0050001,rep@acme.com,1"],
    )
    crm = read_crm(tmp_path)
    contact = crm.contacts.iloc[0]
    assert (contact["Id"], contact["AccountId"]) == ("0030001", "0010001")
    assert contact["LastModifiedDate"] == pd.Timestamp("2024-03-01T10:00:00Z")
    assert crm.leads["IsConverted"].tolist() == [True, False]
    assert crm.leads["LastModifiedDate"].isna().tolist() == [False, True]
    assert crm.users["IsActive"].tolist() == [True]
    assert str(crm.contacts["LastModifiedDate"].dtype) == "datetime64[us, UTC]"


def test_parquet_is_read_and_preferred_over_csv(tmp_path):
    write_csv_snapshot(tmp_path, Account=["001A,From CSV"])
    pq.write_table(
        pa.table({"Id": ["001A"], "Name": ["From Parquet"]}), tmp_path / "Account.parquet"
    )
    assert read_crm(tmp_path).accounts["Name"].tolist() == ["From Parquet"]


def test_a_missing_object_file_is_an_error_naming_the_object(tmp_path):
    write_csv_snapshot(tmp_path)
    (tmp_path / "OpportunityContactRole.csv").unlink()
    with pytest.raises(CrmError, match="OpportunityContactRole"):
        read_crm(tmp_path)


def test_a_missing_column_is_an_error_naming_object_and_column(tmp_path):
    write_csv_snapshot(tmp_path)
    (tmp_path / "Opportunity.csv").write_text("Id,AccountId,Name,IsClosed,CloseDate\n")
    with pytest.raises(CrmError, match="Opportunity has no column 'OwnerId'"):
        read_crm(tmp_path)


def test_a_missing_folder_or_unreadable_file_is_an_error(tmp_path):
    with pytest.raises(CrmError, match="does not exist"):
        read_crm(tmp_path / "nowhere")
    write_csv_snapshot(tmp_path)
    (tmp_path / "User.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(CrmError, match="User: cannot read"):
        read_crm(tmp_path)


def test_text_that_is_empty_counts_as_missing_and_extra_columns_are_dropped():
    crm = Crm.from_frames(
        contacts=pd.DataFrame(
            {
                "Id": ["003A"],
                "Email": [""],
                "AccountId": [None],
                "LastModifiedDate": [None],
                "Phone": ["555"],
            }
        )
    )
    assert list(crm.contacts.columns) == list(OBJECTS["contacts"][1])
    assert crm.contacts[["Email", "AccountId"]].isna().all(axis=None)


def test_objects_not_given_are_empty_with_their_columns():
    crm = Crm.from_frames()
    for name, (_, columns) in OBJECTS.items():
        frame = getattr(crm, name)
        assert frame.empty
        assert list(frame.columns) == list(columns)


def test_an_unknown_object_name_is_an_error():
    with pytest.raises(CrmError, match="'cases'"):
        Crm.from_frames(cases=pd.DataFrame())


def test_a_flag_that_is_no_flag_is_an_error_naming_it():
    users = pd.DataFrame({"Id": ["005A"], "Email": ["rep@acme.com"], "IsActive": ["maybe"]})
    with pytest.raises(CrmError, match="User column 'IsActive' holds 'maybe'"):
        Crm.from_frames(users=users)


def test_a_snapshot_file_with_a_flag_that_is_no_flag_is_refused_naming_object_column_value(
    tmp_path,
):
    """The reader's half of one rule; test_mirror.py holds the mirror's half."""
    write_csv_snapshot(tmp_path, User=["0050001,rep@acme.com,maybe"])
    with pytest.raises(CrmError, match="User column 'IsActive' holds 'maybe'") as error:
        read_crm(tmp_path)
    assert isinstance(error.value, ActivitySyncError)


def test_a_date_that_is_no_date_is_an_error_naming_it():
    leads = pd.DataFrame(
        {"Id": ["00QA"], "Email": ["a@b.co"], "IsConverted": [False], "LastModifiedDate": ["soon"]}
    )
    with pytest.raises(CrmError, match="Lead column 'LastModifiedDate' holds 'soon'"):
        Crm.from_frames(leads=leads)


def test_naive_timestamps_are_taken_as_utc_and_aware_ones_converted():
    contacts = pd.DataFrame(
        {
            "Id": ["003A", "003B"],
            "Email": ["a@b.co", "c@d.co"],
            "AccountId": ["001A", "001A"],
            "LastModifiedDate": pd.to_datetime(["2024-01-01T12:00", "2024-01-02T12:00"]),
        }
    )
    crm = Crm.from_frames(contacts=contacts)
    assert crm.contacts["LastModifiedDate"].tolist() == [
        pd.Timestamp("2024-01-01T12:00Z"),
        pd.Timestamp("2024-01-02T12:00Z"),
    ]
    berlin = contacts.assign(
        LastModifiedDate=contacts["LastModifiedDate"].dt.tz_localize("Europe/Berlin")
    )
    assert Crm.from_frames(contacts=berlin).contacts["LastModifiedDate"].iloc[0] == pd.Timestamp(
        "2024-01-01T11:00Z"
    )
