"""A realistic, reproducible day of email activity for the demo org (and for tests).

The pipeline is only as well exercised as its input is varied, so a generated day carries
what the rules are about: sends to one Contact and to more than fifty (R6), Leads (R7),
mixed Accounts (R9), excluded, unknown, invalid and messy addresses (R3-R5), Bcc, replies
and tracking events on earlier sends (R2), meetings, inactive and unknown senders,
duplicated deliveries, and events that arrive in a later hour than they happened.

Everything random comes from one numpy Generator and one Faker instance seeded alike, so a
seed always gives the same day.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from faker import Faker

from activity_sync.schema import EVENT_COLUMNS
from demo_data.people import People, people_of

MAX_RECIPIENTS = 120
DAY_SECONDS = 86_400

# Relative send volume per UTC hour: a team spread over Europe and the US east coast.
_HOUR_WEIGHTS = np.array(
    [
        0.3,
        0.2,
        0.2,
        0.2,
        0.2,
        0.3,
        0.6,
        1.5,
        4,
        7,
        8,
        8,
        5,
        7,
        8,
        7,
        6,
        4,
        2.5,
        1.5,
        1,
        0.8,
        0.6,
        0.4,
    ]
)
# Recipient count bands of a send: most go to a few people, some to a room, a few to a crowd
# (the crowd is what makes Tasks of 50 plus a remainder).
_COUNT_BANDS = [(1, 5, 0.78), (6, 9, 0.08), (10, 60, 0.12), (51, MAX_RECIPIENTS, 0.02)]
_SMALL_COUNT_WEIGHTS = np.array([0.45, 0.25, 0.15, 0.09, 0.06])

# What one recipient slot of a send holds, and how often.
_SLOT_KINDS = np.array(
    [
        "account",  # a Contact of the send's Account
        "other_account",  # a Contact of some other Account (R9)
        "lead",
        "unknown",  # a valid address that is in no CRM object
        "system",  # noreply@ and friends
        "competitor",
        "invalid",
        "messy",  # an Account Contact written with odd case and spaces
        "duplicate",  # an address already listed on this send
    ]
)
_SLOT_WEIGHTS = np.array([0.80, 0.03, 0.05, 0.05, 0.015, 0.015, 0.008, 0.015, 0.017])
_MIXED_SLOT_WEIGHTS = np.array([0.50, 0.33, 0.05, 0.05, 0.015, 0.015, 0.008, 0.015, 0.017])
_INVALID_ADDRESSES = ["bob@", "no at sign", "jane.doe@@example.com", "sales@example", "<>"]
_SYSTEM_LOCAL_PARTS = ["noreply", "no-reply", "notifications", "mailer-daemon", "postmaster"]
_FIELD_RANK = {"to": 0, "cc": 1, "bcc": 2}
_INTERNAL_REPLY_SHARE = 0.08
_MIXED_SEND_SHARE = 0.12
_LEAD_SEND_SHARE = 0.10
_REPLY_SHARE = 0.08
_SENDS_PER_MEETING = 150


def generate_day(
    crm: Any,
    *,
    org_id: str,
    day: dt.date,
    seed: int = 7,
    sends: int = 1500,
    internal_domain: str | None = None,
    competitor_domain: str = "competitor.com",
    duplicates: int = 5,
) -> pd.DataFrame:
    """One day of events for ``org_id`` as the contract's columns plus ``arrived_at``.

    ``crm`` is any object whose ``contacts`` (Id, Email, AccountId), ``leads`` (Id, Email,
    IsConverted) and ``users`` (Id, Email, IsActive) attributes are DataFrames.
    ``sends`` counts outgoing messages (``sent`` and ``internal_reply``); replies,
    tracking events and meetings come on top. ``internal_domain`` defaults to the most
    common domain of the users' emails. ``duplicates`` events are delivered a second time,
    later, with the same ``event_id``, as an at-least-once feed does.
    """
    if sends < 1:
        raise ValueError(f"sends must be at least 1, got {sends}")
    rng = np.random.default_rng(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    people = people_of(crm, rng, fake, internal_domain)

    messages = _messages(rng, fake, people, sends, competitor_domain)
    meetings = _meetings(rng, fake, people, max(1, sends // _SENDS_PER_MEETING))
    tracking = _tracking_events(rng, fake, people, messages)
    replies = _replies(rng, fake, messages)
    events = pd.concat(
        [messages.drop(columns=["slots"]), meetings, tracking, replies], ignore_index=True
    )

    # Sends come before what happened to them within the same second: order by time, then
    # by the order of generation.
    seconds = events["t"].to_numpy(dtype=np.int64)
    events = events.iloc[np.lexsort((np.arange(len(events)), seconds))].reset_index(drop=True)
    serial = pd.Series(np.arange(len(events))).astype(str).str.zfill(6)
    events["event_id"] = f"{org_id}-{day:%Y%m%d}-" + serial
    events["org_id"] = org_id
    events["arrival_t"] = events["t"] + _arrival_lags(rng, len(events))
    events = pd.concat([events, _redeliveries(rng, events, duplicates)], ignore_index=True)
    events = events.sort_values(["t", "arrival_t", "event_id"], kind="stable")

    start = pd.Timestamp(day, tz="UTC")
    events["occurred_at"] = _iso(start, events["t"], events["offset"])
    utc = pd.Series("+00:00", index=events.index)
    events["arrived_at"] = _iso(start, events["arrival_t"], utc)
    for name in EVENT_COLUMNS:  # fields an event does not use are null (None), not NaN
        column = events[name] if name in events.columns else pd.Series(None, events.index)
        events[name] = column.astype(object).where(column.notna(), None)
    return events[[*EVENT_COLUMNS, "arrived_at"]].reset_index(drop=True)


def write_landing(events: pd.DataFrame, landing_root: Path, org_id: str) -> list[Path]:
    """Write ``events`` as JSON Lines, one file per UTC arrival hour; returns the files.

    Each hour file is replaced whole by the events given for that hour (sorted by arrival,
    then event_id), so a re-run writes identical files. To land several days whose late
    arrivals share an hour, pass them in one frame.
    """
    arrived = pd.to_datetime(events["arrived_at"], utc=True, format="ISO8601")
    frame = events[EVENT_COLUMNS].assign(_hour=arrived.dt.floor("h"), _arrived=arrived)
    frame = frame.sort_values(["_arrived", "event_id"], kind="stable")
    written = []
    for hour, group in frame.groupby("_hour", sort=True):
        path = (
            Path(landing_root)
            / f"org_id={org_id}"
            / f"date={hour:%Y-%m-%d}"
            / f"hour={hour:%H}"
            / "events.jsonl"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps({k: _jsonable(v) for k, v in record.items()}, ensure_ascii=False)
            for record in group[EVENT_COLUMNS].to_dict("records")
        ]
        # Write beside and rename, so a reader never sees half an hour.
        partial = path.with_suffix(".jsonl.partial")
        partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(partial, path)
        written.append(path)
    return written


def _working_hours_seconds(rng: np.random.Generator, size: int) -> np.ndarray:
    hours = rng.choice(24, size=size, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    return np.sort(hours * 3600 + rng.integers(0, 3600, size=size))


def _recipient_counts(rng: np.random.Generator, size: int) -> np.ndarray:
    band = rng.choice(len(_COUNT_BANDS), size=size, p=[b[2] for b in _COUNT_BANDS])
    lows = np.array([b[0] for b in _COUNT_BANDS])[band]
    highs = np.array([b[1] for b in _COUNT_BANDS])[band]
    counts = rng.integers(lows, highs + 1)
    small = band == 0
    counts[small] = 1 + rng.choice(5, size=int(small.sum()), p=_SMALL_COUNT_WEIGHTS)
    if not (counts > 50).any():
        # The batch-of-50 path must always be exercised, however small the day.
        counts[rng.integers(size)] = rng.integers(51, MAX_RECIPIENTS + 1)
    return counts


def _messages(
    rng: np.random.Generator, fake: Faker, people: People, sends: int, competitor_domain: str
) -> pd.DataFrame:
    """The day's outgoing messages, with each recipient slot's kind kept for follow-ups."""
    seconds = _working_hours_seconds(rng, sends)
    sender_index = rng.choice(len(people.senders), size=sends, p=people.sender_weights)
    internal = rng.random(sends) < _INTERNAL_REPLY_SHARE
    counts = _recipient_counts(rng, sends)
    style = rng.choice(
        ["single", "mixed", "lead"],
        size=sends,
        p=[1 - _MIXED_SEND_SHARE - _LEAD_SEND_SHARE, _MIXED_SEND_SHARE, _LEAD_SEND_SHARE],
    )
    threads: dict[str, list[tuple[str, str]]] = {}
    rows = []
    for i in range(sends):
        sender = people.senders[sender_index[i]]
        count = counts[i]
        colleagues: list[tuple[str, str, str]] = []
        if internal[i]:
            others = people.colleagues[people.colleagues != sender]
            picked = rng.choice(others, size=min(len(others), rng.integers(1, 4)), replace=False)
            colleagues = [(c, "to", "colleague") for c in picked]
            count = min(count, MAX_RECIPIENTS - len(colleagues))
        if style[i] == "lead" and len(people.leads) and count <= 5:
            slots = [(rng.choice(people.leads), "to", "lead")]
        else:
            slots = _slots(rng, fake, people, count, style[i] == "mixed", competitor_domain)
        slots = sorted(colleagues + slots, key=lambda s: _FIELD_RANK[s[1]])

        # An internal reply continues one of the sender's threads when there is one.
        earlier = threads.get(sender, [])
        if internal[i] and earlier:
            thread_id, topic = earlier[rng.integers(len(earlier))]
        else:
            thread_id, topic = f"thr-{rng.bytes(6).hex()}", fake.catch_phrase()
            threads.setdefault(sender, []).append((thread_id, topic))
        subject = f"Re: {topic}" if internal[i] else topic
        rows.append(
            {
                "t": int(seconds[i]),
                "offset": people.sender_offsets[sender_index[i]],
                "type": "internal_reply" if internal[i] else "sent",
                "sender": sender,
                "actor": None,
                "recipients": [{"email": e, "field": f} for e, f, _ in slots],
                "slots": slots,
                "subject": subject,
                "body": f"{fake.paragraph(nb_sentences=4)}\n\n--\n{fake.name()}",
                "thread_id": thread_id,
                "message_id": f"<{rng.bytes(8).hex()}@{people.internal_domain}>",
                "url": None,
                "filename": None,
            }
        )
    return pd.DataFrame(rows)


def _slots(
    rng: np.random.Generator,
    fake: Faker,
    people: People,
    count: int,
    mixed: bool,
    competitor_domain: str,
) -> list[tuple[str, str, str]]:
    """``count`` recipients (email, field, kind) of one send, mostly one Account's Contacts."""
    kinds = rng.choice(_SLOT_KINDS, size=count, p=_MIXED_SLOT_WEIGHTS if mixed else _SLOT_WEIGHTS)
    if kinds[0] == "duplicate":
        kinds[0] = "account"
    fields = rng.choice(["to", "cc", "bcc"], size=count, p=[0.55, 0.38, 0.07])
    fields[0] = "to"
    account = rng.choice(len(people.account_contacts), p=people.account_weights)
    own = iter(rng.permutation(people.account_contacts[account]))
    others = iter(rng.choice(people.contacts, size=count, replace=count > len(people.contacts)))
    slots: list[tuple[str, str, str]] = []
    for kind, field in zip(kinds, fields, strict=True):
        if kind == "account":
            # A crowd outgrows its Account and spills into others: mixed by necessity.
            email = next(own, None) or next(others)
        elif kind == "other_account":
            email = next(others)
        elif kind == "lead" and len(people.leads):
            email = rng.choice(people.leads)
        elif kind == "system":
            email = f"{rng.choice(_SYSTEM_LOCAL_PARTS)}@{_domain(next(others))}"
        elif kind == "competitor":
            email = f"{fake.first_name().lower()}@{competitor_domain}"
        elif kind == "invalid":
            email = rng.choice(_INVALID_ADDRESSES)
        elif kind == "messy":
            email = _messy(next(own, None) or next(others))
        elif kind == "duplicate":
            email = slots[rng.integers(len(slots))][0]
        else:
            kind, email = "unknown", fake.company_email()
        slots.append((str(email), str(field), str(kind)))
    return slots


