"""The demo's generated day: deterministic, contract-shaped, and varied where the rules care."""

from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace

import pandas as pd
import pytest

from activity_sync.schema import EMAIL_RE, EVENT_COLUMNS, EVENT_TYPES, RECIPIENT_TYPES
from demo_data.generate import generate_day, write_landing

DAY = dt.date(2024, 5, 14)
ACCOUNT_SIZES = [3, 8, 1, 15, 90, 5, 2, 12, 40, 6] * 3


def _crm(*, text_booleans: bool = False) -> SimpleNamespace:
    contacts = [
        {"Id": f"003A{a:03d}{j:04d}", "Email": f"c{j}@acct{a}.com", "AccountId": f"001A{a:05d}"}
        for a, size in enumerate(ACCOUNT_SIZES)
        for j in range(size)
    ]
    contacts.append({"Id": "003NOACCOUNT", "Email": "alone@nowhere.io", "AccountId": None})
    contacts.append({"Id": "003NOEMAIL", "Email": None, "AccountId": "001A00000"})
    leads = pd.DataFrame(
        {
            "Id": [f"00Q{i:05d}" for i in range(30)],
            "Email": [f"lead{i}@prospect{i % 4}.net" for i in range(30)],
            "IsConverted": [i % 5 == 0 for i in range(30)],
        }
    )
    users = pd.DataFrame(
        {
            "Id": [f"005U{i:04d}" for i in range(7)],
            "Email": [f"rep{i}@acme.com" for i in range(6)] + ["ops@acme-partner.com"],
            "IsActive": [True, True, True, True, True, False, True],
        }
    )
    if text_booleans:
        leads["IsConverted"] = leads["IsConverted"].map({True: "true", False: "false"})
        users["IsActive"] = users["IsActive"].map({True: "True", False: "False"})
    return SimpleNamespace(contacts=pd.DataFrame(contacts), leads=leads, users=users)


CRM = _crm()
ACCOUNT_OF = dict(zip(CRM.contacts["Email"], CRM.contacts["AccountId"], strict=True))


@pytest.fixture(scope="module")
def day() -> pd.DataFrame:
    return generate_day(CRM, org_id="acme", day=DAY, seed=7, sends=400)


def _sends(events: pd.DataFrame) -> pd.DataFrame:
    return events[events["type"].isin(["sent", "internal_reply"])]


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601")


def _all_recipients(events: pd.DataFrame) -> pd.DataFrame:
    flat = _sends(events)[["event_id", "type", "recipients"]].explode("recipients")
    return flat.assign(
        email=flat["recipients"].str["email"], field=flat["recipients"].str["field"]
    ).drop(columns="recipients")


def test_the_same_seed_gives_the_same_day_and_another_seed_another_day(day):
    again = generate_day(CRM, org_id="acme", day=DAY, seed=7, sends=400)
    other = generate_day(CRM, org_id="acme", day=DAY, seed=8, sends=400)
    pd.testing.assert_frame_equal(day, again)
    assert not day["subject"].equals(other["subject"])


def test_events_have_exactly_the_contract_columns_and_an_arrival_time(day):
    assert list(day.columns) == [
        "event_id",
        "org_id",
        "type",
        "occurred_at",
        "sender",
        "actor",
        "recipients",
        "subject",
        "body",
        "thread_id",
        "message_id",
        "url",
        "filename",
        "starts_at",
        "ends_at",
        "location",
        "is_all_day",
        "arrived_at",
    ]
    assert list(day.columns[:-1]) == EVENT_COLUMNS
    assert (day["org_id"] == "acme").all()
    assert day["event_id"].str.startswith("acme-20240514-").all()


def test_every_event_type_of_the_contract_occurs_and_no_other(day):
    assert set(day["type"]) == EVENT_TYPES


def test_sends_go_to_one_to_one_hundred_twenty_recipients_mostly_few_and_some_over_fifty(day):
    counts = _sends(day)["recipients"].map(len)
    assert counts.between(1, 120).all()
    assert (counts <= 5).mean() > 0.6
    assert counts.between(10, 60).any()
    assert (counts > 50).any()


