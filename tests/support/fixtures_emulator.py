"""Fixtures that run the local Salesforce emulator (``include/salesforce_emulator``).

``emulator``
    Session-scoped :class:`salesforce_emulator.process.EmulatorProcess`: a real HTTPS
    server in a child process on a free port, data in a temp directory, seeded ``small``
    (5 Users plus the integration user, 40 Accounts, 400 Contacts, 60 Leads, about 60
    Opportunities with contact roles), Shared Activities on. ``emulator.info`` has
    ``instance_url``, ``access_token``, ``ca_file``, OAuth ``client_id``/``client_secret``,
    ``username``/``password``.

``fresh_emulator``
    The session emulator reset to its seed state before the test: data, API counters,
    jobs, faults (off) and settings (Shared Activities on, ``Activity_Sync_Key__c``
    present, default API limit). Use it whenever a test writes or changes settings.

``sf``
    A real ``simple_salesforce.Salesforce`` on ``fresh_emulator`` (direct session).

``emulator_factory``
    ``emulator_factory(**start_kwargs)`` starts an extra emulator in its own temp
    directory (same arguments as ``process.start``) and stops it after the test.

Sessions trust the emulator's CA with ``verify=ca_file`` *and* ``trust_env=False``: this
machine sets ``REQUESTS_CA_BUNDLE``, which would otherwise win over ``verify``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salesforce_emulator import process


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[process.EmulatorProcess]:
    running = process.start(tmp_path_factory.mktemp("salesforce-emulator"), seed="small")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_emulator(emulator: process.EmulatorProcess) -> process.EmulatorProcess:
    emulator.reset()
    return emulator


@pytest.fixture
def sf(fresh_emulator: process.EmulatorProcess):
    return fresh_emulator.simple_salesforce()


@pytest.fixture
def emulator_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., process.EmulatorProcess]]:
    started: list[process.EmulatorProcess] = []

    def start(data_dir: Path | None = None, **kwargs: Any) -> process.EmulatorProcess:
        running = process.start(data_dir or tmp_path_factory.mktemp("emulator"), **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
