"""Demo and test data for activity-sync: generated days of email activity (``generate``).

Kept out of the ``activity_sync`` package so that Faker, which only this data needs, is no
run-time dependency of the product.
"""
