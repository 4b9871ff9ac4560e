"""``python -m handlers.runs``: see handlers/runs/cli.py."""

import sys

from handlers.runs.cli import main

sys.exit(main())