def _domain(email: str) -> str:
    return email.rsplit("@", 1)[-1]


def _messy(email: str) -> str:
    """The same address as a person might type it: spaces around, case changed."""
    local, domain = email.rsplit("@", 1)
    return f" {local.title()}@{domain.upper()} "


def _meetings(rng: np.random.Generator, fake: Faker, people: People, count: int) -> pd.DataFrame:
    """Calendar events with a few Contacts of one Account (R2: one Task per attendee)."""
    seconds = np.sort(
        rng.choice(np.arange(8, 18) * 3600, size=count) + rng.choice([0, 1800], count)
    )
    sender_index = rng.integers(len(people.colleagues), size=count)
    rows = []
    for i in range(count):
        account = people.account_contacts[
            rng.choice(len(people.account_contacts), p=people.account_weights)
        ]
        size = min(len(account), int(rng.integers(1, 7)))
        attendees = rng.choice(account, size=size, replace=False)
        rows.append(
            {
                "t": int(seconds[i]),
                "offset": "+00:00",
                "type": "meeting",
                "sender": people.colleagues[sender_index[i]],
                "actor": None,
                "recipients": [{"email": str(a), "field": "to"} for a in attendees],
                "subject": f"{fake.bs().capitalize()} - call",
                "body": fake.sentence(nb_words=12),
                "thread_id": None,
                "message_id": f"<{rng.bytes(8).hex()}@calendar.{people.internal_domain}>",
                "url": None,
                "filename": None,
            }
        )
    return pd.DataFrame(rows)


