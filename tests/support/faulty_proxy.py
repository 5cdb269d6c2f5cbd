"""A hand-written TCP proxy between a client and the local Salesforce that breaks responses.

It terminates TLS with the emulator's own certificate (the client trusts the emulator's CA,
as it would a TLS-inspecting corporate proxy), reads each HTTP/1.1 request, names the
step of a load it belongs to (``login``, ``describe Task``, ``upload TaskRelation``,
``upload Task delete``…),
forwards it to the emulator and reads the whole answer, so Salesforce has done the work
whatever the client then sees. The first time it meets each step it breaks the answer:

- ``stall``: sends nothing and waits for the client to hang up;
- ``stall_body``: sends the headers and half the body, then waits for the hang-up;
- ``cut``: sends the headers and half the body, then closes the connection.

A body is framed as the proxy is told: ``length`` (Content-Length, as the emulator sends)
or ``chunked`` (Transfer-Encoding, as Salesforce sends large responses:
https://help.salesforce.com/s/articleView?id=000386264&type=1). An empty body is broken
inside the header block instead, so every answer is broken. For every stall the proxy
records how long the client took to hang up: a client without a read timeout would never
do so, and the record says ``None`` after ``stall_max`` seconds.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import parse_qs

from activity_sync.bulk import Operation
from salesforce_emulator.auth import TOKEN_PATH
from salesforce_emulator.tls import CA_FILE, CERT_FILE, KEY_FILE

Fault = Literal["stall", "stall_body", "cut"]
Framing = Literal["length", "chunked"]
FAULTS: tuple[Fault, ...] = ("stall", "stall_body", "cut")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
CHUNK = 1024
API_PATH = re.compile(r"^/services/data/v[\d.]+(?P<rest>/[^?]*)?$")
FROM_OBJECT = re.compile(r"\bFROM\s+(\w+)", re.IGNORECASE)


@dataclass
class Message:
    """One parsed HTTP/1.1 message: start line, headers in order, decoded body."""

    start: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class BrokenAnswer:
    """One answer the proxy broke: the step, how, and the client's silence before hanging up."""

    step: str
    fault: Fault
    hung_up_after: float | None = None  # seconds of silence; None: never (within stall_max)


