"""The versioned list of orgs this deployment syncs (``include/config/orgs.yaml``).

Each org names its Airflow Salesforce connection, its settings (docs/settings.md)
and where its events land. The file is read when the DAG runs, not when it is parsed, so
adding an org needs no restart, and a broken entry fails that run with a message naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from activity_sync.errors import ActivitySyncError
from activity_sync.settings import Settings, SettingsError, parse_settings

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "orgs.yaml"
# The Task field holding R11's task_key unless an org names another; the README's "Add an
# org" says how to create it, and org.detect_capabilities checks it every run.
DEFAULT_EXTERNAL_ID_FIELD = "Activity_Sync_Key__c"
ORG_KEYS = {
    "org_id",
    "salesforce_conn_id",
    "landing",
    "settings",
    "api_budget_share",
    "external_id_field",
    "salesforce_concurrency",
    "dedicated",
}
# The keys of the file itself, beside ``orgs``.
FILE_KEYS = {"version", "orgs", "shard_size"}
# Small orgs share a task instance in shards of this many (``shard_size`` in the file):
# each task instance costs the scheduler and a worker about 1.5 CPU seconds whatever it
# does, which dwarfs a small org's hour (README "Performance").
DEFAULT_SHARD_SIZE = 25
# Salesforce steps of one org running at once, across runs and backfills, unless the org
# says otherwise: two hours of a backfill overlap, and no more, because concurrent loads
# into one org contend for the same record locks (UNABLE_TO_LOCK_ROW).
DEFAULT_SALESFORCE_CONCURRENCY = 2


class TenantConfigError(ActivitySyncError, ValueError):
    """The orgs file is unusable; the message names the org and key."""


@dataclass(frozen=True)
class Org:
    """One entry of the orgs file: everything a run needs to sync one Salesforce org.

    Attributes:
        org_id: the org's name in events, lake paths and task keys.
        salesforce_conn_id: the Airflow connection to its Salesforce.
        settings: its validated settings (docs/settings.md).
        landing: where its events land, relative to the lake root or a URL such as
            ``s3://bucket/landing``.
        api_budget_share: the share (0, 1] of the org's daily API requests this product
            may use; a run finding more used waits for the budget instead of loading.
        external_id_field: the Task field upserted on (R11).
        salesforce_concurrency: how many of this org's Salesforce steps may run at once,
            across runs and backfills (``org_slots``).
        dedicated: a big org: synced in a task instance of its own rather than in a shard
            with other orgs.
    """

    org_id: str
    salesforce_conn_id: str
    settings: Settings
    landing: str = "landing"
    api_budget_share: float = 0.7
    external_id_field: str = DEFAULT_EXTERNAL_ID_FIELD
    salesforce_concurrency: int = DEFAULT_SALESFORCE_CONCURRENCY
    dedicated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that travels through XCom."""
        return {
            "org_id": self.org_id,
            "salesforce_conn_id": self.salesforce_conn_id,
            "settings": self.settings.to_dict(),
            "landing": self.landing,
            "api_budget_share": self.api_budget_share,
            "external_id_field": self.external_id_field,
            "salesforce_concurrency": self.salesforce_concurrency,
            "dedicated": self.dedicated,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Org:
        """Validate one entry of the orgs file (or :meth:`to_dict`'s output).

        Missing optional keys take their defaults; an unknown key, a missing or empty
        ``org_id``/``salesforce_conn_id``, bad settings, a share outside (0, 1], a
        concurrency that is not a positive integer or a ``dedicated`` that is not a boolean
        raise :class:`TenantConfigError` naming the org and the key.
        """
        org_id = raw.get("org_id")
        where = f"org {org_id!r}" if org_id else "an org entry"
        unknown = sorted(set(raw) - ORG_KEYS)
        if unknown:
            raise TenantConfigError(f"{where}: unknown key {unknown[0]!r}")
        for key in ("org_id", "salesforce_conn_id"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise TenantConfigError(f"{where}: {key!r} is required and must be a string")
        settings = dict(raw.get("settings") or {})
        settings.setdefault("org_id", org_id)
        if settings["org_id"] != org_id:
            raise TenantConfigError(f"{where}: settings.org_id {settings['org_id']!r} differs")
        try:
            parsed = parse_settings(settings)
        except SettingsError as exc:
            raise TenantConfigError(f"{where}: {exc}") from exc
        share = raw.get("api_budget_share", 0.7)
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share <= 1:
            raise TenantConfigError(f"{where}: 'api_budget_share' must be a number in (0, 1]")
        concurrency = raw.get("salesforce_concurrency", DEFAULT_SALESFORCE_CONCURRENCY)
        if not _positive_int(concurrency):
            raise TenantConfigError(
                f"{where}: 'salesforce_concurrency' must be a whole number of at least 1"
            )
        dedicated = raw.get("dedicated", False)
        if not isinstance(dedicated, bool):
            raise TenantConfigError(f"{where}: 'dedicated' must be true or false")
        return cls(
            org_id=org_id,
            salesforce_conn_id=raw["salesforce_conn_id"],
            settings=parsed,
            landing=str(raw.get("landing", "landing")),
            api_budget_share=float(share),
            external_id_field=str(raw.get("external_id_field", DEFAULT_EXTERNAL_ID_FIELD)),
            salesforce_concurrency=concurrency,
            dedicated=dedicated,
        )


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class OrgsFile:
    """The orgs file: its orgs, and how the hourly DAG groups small orgs.

    Attributes:
        orgs: every org, in file order.
        shard_size: how many orgs that are not ``dedicated`` share one task instance.
    """

    orgs: list[Org]
    shard_size: int = DEFAULT_SHARD_SIZE


def load_orgs(path: str | Path | None = None) -> list[Org]:
    """The orgs of the orgs file, in file order (:func:`load_orgs_file`'s ``orgs``)."""
    return load_orgs_file(path).orgs


def load_orgs_file(path: str | Path | None = None) -> OrgsFile:
    """The orgs file, validated.

    Args:
        path: the YAML file; default ``$ACTIVITY_SYNC_ORGS``, else ``include/config/orgs.yaml``.

    Returns:
        One validated :class:`Org` per entry under ``orgs`` (the file needs ``version: 1``),
        and ``shard_size`` (default :data:`DEFAULT_SHARD_SIZE`).

    Raises:
        TenantConfigError: the file cannot be read or parsed, has an unknown top-level key or
            a bad ``shard_size``, an entry is invalid, or an org_id is listed twice; the
            message names the file or org and the key.
    """
    path = Path(path or os.environ.get("ACTIVITY_SYNC_ORGS", DEFAULT_CONFIG))
    try:
        # utf-8-sig: a byte order mark, as some Windows editors save one, is no content.
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TenantConfigError(f"cannot read orgs file {path}: {exc}") from exc
    if (
        not isinstance(raw, dict)
        or raw.get("version") != 1
        or not isinstance(raw.get("orgs"), list)
    ):
        raise TenantConfigError(f"{path}: expected 'version: 1' and a list under 'orgs'")
    unknown = sorted(set(raw) - FILE_KEYS)
    if unknown:
        raise TenantConfigError(f"{path}: unknown top-level key {unknown[0]!r}")
    shard_size = raw.get("shard_size", DEFAULT_SHARD_SIZE)
    if not _positive_int(shard_size):
        raise TenantConfigError(f"{path}: 'shard_size' must be a whole number of at least 1")
    orgs = [Org.from_dict(entry) for entry in raw["orgs"]]
    seen: set[str] = set()
    for org in orgs:
        if org.org_id in seen:
            raise TenantConfigError(f"{path}: org {org.org_id!r} is listed twice")
        seen.add(org.org_id)
    return OrgsFile(orgs=orgs, shard_size=shard_size)
