"""Completion callbacks (CALLBACK_URL): a signed POST when a run ends COMPLETED, FAILED or CANCELLED.

    target.py   the callback URL under the SSRF rules of blob fetching (pipeline.blob_rules)
    sender.py   one signed delivery attempt to a pinned, checked address
    deliver.py  the delivery loop over the outbox: claims, retries with backoff, gives up
    worker.py   ``python -m handlers.callbacks``: the host's deliverer, started with the web process

Entries are written to the durable outbox (persistence.outbox) by the write that ends the run;
delivery happens here, in its own process, so a slow or dead receiver never holds up a run.
"""
