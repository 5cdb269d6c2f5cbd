"""org_slots: each org's Salesforce steps hold one of its own slots, on files or in Redis.

Both backends are real: ``flock`` on files in a temp folder, and a ``redis-server`` started
for this module (Debian's, as the Celery stack uses; the tests of Redis are skipped where
it is not installed).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from activity_sync.org_slots import (
    FileSlots,
    RedisSlots,
    SlotWaitTimeout,
    org_slot,
    slots_from_env,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    argv = [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
    proc = subprocess.Popen([*argv, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "redis did not start"
            time.sleep(0.1)
    try:
        yield f"redis://127.0.0.1:{port}/1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["files", "redis"])
def backend(request, tmp_path):
    if request.param == "files":
        return FileSlots(tmp_path / "locks")
    slots = RedisSlots(request.getfixturevalue("redis_url"))
    slots.client.flushdb()
    return slots


def _busy(backend, org_id: str, slots: int, **wait) -> SlotWaitTimeout:
    """The error of a step that finds every slot of the org taken."""
    with pytest.raises(SlotWaitTimeout) as err:  # noqa: SIM117 - the block must not run
        with org_slot(backend, org_id, slots, "x", **{"wait_seconds": 0.2, **wait}):
            pytest.fail("got a slot that was taken")
    return err.value


def test_an_org_holds_at_most_its_own_number_of_slots(backend):
    first_step = org_slot(backend, "acme", 2, "load of acme")
    second_step = org_slot(backend, "acme", 2, "load of acme")
    with first_step as first, second_step as second:
        assert {first, second} == {0, 1}
        error = _busy(backend, "acme", 2, poll_seconds=0.05)
    message = str(error)
    assert "org 'acme': all 2 Salesforce slot(s) stayed busy" in message
    assert message.count("load of acme on ") == 2  # names both holders
    with org_slot(backend, "acme", 2, "after"):  # released on leaving
        pass


def test_one_org_using_all_its_slots_never_makes_another_org_wait(backend):
    with org_slot(backend, "slow-org", 1, "load of slow-org"):
        started = time.monotonic()
        with org_slot(backend, "other", 1, "load of other", wait_seconds=0):
            assert time.monotonic() - started < 0.5


def test_a_step_waiting_for_a_slot_gets_it_as_soon_as_the_holder_is_done(backend):
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with org_slot(backend, "acme", 1, "first"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    with org_slot(backend, "acme", 1, "second", poll_seconds=0.05):
        waited = time.monotonic() - started
    thread.join()
    assert 0.25 <= waited < 5


def test_org_ids_are_free_text_and_still_name_separate_slots(backend):
    with org_slot(backend, "a/../b c", 1, "x"), org_slot(backend, "a", 1, "y", wait_seconds=0):
        pass


HOLD_AND_DIE = """
import sys, time
sys.path.insert(0, {include!r})
from activity_sync.org_slots import FileSlots, org_slot
with org_slot(FileSlots({folder!r}), "acme", 1, "doomed"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_killed_holder_frees_its_file_slot_at_once(tmp_path):
    include = str(Path(__file__).resolve().parents[2] / "include")
    code = HOLD_AND_DIE.format(include=include, folder=str(tmp_path / "locks"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    slots = FileSlots(tmp_path / "locks")
    assert "doomed on" in str(_busy(slots, "acme", 1))
    proc.kill()
    proc.wait(timeout=10)
    with org_slot(slots, "acme", 1, "after the kill", wait_seconds=0):
        pass


def test_a_redis_slot_is_renewed_while_held_and_expires_after_its_holder_died(redis_url):
    slots = RedisSlots(redis_url, lease_seconds=0.6)
    slots.client.flushdb()
    with org_slot(slots, "acme", 1, "long step"):
        time.sleep(1.5)  # well past the lease: only the renewals keep it
        _busy(slots, "acme", 1, poll_seconds=0.05)
    # A holder that died without releasing: its key stays until the lease runs out.
    slots.client.set(RedisSlots._key("acme", 0), "dead holder", px=600)
    assert "dead holder" in str(_busy(slots, "acme", 1, wait_seconds=0.1, poll_seconds=0.05))
    with org_slot(slots, "acme", 1, "after expiry", wait_seconds=2, poll_seconds=0.05):
        pass


def test_the_backend_is_redis_for_a_redis_url_and_files_otherwise(tmp_path):
    assert isinstance(slots_from_env({"ACTIVITY_SYNC_LOCKS": "redis://h:6379/1"}), RedisSlots)
    files = slots_from_env({"ACTIVITY_SYNC_LOCKS": str(tmp_path)})
    assert isinstance(files, FileSlots) and files.folder == tmp_path
    default = slots_from_env({"AIRFLOW_HOME": str(tmp_path)})
    assert default.folder == tmp_path / "activity_sync_locks"
