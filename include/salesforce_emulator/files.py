"""Files the server writes in its data directory, and how the secret ones are written.

``connection.json`` (the token, client secret and password) and the private keys are
owner-only; ``emulator.pid`` names the running server for ``python -m salesforce_emulator
stop``.
"""

from __future__ import annotations

import os
from pathlib import Path

CONNECTION_FILE = "connection.json"
PID_FILE = "emulator.pid"
PRIVATE_MODE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as owner-only (0600), atomically.

    The bytes go to a fresh temporary file created 0600 and then replace ``path``, so a
    reader never sees a half-written file and a file left 0644 by an older version is
    replaced rather than rewritten with its old mode.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
