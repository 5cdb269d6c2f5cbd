"""The CRM as lookup tables the rules read: people by email, Users by email, Opportunities.

Each is built once per interval from the CRM snapshot and then consulted for every
address at once: R5's choice of person per email, the OwnerId of each sender, and R8's
candidate Opportunities per link key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from activity_sync.crm import Crm
from activity_sync.planner.arrow import (
    from_series,
    index_in,
    join_text,
    mask,
    take_or_null,
    text_at,
)
from activity_sync.planner.columns import normalise_email
from activity_sync.settings import Settings

# Joins a link key to the owning User's Id (owned_opportunities_only); no Id holds it.
_OWNER_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class _EmailIndex:
    """The one row chosen for each distinct normalised email. Only rows that share an email
    are sorted by the ranking, so the common case of unique emails costs one hash."""

    emails: pa.Array  # distinct
    row: np.ndarray  # the chosen row per email, then -1 for "none"

    @classmethod
    def of(
        cls, emails: pa.Array, usable: np.ndarray, ranking: pd.DataFrame, ascending: list[bool]
    ) -> _EmailIndex:
        rows = np.flatnonzero(usable & mask(pc.not_equal(emails, "")))
        email = emails.take(pa.array(rows))
        shared = email.to_pandas().duplicated(keep=False).to_numpy()
        ties = ranking.iloc[rows[shared]].assign(email=text_at(email, np.flatnonzero(shared)))
        ties = ties.assign(row=rows[shared]).sort_values(
            ["email", *ranking.columns], ascending=[True, *ascending], na_position="last"
        )
        ties = ties.drop_duplicates("email")
        unique = np.flatnonzero(~shared)
        emails = pa.concat_arrays([email.take(pa.array(unique)), from_series(ties["email"])])
        chosen = np.concatenate([rows[unique], ties["row"].to_numpy(np.int64), [-1]])
        return cls(emails, chosen)

    def lookup(self, addresses: pa.Array) -> np.ndarray:
        """The chosen row per address, -1 where no row has that email."""
        return self.row[index_in(addresses, self.emails)]


@dataclass(frozen=True)
class PersonDirectory:
    """The CRM people as one indexed list: Contacts, then unconverted Leads (R5)."""

    person_id: pa.Array
    account_id: pa.Array  # null for Leads
    contacts: int  # a person index below this is a Contact
    by_email: _EmailIndex

    @classmethod
    def of(cls, crm: Crm) -> PersonDirectory:
        """R5's choice per email: a Contact before a Lead, then the newest LastModifiedDate,
        then the lowest Id."""
        people = pd.concat(
            [crm.contacts.assign(is_lead=False), crm.leads[~crm.leads["IsConverted"]]],
            ignore_index=True,
        ).fillna({"is_lead": True})
        person_id = from_series(people["Id"])
        ranking = people[["is_lead", "LastModifiedDate", "Id"]].astype({"is_lead": bool})
        return cls(
            person_id=person_id,
            account_id=from_series(people["AccountId"]),
            contacts=len(crm.contacts),
            by_email=_EmailIndex.of(
                normalise_email(from_series(people["Email"])),
                mask(pc.is_valid(person_id)),
                ranking,
                [True, False, True],
            ),
        )


def owner_ids(crm: Crm, senders: pa.Array) -> pa.Array:
    """OwnerId per sender: the active User with that email, the lowest Id if several."""
    users = crm.users
    ids = from_series(users["Id"])
    usable = users["IsActive"].to_numpy() & mask(pc.is_valid(ids))
    by_email = _EmailIndex.of(
        normalise_email(from_series(users["Email"])), usable, users[["Id"]], [True]
    )
    return take_or_null(ids, by_email.lookup(senders))


@dataclass(frozen=True)
class OpportunityLinks:
    """R8's candidate Opportunities grouped by the key a primary Contact brings: its
    AccountId (``account``) or its own Id (``contact_role``), with the owning User appended
    when only the sender's Opportunities count. Closed ones are gone if R8 says so."""

    keys: pa.Array  # distinct
    start: np.ndarray  # per key: first of its Opportunities in ``what``
    count: np.ndarray
    what: pa.Array  # Opportunity Ids, key after key

    @classmethod
    def of(cls, crm: Crm, settings: Settings) -> OpportunityLinks | None:
        """The org's links, or None when Tasks are not related to Opportunities."""
        if not settings.sync_to_opportunities:
            return None
        opportunities = crm.opportunities[crm.opportunities["Id"].notna()]
        if settings.open_opportunities_only:
            opportunities = opportunities[~opportunities["IsClosed"]]
        if settings.opportunity_match == "account":
            links = opportunities.rename(columns={"AccountId": "key"})
        else:
            links = crm.contact_roles.merge(
                opportunities, left_on="OpportunityId", right_on="Id", suffixes=("_role", "")
            ).rename(columns={"ContactId": "key"})
        keys = _link_keys(
            settings, from_series(links["key"]), from_series(links["OwnerId"])
        ).to_pandas()
        links = pd.DataFrame({"key": keys, "what": links["Id"].to_numpy()}).dropna()
        links = links.drop_duplicates().sort_values("key", kind="stable")
        codes, keys = pd.factorize(links["key"])
        count = np.bincount(codes, minlength=len(keys))
        return cls(
            from_series(pd.Series(keys)),
            np.cumsum(count) - count,
            count,
            from_series(links["what"]),
        )

    def counts(self, keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Per key: where its Opportunities start in ``what``, and how many there are."""
        at = index_in(keys, self.keys)  # -1, no such key, picks the appended 0
        return np.append(self.start, 0)[at], np.append(self.count, 0)[at]


def _link_keys(settings: Settings, key: pa.Array, owner: pa.Array) -> pa.Array:
    """The link key of rows: ``key``, joined with the owner's Id for owned_opportunities_only
    (null when either is null: no key, or no owner, matches nothing)."""
    return join_text(key, _OWNER_SEPARATOR, owner) if settings.owned_opportunities_only else key


def primary_keys(
    settings: Settings, directory: PersonDirectory, person: np.ndarray, owner: pa.Array
) -> pa.Array:
    ids = directory.account_id if settings.opportunity_match == "account" else directory.person_id
    return _link_keys(settings, ids.take(pa.array(person)), owner)
