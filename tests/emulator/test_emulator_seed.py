"""Seed data: the demo org's shape, and the same org for the same seed."""

from __future__ import annotations

import hashlib
import time

import pytest

from salesforce_emulator.app import Emulator
from salesforce_emulator.seed import SeedError, parse_seed

SEEDED = ("Account", "Contact", "Lead", "Opportunity", "OpportunityContactRole")


def _fingerprint(emu: Emulator) -> str:
    digest = hashlib.sha256()
    for table in SEEDED:
        for row in emu.store.read(f'SELECT * FROM "{table}" ORDER BY Id'):
            digest.update(repr(row).encode())
    for row in emu.store.read(
        "SELECT * FROM User WHERE Id != ? ORDER BY Id", (emu.auth.credentials.user_id,)
    ):
        digest.update(repr(row).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    started = time.monotonic()
    emu = Emulator(tmp_path_factory.mktemp("demo-seed"), seed="demo")
    seconds = time.monotonic() - started
    yield emu, seconds
    emu.close()


def test_demo_org_has_the_promised_size_and_is_made_quickly(demo):
    emu, seconds = demo
    rows = emu.store.row_counts()
    assert rows["Account"]["live"] == 2_000
    assert rows["Contact"]["live"] == 20_000
    assert rows["Lead"]["live"] == 3_000
    assert rows["User"]["live"] == 26
    assert 2_000 < rows["Opportunity"]["live"] < 4_000
    assert rows["OpportunityContactRole"]["live"] > 2_000
    assert seconds < 15


def test_demo_org_holds_the_cases_the_pipeline_must_handle(demo):
    emu, _ = demo
    read = emu.store.read
    shared_emails = read(
        "SELECT COUNT(*) FROM (SELECT Email FROM Contact GROUP BY Email HAVING COUNT(*) > 1)"
    )[0][0]
    assert shared_emails > 100
    assert read("SELECT COUNT(*) FROM Contact WHERE AccountId IS NULL")[0][0] > 500
    converted = read(
        "SELECT COUNT(*) FROM Lead WHERE IsConverted = 1 AND ConvertedContactId IS NOT NULL"
    )[0][0]
    assert 300 < converted < 1_000
    assert read("SELECT COUNT(*) FROM Lead l JOIN Contact c ON c.Email = l.Email")[0][0] > 0
    stages = dict(read("SELECT IsClosed, COUNT(*) FROM Opportunity GROUP BY IsClosed"))
    assert stages[0] > 0 and stages[1] > 0
    assert read("SELECT COUNT(*) FROM User WHERE IsActive = 0")[0][0] >= 1
    orphans = read(
        "SELECT COUNT(*) FROM OpportunityContactRole r JOIN Opportunity o ON o.Id = r.OpportunityId "
        "JOIN Contact c ON c.Id = r.ContactId WHERE c.AccountId != o.AccountId"
    )[0][0]
    assert orphans == 0


def test_the_same_seed_makes_the_same_org_and_another_seed_another(tmp_path):
    first = Emulator(tmp_path / "a", seed="small:3")
    second = Emulator(tmp_path / "b", seed="small:3")
    other = Emulator(tmp_path / "c", seed="small:4")
    try:
        assert _fingerprint(first) == _fingerprint(second)
        assert _fingerprint(first) != _fingerprint(other)
    finally:
        for emu in (first, second, other):
            emu.close()


@pytest.mark.parametrize("spec", ["huge", "demo:x", "small:-1"])
def test_unknown_seeds_are_refused(spec):
    with pytest.raises(SeedError):
        parse_seed(spec)
