"""The callback outbox: completion callbacks waiting to be delivered, kept durably.

    ports.py     Delivery and the CallbackOutbox Protocol
    files.py     FileOutbox under OUTPUT_DIR/.outbox/ (FILE_ONLY)
    postgres.py  PostgresOutbox over "CallbackOutbox" (DATABASE_ONLY, DUAL_WRITE; migration 0007)

One entry per run outcome, keyed by its ``webhook_id`` (``msg_<run>_<outcome>_<attempt>``):
enqueueing the same outcome twice is a no-op, so a callback can never be sent for two
different entries of one outcome; delivered and abandoned entries stay as the record of it.
"""
