"""Fixtures for the rule examples (tests/unit/test_rules*.py).

``planner``
    Each test runs twice: on the row-by-row oracle (``reference.plan``) and on the
    vectorised product (``plan.plan``), so both are held to the same examples.
"""

from __future__ import annotations

import pytest

from activity_sync import plan as product
from activity_sync import reference


@pytest.fixture(params=[reference.plan, product.plan], ids=["reference", "product"])
def planner(request: pytest.FixtureRequest):
    return request.param
