"""Retention: delete finished runs (and everything they own) older than a cut-off.

    ports.py     the RunPruner Protocol
    files.py     FilePruner: run folders under OUTPUT_DIR and their outbox files
    postgres.py  PostgresPruner: "PipelineRun" rows (stage rows, cards and callbacks cascade)
    factory.py   build_pruners(settings): every place the mode keeps runs

Only COMPLETED, FAILED and CANCELLED runs are ever deleted; QUEUED and PROCESSING runs are
never touched, whatever their age.
"""