def test_only_sends_and_meetings_have_recipients_and_only_follow_ups_an_actor(day):
    listed = day["recipients"].map(len) > 0
    assert (listed == day["type"].isin(RECIPIENT_TYPES)).all()
    assert (day["actor"].notna() == ~day["type"].isin(RECIPIENT_TYPES)).all()


def test_recipients_are_listed_to_then_cc_then_bcc(day):
    rank = {"to": 0, "cc": 1, "bcc": 2}
    for recipients in _sends(day)["recipients"]:
        ranks = [rank[r["field"]] for r in recipients]
        assert ranks == sorted(ranks)
        assert ranks[0] == 0


def test_recipients_include_every_kind_of_address_the_rules_must_handle(day):
    emails = _all_recipients(day)["email"]
    assert {"bob@", "no at sign"} <= set(emails)
    assert emails.str.contains(
        r"^(?:noreply|no-reply|notifications|mailer-daemon|postmaster)@"
    ).any()
    assert emails.str.endswith("@competitor.com").any()
    messy = emails[emails != emails.str.strip()]
    assert len(messy) and (messy.str.strip() != messy.str.strip().str.lower()).all()
    assert messy.str.strip().str.lower().isin(ACCOUNT_OF).all()
    assert emails.isin(CRM.leads["Email"]).any()
    unknown = emails[emails.map(lambda e: bool(EMAIL_RE.fullmatch(e.strip())))]
    assert (~unknown.str.strip().str.lower().isin([*ACCOUNT_OF, *CRM.leads["Email"]])).any()
    assert (_all_recipients(day)["field"] == "bcc").any()
    repeated = _sends(day)["recipients"].map(lambda rs: len({r["email"] for r in rs}) < len(rs))
    assert repeated.any()


def test_converted_leads_are_never_addressed_even_when_booleans_are_text():
    events = generate_day(_crm(text_booleans=True), org_id="acme", day=DAY, sends=300)
    converted = set(CRM.leads.loc[CRM.leads["IsConverted"], "Email"])
    assert not converted & set(_all_recipients(events)["email"])
    assert events["sender"].eq("rep5@acme.com").any()


def test_most_sends_go_to_contacts_of_one_account_and_some_mix_accounts(day):
    flat = _all_recipients(day[day["type"] == "sent"])
    flat = flat.assign(account=flat["email"].str.strip().str.lower().map(ACCOUNT_OF)).dropna()
    per_send = flat.groupby("event_id")["account"].agg(["nunique", "size"])
    several = per_send[per_send["size"] >= 2]
    assert (several["nunique"] == 1).mean() > 0.6
    assert (several["nunique"] > 1).any()


def test_senders_are_active_users_plus_one_inactive_user_and_one_unknown_address(day):
    senders = set(day["sender"])
    users = set(CRM.users["Email"])
    assert "rep5@acme.com" in senders
    unknown = senders - users
    assert len(unknown) == 1
    assert unknown.pop().endswith("@acme.com")
    counts = day.loc[day["type"] == "sent", "sender"].value_counts()
    assert counts.get("rep5@acme.com", 0) < counts.max() / 5


def test_times_fall_on_the_day_with_an_offset_and_mostly_in_working_hours(day):
    assert day["occurred_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d").all()
    assert (day["occurred_at"].str[-6:] != "+00:00").any()
    occurred = _utc(day["occurred_at"])
    assert (occurred.dt.date == DAY).all()
    send_hours = occurred[day["type"] == "sent"].dt.hour
    assert send_hours.between(8, 17).mean() > 0.7


def test_arrival_is_never_before_occurrence_and_some_events_land_in_a_later_hour(day):
    occurred, arrived = _utc(day["occurred_at"]), _utc(day["arrived_at"])
    assert (arrived > occurred).all()
    assert day["arrived_at"].str.endswith("+00:00").all()
    assert (arrived.dt.floor("h") > occurred.dt.floor("h")).any()


