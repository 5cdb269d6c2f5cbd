"""The one base class of every error activity-sync raises on purpose.

The CLI and the DAG steps catch ``ActivitySyncError`` to tell a problem the user can fix
(bad input, bad configuration, an org not set up) from a bug, whose traceback they keep.
"""

from __future__ import annotations


class ActivitySyncError(Exception):
    """An error activity-sync raises knowingly, with a message that names the cause."""
