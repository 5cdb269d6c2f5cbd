"""A local Salesforce: the REST API and Bulk API 2.0 slice that activity-sync uses.

Start it with ``python -m salesforce_emulator serve --port PORT --data-dir DIR [--seed demo]
[--shared-activities on|off] [--faults FILE] [--api-limit N]``, or from Python with
``salesforce_emulator.process.start(data_dir, ...)``. The real simple-salesforce client
and Airflow's ``SalesforceHook`` talk to it over HTTPS unchanged.

Modules, one concern each: ``server`` (HTTPS), ``app`` (request policy), ``protocol``
(requests, responses, routing), ``auth``, ``usage`` (API allowance), ``faults``,
``rest``, ``bulk``, ``query`` + ``soql`` (SOQL), ``dml`` (writes), ``rules`` (Shared
Activities), ``records`` (value checks), ``objects`` (the data model and describe),
``ids``, ``store`` (SQLite), ``seed``, ``tls``, ``admin`` (test controls), ``process``.
"""
