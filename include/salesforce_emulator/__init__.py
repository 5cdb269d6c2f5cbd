"""A local Salesforce: the REST API and Bulk API 2.0 slice that activity-sync uses.

Start it with ``python -m salesforce_emulator serve --port PORT --data-dir DIR [--seed demo]
[--shared-activities on|off] [--faults FILE] [--api-limit N]``, or from Python with
``salesforce_emulator.process.start(data_dir, ...)``. The real simple-salesforce client
and Airflow's ``SalesforceHook`` talk to it over HTTPS unchanged.

Modules, one concern each, from the top down: ``server`` (HTTPS), ``app`` (request policy;
the one module that knows every subsystem and composes their routes), ``admin`` (test
controls), ``auth`` (credentials, OAuth), ``rest`` + ``composite`` (sObject Collections)
+ ``rest_records`` (JSON records in and out), ``bulk`` (HTTP) + ``bulk_jobs`` (job
records) + ``bulk_worker`` (processing), ``query`` + ``soql`` (SOQL), ``seed``, ``dml``
(writes), ``activity_relations`` (Salesforce's Shared Activities rules), ``records`` (value
checks), ``org`` (the live state subsystems share), ``context`` (a write's context),
``org_settings``, ``usage`` (API allowance), ``faults``, ``objects`` (the data model and
describe), ``store`` (SQLite), ``ids``, ``protocol`` (requests, responses, routing), ``tls``,
``files``, ``process`` (start one as a child process). ``tests/test_emulator_structure.py``
keeps their imports free of cycles.
"""
