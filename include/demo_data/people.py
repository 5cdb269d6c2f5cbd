"""Who a generated day is about: the CRM's addresses arranged for drawing (generate.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from faker import Faker

# Offsets a sender's own mail client writes; tracking events come from a server in UTC.
_SENDER_OFFSETS = ["+00:00", "+01:00", "-05:00"]


@dataclass(frozen=True)
class People:
    """The CRM's addresses arranged for drawing, in a fixed order so draws are repeatable."""

    account_contacts: list[np.ndarray]
    account_weights: np.ndarray
    contacts: np.ndarray
    leads: np.ndarray
    colleagues: np.ndarray
    senders: np.ndarray
    sender_weights: np.ndarray
    sender_offsets: np.ndarray
    internal_domain: str


def people_of(
    crm: Any, rng: np.random.Generator, fake: Faker, internal_domain: str | None
) -> People:
    """The CRM's Contacts (by Account), unconverted Leads and Users as a day draws them:
    senders weighted (a few reps send most mail), plus one inactive and one unknown sender.

    Raises:
        ValueError: the CRM has no Contact with an email, or no active User.
    """
    contacts = crm.contacts[crm.contacts["Email"].notna()].sort_values("Id")
    if contacts.empty:
        raise ValueError("the CRM has no Contact with an email")
    leads = crm.leads[~_truthy(crm.leads["IsConverted"]) & crm.leads["Email"].notna()]
    users = crm.users[crm.users["Email"].notna()].sort_values("Id")
    active = users.loc[_truthy(users["IsActive"]), "Email"].to_numpy(dtype=object)
    inactive = users.loc[~_truthy(users["IsActive"]), "Email"].to_numpy(dtype=object)
    if len(active) == 0:
        raise ValueError("the CRM has no active User to send email")
    if internal_domain is None:
        domains = users["Email"].str.split("@").str[-1].str.lower().value_counts()
        # Most common domain; ties go to the alphabetically first so the choice is stable.
        internal_domain = sorted(domains[domains == domains.max()].index)[0]

    by_account = contacts.groupby("AccountId", dropna=False, sort=True)["Email"]
    account_contacts = [group.to_numpy(dtype=object) for _, group in by_account]
    sizes = np.array([len(a) for a in account_contacts], dtype=float)

    known = {e.lower() for e in users["Email"]}
    unknown_sender = f"{fake.user_name()}@{internal_domain}"
    while unknown_sender.lower() in known:
        unknown_sender = f"{fake.user_name()}{rng.integers(10, 99)}@{internal_domain}"
    # A few reps send most of the mail; the inactive and unknown senders only a little.
    active_weights = rng.gamma(2.0, 1.0, size=len(active))
    extra = [*inactive[:1], unknown_sender]
    weights = np.concatenate([active_weights / active_weights.sum() * 0.98, [0.01] * len(extra)])
    senders = np.concatenate([active, np.array(extra, dtype=object)])
    return People(
        account_contacts=account_contacts,
        account_weights=sizes / sizes.sum(),
        contacts=contacts["Email"].to_numpy(dtype=object),
        leads=leads.sort_values("Id")["Email"].to_numpy(dtype=object),
        colleagues=active,
        senders=senders,
        sender_weights=weights / weights.sum(),
        sender_offsets=rng.choice(_SENDER_OFFSETS, size=len(senders), p=[0.6, 0.2, 0.2]),
        internal_domain=internal_domain,
    )


def _truthy(values: pd.Series) -> pd.Series:
    """Booleans as read from Parquet (bool) or CSV ("true"/"True"/"1")."""
    return values.astype(str).str.lower().isin(["true", "1"])
