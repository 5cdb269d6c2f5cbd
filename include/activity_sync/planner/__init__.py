"""The vectorised planner's machinery, by layer; ``activity_sync.plan`` is its public face.

- ``pipeline``: ``plan``/``plan_traced``/``mode_of``, the steps in order and the summary.
- ``validate``: event-level checks in the fixed order of reason codes.
- ``columns``: decoding messy text, recipient and timestamp columns into Arrow.
- ``lookups``: the CRM as lookup tables (people and Users by email, Opportunities).
- ``rules``: the rule core, addresses -> Task units -> related-to -> frames.
- ``meeting_fields``: R14's meeting fields, checked, as Salesforce Event times.
- ``salesforce_events``: R14's frames, events.parquet and event_relations.parquet.
- ``keys``: R11's task_key (and event_key) bytes for every record, beside ``schema``'s.
- ``output``: the plan folder (write, read, add rejections) and rejected.parquet's order.
- ``arrow``: small Arrow helpers the others share.
"""