def _read_message(rfile: BinaryIO, *, until_close: bool) -> Message | None:
    """Read one message; None when the peer closed before sending one."""
    start = rfile.readline()
    if not start.strip():
        return None
    headers = []
    while (line := rfile.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    message = Message(start.decode("latin-1").strip(), headers, b"")
    if (message.header("Transfer-Encoding") or "").lower() == "chunked":
        parts = []
        while size := int(rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(rfile.read(size))
            rfile.readline()
        while rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        message.body = b"".join(parts)
    elif message.header("Content-Length") is not None:
        message.body = rfile.read(int(message.header("Content-Length") or 0))
    elif until_close:
        message.body = rfile.read()
    return message


def _object(soql: str) -> str:
    found = FROM_OBJECT.search(soql)
    return found.group(1) if found else "?"


def step_of(method: str, target: str, body: bytes, job_objects: dict[str, str]) -> str:
    """The step of a load a request belongs to, as the test names it."""
    path, _, query = target.partition("?")
    if path == TOKEN_PATH:
        return "login"
    api = API_PATH.match(path)
    parts = (api.group("rest") or "").strip("/").split("/") if api else [path]
    if parts[0] == "sobjects" and parts[-1] == "describe":
        return f"describe {parts[1]}"
    if parts[0] in ("query", "queryAll"):  # the same step, with or without deleted rows
        soql = parse_qs(query).get("q", [""])[0]
        return f"query {_object(soql)}" if soql else "query more"
    if parts[0] != "jobs":
        return parts[0]
    kind, job, rest = parts[1], parts[2] if len(parts) > 2 else None, parts[3:]
    # Ingest jobs are named by their object (Task, TaskRelation, Event, EventRelation), and
    # a re-plan's delete jobs by object and operation ("Task delete"): deleting is its own
    # code path. Query jobs (the CRM mirror's, the relation reads of a big re-load) share
    # one code path, so one name.
    if job is None:
        if method != "POST":
            return f"list {kind} jobs"
        if kind == "query":
            return "create query job"
        request = json.loads(body)
        obj = request.get("object", "?")
        if request.get("operation") == Operation.DELETE:
            obj = f"{obj} {Operation.DELETE}"
        return f"create {obj} job"
    obj = "query" if kind == "query" else job_objects.get(job, "?")
    if rest:
        if kind == "query":
            return "results of query job"
        return f"upload {obj}" if rest[0] == "batches" else f"{rest[0]} {obj}"
    if method == "PATCH":
        state = json.loads(body).get("state", "?")
        return f"{'close' if state == 'UploadComplete' else state.lower()} {obj} job"
    return f"{'poll' if method == 'GET' else method.lower()} {obj} job"


class FaultyProxy:
    """Listens on 127.0.0.1; breaks the first answer of each step with ``fault``.

    ``steps`` limits the breaking to those steps (default: every step). Use as a context
    manager; point the client's connection at ``host_port``.
    """

    def __init__(
        self,
        emulator_data_dir: str | Path,
        upstream_port: int,
        fault: Fault,
        framing: Framing = "length",
        *,
        steps: Collection[str] | None = None,
        stall_max: float = 20.0,
    ) -> None:
        data = Path(emulator_data_dir)
        self.upstream = ("127.0.0.1", upstream_port)
        self.fault = fault
        self.framing = framing
        self.steps = None if steps is None else frozenset(steps)
        self.stall_max = stall_max
        self.server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_tls.load_cert_chain(data / CERT_FILE, data / KEY_FILE)
        self.client_tls = ssl.create_default_context(cafile=str(data / CA_FILE))
        self.seen: Counter[str] = Counter()
        self.broken: list[BrokenAnswer] = []
        self.job_objects: dict[str, str] = {}
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._connections: set[ssl.SSLSocket] = set()
        self._threads: list[threading.Thread] = []

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FaultyProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):  # wakes the blocked accept(); close() would not
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:  # idle keep-alive connections: wake their readers
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._serve, raw)

    def _serve(self, raw: socket.socket) -> None:
        conn = None
        try:
            # Wrapping takes the socket over: the wrapped one is what a shutdown must reach.
            conn = self.server_tls.wrap_socket(raw, server_side=True)
            with self._lock:
                self._connections.add(conn)
            rfile = conn.makefile("rb")
            while not self._stopping.is_set():
                request = _read_message(rfile, until_close=False)
                if request is None or not self._answer(conn, request):
                    return
        except (OSError, ssl.SSLError):
            return  # the client went away: what a broken answer makes it do
        finally:
            if conn is not None:
                with self._lock:
                    self._connections.discard(conn)
                conn.close()
            raw.close()

    def _forward(self, request: Message) -> Message:
        headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP]
        headers += [("Content-Length", str(len(request.body))), ("Connection", "close")]
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        with (
            socket.create_connection(self.upstream, timeout=60) as raw,
            self.client_tls.wrap_socket(raw, server_hostname=self.upstream[0]) as up,
        ):
            up.sendall(f"{request.start}\r\n{head}\r\n".encode("latin-1") + request.body)
            answer = _read_message(up.makefile("rb"), until_close=True)
        if answer is None:
            raise ConnectionError("the emulator closed without answering")
        return answer

    def _frame(self, answer: Message) -> tuple[bytes, bytes]:
        headers = [(k, v) for k, v in answer.headers if k.lower() not in HOP_BY_HOP]
        if self.framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
            chunks = [answer.body[i : i + CHUNK] for i in range(0, len(answer.body), CHUNK)]
            body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        else:
            headers.append(("Content-Length", str(len(answer.body))))
            body = answer.body
        headers.append(("Connection", "keep-alive"))
        head = answer.start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        return head.encode("latin-1"), body

    def _answer(self, conn: ssl.SSLSocket, request: Message) -> bool:
        """Forward one request and answer it; False when the connection is done."""
        method, target, _ = request.start.split(" ", 2)
        with self._lock:
            step = step_of(method, target, request.body, self.job_objects)
            self.seen[step] += 1
            breaking = self.seen[step] == 1 and (self.steps is None or step in self.steps)
        answer = self._forward(request)
        if step.startswith("create ") and step != "create query job":
            job_id = json.loads(answer.body).get("id")
            if job_id:
                with self._lock:
                    self.job_objects[job_id] = step.removeprefix("create ").removesuffix(" job")
        head, body = self._frame(answer)
        if not breaking:
            conn.sendall(head + body)
            return True
        record = BrokenAnswer(step, self.fault)
        with self._lock:
            self.broken.append(record)
        cut = len(head) + len(body) // 2 if len(body) > 1 else len(head) // 2
        if self.fault != "stall":
            conn.sendall((head + body)[:cut])
        if self.fault != "cut":
            record.hung_up_after = self._wait_for_hang_up(conn)
        return False

    def _wait_for_hang_up(self, conn: ssl.SSLSocket) -> float | None:
        """Seconds until the client closes the connection; None if it outlasts stall_max."""
        start = time.monotonic()
        while (waited := time.monotonic() - start) < self.stall_max:
            if self._stopping.is_set():
                return None
            readable, _, _ = select.select([conn], [], [], min(0.05, self.stall_max - waited))
            if readable:
                with contextlib.suppress(OSError, ssl.SSLError):
                    conn.recv(1)
                return time.monotonic() - start
        return None

    def report(self) -> str:
        """One line per broken answer, for assertion messages and logs."""
        return "\n".join(
            f"{b.step}: {b.fault}, client hung up after "
            + ("never" if b.hung_up_after is None else f"{b.hung_up_after:.2f}s")
            for b in self.broken
        )
