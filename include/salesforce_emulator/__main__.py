"""Command line: ``python -m salesforce_emulator serve|stop …``.

``serve`` runs in the foreground until SIGTERM/SIGINT (run it with ``&`` or through
``salesforce_emulator.process.start`` for the background); it writes
``<data-dir>/connection.json`` and ``<data-dir>/emulator.pid``. ``stop`` ends the server
recorded in a data directory's pid file.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from salesforce_emulator.faults import FaultConfig, FaultConfigError
from salesforce_emulator.files import PID_FILE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m salesforce_emulator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the local Salesforce over HTTPS")
    serve.add_argument("--data-dir", required=True, type=Path)
    serve.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--public-host",
        default=None,
        help="host name clients use (instance_url, certificate); default: --host, or "
        "localhost when listening on all addresses",
    )
    serve.add_argument(
        "--cert-host",
        action="append",
        default=[],
        help="another name for the certificate, e.g. a Docker service name (repeatable)",
    )
    serve.add_argument(
        "--seed",
        default=None,
        help="data for a new org: 'demo' or 'small', optionally ':N' for the random seed "
        "(e.g. demo:7); ignored when the data directory already holds an org",
    )
    serve.add_argument("--shared-activities", choices=("on", "off"), default=None)
    serve.add_argument("--faults", type=Path, default=None, help="JSON file of fault settings")
    serve.add_argument("--api-limit", type=int, default=None, help="DailyApiRequests maximum")
    serve.add_argument(
        "--bulk-workers", type=int, default=2, help="Bulk jobs processed at once (at least 1)"
    )
    serve.add_argument("--log-level", default="INFO")
    stop = commands.add_parser("stop", help="stop the server running on a data directory")
    stop.add_argument("--data-dir", required=True, type=Path)
    return parser


def _stop(data_dir: Path) -> int:
    pid_file = data_dir / PID_FILE
    if not pid_file.exists():
        print(f"no emulator is running on {data_dir}", file=sys.stderr)
        return 1
    pid = int(pid_file.read_text(encoding="utf-8"))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return 0
    deadline = time.monotonic() + 15
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return 0 if not pid_file.exists() else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "stop":
        return _stop(args.data_dir)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        faults = FaultConfig.load(args.faults) if args.faults else None
    except (FaultConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Imported here so that ``stop`` does not pay for pandas and the rest.
    from salesforce_emulator.app import Emulator
    from salesforce_emulator.server import serve

    shared = None if args.shared_activities is None else args.shared_activities == "on"
    public_host = args.public_host or (
        "localhost" if args.host in ("0.0.0.0", "::", "") else args.host
    )
    emulator = Emulator(
        args.data_dir.resolve(),
        public_host=public_host,
        seed=args.seed,
        shared_activities=shared,
        faults=faults,
        api_limit=args.api_limit,
        bulk_workers=args.bulk_workers,
    )
    serve(emulator, args.port, args.host, args.cert_host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
