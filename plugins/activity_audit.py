"""The "Activity audit" page of the Airflow UI: the audit reports, listed, filtered, opened.

A FastAPI app mounted on the API server at ``/activity-audit`` and shown in the Browse menu
(an external view rendered in the UI's frame). Airflow does not protect plugin apps, so
every route checks the caller itself: a valid Airflow JWT, from ``Authorization: Bearer``
or the ``_token`` cookie the UI sets, validated by the deployment's auth manager, and
permission to see the Airflow website. Without one, a browser (a request that accepts
HTML) is sent to Airflow's login page, which brings it back; a program gets 401 (403
without the permission). FastAPI's own pages (``/docs``, ``/redoc``, ``/openapi.json``)
are off: they would answer without a token.

Reports are only ever read from ``lake.audit_folder`` (``<lake>/audit/org_id=<org>/date=<day>/``):
the org and day from the URL must match strict patterns, and on a local disk the resolved
path must still lie inside the audit folder (a symlink cannot lead out of it). The pages
are ``activity_sync/templates/audit_index.html``, ``audit_missing.html`` and, for any other
address, ``audit_not_found.html``; a report is served as the audit wrote it, with a link
back to the list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from activity_sync import lake

URL_PREFIX = "/activity-audit"
# No "/" can pass, so a URL part is always one folder name below the audit folder.
ORG_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The report has no script; the policy makes sure an injected one could not run either.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
# Airflow's own login route; it forwards to the auth manager's form, then to ``next``.
LOGIN_PATH = "/auth/login"
BACK_LINK = '<nav class="back"><a href="../../">← All audit reports</a></nav>'


def _refuse(request: Request, code: int, detail: str) -> HTTPException:
    """401/403 for a program; for a browser, a redirect to the login page and back here."""
    if code == status.HTTP_401_UNAUTHORIZED and "text/html" in request.headers.get("accept", ""):
        server_root = request.scope.get("root_path", "").removesuffix(URL_PREFIX)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"{server_root}{LOGIN_PATH}?{urlencode({'next': here})}"
        return HTTPException(status.HTTP_303_SEE_OTHER, detail, {"Location": login})
    challenge = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
    return HTTPException(code, detail, challenge)


async def require_viewer(request: Request) -> Any:
    """The Airflow user behind the request's JWT, or a refusal (``_refuse``)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from jwt import InvalidTokenError

    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else None
    token = token or request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        raise _refuse(request, status.HTTP_401_UNAUTHORIZED, "Not authenticated")
    manager = get_auth_manager()
    try:
        user = await manager.get_user_from_token(token)
    except InvalidTokenError as exc:
        raise _refuse(request, status.HTTP_401_UNAUTHORIZED, "Invalid or expired token") from exc
    if not manager.is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise _refuse(request, status.HTTP_403_FORBIDDEN, "Not allowed to view Airflow")
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


def _listing(
    root: Any, org: str, first: str, last: str, limit: int
) -> tuple[list[dict[str, Any]], list[str], int]:
    """The reports matching the filter, most recent first; only the listed ones are read.

    Returns:
        The rows, every org that has a report, and how many reports there are in all.
    """
    audit_root = lake.audit_root(root)
    found = [
        (day, org_id, day_dir)
        for org_id, day, day_dir in lake.audit_folders(root)
        if ORG_ID.fullmatch(org_id) and DAY.fullmatch(day) and _inside(day_dir, audit_root)
    ]
    orgs = sorted({org_id for _, org_id, _ in found})
    chosen = [
        item
        for item in found
        if (not org or item[1] == org)
        and (not first or item[0] >= first)
        and (not last or item[0] <= last)
    ]
    chosen.sort(key=lambda item: (item[0], item[1]), reverse=True)
    rows = []
    for day, org_id, day_dir in chosen[:limit]:
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
                "coverage": audit.get("coverage"),
                "alerts": len(audit.get("alerts", [])),
                "generated_at": audit.get("generated_at", ""),
            }
        )
    return rows, orgs, len(found)


app = FastAPI(
    title="Activity audit",
    dependencies=[Depends(require_viewer)],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    swagger_ui_oauth2_redirect_url=None,
)
_OPTIONAL_ORG = r"^$|^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


@app.exception_handler(StarletteHTTPException)
async def not_found_page(request: Request, exc: StarletteHTTPException) -> Response:
    """An address this app does not have is a page that leads to the list, not FastAPI's
    JSON; ``audit.json``, which programs read, keeps its JSON error, as do 401 and 403."""
    if exc.status_code != status.HTTP_404_NOT_FOUND or request.url.path.endswith(
        "/" + lake.AUDIT_DOCUMENT
    ):
        return await http_exception_handler(request, exc)
    from activity_sync.report import render_not_found

    home = request.scope.get("root_path", "").rstrip("/") + "/"
    return HTMLResponse(render_not_found(home), status_code=status.HTTP_404_NOT_FOUND)


_OPTIONAL_DAY = r"^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@app.get("/", response_class=HTMLResponse)
def index(
    org: str = Query("", pattern=_OPTIONAL_ORG),
    first: str = Query("", alias="from", pattern=_OPTIONAL_DAY),
    last: str = Query("", alias="to", pattern=_OPTIONAL_DAY),
    limit: int = Query(200, ge=1, le=5000),
) -> HTMLResponse:
    """The list of reports; ``org``, ``from`` and ``to`` (YYYY-MM-DD, inclusive) filter it."""
    from activity_sync.report import render_index

    rows, orgs, total = _listing(_lake(), org, first, last, limit)
    chosen = {"org": org, "from": first, "to": last}
    return HTMLResponse(render_index(rows, orgs, chosen, total))


def _missing(org_id: str, day: str) -> HTMLResponse:
    from activity_sync.report import render_missing

    return HTMLResponse(render_missing(org_id, day), status_code=status.HTTP_404_NOT_FOUND)


@app.get("/reports/{org_id}/{day}", response_class=HTMLResponse)
def report(org_id: str, day: str) -> HTMLResponse:
    """One report as the audit wrote it, with a link back to the list; else a 404 page."""
    from activity_sync.report import NAV_MARKER

    try:
        path = report_folder(_lake(), org_id, day) / lake.AUDIT_REPORT
    except HTTPException:
        return _missing(org_id, day)
    if not path.exists():
        return _missing(org_id, day)
    with path.open("r") as fh:
        body = fh.read().replace(NAV_MARKER, BACK_LINK, 1)
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
