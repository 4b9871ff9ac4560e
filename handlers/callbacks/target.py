"""The callback URL under the SSRF rules of blob fetching.

The same rules as a ``blob_url``, except the host allow-list: the callback host is the
operator's own choice (CALLBACK_URL), so any host name is accepted, but https only (http with
BLOB_ALLOW_HTTP=true), no user name or password, and every resolved address must be public.
A host:port listed explicitly in BLOB_ALLOWED_HOSTS may resolve to an internal address: that
is how local development and the tests name 127.0.0.1:PORT, exactly as for blobs.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from config.settings import Settings
from pipeline.blob_rules import BlobTarget, check_blob_url, match_allowed_host, resolve_allowed


def callback_target(settings: Settings, url: str) -> tuple[BlobTarget, tuple[str, ...]]:
    """The checked target and its checked addresses; InvalidInput (refused) or StageError (DNS)."""
    try:
        parts = urlsplit(url)
        own = f"{(parts.hostname or '').lower()}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    except ValueError:
        own = ""
    # The URL rules (scheme, userinfo, characters, host syntax) with the callback host allowed...
    target = check_blob_url(replace(settings, blob_allowed_hosts=(own,)), url)
    # ...but the address check skipped only for a host the operator listed in BLOB_ALLOWED_HOSTS.
    listed = match_allowed_host(target.host, target.port, target.scheme, settings.blob_allowed_hosts) is True
    target = replace(target, explicit=listed)
    return target, resolve_allowed(target)
