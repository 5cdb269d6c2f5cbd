"""Seed data for a new org: a realistic sales org, the same for the same seed.

``demo`` is the org the demo runs against (≈2,000 Accounts, 20,000 Contacts, 3,000 Leads,
Opportunities open and closed, contact roles); ``small`` is a miniature for fast test
starts. Both carry the cases the pipeline must handle: Contacts sharing an email, Contacts
without an Account, converted Leads, Leads whose email is also a Contact's, inactive
Users. Faker supplies pools of names and companies once; numpy draws every record from
them in whole arrays, so the demo org is written in about a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from salesforce_emulator.ids import (
    ACCOUNT_PREFIX,
    CONTACT_PREFIX,
    LEAD_PREFIX,
    OPPORTUNITY_CONTACT_ROLE_PREFIX,
    OPPORTUNITY_PREFIX,
    USER_PREFIX,
)
from salesforce_emulator.store import Store, quote_ident

if TYPE_CHECKING:
    import sqlite3

# Seed timestamps are fixed, not "now", so that a seed always gives the same org.
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "proton.me")
OPEN_STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
)
ROLES = ("Decision Maker", "Economic Buyer", "Technical Buyer", "Influencer", "Evaluator")
INDUSTRIES = (
    "Technology",
    "Finance",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Media",
    "Energy",
    "Other",
)


@dataclass(frozen=True)
class Profile:
    users: int
    accounts: int
    contacts: int
    leads: int
    opportunity_rate: float  # mean Opportunities per Account
    shared_email_share: float
    no_account_share: float
    converted_share: float


PROFILES = {
    "demo": Profile(25, 2_000, 20_000, 3_000, 1.5, 0.02, 0.05, 0.2),
    "small": Profile(5, 40, 400, 60, 1.5, 0.03, 0.05, 0.2),
}


class SeedError(ValueError):
    pass


def parse_seed(spec: str) -> tuple[Profile, int]:
    """``demo`` / ``small`` with an optional ``:N`` random seed (default 0)."""
    name, _, number = spec.partition(":")
    if name not in PROFILES:
        raise SeedError(f"unknown seed {name!r}; choose one of {sorted(PROFILES)}")
    if number and not number.isdigit():
        raise SeedError(f"seed number must be a whole number, got {number!r}")
    return PROFILES[name], int(number or 0)


def _stamps(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Created and last-modified times, distinct to the millisecond, within two years."""
    created_ms = rng.integers(0, 700 * 86_400_000, count)
    modified_ms = np.minimum(created_ms, rng.integers(0, 200 * 86_400_000, count))
    base = pd.Timestamp(EPOCH)

    def render(ms: np.ndarray) -> np.ndarray:
        moments = base - pd.to_timedelta(ms, unit="ms")
        return (
            moments.strftime("%Y-%m-%dT%H:%M:%S.")
            + pd.Index(moments.microsecond // 1000).astype(str).str.zfill(3)
            + "+0000"
        ).to_numpy()

    return render(created_ms), render(modified_ms)


def _slug(text: pd.Series) -> pd.Series:
    return text.str.lower().str.replace(r"[^a-z0-9]+", "", regex=True).str.slice(0, 20)


def _insert(db: sqlite3.Connection, table: str, frame: pd.DataFrame) -> None:
    columns = ", ".join(quote_ident(c) for c in frame.columns)
    db.executemany(
        f"INSERT INTO {quote_ident(table)} ({columns}) VALUES ({', '.join('?' * frame.shape[1])})",
        frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None),
    )


def _with_system(frame: pd.DataFrame, rng: np.random.Generator, user_id: str) -> pd.DataFrame:
    created, modified = _stamps(rng, len(frame))
    frame.insert(1, "IsDeleted", 0)
    frame["CreatedDate"] = created
    frame["LastModifiedDate"] = modified
    frame["SystemModstamp"] = modified
    frame["CreatedById"] = user_id
    frame["LastModifiedById"] = user_id
    return frame


