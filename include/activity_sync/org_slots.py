"""Salesforce concurrency per org: each org's Salesforce steps hold one of its own slots.

Salesforce's limits are per org, so the cap is too: an org has ``salesforce_concurrency``
slots (orgs file, default 2) and every step that calls its Salesforce (CRM refresh,
detection, the budget check, the load) holds one while it runs, whichever run, backfill
or worker it runs in. A slow org fills only its own slots; no other org waits for them.

Why a lock and not an Airflow pool per org: a pool belongs to a task, and Airflow sets it
when it creates the task instance, so one mapped task cannot put each map index in another
pool, and small orgs share task instances (shards) anyway. A pool per org would need a
task per org, which is what costs too much with hundreds of orgs (README "Performance").

Two backends, chosen by ``ACTIVITY_SYNC_LOCKS``:

- ``redis://host:port/db``: Redis, which every Celery deployment has (its broker). A slot
  is a key set with NX and an expiry that a thread renews while the step runs, so a
  worker that dies frees its slots within :data:`LEASE_SECONDS`.
- a folder (the default: ``$AIRFLOW_HOME/activity_sync_locks``): one file per slot, held
  with ``flock``, which the kernel releases when the process dies. It caps only the
  processes that share the folder: fine for one machine (the LocalExecutor, or Celery
  workers on one host), not for workers on several hosts, which need Redis.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from activity_sync.errors import ActivitySyncError

log = logging.getLogger(__name__)

LOCKS_ENV = "ACTIVITY_SYNC_LOCKS"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
KEY_PREFIX = "activity_sync:salesforce_slot"
# A Redis slot outlives a dead holder by at most this long; the holder renews it every third.
LEASE_SECONDS = 60
# How long a step waits for a slot of its org before giving up (the org fails, retryably).
DEFAULT_WAIT_SECONDS = 30 * 60
POLL_SECONDS = 1.0
# While waiting, say so this often (the task log shows who holds the slots).
REPORT_EVERY_SECONDS = 60
NETWORK_TIMEOUT_SECONDS = 10


class SlotWaitTimeout(ActivitySyncError, TimeoutError):
    """Every Salesforce slot of an org stayed busy for too long; names the org and holders."""


class Lease(Protocol):
    def release(self) -> None: ...


class SlotBackend(Protocol):
    """Where slots live. ``try_acquire`` never blocks; ``holders`` is for messages."""

    def try_acquire(self, org_id: str, slot: int, holder: str) -> Lease | None: ...

    def holders(self, org_id: str, slots: int) -> list[str]: ...


# --- files ----------------------------------------------------------------------------


class _FileLease:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        os.close(self.fd)  # closing the descriptor drops the flock


class FileSlots:
    """Slots as ``flock``-ed files under ``folder`` (one machine; see the module doc)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, org_id: str, slot: int) -> Path:
        # org_id is free text in the orgs file: quoted, it is one safe file name.
        return self.folder / quote(org_id, safe="") / f"slot-{slot}"

    def try_acquire(self, org_id: str, slot: int, holder: str) -> Lease | None:
        path = self._path(org_id, slot)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode("utf-8"), 0)
        return _FileLease(fd)

    def holders(self, org_id: str, slots: int) -> list[str]:
        found = []
        for slot in range(slots):
            try:
                found.append(self._path(org_id, slot).read_text(encoding="utf-8") or "?")
            except OSError:
                continue
        return found


# --- Redis ----------------------------------------------------------------------------

# Renew or delete a slot only while it is still ours (it may have expired and been taken).
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


