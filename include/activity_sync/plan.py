"""The shared-activity planner: one interval of events + the CRM + org settings -> a Plan.

It applies rules R1–R10 and R14 (docs/rules.md) to the whole interval at once, with Arrow kernels
and numpy; ``reference.py`` states the same rules one event at a time and the tests hold
the two planners equal. This module is the planner's public face: the machinery lives in
the package ``activity_sync.planner``, one module per layer (see its docstring).
"""

from activity_sync.planner.output import add_rejections, read_plan, write_plan
from activity_sync.planner.pipeline import mode_of, plan, plan_traced

__all__ = ["add_rejections", "mode_of", "plan", "plan_traced", "read_plan", "write_plan"]
