"""The org's live state that the API subsystems share: its database, user and settings.

REST, Bulk and the Shared Activities rules need only this much of the emulator. The
application owns one ``Org`` and replaces ``settings`` when an admin call changes them;
every subsystem holds the same object, so each request sees the settings of its moment.
"""

from __future__ import annotations

from dataclasses import dataclass

from salesforce_emulator.context import ACTING_USER, WriteContext
from salesforce_emulator.objects import OrgShape
from salesforce_emulator.org_settings import OrgSettings
from salesforce_emulator.retention import Clock
from salesforce_emulator.store import Store


@dataclass
class Org:
    """``store``: the org's database; ``user_id``: the integration user, whom every call
    runs as unless its session is another user's (``context.ACTING_USER``)."""

    store: Store
    user_id: str
    settings: OrgSettings

    @property
    def shape(self) -> OrgShape:
        """Which objects and fields the API shows under the current settings."""
        return self.settings.shape

    @property
    def clock(self) -> Clock:
        """The org's time: real time moved by the ``today`` setting."""
        return Clock(self.settings.clock_offset_days)

    def context(self, api_version: str | float | None = None) -> WriteContext:
        """A write context stamped now: one per batch, so every row gets the same time."""
        version = float(api_version) if api_version is not None else None
        user = ACTING_USER.get() or self.user_id
        return WriteContext(self.store, self.shape, user, self.clock.stamp(), version)
