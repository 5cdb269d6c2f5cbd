"""HTTPS plumbing: a threaded stdlib HTTP/1.1 server that hands each request to ``Emulator``.

The standard library is enough here and starts in milliseconds; keep-alive (HTTP/1.1 with
Content-Length) keeps per-call latency low for a ``requests.Session``. TLS is negotiated in
the connection's own thread, so one slow client cannot stall the accept loop.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from salesforce_emulator.app import Emulator
from salesforce_emulator.files import CONNECTION_FILE, PID_FILE, write_private
from salesforce_emulator.protocol import Request
from salesforce_emulator.tls import ensure_certificates, server_context

log = logging.getLogger("salesforce_emulator.server")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SalesforceEmulator/1.0"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 120

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        request = Request.build(self.command, self.path, self.headers, self._body())
        response = self.server.emulator.handle(request)  # type: ignore[attr-defined]
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: Emulator, address: tuple[str, int], context: ssl.SSLContext):
        self.emulator = emulator
        self.ssl_context = context
        super().__init__(address, _Handler)

    def finish_request(self, request: socket.socket, client_address) -> None:  # type: ignore[override]
        # Headers and body go out in separate writes; without NODELAY, Nagle's algorithm
        # and the client's delayed ACK would add 40 ms to every response.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        super().finish_request(tls, client_address)


def serve(emulator: Emulator, port: int, bind: str, cert_hosts: list[str]) -> None:
    """Listen until SIGTERM/SIGINT; write connection.json and the pid file; say when ready."""
    _, cert, key = ensure_certificates(emulator.data_dir, [emulator.public_host, *cert_hosts])
    server = EmulatorServer(emulator, (bind, port), server_context(cert, key))
    emulator.port = server.server_address[1]
    info = emulator.connection_info()
    # It holds the token, the client secret and the password: owner-only, like the keys.
    write_private(emulator.data_dir / CONNECTION_FILE, json.dumps(info, indent=2).encode())
    pid_file = emulator.data_dir / PID_FILE
    pid_file.write_text(str(os.getpid()), encoding="utf-8")

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    saver = threading.Event()

    def save_usage_now_and_then() -> None:
        while not saver.wait(2.0):
            emulator.usage.save()

    threading.Thread(target=save_usage_now_and_then, daemon=True).start()
    # One line on stdout tells a parent process (see process.py) where to connect.
    sys.stdout.write(json.dumps({"ready": True, **info}) + "\n")
    sys.stdout.flush()
    log.info(
        "Salesforce emulator listening on %s (data in %s)", info["instance_url"], emulator.data_dir
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        saver.set()
        server.server_close()
        emulator.close()
        pid_file.unlink(missing_ok=True)
