"""Named hostile lines for the events reader and the planner, with what each must become.

Each case is the raw bytes of one landing-file line (or a few, where line breaks are the
point) and its outcome: ``planned`` for every event that must be planned, and the reason
code of every rejected row it must add. The surrounding good lines of the tests that use
these (test_hostile_input.py) must be planned exactly as without them. Found bugs join
this table as regression examples.

The CRM these lines are planned against (``CRM_FILES``) knows every address used here
unless a case says otherwise, so a planned line adds no recipient rejection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CRM_FILES = {
    "Contact.csv": "Id,Email,AccountId,LastModifiedDate\n"
    "003A,ann@client.com,001A,2024-01-01\n"
    "003B,bob@client.com,001A,2024-01-01\n"
    "003O,o'brien@client.com,001A,2024-01-01\n"
    "003Z,zoë@xn--exmple-cua.com,001A,2024-01-01\n"
    "003U,用户@例子.公司,001A,2024-01-01\n",
    "Lead.csv": "Id,Email,IsConverted,LastModifiedDate\n00QH,hal@prospect.io,false,2024-01-01\n",
    "Account.csv": "Id,Name\n001A,Client\n",
    "Opportunity.csv": "Id,AccountId,Name,IsClosed,CloseDate,OwnerId\n",
    "OpportunityContactRole.csv": "Id,OpportunityId,ContactId\n",
    "User.csv": "Id,Email,IsActive\n005R,rep@acme.com,true\n",
}
SETTINGS = {"org_id": "acme", "sync_to_opportunities": False}
KNOWN = ["ann@client.com", "bob@client.com", "o'brien@client.com", "hal@prospect.io"]

SENT: dict[str, Any] = {
    "event_id": "h1",
    "org_id": "acme",
    "type": "sent",
    "occurred_at": "2024-05-01T10:00:00Z",
    "sender": "rep@acme.com",
    "recipients": [{"email": "ann@client.com", "field": "to"}],
    "subject": "Renewal",
    "body": "Hello",
    "thread_id": "t-1",
    "message_id": "<m1@acme.com>",
}
OPEN: dict[str, Any] = {
    "event_id": "h1",
    "org_id": "acme",
    "type": "open",
    "occurred_at": "2024-05-01T10:00:00Z",
    "sender": "rep@acme.com",
    "actor": "ann@client.com",
    "subject": "Renewal",
}
# R14: a meeting with every optional field, planned as one Salesforce Event.
MEETING: dict[str, Any] = {
    **SENT,
    "type": "meeting",
    "recipients": [
        {"email": "ann@client.com", "field": "to", "response": "accepted"},
        {"email": "bob@client.com", "field": "to"},
    ],
    "starts_at": "2024-05-01T10:00:00+02:00",
    "ends_at": "2024-05-01T11:00:00+02:00",
    "location": "Room 4",
    "is_all_day": False,
}
_HOLE = "\u2603HOLE\u2603"  # replaced by raw bytes: no JSON encoder makes these


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    outcome: tuple[str, ...]


def line(event: dict[str, Any] | None = None, **changes: Any) -> bytes:
    """One event as a JSON line (UTF-8, non-ASCII kept as is)."""
    return json.dumps({**(event or SENT), **changes}, ensure_ascii=False).encode()


def with_bytes(raw: bytes, event: dict[str, Any] | None = None, **changes: Any) -> bytes:
    """``line`` with ``raw`` put where a value (or part of one) says ``HOLE``."""
    text = line(event, **{k: v.replace("HOLE", _HOLE) for k, v in changes.items()})
    return text.replace(_HOLE.encode(), raw)


def recipients_with(email: str) -> bytes:
    return line(recipients=[{"email": email, "field": "to"}])


def meeting_recipients_with(raw: bytes) -> bytes:
    """``MEETING`` with the JSON ``raw`` as ann's response."""
    people = [{"email": "ann@client.com", "field": "to", "response": _HOLE}]
    return line(MEETING, recipients=people).replace(f'"{_HOLE}"'.encode(), raw)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


