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
}


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
    """

    org_id: str
    salesforce_conn_id: str
    settings: Settings
    landing: str = "landing"
    api_budget_share: float = 0.7
    external_id_field: str = DEFAULT_EXTERNAL_ID_FIELD

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that travels through XCom."""
        return {
            "org_id": self.org_id,
            "salesforce_conn_id": self.salesforce_conn_id,
            "settings": self.settings.to_dict(),
            "landing": self.landing,
            "api_budget_share": self.api_budget_share,
            "external_id_field": self.external_id_field,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Org:
        """Validate one entry of the orgs file (or :meth:`to_dict`'s output).

        Missing optional keys take their defaults; an unknown key, a missing or empty
        ``org_id``/``salesforce_conn_id``, bad settings or a share outside (0, 1] raise
        :class:`TenantConfigError` naming the org and the key.
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
        return cls(
            org_id=org_id,
            salesforce_conn_id=raw["salesforce_conn_id"],
            settings=parsed,
            landing=str(raw.get("landing", "landing")),
            api_budget_share=float(share),
            external_id_field=str(raw.get("external_id_field", DEFAULT_EXTERNAL_ID_FIELD)),
        )


def load_orgs(path: str | Path | None = None) -> list[Org]:
    """The orgs of the orgs file, in file order.

    Args:
        path: the YAML file; default ``$ACTIVITY_SYNC_ORGS``, else ``include/config/orgs.yaml``.

    Returns:
        One validated :class:`Org` per entry under ``orgs`` (the file needs ``version: 1``).

    Raises:
        TenantConfigError: the file cannot be read or parsed, an entry is invalid, or an
            org_id is listed twice; the message names the file or org and the key.
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
    orgs = [Org.from_dict(entry) for entry in raw["orgs"]]
    seen: set[str] = set()
    for org in orgs:
        if org.org_id in seen:
            raise TenantConfigError(f"{path}: org {org.org_id!r} is listed twice")
        seen.add(org.org_id)
    return orgs