def _after(rng: np.random.Generator, start: np.ndarray, mean_seconds: float) -> np.ndarray:
    """Times after ``start``, exponentially delayed but kept within the day."""
    delay = rng.exponential(mean_seconds, size=len(start)).astype(np.int64) + 1
    room = DAY_SECONDS - 1 - start
    return start + np.where(delay <= room, delay, (rng.random(len(start)) * room).astype(np.int64))


def _tracking_events(
    rng: np.random.Generator, fake: Faker, people: People, messages: pd.DataFrame
) -> pd.DataFrame:
    """Opens, clicks, downloads and bounces by recipients of external sends.

    Drawn for all recipients at once; unknown and system mailboxes bounce more, system
    mailboxes never open, and only an opened email gets clicked or downloaded from.
    """
    sent = messages[messages["type"] == "sent"]["slots"].explode()
    flat = pd.DataFrame(sent.tolist(), columns=["email", "field", "kind"], index=sent.index)
    flat = flat[~flat["kind"].isin(["invalid", "duplicate"])]
    kind = flat["kind"].to_numpy()
    u = rng.random(len(flat))
    p_bounce = np.select([kind == "unknown", kind == "system"], [0.2, 0.3], 0.003)
    p_open = np.where(kind == "system", 0.0, 0.30)
    bounced = u < p_bounce
    opened = ~bounced & (u < p_bounce + p_open)
    clicked = opened & (rng.random(len(flat)) < 0.2)
    downloaded = opened & (rng.random(len(flat)) < 0.08)

    start = messages.loc[flat.index, "t"].to_numpy()
    open_t = _after(rng, start, 40 * 60)
    urls = [f"https://www.{people.internal_domain}/{fake.uri_path()}" for _ in range(8)]
    files = [fake.file_name(extension=e) for e in ("pdf", "pdf", "pptx", "xlsx", "docx")]
    bounces = _about(
        messages, flat[bounced], start[bounced] + rng.integers(5, 300, int(bounced.sum()))
    )
    return pd.concat(
        [
            bounces.assign(
                type="bounce",
                body="Delivery failed: 550 5.1.1 <"
                + bounces["actor"]
                + ">: recipient address rejected",
            ),
            _about(messages, flat[opened], open_t[opened]).assign(type="open"),
            _about(messages, flat[clicked], _after(rng, open_t[clicked], 180)).assign(
                type="click", url=rng.choice(urls, size=int(clicked.sum()))
            ),
            _about(messages, flat[downloaded], _after(rng, open_t[downloaded], 300)).assign(
                type="download", filename=rng.choice(files, size=int(downloaded.sum()))
            ),
        ],
        ignore_index=True,
    )