def seed_org(store: Store, integration: str, spec: str) -> dict[str, int]:
    """Write the records of seed ``spec`` into ``store``, created by user Id ``integration``.

    Returns how many records of each object were made.
    """
    # Imported here: Faker is slow to import and only a new org needs it.
    from faker import Faker

    profile, number = parse_seed(spec)
    fake = Faker("en_US")
    fake.seed_instance(number)
    rng = np.random.default_rng(number)
    pick = rng.choice
    first = np.array(sorted({fake.first_name() for _ in range(600)}))
    last = np.array(sorted({fake.last_name() for _ in range(900)}))
    companies = pd.Series(sorted({fake.company() for _ in range(int(profile.accounts * 1.6))}))
    cities = np.array([fake.city() for _ in range(300)])
    jobs = np.array([re.sub(r"\s+", " ", fake.job())[:128] for _ in range(300)])

    with store.transaction() as db:
        # Users: the sales team whose mail the pipeline syncs; a couple have left.
        n = profile.users
        user_first, user_last = pick(first, n), pick(last, n)
        users = pd.DataFrame(
            {
                "Id": store.next_ids(db, USER_PREFIX, n),
                "FirstName": user_first,
                "LastName": user_last,
            }
        )
        local = pd.Series(user_first).str.lower() + "." + pd.Series(user_last).str.lower()
        local = local + np.where(pd.Series(local).duplicated(), pd.Series(range(n)).astype(str), "")
        users["Email"] = local + "@acme-sales.example.com"
        users["Username"] = users["Email"]
        users["Alias"] = (pd.Series(user_first).str[0] + pd.Series(user_last).str[:4]).str.lower()
        users["Title"] = pick(["Account Executive", "SDR", "Sales Manager", "CSM"], n)
        users["IsActive"] = (rng.random(n) > 0.1).astype(int)
        users.loc[0, "IsActive"] = 1
        _insert(db, "User", _with_system(users, rng, integration))
        owners = users.loc[users["IsActive"] == 1, "Id"].to_numpy()

        # Accounts, each with a web domain that its Contacts' emails use.
        n = profile.accounts
        names = companies.iloc[:n].reset_index(drop=True)
        domains = _slug(names)
        domains = domains + np.where(domains.duplicated(), pd.Series(np.arange(n)).astype(str), "")
        domains = domains + "." + pd.Series(pick(["com", "io", "co", "net"], n))
        accounts = pd.DataFrame(
            {
                "Id": store.next_ids(db, ACCOUNT_PREFIX, n),
                "Name": names,
                "Type": pick(["Prospect", "Customer - Direct", "Partner", "Other"], n),
                "Industry": pick(INDUSTRIES, n),
                "Website": "www." + domains,
                "BillingCity": pick(cities, n),
                "BillingCountry": pick(
                    ["United States", "United Kingdom", "Germany", "France", "Canada", "Australia"],
                    n,
                ),
                "NumberOfEmployees": rng.integers(5, 20_000, n),
                "OwnerId": pick(owners, n),
            }
        )
        _insert(db, "Account", _with_system(accounts, rng, integration))

        # Contacts: most at an Account (email at its domain), some on their own (free mail),
        # and a few whose email another Contact already has.
        n = profile.contacts
        c_first, c_last = pick(first, n), pick(last, n)
        account_index = rng.integers(0, profile.accounts, n)
        no_account = rng.random(n) < profile.no_account_share
        domain = np.where(no_account, pick(FREE_MAIL, n), domains.to_numpy()[account_index])
        local = (
            pd.Series(c_first).str.lower().str.replace(r"[^a-z]", "", regex=True)
            + "."
            + pd.Series(c_last).str.lower().str.replace(r"[^a-z]", "", regex=True)
        )
        email = local + "@" + pd.Series(domain)
        clash = email.duplicated()
        email = email.where(~clash, local + pd.Series(np.arange(n)).astype(str) + "@" + domain)
        shared = rng.random(n) < profile.shared_email_share
        donors = rng.integers(0, n, n)
        email = email.where(~shared, email.to_numpy()[donors])
        contacts = pd.DataFrame(
            {
                "Id": store.next_ids(db, CONTACT_PREFIX, n),
                "FirstName": c_first,
                "LastName": c_last,
                "Email": email,
                "Title": pick(jobs, n),
                "AccountId": np.where(no_account, None, accounts["Id"].to_numpy()[account_index]),
                "LeadSource": pick(["Web", "Phone Inquiry", "Partner Referral", "Trade Show"], n),
                "OwnerId": pick(owners, n),
            }
        )
        _insert(db, "Contact", _with_system(contacts, rng, integration))

        # Leads: prospects at other companies; some converted into Contacts, some sharing
        # an email with a Contact (the pipeline must prefer the Contact).
        n = profile.leads
        l_first, l_last = pick(first, n), pick(last, n)
        lead_companies = companies.iloc[profile.accounts :].reset_index(drop=True)
        company = pick(lead_companies.to_numpy(), n) if len(lead_companies) else pick(names, n)
        lead_domain = _slug(pd.Series(company)) + ".com"
        lead_email = (
            pd.Series(l_first).str.lower().str.replace(r"[^a-z]", "", regex=True)
            + "."
            + pd.Series(l_last).str.lower().str.replace(r"[^a-z]", "", regex=True)
            + pd.Series(np.arange(n)).astype(str)
            + "@"
            + lead_domain
        )
        same_as_contact = rng.random(n) < 0.03
        lead_email = lead_email.where(~same_as_contact, pick(email.to_numpy(), n))
        converted = rng.random(n) < profile.converted_share
        converted_contact = rng.integers(0, profile.contacts, n)
        leads = pd.DataFrame(
            {
                "Id": store.next_ids(db, LEAD_PREFIX, n),
                "FirstName": l_first,
                "LastName": l_last,
                "Company": company,
                "Email": lead_email,
                "Title": pick(jobs, n),
                "Status": np.where(
                    converted,
                    "Closed - Converted",
                    pick(
                        ["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted"], n
                    ),
                ),
                "LeadSource": pick(["Web", "Phone Inquiry", "Partner Referral", "Trade Show"], n),
                "IsConverted": converted.astype(int),
                "ConvertedDate": np.where(
                    converted,
                    (pd.Timestamp(EPOCH) - pd.to_timedelta(rng.integers(1, 400, n), unit="D"))
                    .strftime("%Y-%m-%d")
                    .to_numpy(),
                    None,
                ),
                "ConvertedContactId": np.where(
                    converted, contacts["Id"].to_numpy()[converted_contact], None
                ),
                "ConvertedAccountId": np.where(
                    converted, contacts["AccountId"].to_numpy()[converted_contact], None
                ),
                "OwnerId": pick(owners, n),
            }
        )
        _insert(db, "Lead", _with_system(leads, rng, integration))

        # Opportunities: a Poisson number per Account, about a third closed.
        per_account = rng.poisson(profile.opportunity_rate, profile.accounts)
        opp_account = np.repeat(np.arange(profile.accounts), per_account)
        n = len(opp_account)
        closed = rng.random(n) < 0.35
        stage = np.where(
            closed,
            np.where(rng.random(n) < 0.5, "Closed Won", "Closed Lost"),
            pick(OPEN_STAGES, n),
        )
        close_days = np.where(closed, -rng.integers(1, 365, n), rng.integers(1, 180, n))
        opportunities = pd.DataFrame(
            {
                "Id": store.next_ids(db, OPPORTUNITY_PREFIX, n),
                "Name": names.to_numpy()[opp_account]
                + " - "
                + pick(["Renewal", "Expansion", "New Business", "Pilot", "Upsell"], n),
                "AccountId": accounts["Id"].to_numpy()[opp_account],
                "StageName": stage,
                "CloseDate": (pd.Timestamp(EPOCH) + pd.to_timedelta(close_days, unit="D"))
                .strftime("%Y-%m-%d")
                .to_numpy(),
                "Amount": np.round(rng.lognormal(10, 1, n), 2),
                "OwnerId": pick(owners, n),
            }
        )
        _insert(db, "Opportunity", _with_system(opportunities, rng, integration))

        # Contact roles: up to three Contacts of the Opportunity's own Account.
        with_account = contacts[contacts["AccountId"].notna()]
        by_account = with_account.groupby("AccountId")["Id"].agg(list)
        role_frame = opportunities[["Id", "AccountId"]].rename(columns={"Id": "OpportunityId"})
        role_frame["candidates"] = role_frame["AccountId"].map(by_account)
        role_frame = role_frame[role_frame["candidates"].notna()]
        role_frame["take"] = rng.integers(0, 4, len(role_frame))
        pairs = role_frame.explode("candidates")
        rank = pairs.groupby("OpportunityId").cumcount()
        roles = pairs[rank < pairs["take"]].rename(columns={"candidates": "ContactId"})
        roles = roles[["OpportunityId", "ContactId"]]
        n = len(roles)
        roles = roles.reset_index(drop=True)
        roles.insert(0, "Id", store.next_ids(db, OPPORTUNITY_CONTACT_ROLE_PREFIX, n))
        roles["Role"] = pick(ROLES, n)
        roles["IsPrimary"] = (~roles["OpportunityId"].duplicated()).astype(int)
        _insert(db, "OpportunityContactRole", _with_system(roles, rng, integration))

    return {
        "User": profile.users,
        "Account": profile.accounts,
        "Contact": profile.contacts,
        "Lead": profile.leads,
        "Opportunity": len(opportunities),
        "OpportunityContactRole": len(roles),
    }
