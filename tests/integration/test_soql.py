"""The emulator's SOQL: parsed, translated, and run against a real SQLite table.

Semantics are proven by the rows that come back, not by the shape of the generated SQL.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simple_salesforce.format import format_soql, quote_soql_value

from salesforce_emulator.soql import (
    MAX_QUERY_CHARS,
    MAX_STRING_CHARS,
    SoqlError,
    SoqlQuery,
    parse_soql,
    resolve_object,
)

NOW = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)

TASK = {
    "Id": "id",
    "Subject": "string",
    "Status": "picklist",
    "WhoId": "reference",
    "ActivityDate": "date",
    "CreatedDate": "datetime",
    "CallDurationInSeconds": "int",
    "IsClosed": "boolean",
    "IsDeleted": "boolean",
}
CONTACT = {"Id": "id", "Email": "email", "LastName": "string", "IsDeleted": "boolean"}
TABLES = {"Task": TASK, "Contact": CONTACT}
SQL_TYPES = {"boolean": "INTEGER", "int": "INTEGER", "double": "REAL"}


def database(rows: dict[str, list[dict]]) -> sqlite3.Connection:
    """Tables laid out as the emulator's store lays them out, filled with ``rows``."""
    db = sqlite3.connect(":memory:")
    for table, columns in TABLES.items():
        spec = ", ".join(
            f'"{name}" {SQL_TYPES.get(kind, "TEXT")}' for name, kind in columns.items()
        )
        db.execute(f'CREATE TABLE "{table}" ({spec})')
        for row in rows.get(table, []):
            values = {"IsDeleted": 0, **row}
            names = ", ".join(f'"{name}"' for name in values)
            marks = ", ".join("?" for _ in values)
            db.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', list(values.values()))
    return db


def run(db: sqlite3.Connection, soql: str, **options) -> list[tuple]:
    """What the server does: parse, resolve the object, translate, execute."""
    query = parse_soql(soql)
    table = resolve_object(query.object_name, TABLES)
    sql, params = query.to_sql(TABLES[table], table=table, now=NOW, **options)
    return db.execute(sql, params).fetchall()


def ids(db: sqlite3.Connection, soql: str, **options) -> set[str]:
    return {row[0] for row in run(db, soql, **options)}


def error_of(soql: str, columns: dict[str, str] = TASK) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        parse_soql(soql).to_sql(columns, now=NOW)
    return caught.value


@pytest.fixture
def tasks() -> sqlite3.Connection:
    return database(
        {
            "Task": [
                {
                    "Id": "t1",
                    "Subject": "Email: Hello",
                    "Status": "Completed",
                    "ActivityDate": "2026-11-27",
                    "CreatedDate": "2026-11-27T09:00:00.000+0000",
                    "CallDurationInSeconds": 10,
                    "IsClosed": 1,
                },
                {
                    "Id": "t2",
                    "Subject": "email: hello again",
                    "Status": "Open",
                    "ActivityDate": "2026-11-26",
                    "CreatedDate": "2026-11-26T23:30:00.000+0000",
                    "CallDurationInSeconds": 9,
                    "IsClosed": 0,
                },
                {"Id": "t3", "CreatedDate": "2026-11-20T00:00:00.000+0000", "IsClosed": 0},
                {
                    "Id": "t4",
                    "Subject": "100% done_now",
                    "Status": "Completed",
                    "ActivityDate": "2026-11-24",
                    "CreatedDate": "2026-11-24T00:00:00.000+0000",
                    "CallDurationInSeconds": 100,
                    "IsClosed": 1,
                },
                {"Id": "t5", "Subject": "Email: Hello", "Status": "Open", "IsDeleted": 1},
            ]
        }
    )


# ------------------------------------------------------------------------------- parsing


def test_a_query_keeps_object_and_fields_as_written_and_its_limit():
    query = parse_soql("select id, SUBJECT from task where Status = 'Open' limit 7")
    assert (query.object_name, query.fields, query.is_count, query.limit) == (
        "task",
        ("id", "SUBJECT"),
        False,
        7,
    )