def _about(messages: pd.DataFrame, recipients: pd.DataFrame, seconds: np.ndarray) -> pd.DataFrame:
    """Events about the sends that ``recipients`` (indexed like ``messages``) received."""
    source = messages.loc[recipients.index]
    return pd.DataFrame(
        {
            "t": np.asarray(seconds, dtype=np.int64),
            "offset": "+00:00",
            "type": None,
            "sender": source["sender"].to_numpy(),
            # Trackers report the address itself, not the spacing it was typed with.
            "actor": recipients["email"].str.strip().to_numpy(),
            "recipients": [[] for _ in range(len(recipients))],
            "subject": source["subject"].to_numpy(),
            "body": None,
            "thread_id": source["thread_id"].to_numpy(),
            "message_id": source["message_id"].to_numpy(),
            "url": None,
            "filename": None,
        }
    )


def _replies(rng: np.random.Generator, fake: Faker, messages: pd.DataFrame) -> pd.DataFrame:
    """Replies from a recipient of an earlier send, in its thread (individual under R2)."""
    rows = []
    for index in np.flatnonzero(rng.random(len(messages)) < _REPLY_SHARE):
        message = messages.iloc[index]
        repliers = [
            e
            for e, _, k in message["slots"]
            if k not in ("invalid", "duplicate", "system", "colleague")
        ]
        if message["type"] != "sent" or not repliers:
            continue
        actor = repliers[rng.integers(len(repliers))].strip()
        rows.append(
            {
                "t": int(_after(rng, np.array([message["t"]]), 90 * 60)[0]),
                "offset": "+00:00",
                "type": "reply",
                "sender": message["sender"],
                "actor": actor,
                "recipients": [],
                "subject": f"Re: {message['subject']}",
                "body": fake.paragraph(nb_sentences=2),
                "thread_id": message["thread_id"],
                "message_id": f"<{rng.bytes(8).hex()}@{_domain(actor).lower()}>",
                "url": None,
                "filename": None,
            }
        )
    return pd.DataFrame(rows, columns=[*EVENT_COLUMNS[2:], "t", "offset"])