P, INVALID, MALFORMED, MISSING = "planned", "invalid_field", "malformed", "missing_field"

# Undecodable byte sequences, by the way they break UTF-8.
BAD_UTF8 = {
    "latin1_e_acute": b"caf\xe9",
    "lone_continuation": b"\x80x",
    "overlong_slash": b"\xc0\xaf",
    "encoded_surrogate": b"\xed\xa0\x80",
    "truncated_emoji": b"\xf0\x9f\x98",
    "byte_ff": b"\xff",
}
TEXT_FIELDS = ["event_id", "org_id", "type", "occurred_at", "sender", "subject", "body"]
TEXT_FIELDS += ["thread_id", "message_id", "url", "filename"]

CASES: list[Case] = [
    # ---- invalid UTF-8: the line is rejected, naming the field (issue 12, item 1)
    *(
        Case(f"invalid_utf8_{kind}_in_{field}", with_bytes(raw, **{field: "xHOLEx"}), (INVALID,))
        for field in TEXT_FIELDS
        for kind, raw in list(BAD_UTF8.items())[TEXT_FIELDS.index(field) % 3 :: 3]
    ),
    Case(
        "invalid_utf8_in_actor",
        with_bytes(b"\xe9", OPEN, actor="annHOLE@client.com"),
        (INVALID,),
    ),
    Case(
        "invalid_utf8_in_recipient_email",
        line(recipients=[{"email": _HOLE, "field": "to"}]).replace(_HOLE.encode(), b"\xe9@c.com"),
        (INVALID,),
    ),
    Case(
        "invalid_utf8_in_recipient_field",
        line(recipients=[{"email": "ann@client.com", "field": _HOLE}]).replace(
            _HOLE.encode(), b"t\xff"
        ),
        (INVALID,),
    ),
    Case("invalid_utf8_in_an_ignored_field", with_bytes(b"\xe9", extra="xHOLE"), (P,)),
    Case("invalid_utf8_in_an_ignored_key", line().replace(b'"body"', b'"b\xe9": 1, "body"'), (P,)),
    Case(
        "invalid_utf8_in_an_ignored_key_of_a_recipient",
        line().replace(b'"field": "to"', b'"field": "to", "n\xe9": 1'),
        (P,),
    ),
    Case("invalid_utf8_outside_any_string", line().replace(b'{"', b'{\xe9"', 1), (MALFORMED,)),
    Case("a_whole_line_of_latin1", '{"event_id": "café"}'.encode("latin-1"), (INVALID,)),
    Case("utf16_line", json.dumps(SENT).encode("utf-16-le"), (MALFORMED,)),
    # ---- truncation
    Case("truncated_after_the_brace", b"{", (MALFORMED,)),
    Case("truncated_in_a_key", line()[:5], (MALFORMED,)),
    Case("truncated_in_a_string", line()[:40], (MALFORMED,)),
    Case("truncated_before_the_last_brace", line()[:-1], (MALFORMED,)),
    Case("truncated_in_a_multibyte_character", line(subject="zoë")[:-30], (MALFORMED,)),
    Case("truncated_in_an_escape", line(subject="a\nb").split(b"\\n")[0] + b"\\", (MALFORMED,)),
    # ---- control characters
    Case("raw_nul_in_a_string", with_bytes(b"\x00", subject="aHOLEb"), (MALFORMED,)),
    Case("raw_nul_after_the_object", line() + b"\x00", (MALFORMED,)),
    Case("raw_tab_in_a_string", with_bytes(b"\t", subject="aHOLEb"), (MALFORMED,)),
    Case("raw_escape_char_in_a_string", with_bytes(b"\x1b", subject="aHOLEb"), (MALFORMED,)),
    Case("raw_unit_separator_in_event_id", with_bytes(b"\x1f", event_id="hHOLE"), (MALFORMED,)),
    Case("vertical_tab_before_the_object", b"\x0b" + line(), (MALFORMED,)),
    Case("form_feed_line", b"\x0c", (MALFORMED,)),
    Case("raw_delete_char_in_a_string", with_bytes(b"\x7f", subject="aHOLEb"), (P,)),
    Case("escaped_nul_in_the_subject", line(subject="a\u0000b"), (P,)),
    Case("escaped_nul_in_the_event_id", line(event_id="h\u0000"), (P,)),
    Case("c1_control_in_the_body", line(body="a\u0085b\u009fc"), (P,)),
    Case("line_separator_in_the_subject", line(subject="a\u2028b\u2029c"), (P,)),
    Case("next_line_char_outside_strings", b"\xc2\x85" + line(), (MALFORMED,)),
    # ---- byte order marks (item 4)
    Case("bom_at_the_start_of_the_line", b"\xef\xbb\xbf" + line(), (P,)),
    Case("two_boms_at_the_start_of_the_line", b"\xef\xbb\xbf" * 2 + line(), (MALFORMED,)),
    Case("bom_alone_on_a_line", b"\xef\xbb\xbf", ()),
    Case("bom_inside_the_subject", line(subject="\ufeffRenewal"), (P,)),
    Case("bom_between_members", line().replace(b", ", b", \xef\xbb\xbf", 1), (MALFORMED,)),
    Case("utf16_bom_at_the_start", b"\xff\xfe" + line(), (MALFORMED,)),
    # ---- line breaks (item 3)
    Case("crlf_line_end", line() + b"\r", (P,)),
    Case("cr_only_between_two_events", line() + b"\r" + line(event_id="h2"), (P, P)),
    Case("crlf_between_two_events", line() + b"\r\n" + line(event_id="h2"), (P, P)),
    Case("lf_cr_between_two_events", line() + b"\n\r" + line(event_id="h2"), (P, P)),
    Case("object_split_by_lf", line().replace(b", ", b",\n", 1), (MALFORMED, MALFORMED)),
    Case("object_split_by_cr", line().replace(b", ", b",\r", 1), (MALFORMED, MALFORMED)),
    Case("object_split_inside_a_string", with_bytes(b"\n", subject="aHOLEb"), (MALFORMED,) * 2),
    Case("blank_lines_of_spaces_and_tabs", b"  \t \n\t\r\n   ", ()),
    Case("two_objects_on_one_line", line() + line(event_id="h2"), (MALFORMED,)),
    Case("two_objects_and_a_space_on_one_line", line() + b" " + line(event_id="h2"), (MALFORMED,)),
    Case("spaces_and_tabs_around_the_object", b" \t " + line() + b"\t  ", (P,)),
    # ---- not one object
    Case("null_line", b"null", (MALFORMED,)),
    Case("null_line_after_spaces", b"   null", (MALFORMED,)),
    Case("true_line", b"true", (MALFORMED,)),
    Case("number_line", b"42", (MALFORMED,)),
    Case("string_line", b'"event"', (MALFORMED,)),
    Case("array_line", b"[" + line() + b"]", (MALFORMED,)),
    Case("empty_array_line", b"[]", (MALFORMED,)),
    Case("lone_closing_brace", b"}", (MALFORMED,)),
    Case("braces_around_nothing_usable", b"{ nope }", (MALFORMED,)),
    Case("trailing_comma", line()[:-1] + b",}", (MALFORMED,)),
    Case("single_quoted_keys", b"{'event_id': 'h1'}", (MALFORMED,)),
    Case("a_comment_after_the_object", line() + b" // sent", (MALFORMED,)),
    Case("garbage_after_the_object", line() + b"x", (MALFORMED,)),
    Case("random_binary", bytes(range(256)), (MALFORMED,) * 3),  # holds \n and \r
    # ---- repeated keys
    Case("subject_given_twice", line()[:-1] + b', "subject": "again"}', (MALFORMED,)),
    Case("event_id_given_twice", b'{"event_id": "h0", ' + line()[1:], (MALFORMED,)),
    Case(
        "recipient_email_given_twice",
        line().replace(b'"field": "to"', b'"field": "to", "email": "bob@client.com"'),
        (MALFORMED,),
    ),
    Case("ignored_key_given_twice", line()[:-1] + b', "x": 1, "x": 2}', (P,)),
    Case("key_spelt_with_an_escape", line().replace(b'"event_id"', b'"event\\u005fid"'), (P,)),
    # ---- wrong JSON types (the planner judges them)
    Case("event_id_a_number", line(event_id=7), (INVALID,)),
    # Found by the fuzz test: a list id once crashed the DAG's redelivery check (issue 10).
    Case("event_id_a_list_of_objects", line(event_id=[{"email": 5, "field": "to"}]), (INVALID,)),
    Case("event_id_an_object", line(event_id={"id": "h1"}), (INVALID,)),
    Case("event_id_null", line(event_id=None), (MISSING,)),
    Case("event_id_empty", line(event_id=""), (MISSING,)),
    Case("org_id_a_boolean", line(org_id=True), ("wrong_org",)),
    Case("type_a_number", line(type=1), ("unknown_type",)),
    Case("type_in_capitals", line(type="SENT"), ("unknown_type",)),
    Case("org_id_of_another_org", line(org_id="ACME"), ("wrong_org",)),
    Case("occurred_at_a_number", line(occurred_at=1714557600), (INVALID,)),
    Case("sender_a_list", line(sender=["rep@acme.com"]), (INVALID,)),
    Case("subject_an_object", line(subject={"text": "Renewal"}), (INVALID,)),
    Case("body_a_number", line(body=3.5), (INVALID,)),
    Case("url_false", line(url=False), (INVALID,)),
    Case("thread_id_a_number_is_kept", line(thread_id=12345), (P,)),
    Case("message_id_a_list_is_kept", line(message_id=["<m1@acme.com>"]), (P,)),
    Case("recipients_a_string", line(recipients="ann@client.com"), (INVALID,)),
    Case(
        "recipients_an_object",
        line(recipients={"email": "ann@client.com", "field": "to"}),
        (INVALID,),
    ),
    Case("recipients_null", line(recipients=None), (MISSING,)),
    Case("recipients_empty", line(recipients=[]), (MISSING,)),
    Case("recipient_null", line(recipients=[None]), (INVALID,)),
    Case("recipient_empty_object", line(recipients=[{}]), (INVALID,)),
    Case("recipient_email_a_number", line(recipients=[{"email": 5, "field": "to"}]), (INVALID,)),
    Case(
        "recipient_field_in_capitals",
        line(recipients=[{"email": "ann@client.com", "field": "TO"}]),
        (INVALID,),
    ),
    Case(
        "recipient_with_an_extra_key",
        line(recipients=[{"email": "ann@client.com", "field": "to", "name": "Ann"}]),
        (P,),
    ),
    Case("actor_a_number", line(OPEN, actor=5), (INVALID,)),
    Case("actor_missing", line({k: v for k, v in OPEN.items() if k != "actor"}), (MISSING,)),
    Case("empty_object", b"{}", (MISSING,)),
    Case("only_unknown_fields", b'{"a": 1}', (MISSING,)),
    Case("nan_as_the_subject", line().replace(b'"Renewal"', b"NaN"), (INVALID,)),
    Case("infinity_as_the_event_id", line().replace(b'"h1"', b"Infinity"), (INVALID,)),
    Case(
        "minus_infinity_as_a_recipient_email",
        line().replace(b'"ann@client.com"', b"-Infinity"),
        (INVALID,),
    ),
    Case("nan_in_an_ignored_field", line()[:-1] + b', "score": NaN}', (P,)),
    # ---- huge values
    Case("a_megabyte_subject", line(subject="x" * (1 << 20)), (P,)),
    Case("a_body_larger_than_arrow_s_block", line(body="y" * (17 << 20)), (P,)),
    Case("a_long_event_id", line(event_id="h" * 100_000), (P,)),
    Case(
        "ten_thousand_recipients",
        line(recipients=[{"email": "ann@client.com", "field": "to"}] * 10_000),
        (P,),
    ),
    Case(
        "deep_nesting_in_an_ignored_field",
        line()[:-1] + b', "x": ' + nested(5000).encode() + b"}",
        (P,),
    ),
    Case(
        "deep_nesting_as_the_subject",
        line().replace(b'"Renewal"', nested(5000).encode()),
        (MALFORMED,),
    ),
    Case(
        "a_5000_digit_number_in_an_ignored_field",
        line()[:-1] + b', "n": ' + b"9" * 5000 + b"}",
        (P,),
    ),
    Case(
        "a_5000_digit_number_as_the_subject", line().replace(b'"Renewal"', b"9" * 5000), (INVALID,)
    ),
    Case("a_number_too_big_for_a_double_in_an_ignored_field", line()[:-1] + b', "n": 1e999}', (P,)),
    Case("a_ten_kilobyte_address", recipients_with("a" * 10_000 + "@client.com"), (P, "unmatched")),
    # ---- escapes
    Case(
        "escaped_surrogate_pair_in_the_subject",
        line().replace(b'"Renewal"', b'"\\ud83d\\ude00"'),
        (P,),
    ),
    Case(
        "escaped_lone_surrogate_in_the_subject",
        line().replace(b'"Renewal"', b'"\\ud800"'),
        (INVALID,),
    ),
    Case(
        "escaped_lone_surrogate_in_the_event_id",
        line().replace(b'"h1"', b'"\\udc00"'),
        (MALFORMED,),
    ),
    Case(
        "escaped_lone_surrogate_in_an_email",
        line().replace(b'"ann@client.com"', b'"\\ud800@c.com"'),
        (INVALID,),
    ),
    Case("escaped_lone_surrogate_in_an_ignored_field", line()[:-1] + b', "x": "\\ud800"}', (P,)),
    Case("invalid_escape_in_a_string", line().replace(b'"Renewal"', b'"\\q"'), (MALFORMED,)),
    Case(
        "every_character_escaped",
        json.dumps(SENT, ensure_ascii=True).encode().replace(b'"Renewal"', b'"\\u0052enewal"'),
        (P,),
    ),
    # ---- times (item 2)
    Case("year_10000_in_utc", line(occurred_at="9999-12-31T23:30:00-14:00"), (INVALID,)),
    Case("before_1700", line(occurred_at="1699-12-31T23:59:59Z"), (INVALID,)),
    Case("after_4000", line(occurred_at="4001-01-01T00:00:00Z"), (INVALID,)),
    Case("first_day_salesforce_holds", line(occurred_at="1700-01-01T00:00:00Z"), (P,)),
    Case("last_day_salesforce_holds", line(occurred_at="4000-12-31T23:59:59+00:00"), (P,)),
    Case("february_30", line(occurred_at="2024-02-30T10:00:00Z"), (INVALID,)),
    Case("hour_24", line(occurred_at="2024-05-01T24:00:00Z"), (INVALID,)),
    Case("no_offset", line(occurred_at="2024-05-01T10:00:00"), (INVALID,)),
    Case("offset_beyond_a_day", line(occurred_at="2024-05-01T10:00:00+25:00"), (INVALID,)),
    Case("twelve_fraction_digits", line(occurred_at="2024-05-01T10:00:00.123456789012Z"), (P,)),
    Case("year_zero", line(occurred_at="0000-01-01T00:00:00Z"), (INVALID,)),
    # ---- addresses (item 6)
    Case("an_apostrophe_in_the_address", recipients_with("O'Brien@Client.com"), (P,)),
    Case("an_idn_address_in_unicode", recipients_with("zoë@exämple.com"), (P,)),
    Case("an_idn_address_in_xn_form", recipients_with("ZOË@XN--EXMPLE-CUA.COM"), (P,)),
    Case("a_chinese_address", recipients_with("用户@例子.公司"), (P,)),
    Case("an_xn_label_that_is_no_idna", recipients_with("ann@xn--zz.com"), (P, "invalid_email")),
    Case("consecutive_dots", recipients_with("ann..lee@client.com"), (P, "unmatched")),
    Case("a_leading_dot", recipients_with(".ann@client.com"), (P, "invalid_email")),
    Case("a_display_name", recipients_with('"Ann" <ann@client.com>'), (P, "invalid_email")),
    Case("an_address_of_spaces", recipients_with("   "), (P, "invalid_email")),
    # ---- R14's meeting fields take the same guarantees as the fields above
    Case("a_meeting_with_every_field", line(MEETING), (P,)),
    Case("a_meeting_without_its_optional_fields", line(SENT, type="meeting"), (P,)),
    *(
        Case(
            f"invalid_utf8_in_meeting_{field}",
            with_bytes(b"\xe9", MEETING, **{field: value}),
            (INVALID,),
        )
        for field, value in (
            ("starts_at", "2024-05-01T10:00:00+02:0HOLE"),
            ("ends_at", "HOLE2024-05-01T11:00:00+02:00"),
            ("location", "RoomHOLE 4"),
        )
    ),
    Case("invalid_utf8_in_a_response", meeting_recipients_with(b'"acc\xe9pted"'), (INVALID,)),
    Case("a_response_that_is_a_number", meeting_recipients_with(b"1"), (INVALID,)),
    Case("an_unknown_response", meeting_recipients_with(b'"maybe"'), (INVALID,)),
    Case("a_declined_attendee", meeting_recipients_with(b'"declined"'), (P, "declined")),
    Case(
        "a_recipient_with_its_response_twice",
        meeting_recipients_with(b'"accepted", "response": "declined"'),
        (MALFORMED,),
    ),
    Case("is_all_day_as_text", line(MEETING, is_all_day="yes"), (INVALID,)),
    Case(
        "is_all_day_as_nan",
        line(MEETING).replace(b'"is_all_day": false', b'"is_all_day": NaN'),
        (INVALID,),
    ),
    Case(
        "a_meeting_starting_in_year_10000_utc",
        line(MEETING, starts_at="9999-12-31T23:30:00-14:00", ends_at=None),
        (INVALID,),
    ),
    Case(
        "a_meeting_ending_in_year_10000_utc",
        line(MEETING, ends_at="9999-12-31T23:30:00-14:00"),
        (INVALID,),
    ),
    Case(
        "a_meeting_starting_in_year_10000",
        line(MEETING, starts_at="10000-01-01T00:00:00Z"),
        (INVALID,),
    ),
    Case(
        "a_meeting_starting_before_1700",
        line(MEETING, starts_at="1699-12-31T23:59:00Z"),
        (INVALID,),
    ),
    Case(
        "a_meeting_ending_after_4000",
        line(MEETING, starts_at="4000-12-31T23:00:00Z", ends_at="4001-01-01T00:30:00Z"),
        (INVALID,),
    ),
    Case(
        "an_all_day_meeting_of_two_days",
        line(
            MEETING,
            starts_at="2024-05-01T10:00:00Z",
            ends_at="2024-05-02T10:00:00Z",
            is_all_day=True,
        ),
        (P,),
    ),
    Case("a_location_of_emoji_past_255_units", line(MEETING, location="\U0001f600" * 200), (P,)),
]
