"""Record Ids: key prefixes, the case-safe 18-character form, 15-character input."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from salesforce_emulator.ids import BASE62, make_ids, to_18, to_18_one

ID15 = st.text(alphabet=BASE62, min_size=15, max_size=15)


def test_a_documented_fifteen_character_id_gets_its_known_suffix():
    assert to_18_one("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_new_ids_are_eighteen_characters_unique_and_carry_the_prefix():
    ids = make_ids("00T", 1, 5_000) + make_ids("00T", 5_001, 5)
    assert len(set(ids)) == len(ids) == 5_005
    assert all(len(i) == 18 and i.startswith("00T") for i in ids)
    assert all(to_18_one(i[:15]) == i for i in ids[::97])


def test_malformed_values_are_not_ids():
    result = to_18(pd.Series(["001xx", "", None, "001A0000006Vm9r!", "001A0000006Vm9rIA"]))
    assert result.isna().all()


@given(ID15)
def test_eighteen_character_form_depends_only_on_the_first_fifteen(id15):
    canonical = to_18_one(id15)
    assert canonical[:15] == id15 and len(canonical) == 18
    assert to_18_one(canonical) == canonical
    assert to_18_one(canonical[:15] + "AAA") == canonical


@given(ID15, st.integers(min_value=0, max_value=14))
def test_ids_that_differ_only_in_case_differ_in_the_suffix(id15, position):
    char = id15[position]
    swapped = char.lower() if char.isupper() else char.upper()
    if swapped == char:
        return
    other = id15[:position] + swapped + id15[position + 1 :]
    assert to_18_one(other)[15:] != to_18_one(id15)[15:]