def _arrival_lags(rng: np.random.Generator, size: int) -> np.ndarray:
    """Seconds from occurrence to landing: usually under a minute, sometimes half an hour."""
    late = rng.random(size) < 0.07
    return np.where(
        late,
        rng.integers(300, 2400, size),
        1 + rng.exponential(40, size).astype(np.int64),
    )


def _redeliveries(rng: np.random.Generator, events: pd.DataFrame, count: int) -> pd.DataFrame:
    """Copies of ``count`` events delivered again later, same event_id and content."""
    chosen = rng.choice(len(events), size=min(count, len(events)), replace=False)
    again = events.iloc[np.sort(chosen)].copy()
    again["arrival_t"] += rng.integers(60, 3600, len(again))
    return again


def _iso(start: pd.Timestamp, seconds: pd.Series, offsets: pd.Series) -> pd.Series:
    """ISO-8601 strings of ``start + seconds`` written in each row's UTC offset."""
    sign = np.where(offsets.str[0] == "-", -1, 1)
    minutes = sign * (offsets.str[1:3].astype(int) * 60 + offsets.str[4:6].astype(int))
    local = start + pd.to_timedelta(seconds + minutes * 60, unit="s")
    return local.dt.strftime("%Y-%m-%dT%H:%M:%S") + offsets


def _jsonable(value: Any) -> Any:
    """A frame cell as JSON: missing is null, arrays (e.g. read back from Parquet) are lists."""
    if isinstance(value, np.ndarray | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value