def test_tracking_events_follow_the_send_they_are_about_and_are_done_by_a_recipient(day):
    sends = day[day["type"] == "sent"].drop_duplicates("event_id").set_index("message_id")
    follow = day[day["type"].isin(["open", "click", "download", "bounce"])]
    assert follow["message_id"].isin(sends.index).all()
    send = sends.loc[follow["message_id"]]
    assert (_utc(follow["occurred_at"]).to_numpy() >= _utc(send["occurred_at"]).to_numpy()).all()
    assert (follow["sender"].to_numpy() == send["sender"].to_numpy()).all()
    for actor, recipients in zip(follow["actor"], send["recipients"], strict=True):
        assert actor in {r["email"].strip() for r in recipients}


def test_replies_come_from_a_recipient_later_in_the_same_thread(day):
    sends = day[day["type"] == "sent"].drop_duplicates("event_id")
    replies = day[day["type"] == "reply"]
    assert len(replies)
    for reply in replies.itertuples():
        thread = sends[sends["thread_id"] == reply.thread_id].iloc[0]
        assert reply.actor in {r["email"].strip() for r in thread["recipients"]}
        assert _utc(pd.Series([reply.occurred_at]))[0] >= _utc(pd.Series([thread.occurred_at]))[0]
        assert reply.subject == f"Re: {thread.subject}"
        assert reply.sender == thread.sender


def test_internal_replies_address_colleagues_then_contacts(day):
    internal = day[day["type"] == "internal_reply"]
    users = set(CRM.users["Email"])
    for recipients in internal["recipients"]:
        assert recipients[0]["email"] in users
        assert any(r["email"] not in users for r in recipients)


def test_only_clicks_carry_a_url_and_only_downloads_a_filename(day):
    assert (day["url"].notna() == (day["type"] == "click")).all()
    assert (day["filename"].notna() == (day["type"] == "download")).all()
    assert day.loc[day["type"] == "click", "url"].str.startswith("https://").all()


def test_a_handful_of_events_are_delivered_twice_with_identical_content(day):
    twice = day[day["event_id"].duplicated(keep=False)]
    assert twice["event_id"].nunique() == 5
    for _, copies in twice.groupby("event_id"):
        first, second = copies[EVENT_COLUMNS].to_dict("records")
        assert first == second
        assert copies["arrived_at"].nunique() == 2


def test_a_crm_without_active_users_is_refused():
    crm = _crm()
    crm.users["IsActive"] = False
    with pytest.raises(ValueError, match="no active User"):
        generate_day(crm, org_id="acme", day=DAY, sends=10)


def test_each_arrival_hour_becomes_one_valid_json_lines_file(day, tmp_path):
    paths = write_landing(day, tmp_path, "acme")
    pattern = re.compile(r"org_id=acme/date=(\d{4}-\d\d-\d\d)/hour=(\d\d)/events\.jsonl")
    arrived_hours = _utc(day["arrived_at"]).dt.strftime("%Y-%m-%d %H")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == sorted(
        f"org_id=acme/date={h[:10]}/hour={h[11:]}/events.jsonl" for h in set(arrived_hours)
    )
    landed = []
    for path in paths:
        date, hour = pattern.fullmatch(path.relative_to(tmp_path).as_posix()).groups()
        lines = path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        assert all(list(r) == EVENT_COLUMNS for r in records)
        ids = [r["event_id"] for r in records]
        expected = day.loc[arrived_hours == f"{date} {hour}", "event_id"]
        assert sorted(ids) == sorted(expected)
        landed.extend(records)
    assert len(landed) == len(day)
    first_send = day[day["type"] == "sent"].iloc[0]
    same = next(r for r in landed if r["event_id"] == first_send["event_id"])
    assert same["recipients"] == first_send["recipients"]
    assert same["actor"] is None


def test_landing_again_rewrites_identical_files(day, tmp_path):
    first = {p: p.read_bytes() for p in write_landing(day, tmp_path, "acme")}
    again = write_landing(day.sample(frac=1, random_state=1), tmp_path, "acme")
    assert sorted(again) == sorted(first)
    assert all(p.read_bytes() == content for p, content in first.items())
    assert not list(tmp_path.rglob("*.partial"))
