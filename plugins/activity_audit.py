"""The "Activity audit" page of the Airflow UI: the audit reports, listed and opened.

A FastAPI app mounted on the API server at ``/activity-audit`` and shown in the Browse menu
(an external view rendered in the UI's frame). Airflow does not protect plugin apps, so
every route checks the caller itself: a valid Airflow JWT, from ``Authorization: Bearer``
or the ``_token`` cookie the UI sets, validated by the deployment's auth manager, and
permission to see the Airflow website; otherwise 401 (403 without the permission).

Reports are only ever read from ``lake.audit_folder`` (``<lake>/audit/org_id=<org>/date=<day>/``):
the org and day from the URL must match strict patterns, and on a local disk the resolved
path must still lie inside the audit folder (a symlink cannot lead out of it). The page
itself is ``activity_sync/templates/audit_index.html``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse

from activity_sync import lake

URL_PREFIX = "/activity-audit"
# No "/" can pass, so a URL part is always one folder name below the audit folder.
ORG_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The report has no script; the policy makes sure an injected one could not run either.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


async def require_viewer(request: Request) -> Any:
    """The Airflow user behind the request's JWT, or 401/403."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from jwt import InvalidTokenError

    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else None
    token = token or request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    challenge = {"WWW-Authenticate": "Bearer"}
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated", challenge)
    manager = get_auth_manager()
    try:
        user = await manager.get_user_from_token(token)
    except InvalidTokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Invalid or expired token", challenge
        ) from exc
    if not manager.is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Not allowed to view Airflow")
    return user


def _lake() -> Any:
    from activity_sync.airflow_adapter import lake_root

    return lake_root()


def _local(path: Any) -> Path | None:
    """The local file behind ``path``, or None on object storage (which has no symlinks)."""
    if isinstance(path, Path):
        return path
    if getattr(path, "protocol", None) in ("file", "local"):
        return Path(path.path)
    return None


def _inside(folder: Any, audit_root: Any) -> bool:
    local, local_root = _local(folder), _local(audit_root)
    if local is None or local_root is None:
        return True
    return local.resolve().is_relative_to(local_root.resolve())


def report_folder(root: Any, org_id: str, day: str) -> Any:
    """The folder of one report, refusing anything that could reach outside the audit root.

    Args:
        root: the lake root.
        org_id, day: as they came in the URL.

    Returns:
        ``lake.audit_folder(root, org_id, day)``; 404 for anything else.
    """
    if not ORG_ID.fullmatch(org_id) or not DAY.fullmatch(day):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report")
    folder = lake.audit_folder(root, org_id, day)
    if not _inside(folder, lake.audit_root(root)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report")
    return folder


def _listing(root: Any, limit: int) -> list[dict[str, Any]]:
    """The most recent reports first; only the listed ones are read."""
    audit_root = lake.audit_root(root)
    found = [
        (day, org_id, day_dir)
        for org_id, day, day_dir in lake.audit_folders(root)
        if ORG_ID.fullmatch(org_id) and DAY.fullmatch(day) and _inside(day_dir, audit_root)
    ]
    found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    rows = []
    for day, org_id, day_dir in found[:limit]:
        document = day_dir / lake.AUDIT_DOCUMENT
        if not (day_dir / lake.AUDIT_REPORT).exists() or not document.exists():
            continue
        with document.open("r") as fh:
            audit = json.load(fh)
        rows.append(
            {
                "org_id": org_id,
                "day": day,
                "headline": audit.get("headline", {}),
                "alerts": len(audit.get("alerts", [])),
                "generated_at": audit.get("generated_at", ""),
            }
        )
    return rows


app = FastAPI(title="Activity audit", dependencies=[Depends(require_viewer)])


@app.get("/", response_class=HTMLResponse)
def index(limit: int = Query(200, ge=1, le=5000)) -> HTMLResponse:
    from activity_sync.report import render_index

    return HTMLResponse(render_index(_listing(_lake(), limit)))


@app.get("/reports/{org_id}/{day}", response_class=HTMLResponse)
def report(org_id: str, day: str) -> HTMLResponse:
    path = report_folder(_lake(), org_id, day) / lake.AUDIT_REPORT
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report")
    with path.open("r") as fh:
        body = fh.read()
    return HTMLResponse(body, headers={"Content-Security-Policy": REPORT_CSP})


@app.get("/reports/{org_id}/{day}/audit.json")
def audit_document(org_id: str, day: str) -> JSONResponse:
    path = report_folder(_lake(), org_id, day) / lake.AUDIT_DOCUMENT
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report")
    with path.open("r") as fh:
        return JSONResponse(json.load(fh))


class ActivityAuditPlugin(AirflowPlugin):
    name = "activity_audit"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Activity audit"}]
    external_views = [
        {
            "name": "Activity audit",
            # Relative: the UI resolves it against its base URL, so a sub-path deploy works.
            "href": URL_PREFIX.lstrip("/") + "/",
            "url_route": "activity-audit",
            "destination": "nav",
            "category": "browse",
        }
    ]