class _RedisLease:
    def __init__(self, client: Any, key: str, token: str, lease_seconds: float) -> None:
        self.client, self.key, self.token = client, key, token
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew, args=(lease_seconds,), name=f"renew {key}", daemon=True
        )
        self._renewer.start()

    def _renew(self, lease_seconds: float) -> None:
        while not self._stop.wait(lease_seconds / 3):
            try:
                if not self.client.eval(_RENEW, 1, self.key, self.token, int(lease_seconds * 1000)):
                    log.warning("Salesforce slot %s expired while held; renewing stopped", self.key)
                    return
            except Exception as exc:  # a Redis hiccup: the next renewal may work
                log.warning("could not renew Salesforce slot %s: %s", self.key, exc)

    def release(self) -> None:
        self._stop.set()
        self._renewer.join(timeout=NETWORK_TIMEOUT_SECONDS)
        self.client.eval(_RELEASE, 1, self.key, self.token)


class RedisSlots:
    """Slots as expiring Redis keys (several hosts; see the module doc)."""

    def __init__(self, url: str, lease_seconds: float = LEASE_SECONDS) -> None:
        import redis

        self.lease_seconds = lease_seconds
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=NETWORK_TIMEOUT_SECONDS,
            socket_connect_timeout=NETWORK_TIMEOUT_SECONDS,
            decode_responses=True,
        )

    @staticmethod
    def _key(org_id: str, slot: int) -> str:
        return f"{KEY_PREFIX}:{quote(org_id, safe='')}:{slot}"

    def try_acquire(self, org_id: str, slot: int, holder: str) -> Lease | None:
        key, token = self._key(org_id, slot), f"{holder} [{uuid.uuid4().hex[:8]}]"
        if not self.client.set(key, token, nx=True, px=int(self.lease_seconds * 1000)):
            return None
        return _RedisLease(self.client, key, token, self.lease_seconds)

    def holders(self, org_id: str, slots: int) -> list[str]:
        values = self.client.mget([self._key(org_id, s) for s in range(slots)])
        return [v for v in values if v]


# --- choosing and holding -------------------------------------------------------------


def slots_from_env(env: dict[str, str] | None = None) -> SlotBackend:
    """The backend ``ACTIVITY_SYNC_LOCKS`` names (see the module doc)."""
    env = os.environ if env is None else env
    where = env.get(LOCKS_ENV, "").strip()
    if where.startswith(REDIS_SCHEMES):
        return RedisSlots(where)
    if not where:
        home = env.get("AIRFLOW_HOME") or tempfile.gettempdir()
        where = str(Path(home) / "activity_sync_locks")
    return FileSlots(where)


def holder_name(what: str) -> str:
    """Who holds a slot, for messages: the step, host and process."""
    return f"{what} on {socket.gethostname()} pid {os.getpid()}"


@contextmanager
def org_slot(
    backend: SlotBackend,
    org_id: str,
    slots: int,
    what: str,
    *,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[int]:
    """Hold one of ``org_id``'s ``slots`` Salesforce slots while the block runs.

    Args:
        backend: where slots live (:func:`slots_from_env`).
        org_id: whose slots.
        slots: how many the org has (its ``salesforce_concurrency``).
        what: the step, for the holder's name in other steps' messages.
        wait_seconds: give up after waiting this long.
        poll_seconds: how often to try again while every slot is busy.

    Yields:
        The slot number held.

    Raises:
        SlotWaitTimeout: every slot stayed busy for ``wait_seconds``; names the holders.
    """
    holder = holder_name(what)
    started = reported = clock()
    while True:
        for slot in range(slots):
            lease = backend.try_acquire(org_id, slot, holder)
            if lease is not None:
                try:
                    yield slot
                finally:
                    lease.release()
                return
        waited = clock() - started
        if waited >= wait_seconds:
            raise SlotWaitTimeout(
                f"org {org_id!r}: all {slots} Salesforce slot(s) stayed busy for "
                f"{waited:.0f} s (held by {'; '.join(backend.holders(org_id, slots)) or '?'}); "
                "raise its salesforce_concurrency or look for a stuck task"
            )
        if clock() - reported >= REPORT_EVERY_SECONDS:
            reported = clock()
            log.info(
                "%s waits for a Salesforce slot of org %s (%.0f s so far; held by %s)",
                what,
                org_id,
                waited,
                "; ".join(backend.holders(org_id, slots)) or "?",
            )
        time.sleep(poll_seconds)