def test_count_query_selects_count_and_has_no_canonical_fields():
    query = parse_soql("SELECT COUNT() FROM Task")
    assert (query.fields, query.is_count, query.canonical_fields(TASK)) == (
        ("COUNT()",),
        True,
        [],
    )


def test_canonical_fields_resolve_any_case_to_the_stored_names():
    query = parse_soql("SELECT whoid, ID, subject FROM Task")
    assert query.canonical_fields(TASK) == ["WhoId", "Id", "Subject"]


def test_parsed_query_is_an_immutable_value():
    query = parse_soql("SELECT Id FROM Task")
    assert isinstance(query, SoqlQuery)
    with pytest.raises(AttributeError):
        query.limit = 3  # type: ignore[misc]


# ------------------------------------------------------------------------- text semantics


def test_select_returns_canonical_columns_in_query_order(tasks):
    rows = run(tasks, "SELECT subject, ID FROM TASK WHERE Id = 't1'")
    assert rows == [("Email: Hello", "t1")]


def test_equals_on_text_ignores_case(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE Subject = 'EMAIL: HELLO'") == {"t1"}


def test_not_equals_keeps_the_rows_where_the_field_is_null(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE Status != 'completed'") == {"t2", "t3"}
    assert ids(tasks, "SELECT Id FROM Task WHERE Status <> 'Completed'") == {"t2", "t3"}


def test_equals_null_finds_only_nulls_and_not_equals_null_the_rest(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE Subject = null") == {"t3"}
    assert ids(tasks, "SELECT Id FROM Task WHERE Subject != NULL") == {"t1", "t2", "t4"}


def test_in_ignores_case_and_a_null_in_the_list_matches_nulls(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE Status IN ('open', 'COMPLETED')") == {
        "t1",
        "t2",
        "t4",
    }
    assert ids(tasks, "SELECT Id FROM Task WHERE Status IN ('Open', null)") == {"t2", "t3"}


def test_not_in_keeps_nulls_unless_the_list_names_null(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE Status NOT IN ('open')") == {"t1", "t3", "t4"}
    assert ids(tasks, "SELECT Id FROM Task WHERE Status NOT IN ('Open', null)") == {"t1", "t4"}


def test_like_is_case_insensitive_with_percent_and_underscore_wildcards(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE Subject LIKE 'EMAIL:%'") == {"t1", "t2"}
    assert ids(tasks, "SELECT Id FROM Task WHERE Subject LIKE '_mail: hello'") == {"t1"}


def test_escaped_percent_and_underscore_in_like_match_only_themselves():
    db = database(
        {"Contact": [{"Id": "c1", "LastName": "100% done_now"}, {"Id": "c2", "LastName": "100x"}]}
    )
    assert ids(db, "SELECT Id FROM Contact WHERE LastName LIKE '100%'") == {"c1", "c2"}
    assert ids(db, "SELECT Id FROM Contact WHERE LastName LIKE '100\\%%'") == {"c1"}
    assert ids(db, "SELECT Id FROM Contact WHERE LastName LIKE '%done\\_now'") == {"c1"}
    assert ids(db, "SELECT Id FROM Contact WHERE LastName LIKE '%done\\_no_'") == {"c1"}
    assert ids(db, "SELECT Id FROM Contact WHERE LastName LIKE '100\\%'") == set()


def test_a_backslash_in_a_like_pattern_matches_a_backslash_in_the_data():
    db = database({"Contact": [{"Id": "c1", "LastName": "a\\b"}, {"Id": "c2", "LastName": "ab"}]})
    assert ids(db, "SELECT Id FROM Contact WHERE LastName LIKE 'a\\\\%'") == {"c1"}


def test_not_negates_a_comparison_and_keeps_the_nulls(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE NOT Status = 'Completed'") == {"t2", "t3"}
    assert ids(tasks, "SELECT Id FROM Task WHERE NOT Subject LIKE 'email%'") == {"t3", "t4"}


def test_parentheses_make_mixing_and_with_or_legal(tasks):
    soql = "SELECT Id FROM Task WHERE (Status = 'Open' OR Status = null) AND IsClosed = false"
    assert ids(tasks, soql) == {"t2", "t3"}
    soql = "SELECT Id FROM Task WHERE Status = 'Open' OR (Status = 'Completed' AND IsClosed = true)"
    assert ids(tasks, soql) == {"t1", "t2", "t4"}


def test_keywords_and_identifiers_are_case_insensitive(tasks):
    soql = "sElEcT iD fRoM tAsK wHeRe sTaTuS = 'Open' oRdEr bY iD dEsC nUlLs LaSt LiMiT 1"
    assert run(tasks, soql) == [("t2",)]


def test_a_fifteen_character_id_matches_the_stored_eighteen_character_id():
    # Suffix worked out by hand: the chunk "1ZL7s" has capitals at positions 1 and 2 -> 6 -> G.
    db = database({"Contact": [{"Id": "00570000001ZL7sAAG"}, {"Id": "00570000001ZL7SAAW"}]})
    assert ids(db, "SELECT Id FROM Contact WHERE Id = '00570000001ZL7s'") == {"00570000001ZL7sAAG"}
    assert ids(db, "SELECT Id FROM Contact WHERE Id IN ('00570000001ZL7sAAG')") == {
        "00570000001ZL7sAAG"
    }


# ----------------------------------------------------------------- other types and dates


def test_booleans_compare_to_true_and_false(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE IsClosed = TRUE") == {"t1", "t4"}
    assert ids(tasks, "SELECT Id FROM Task WHERE IsClosed != true") == {"t2", "t3"}


def test_numbers_compare_as_numbers_not_as_text(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE CallDurationInSeconds > 9.5") == {"t1", "t4"}
    assert ids(tasks, "SELECT Id FROM Task WHERE CallDurationInSeconds >= -1 LIMIT 10") == {
        "t1",
        "t2",
        "t4",
    }


def test_date_literals_filter_a_date_field(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE ActivityDate >= 2026-11-26") == {"t1", "t2"}
    assert ids(tasks, "SELECT Id FROM Task WHERE ActivityDate = 2026-11-24") == {"t4"}


def test_datetime_literals_with_offsets_and_milliseconds_compare_in_utc(tasks):
    # 2026-11-27T01:00:00+02:00 is 2026-11-26T23:00Z: t2 (23:30Z) is after it.
    soql = "SELECT Id FROM Task WHERE CreatedDate > 2026-11-27T01:00:00+02:00"
    assert ids(tasks, soql) == {"t1", "t2"}
    soql = "SELECT Id FROM Task WHERE CreatedDate >= 2026-11-26T18:30:00.000-05:00"
    assert ids(tasks, soql) == {"t1", "t2"}
    soql = "SELECT Id FROM Task WHERE CreatedDate > 2026-11-26T23:30:00.001Z"
    assert ids(tasks, soql) == {"t1"}
    soql = "SELECT Id FROM Task WHERE CreatedDate = 2026-11-27T09:00:00Z"
    assert ids(tasks, soql) == {"t1"}


def test_today_and_yesterday_are_whole_utc_days_on_datetime_fields(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE CreatedDate = TODAY") == {"t1"}
    assert ids(tasks, "SELECT Id FROM Task WHERE CreatedDate = YESTERDAY") == {"t2"}
    assert ids(tasks, "SELECT Id FROM Task WHERE CreatedDate < YESTERDAY") == {"t3", "t4"}
    assert ids(tasks, "SELECT Id FROM Task WHERE CreatedDate <= YESTERDAY") == {"t2", "t3", "t4"}
    assert ids(tasks, "SELECT Id FROM Task WHERE CreatedDate > YESTERDAY") == {"t1"}
    assert ids(tasks, "SELECT Id FROM Task WHERE CreatedDate != TODAY") == {"t2", "t3", "t4"}


def test_last_n_days_includes_today_and_n_days_before_it(tasks):
    assert ids(tasks, "SELECT Id FROM Task WHERE CreatedDate = LAST_N_DAYS:1") == {"t1", "t2"}
    assert ids(tasks, "SELECT Id FROM Task WHERE CreatedDate = LAST_N_DAYS:3") == {"t1", "t2", "t4"}
    assert ids(tasks, "SELECT Id FROM Task WHERE ActivityDate = last_n_days:2") == {"t1", "t2"}
    assert ids(tasks, "SELECT Id FROM Task WHERE ActivityDate >= TODAY") == {"t1"}


def test_date_constants_follow_the_clock_when_none_is_given():
    today = datetime.now(UTC).date()
    db = database(
        {
            "Task": [
                {"Id": "now", "ActivityDate": today.isoformat()},
                {"Id": "old", "ActivityDate": "2001-01-01"},
            ]
        }
    )
    query = parse_soql("SELECT Id FROM Task WHERE ActivityDate = LAST_N_DAYS:0")
    sql, params = query.to_sql(TASK)
    if datetime.now(UTC).date() != today:
        pytest.skip("the clock passed midnight UTC during the test")
    assert params == [today.isoformat(), (today + timedelta(days=1)).isoformat()]
    assert {row[0] for row in db.execute(sql, params)} == {"now"}


# ------------------------------------------------------------------ ORDER BY, LIMIT, COUNT


def test_order_by_sorts_nulls_first_by_default_in_either_direction(tasks):
    assert run(tasks, "SELECT Id FROM Task ORDER BY CallDurationInSeconds") == [
        ("t3",),
        ("t2",),
        ("t1",),
        ("t4",),
    ]
    assert run(tasks, "SELECT Id FROM Task ORDER BY CallDurationInSeconds DESC") == [
        ("t3",),
        ("t4",),
        ("t1",),
        ("t2",),
    ]


def test_order_by_nulls_last_puts_nulls_at_the_end(tasks):
    assert run(tasks, "SELECT Id FROM Task ORDER BY CallDurationInSeconds ASC NULLS LAST") == [
        ("t2",),
        ("t1",),
        ("t4",),
        ("t3",),
    ]


def test_order_by_text_ignores_case_and_later_keys_break_ties():
    db = database(
        {
            "Contact": [
                {"Id": "c1", "LastName": "beta"},
                {"Id": "c2", "LastName": "Alpha"},
                {"Id": "c3", "LastName": "alpha"},
            ]
        }
    )
    assert run(db, "SELECT Id FROM Contact ORDER BY LastName, Id DESC") == [
        ("c3",),
        ("c2",),
        ("c1",),
    ]


def test_limit_caps_the_rows_after_ordering(tasks):
    assert run(tasks, "SELECT Id FROM Task ORDER BY Id DESC LIMIT 2") == [("t4",), ("t3",)]
    assert run(tasks, "SELECT Id FROM Task LIMIT 0") == []


def test_count_counts_matching_rows_and_respects_limit(tasks):
    assert run(tasks, "SELECT COUNT() FROM Task") == [(4,)]
    assert run(tasks, "SELECT count() FROM Task WHERE Status = 'open'") == [(1,)]
    assert run(tasks, "SELECT COUNT() FROM Task LIMIT 2") == [(2,)]


def test_deleted_rows_are_hidden_unless_deleted_ones_are_asked_for(tasks):
    soql = "SELECT Id FROM Task WHERE Subject = 'Email: Hello'"
    assert ids(tasks, soql) == {"t1"}
    assert ids(tasks, soql, include_deleted=True) == {"t1", "t5"}
    assert run(tasks, "SELECT COUNT() FROM Task", include_deleted=True) == [(5,)]


# ----------------------------------------------------------------- escaping and injection


def test_an_unescaped_quote_is_malformed_and_points_at_what_follows_it():
    error = error_of("SELECT Id FROM Contact WHERE Email = 'o'brien@x.com'", CONTACT)
    assert error.error_code == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:41" in error.message
    assert "unexpected token: 'brien'" in error.message
    assert "\\'" in error.message


def test_an_escaped_quote_parses_to_the_apostrophe_and_finds_the_row():
    db = database({"Contact": [{"Id": "c1", "Email": "o'brien@x.com"}, {"Id": "c2", "Email": "o"}]})
    assert ids(db, "SELECT Id FROM Contact WHERE Email = 'o\\'brien@x.com'") == {"c1"}


def test_a_doubled_backslash_is_one_backslash():
    db = database({"Contact": [{"Id": "c1", "LastName": "a\\b"}]})
    assert ids(db, "SELECT Id FROM Contact WHERE LastName = 'a\\\\b'") == {"c1"}


def test_every_salesforce_escape_decodes_to_its_character():
    query = parse_soql(
        "SELECT Id FROM Contact WHERE LastName = '\\n\\N\\r\\R\\t\\T\\b\\B\\f\\F\\\"\\'\\\\\\u00e9'"
    )
    _, params = query.to_sql(CONTACT)
    assert params == ["\n\n\r\r\t\t\b\b\f\f\"'\\é"]


def test_a_surrogate_pair_escape_is_one_character():
    _, params = parse_soql("SELECT Id FROM Contact WHERE LastName = '\\uD83D\\uDE00'").to_sql(
        CONTACT
    )
    assert params == ["😀"]


def test_literals_travel_as_parameters_never_in_the_sql_text():
    soql = "SELECT Id FROM Contact WHERE LastName = 'needle\\' OR 1=1 --' AND Id IN ('x1', 'x2')"
    sql, params = parse_soql(soql).to_sql(CONTACT)
    assert params == ["needle' OR 1=1 --", "x1", "x2"]
    assert "needle" not in sql and "x1" not in sql and "1=1" not in sql


TRICKY = [
    "o'brien@x.com",
    "a\\b@x.com",
    'say "hi"',
    "line\nbreak",
    "tab\tcarriage\rreturn",
    "bell\b form\f",
    "ünïcødé@exämple.com",
    "emoji😀",
    "100%_sure",
    "\\'",
]


@pytest.mark.parametrize("value", TRICKY)
def test_simple_salesforce_quoting_round_trips_through_the_parser(value):
    rows = [{"Id": "c1", "LastName": value}, {"Id": "c2", "LastName": value + "x"}]
    db = database({"Contact": rows})
    assert ids(db, format_soql("SELECT Id FROM Contact WHERE LastName = {}", value)) == {"c1"}
    soql = format_soql("SELECT Id FROM Contact WHERE LastName IN {}", [value, "other"])
    assert ids(db, soql) == {"c1"}
    soql = format_soql("SELECT Id FROM Contact WHERE LastName LIKE '{:like}%'", value)
    assert ids(db, soql) == {"c1", "c2"}
    soql = format_soql("SELECT Id FROM Contact WHERE LastName LIKE '{:like}'", value)
    assert ids(db, soql) == {"c1"}


def test_simple_salesforce_datetimes_dates_numbers_and_booleans_parse(tasks):
    cutoff = datetime(2026, 11, 27, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    soql = format_soql(
        "SELECT Id FROM Task WHERE CreatedDate > {} AND ActivityDate <= {} "
        "AND CallDurationInSeconds < {} AND IsClosed = {}",
        cutoff,
        date(2026, 11, 27),
        50,
        True,
    )
    assert ids(tasks, soql) == {"t1"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_quoted_by_simple_salesforce_parses_back_to_itself(value):
    soql = "SELECT Id FROM Contact WHERE LastName = " + quote_soql_value(value)
    assert parse_soql(soql).to_sql(CONTACT)[1] == [value]


@settings(max_examples=200, deadline=None)
# No NUL (SQLite's LIKE stops there) and no lone surrogates (not encodable as UTF-8,
# so they cannot reach SQLite, nor Salesforce, at all).
@given(
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=100)
)
def test_any_text_escaped_for_like_matches_itself_and_nothing_longer(value):
    soql = format_soql("SELECT Id FROM Contact WHERE LastName LIKE '{:like}'", value)
    (pattern,) = parse_soql(soql).to_sql(CONTACT)[1]
    db = sqlite3.connect(":memory:")
    matches = "SELECT ? LIKE ? ESCAPE '\\'"
    assert db.execute(matches, (value, pattern)).fetchone() == (1,)
    assert db.execute(matches, (value + "x", pattern)).fetchone() == (0,)


# ------------------------------------------------------------------------------- errors


MALFORMED = [
    ("SELECT Id FROM Task WHERE Status = 'a' AND Subject = 'b' OR Id = 'c'", "'OR'"),
    ("SELECT Id FROM Task WHERE Status = 'a' OR Subject = 'b' AND Id = 'c'", "'AND'"),
    ("SELECT Id FROM Task WHERE Subject = 'a\\qb'", "Illegal character sequence '\\q'"),
    ("SELECT Id FROM Task WHERE Subject = 'a\\-b'", "Illegal character sequence '\\-'"),
    ("SELECT Id FROM Task WHERE Subject = 'a\\u12'", "Illegal character sequence '\\u'"),
    ("SELECT Id FROM Task WHERE Subject = '\\uD83D'", "lone surrogate"),
    ("SELECT Id FROM Task WHERE Subject = 'abc", "never closed"),
    ("SELECT Id FROM Task WHERE Subject = 'abc\\'", "never closed"),
    ("SELECT Id FROM Task WHERE Subject = '100\\%'", "only LIKE patterns"),
    ("SELECT Id FROM Task WHERE Subject IN ('a\\_b')", "only LIKE patterns"),
    ("SELECT Id FROM Task WHERE Subject = 'O''Test'", "unexpected token: ''Test''"),
    ("SELECT Id FROM Task WHERE Subject NOT LIKE 'a%'", "only IN may follow NOT"),
    ("SELECT Id FROM Task WHERE Subject LIKE 5", "quoted string pattern"),
    ("SELECT Id FROM Task WHERE Subject < null", "null cannot be compared with <"),
    ("SELECT Id FROM Task WHERE Subject IN ()", "expecting a value"),
    ("SELECT Id FROM Task WHERE Subject IN ('a',)", "expecting a value"),
    ("SELECT Id FROM Task WHERE Subject = :name", "Bind variables only allowed in Apex code"),
    ("SELECT Id FROM Task WHERE Subject ==  'a'", "unexpected token: '='"),
    ("SELECT Id FROM Task WHERE (Subject = 'a'", "expecting ')'"),
    ("SELECT Id FROM Task WHERE Subject = 'a')", "unexpected token: ')'"),
    ("SELECT Id FROM Task WHERE", "'<EOF>'"),
    ("SELECT Id FROM Task WHERE CreatedDate = TOMORROW", "TOMORROW is not supported"),
    ("SELECT Id FROM Task WHERE CreatedDate = NEXT_N_DAYS:3", "NEXT_N_DAYS is not supported"),
    ("SELECT Id FROM Task WHERE CreatedDate = LAST_N_DAYS:", "number of days"),
    ("SELECT Id FROM Task WHERE CreatedDate IN (TODAY)", "cannot be used in IN"),
    ("SELECT Id FROM Task WHERE CreatedDate > 2026-02-30T00:00:00Z", "invalid dateTime"),
    ("SELECT Id FROM Task WHERE CreatedDate > 2026-11-27T10:00:00+01:75", "invalid dateTime"),
    ("SELECT Id FROM Task WHERE ActivityDate > 2026-13-01", "invalid date"),
    ("SELECT Id FROM Task WHERE ActivityDate > 2026-11-27T10:00", "character 'T'"),
    ("SELECT Id FROM Task WHERE CallDurationInSeconds > 5abc", "character 'a'"),
    ("SELECT Id FROM Task WHERE Id IN (SELECT WhoId FROM Task)", "semi-join"),
    ("SELECT Id FROM Task WHERE Subject INCLUDES ('a')", "'INCLUDES' is valid SOQL but not"),
    ("SELECT Id FROM Task WHERE DAY_ONLY(CreatedDate) = TODAY", "functions such as DAY_ONLY()"),
    ("SELECT * FROM Task", "no viable alternative at character '*'"),
    ("SELECT FROM Task", "unexpected token: 'FROM'"),
    ("SELECT Id, FROM Task", "unexpected token: 'FROM'"),
    ("SELECT Id Subject FROM Task", "unexpected token: 'Subject'"),
    ("SELECT Id, id FROM Task", "duplicate field selected: id"),
    ("SELECT Who.Name FROM Task", "relationship paths such as 'Who.Name'"),
    ("SELECT Id, (SELECT Id FROM TaskRelations) FROM Task", "subqueries are not supported"),
    ("SELECT COUNT(Id) FROM Task", "use COUNT()"),
    ("SELECT COUNT(), Id FROM Task", "COUNT() must be the only item"),
    ("SELECT MAX(CallDurationInSeconds) FROM Task", "functions such as MAX()"),
    ("SELECT Id FROM Task t", "unexpected token: 't'"),
    ("SELECT Id FROM Task;", "character ';'"),
    ("SELECT Id FROM Task GROUP BY Status", "'GROUP' is valid SOQL but not"),
    ("SELECT TYPEOF What WHEN Account THEN Name END FROM Task", "'TYPEOF' is valid SOQL"),
    ("SELECT Id FROM Task LIMIT 5 OFFSET 5", "'OFFSET' is valid SOQL but not"),
    ("SELECT Id FROM Task LIMIT -1", "whole number"),
    ("SELECT Id FROM Task LIMIT 1.5", "whole number"),
    ("SELECT Id FROM Task LIMIT 5 ORDER BY Id", "unexpected token: 'ORDER'"),
    ("SELECT Id FROM Task ORDER Id", "expecting BY"),
    ("SELECT Id FROM Task ORDER BY Id NULLS", "expecting FIRST or LAST"),
    ("UPDATE Task SET Subject = 'x'", "expecting SELECT"),
    ("", "'<EOF>'"),
]


@pytest.mark.parametrize(("soql", "fragment"), MALFORMED, ids=[m[0] or "empty" for m in MALFORMED])
def test_queries_outside_the_subset_are_malformed_with_a_pointed_message(soql, fragment):
    with pytest.raises(SoqlError) as caught:
        parse_soql(soql)
    assert caught.value.error_code == "MALFORMED_QUERY"
    assert fragment in caught.value.message
    assert "ERROR at Row:1:Column:" in caught.value.message


def test_the_error_caret_sits_under_the_bad_token_on_its_own_row():
    with pytest.raises(SoqlError) as caught:
        parse_soql("SELECT Id\nFROM Task\nWHERE Status = 'a' AND Subject = 'b' OR Id = 'c'")
    lines = caught.value.message.split("\n")
    assert lines[1] == "WHERE Status = 'a' AND Subject = 'b' OR Id = 'c'"
    assert lines[2] == " " * 37 + "^"
    assert lines[3] == "ERROR at Row:3:Column:38"


TYPE_MISMATCHES = [
    ("CreatedDate = 2026-11-27", "field 'CreatedDate' must be of type dateTime"),
    ("ActivityDate = 2026-11-27T10:00:00Z", "field 'ActivityDate' must be of type date"),
    ("CreatedDate = '2026-11-27T10:00:00Z'", "must be of type dateTime and should not be"),
    ("ActivityDate > '2026-11-27'", "must be of type date and should not be enclosed"),
    ("IsClosed = 'true'", "must be of type boolean and should not be enclosed"),
    ("CallDurationInSeconds = '5'", "must be of type integer and should not be enclosed"),
    ("Subject = 5", "field 'Subject' must be of type string and should be enclosed in quotes"),
    ("Subject = true", "must be of type string and should be enclosed in quotes"),
    ("Subject = TODAY", "must be of type string and should be enclosed in quotes"),
    ("WhoId IN ('a', 5)", "field 'WhoId' must be of type id and should be enclosed"),
    ("IsClosed > false", "invalid operator on boolean field"),
    ("CallDurationInSeconds LIKE '5%'", "must be of type integer"),
    ("Id LIKE '00T%'", "invalid operator on id field"),
]


@pytest.mark.parametrize(("condition", "fragment"), TYPE_MISMATCHES)
def test_a_literal_of_the_wrong_type_for_its_field_is_malformed(condition, fragment):
    error = error_of(f"SELECT Id FROM Task WHERE {condition}")
    assert error.error_code == "MALFORMED_QUERY"
    assert fragment in error.message


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id, Foo FROM Task",
        "SELECT Id FROM Task WHERE Foo = 'x'",
        "SELECT Id FROM Task ORDER BY Foo",
        "SELECT COUNT() FROM Task ORDER BY Foo",
    ],
)
def test_an_unknown_field_anywhere_is_invalid_field_naming_the_entity(soql):
    with pytest.raises(SoqlError) as caught:
        parse_soql(soql).to_sql(TASK, table="Task")
    assert caught.value.error_code == "INVALID_FIELD"
    assert caught.value.message.startswith("No such column 'Foo' on entity 'Task'.")


def test_canonical_fields_reject_an_unknown_field():
    with pytest.raises(SoqlError, match="No such column 'Bar'"):
        parse_soql("SELECT Bar FROM Task").canonical_fields(TASK)


def test_objects_resolve_without_case_and_unknown_ones_are_invalid_type():
    assert resolve_object("task", ["Contact", "Task"]) == "Task"
    with pytest.raises(SoqlError) as caught:
        resolve_object("Foo", ["Contact", "Task"])
    assert caught.value.error_code == "INVALID_TYPE"
    assert caught.value.message.startswith("sObject type 'Foo' is not supported.")


def test_a_statement_longer_than_100000_characters_is_malformed():
    head = "SELECT Id FROM Contact WHERE LastName IN ("
    values = ",".join(["'abc'"] * 20_000)
    soql = f"{head}{values})"
    assert len(soql) > MAX_QUERY_CHARS
    with pytest.raises(SoqlError) as caught:
        parse_soql(soql)
    assert caught.value.error_code == "MALFORMED_QUERY"
    assert "cannot be longer than 100000 characters" in caught.value.message
    fitting = head + ",".join(["'abc'"] * 16_000) + ")"
    assert len(parse_soql(fitting).to_sql(CONTACT)[1]) == 16_000


def test_a_string_literal_over_4000_characters_is_malformed():
    longest = "x" * MAX_STRING_CHARS
    assert parse_soql(f"SELECT Id FROM Contact WHERE LastName = '{longest}'").to_sql(CONTACT)[
        1
    ] == [longest]
    with pytest.raises(SoqlError, match="at most 4000 characters"):
        parse_soql(f"SELECT Id FROM Contact WHERE LastName = '{longest}x'")


def test_deeply_nested_conditions_are_refused_rather_than_overflowing_the_stack():
    soql = "SELECT Id FROM Task WHERE " + "NOT " * 5_000 + "Subject = 'a'"
    with pytest.raises(SoqlError, match="nest deeper than"):
        parse_soql(soql)
    soql = "SELECT Id FROM Task WHERE " + "(" * 5_000 + "Subject = 'a'" + ")" * 5_000
    with pytest.raises(SoqlError, match="nest deeper than"):
        parse_soql(soql)
