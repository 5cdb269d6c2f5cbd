"""``python -m activity_sync``: the command line of cli.py."""

from __future__ import annotations

import sys

from activity_sync.cli import main

sys.exit(main())
