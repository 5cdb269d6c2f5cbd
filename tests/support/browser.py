"""Headless Debian Chromium for tests that must see a page as a person's browser renders it.

``dump_dom(url)`` is Chromium's own ``--dump-dom``. A page behind Airflow's login needs the
``_token`` cookie the UI sets, which no command-line flag can set, so ``dump_dom(url,
cookies=...)`` drives the same binary over the DevTools protocol instead: set the cookie,
navigate, wait for the load event, read the DOM. ``browser()`` gives a whole session over
the same protocol, for tests that act as a person: type into a form, click, follow links.
Tests skip (with the reason) only when the binary is absent;
``scripts/install_chromium.sh`` installs it.
"""

from __future__ import annotations

import contextlib
import html.parser
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("ACTIVITY_SYNC_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

requires_chromium = pytest.mark.skipif(
    not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)),
    reason=f"Debian chromium is not installed at {CHROMIUM}; run scripts/install_chromium.sh",
)


@contextlib.contextmanager
def _chromium(*args: str) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A Chromium process in its own session, with a throwaway profile; killed on exit."""
    with tempfile.TemporaryDirectory(prefix="activity-sync-chromium-") as profile:
        proc = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            yield proc, Path(profile)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.stdout:
                proc.stdout.close()


def _dump(url: str, timeout: float) -> str:
    with _chromium("--dump-dom", url) as (proc, _):
        out, _ = proc.communicate(timeout=timeout)
    return out.decode("utf-8")


class _DevTools:
    """The few DevTools protocol calls a page check needs, over the page's WebSocket."""

    def __init__(self, ws_url: str, timeout: float) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, open_timeout=timeout)
        self.timeout = timeout
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=self.timeout))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str) -> dict[str, Any]:
        for message in self.events:
            if message.get("method") == event:
                return message
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("method") == event:
                return message
        raise TimeoutError(f"no {event} within {self.timeout}s")

    def close(self) -> None:
        self.ws.close()


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    """Chromium writes the port it picked to DevToolsActivePort in the profile."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.is_file() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} before DevTools started")
        time.sleep(0.05)
    raise TimeoutError("chromium did not start DevTools")


def _dump_with_cookies(url: str, cookies: dict[str, str], timeout: float) -> str:
    with _chromium("--remote-debugging-port=0", "about:blank") as (proc, profile):
        port = _devtools_port(profile, proc, timeout)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        tools = _DevTools(pages[0]["webSocketDebuggerUrl"], timeout)
        try:
            for name, value in cookies.items():
                tools.call("Network.setCookie", name=name, value=value, url=url)
            tools.call("Page.enable")
            tools.call("Page.navigate", url=url)
            tools.wait_for("Page.loadEventFired")
            result = tools.call(
                "Runtime.evaluate",
                expression="document.documentElement.outerHTML",
                returnByValue=True,
            )
        finally:
            tools.close()
    return result["result"]["value"]


class Browser:
    """One Chromium page, driven as a person drives it: go to a URL, type, click, read."""

    def __init__(self, tools: _DevTools, timeout: float) -> None:
        self.tools = tools
        self.timeout = timeout

    def evaluate(self, expression: str) -> Any:
        result = self.tools.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, condition: str, what: str) -> None:
        """Poll a JavaScript condition until it holds; TimeoutError naming ``what`` if not."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(f"!!({condition})"):
                    return
            except RuntimeError:
                pass  # the page is between documents
            time.sleep(0.1)
        raise TimeoutError(f"{what} within {self.timeout}s; at {self.url}:\n{self.text()[:2000]}")

    def goto(self, url: str) -> None:
        """Navigate and wait for the load event of the page it lands on."""
        self.tools.events.clear()
        self.tools.call("Page.navigate", url=url)
        self.tools.wait_for("Page.loadEventFired")

    @property
    def url(self) -> str:
        return self.evaluate("location.href")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML")

    def _centre(self, selector: str) -> tuple[float, float]:
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getClientRects()[0] || e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if box is None:
            raise LookupError(f"no element {selector} at {self.url}")
        return box[0], box[1]

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (of its first line, if it wraps)."""
        x, y = self._centre(selector)
        self.tools.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.tools.call(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )

    def type(self, selector: str, text: str) -> None:
        """Click into the field and type, as a keyboard would (the page sees input events)."""
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select?.()")
        self.tools.call("Input.insertText", text=text)

    def set_value(self, selector: str, value: str) -> None:
        """Set a field a keyboard cannot type into the same way everywhere (a date input)."""
        self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" e.value = {json.dumps(value)};"
            " e.dispatchEvent(new Event('input', {bubbles: true}));"
            " e.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )


@contextlib.contextmanager
def browser(timeout: float = 60) -> Iterator[Browser]:
    """A fresh headless Chromium (empty profile: no cookies) on about:blank."""
    with _chromium("--remote-debugging-port=0", "--window-size=1280,1000", "about:blank") as (
        proc,
        profile,
    ):
        port = _devtools_port(profile, proc, timeout)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        tools = _DevTools(pages[0]["webSocketDebuggerUrl"], timeout)
        try:
            tools.call("Page.enable")
            yield Browser(tools, timeout)
        finally:
            tools.close()


def dump_dom(url: str, *, cookies: dict[str, str] | None = None, timeout: float = 60) -> str:
    """The DOM of ``url`` after Chromium loaded it, optionally with cookies set first."""
    return _dump_with_cookies(url, cookies, timeout) if cookies else _dump(url, timeout)


class _TextById(html.parser.HTMLParser):
    """Collects the whitespace-normalised text inside every element that has an id."""

    VOID = frozenset({"br", "img", "input", "meta", "link", "hr", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, str | None]] = []
        self.texts: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        element_id = dict(attrs).get("id")
        self.open.append((tag, element_id))
        if element_id:
            self.texts.setdefault(element_id, [])

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            if self.open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, element_id in self.open:
            if element_id:
                self.texts[element_id].append(data)


def text_by_id(dom: str) -> dict[str, str]:
    parser = _TextById()
    parser.feed(dom)
    return {k: " ".join(" ".join(v).split()) for k, v in parser.texts.items()}
