"""The HTTP-independent request/response types, Salesforce-shaped errors and the router."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

# The API version the emulator advertises to clients it starts (any listed version works).
API_VERSION = "59.0"
VERSION_RE = re.compile(r"^v(\d{2}\.\d)$")


class ApiError(Exception):
    """An error answered in Salesforce's shape: a JSON array of {message, errorCode, fields}."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def response(self) -> Response:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            body["fields"] = self.fields
        return Response.json(self.status, [body])


def not_found() -> ApiError:
    """Salesforce's 404 for an unknown resource, record or job."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def segments(self) -> list[str]:
        return [unquote(s) for s in self.path.strip("/").split("/") if s != ""]

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; anything else is Salesforce's JSON_PARSER_ERROR."""
        body = self.json()
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        return body

    @classmethod
    def build(cls, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Request:
        path, _, query = target.partition("?")
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        return cls(method.upper(), path, params, headers, body)


# Bulk API 2.0 result files are UTF-8 and say so ("Content-Type: text/csv; charset=UTF-8",
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_compression.htm).
CSV_CONTENT_TYPE = "text/csv; charset=UTF-8"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> Response:
        return cls(status, json.dumps(payload).encode("utf-8"))

    @classmethod
    def raw_json(cls, status: int, text: str) -> Response:
        return cls(status, text.encode("utf-8"))

    @classmethod
    def csv(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Response:
        return cls(status, text.encode("utf-8"), CSV_CONTENT_TYPE, headers or {})

    @classmethod
    def empty(cls, status: int) -> Response:
        return cls(status, b"", None)


Handler = Callable[..., Response]

# How the application treats a route's calls (see ``app.Emulator.handle``).
API = "api"  # needs a token; counted, limited, may be faulted
ADMIN = "admin"  # needs a token; never counted or faulted
OAUTH = "oauth"  # open: it is where tokens come from


@dataclass(frozen=True)
class Route:
    """``handler(request, **placeholders)`` answers ``method`` on paths matching ``template``."""

    method: str
    template: str
    handler: Handler
    kind: str = API

    @property
    def parts(self) -> list[str]:
        return self.template.strip("/").split("/")


class Router:
    """Match a request's path segments against templates with ``{name}`` placeholders.

    Routes are tried in order, so a literal segment (``…/describe``) must come before a
    placeholder in the same place (``…/{id}``).
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)

    def match(self, method: str, segments: list[str]) -> tuple[Route, dict[str, str]]:
        allowed = False
        for route in self.routes:
            params = _match(route.parts, segments)
            if params is None:
                continue
            if route.method == method:
                return route, params
            allowed = True
        if allowed:
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")
        raise not_found()


def _match(parts: list[str], segments: list[str]) -> dict[str, str] | None:
    if len(parts) != len(segments):
        return None
    params = {}
    for part, segment in zip(parts, segments, strict=True):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name == "version":
                m = VERSION_RE.match(segment)
                if m is None:
                    return None
                segment = m.group(1)
            params[name] = segment
        elif part != segment:
            return None
    return params
