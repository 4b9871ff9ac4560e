"""Run management for operators and the frontend: the services behind the HTTP API and the CLI.

    status.py    submit_run (POST /run) and run_status (the status body)
    results.py   list, show, report, opportunities and stage outputs, over a RunQuery
    cli.py       ``python -m handlers.runs list|show`` (``__main__`` runs it)

``from handlers.runs import run_status, submit_run`` keeps working as before the split.
"""

from handlers.runs.status import run_status, submit_run

__all__ = ["run_status", "submit_run"]
