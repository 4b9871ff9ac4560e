"""``python -m handlers.callbacks``: see handlers/callbacks/worker.py."""

import sys

from handlers.callbacks.worker import main

sys.exit(main())
