"""A local Salesforce: the REST API and Bulk API 2.0 slice that activity-sync uses.

Start it with ``python -m salesforce_emulator serve --port PORT --data-dir DIR [--seed demo]
[--shared-activities on|off] [--faults FILE] [--api-limit N] [--bulk-workers N]``, or
from Python with ``salesforce_emulator.process.start(data_dir, ...)``. The real
simple-salesforce client and Airflow's ``SalesforceHook`` talk to it over HTTPS unchanged.

It is as harsh as Salesforce documents it, by default (``docs/salesforce-fidelity.md``
lists every behaviour, its page and its test): Bulk jobs run two at a time in 200-row
transactions, so overlapping upserts race and wait for each other's record locks (then
fail UNABLE_TO_LOCK_ROW); result rows come in no particular order; ``Activity_Sync_Key__c`` is Unique and
case-sensitive (the loser of a race gets DUPLICATE_VALUE naming the winner); every uploaded
row ends in exactly one result file, also for Failed and Aborted jobs; an upload over 150 MB
(base64) is refused; text lengths count UTF-16 code units; closed Tasks a year old are
archived (only ``queryAll`` sees them; upsert does not find them); an expired session stays
expired until a new login; the Recycle Bin keeps deleted rows 15 days; TaskSubtype is a
restricted picklist.

Test controls (``/__emulator/…``, through ``process.EmulatorProcess``):

- ``set_settings(today="2027-01-31")`` moves the org's clock (null: the real date);
  ``upload_limit_bytes`` (default 150,000,000, base64 size), ``lock_wait_seconds``
  (default 10: a Bulk chunk's wait for a record lock, ``record_locks``), ``api_limit``,
  ``shared_activities``, ``task_external_id_field``, ``task_external_id_unique``.
- ``set_faults(...)``: ``http_503_rate``, ``request_limit_rate``, ``expired_session_rate``,
  ``row_lock_rate``, ``failed_job_rate``, ``slow_bulk_seconds``, ``chunk_seconds``,
  ``seed`` (``faults``).
- ``expire_sessions()`` expires every session issued so far; ``stats()`` counts calls,
  logins, jobs (and workers, record locks), rows, injected faults; ``reset()`` returns to the seed.
- ``process.start(..., bulk_workers=N)`` sizes the Bulk worker pool (default 2).

Modules, one concern each, from the top down: ``server`` (HTTPS), ``app`` (request policy;
the one module that knows every subsystem and composes their routes), ``admin`` (test
controls), ``auth`` (credentials, OAuth, sessions), ``rest`` + ``composite`` (sObject
Collections) + ``rest_records`` (JSON records in and out), ``bulk`` (HTTP) + ``bulk_jobs``
(job records) + ``bulk_worker`` (parallel processing in 200-row transactions) +
``bulk_results`` (every row in one result file), ``query`` + ``soql`` (SOQL's public face)
over ``soql_parser`` and ``soql_sqlite``, which share ``soql_tokens`` and ``soql_syntax``,
``seed``, ``dml`` (writes), ``unique`` (Unique fields, DUPLICATE_VALUE), ``activity_relations``
(Salesforce's Shared Activities rules), ``retention`` (the settable clock, archived
activities, the Recycle Bin), ``records`` (value checks), ``org`` (the live state
subsystems share), ``context`` (a write's context), ``org_settings``, ``usage`` (API
allowance), ``faults``, ``objects`` (the data model's public face: the registry, the org's
shape, describe) over ``crm_objects`` and ``activity_objects``, which share ``sobject`` (the
field model), ``store`` (SQLite), ``ids``, ``protocol`` (requests, responses, routing),
``tls``, ``files``, ``process`` (start one as a child process).
``tests/emulator/test_emulator_structure.py`` keeps their imports free of cycles.
"""
