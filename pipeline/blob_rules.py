"""Which document URLs the runner may fetch: scheme, host allow-list and resolved addresses.

These rules are shared by the webhook (``handlers/payload.py``, no DNS at request time) and the
fetcher (``pipeline/fetch.py``, which also checks every resolved address). Every refusal is an
``InvalidInput`` with a stable code and a message that says how to fix it.

    BLOB_SCHEME_NOT_ALLOWED    not https (or http with BLOB_ALLOW_HTTP=true)
    BLOB_HOST_NOT_ALLOWED      host not in BLOB_ALLOWED_HOSTS, userinfo, malformed URL
    BLOB_ADDRESS_NOT_ALLOWED   the host resolves to a loopback/private/metadata/... address
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from config.errors import InvalidInput, StageError
from config.settings import Settings

DEFAULT_PORTS = {"https": 443, "http": 80}
MAX_URL_CHARS = 2048
PRIVATE_BLOB_SUFFIX = ".private.blob.vercel-storage.com"
# A DNS label as TLS wildcard certificates cover it: one label, letters, digits and hyphens.
_UNSAFE_CHAR = re.compile(r"[\x00-\x20\\\x7f]")  # control characters, space, backslash, DEL
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HOSTNAME = re.compile(r"[a-z0-9.-]+")
_PORT = re.compile(r"[0-9]{1,5}")
# Python's is_private misses some of these (CGNAT); naming them also makes messages precise.
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# IETF protocol assignments: Python calls parts of it global (192.0.0.9, .10, .170...), but no
# document is ever served from there, and some of it is NAT64/DS-Lite plumbing.
_IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")
# NAT64 prefixes (RFC 6052 well-known, RFC 8215 local use): the last 32 bits are an IPv4 address.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class BlobTarget:
    """A URL that passed the scheme and host rules, split into what the fetcher needs."""

    url: str
    scheme: str
    host: str  # lowercase; an IPv6 literal without brackets
    port: int
    request_target: str  # path and query, sent as-is
    explicit: bool  # the host is named in BLOB_ALLOWED_HOSTS itself, not through a wildcard

    @property
    def host_header(self) -> str:
        """The Host header value: the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """Scheme, host and path without the query: safe to log (queries can carry tokens)."""
        return f"{self.scheme}://{self.host_header}{self.request_target.split('?', 1)[0]}"


def display_url(url: str) -> str:
    """``url`` safe to print or log: no user info, query or fragment (signed URLs carry tokens there).

    A local path (no scheme) comes back unchanged; text that does not parse as a URL is cut at
    its first ``?`` or ``#``, so a malformed URL cannot leak either.
    """
    cut = re.split(r"[?#]", url, maxsplit=1)[0]
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return cut
    if not parts.scheme:
        return url  # a local path: "?" and "#" are ordinary file-name characters there
    if not parts.netloc:
        return cut
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}{parts.path}"


def _refuse(code: str, message: str) -> InvalidInput:
    return InvalidInput(message, code=code)


def _split_pattern(pattern: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or ``*.suffix[:port]`` → (host, port or None)."""
    if pattern.startswith("["):
        host, _, rest = pattern[1:].partition("]")
        return host, int(rest[1:]) if _PORT.fullmatch(rest[1:]) and rest.startswith(":") else None
    host, sep, port = pattern.rpartition(":")
    if sep and _PORT.fullmatch(port) and ":" not in host:
        return host, int(port)
    return pattern, None


def match_allowed_host(host: str, port: int, scheme: str, allowed: tuple[str, ...]) -> bool | None:
    """None if no entry allows ``host:port``; True if an exact entry does; False if only a wildcard."""
    found: bool | None = None
    for pattern in allowed:
        pattern_host, pattern_port = _split_pattern(pattern.strip().lower())
        # An entry without a port allows only the scheme's default port.
        if (pattern_port if pattern_port is not None else DEFAULT_PORTS[scheme]) != port:
            continue
        if pattern_host.startswith("*."):
            suffix = pattern_host[1:]  # ".public.blob.vercel-storage.com"
            label = host[: -len(suffix)] if host.endswith(suffix) else ""
            # Exactly one label before the suffix: never the bare suffix, never a deeper name.
            if _LABEL.fullmatch(label):
                found = found or False
        elif pattern_host == host:
            return True
    return found


def check_blob_url(settings: Settings, url: object) -> BlobTarget:
    """Apply the scheme, userinfo and host rules to ``url`` (no DNS); raise InvalidInput if refused."""
    if not isinstance(url, str) or not url:
        raise _refuse("BLOB_HOST_NOT_ALLOWED", "blob_url must be a non-empty URL string")
    if len(url) > MAX_URL_CHARS:
        raise _refuse("BLOB_HOST_NOT_ALLOWED", f"the URL is longer than {MAX_URL_CHARS} characters")
    # urlsplit silently drops tabs and newlines and treats '\' as data; browsers and some
    # clients disagree, so anything that parsers read differently is refused outright.
    if _UNSAFE_CHAR.search(url) or not url.isascii():
        raise _refuse("BLOB_HOST_NOT_ALLOWED",
                      "the URL contains spaces, control characters, backslashes or non-ASCII: percent-encode them")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        explicit_port = parts.port
    except ValueError as exc:
        raise _refuse("BLOB_HOST_NOT_ALLOWED", f"the URL cannot be parsed ({exc}): send an absolute https URL") from exc
    allowed_schemes = ("https", "http") if settings.blob_allow_http else ("https",)
    if scheme not in allowed_schemes:
        hint = "" if settings.blob_allow_http else " (http only with BLOB_ALLOW_HTTP=true, for local testing)"
        raise _refuse("BLOB_SCHEME_NOT_ALLOWED",
                      f"URL scheme {scheme or '(none)'!r} is not allowed: use https{hint}")
    if "@" in parts.netloc:
        raise _refuse("BLOB_HOST_NOT_ALLOWED",
                      "the URL must not carry a user name or password: send credentials another way")
    port = explicit_port if explicit_port is not None else DEFAULT_PORTS[scheme]
    if not host or not (_HOSTNAME.fullmatch(host) or _is_ip_literal(host)):
        raise _refuse("BLOB_HOST_NOT_ALLOWED", "the URL has no valid host name")
    explicit = match_allowed_host(host, port, scheme, settings.blob_allowed_hosts)
    if explicit is None:
        raise _refuse("BLOB_HOST_NOT_ALLOWED",
                      f"host {host}:{port} is not allowed: upload to Vercel Blob, or add the host to "
                      "BLOB_ALLOWED_HOSTS")
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return BlobTarget(url=url, scheme=scheme, host=host, port=port, request_target=target, explicit=explicit)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched from (a name for the range), or None if it is public.

    An IPv6 address that carries an IPv4 address (mapped, 6to4, Teredo, NAT64) is judged by the
    IPv4 address inside as well: a relay or translator would deliver the request there.
    """
    if isinstance(address, ipaddress.IPv6Address):
        for how, inner in _embedded_ipv4(address):
            problem = _problem(inner)
            if problem:
                return f"{problem} ({how} around {inner})" if how != "IPv4-mapped" else problem
            if how in ("6to4", "Teredo"):
                # Deprecated relays (RFC 7526) deliver wherever they like; no blob store uses
                # them, and Python 3.13 (not 3.11) already calls 2002::/16 non-global.
                return f"{how} relay ({how} around {inner})"
    return _problem(address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """Every IPv4 address ``address`` wraps, with the name of the wrapping."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if address.ipv4_mapped is not None:
        found.append(("IPv4-mapped", address.ipv4_mapped))
    if address.sixtofour is not None:
        found.append(("6to4", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        found += [("Teredo", client), ("Teredo", server)]
    if any(address in prefix for prefix in _NAT64):
        found.append(("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)))
    return found


def _problem(address: IPAddress) -> str | None:
    """The range check for one address, without looking inside it."""
    checks = (
        (address in _METADATA, "cloud metadata"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_unspecified, "unspecified"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "carrier-grade NAT"),
        (isinstance(address, ipaddress.IPv4Address) and address in _IETF_PROTOCOL, "IETF protocol"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "non-public"),
    )
    return next((name for hit, name in checks if hit), None)


def resolve_allowed(target: BlobTarget) -> tuple[str, ...]:
    """Resolve the host once and return addresses safe to connect to; refuse any internal one.

    Hosts listed explicitly in BLOB_ALLOWED_HOSTS skip the range check: that is how local
    development and the tests name ``127.0.0.1:PORT`` on purpose.
    """
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:  # socket.gaierror is an OSError; DNS trouble may well pass
        raise StageError(
            1, f"host {target.host} could not be resolved ({exc.strerror or exc}): check the blob_url, "
            "or retry the run later", code="BLOB_FETCH_FAILED",
        ) from exc
    addresses: list[str] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        if text in addresses:
            continue
        problem = address_problem(ipaddress.ip_address(text))
        if problem and not target.explicit:
            # One bad answer refuses the host: a mixed answer is how DNS rebinding starts.
            raise _refuse("BLOB_ADDRESS_NOT_ALLOWED",
                          f"host {target.host} resolves to a {problem} address ({text}): documents must be "
                          "on a public host; for local testing name the host explicitly in BLOB_ALLOWED_HOSTS")
        addresses.append(text)
    if not addresses:
        raise StageError(1, f"host {target.host} has no address: check the blob_url", code="BLOB_FETCH_FAILED")
    return tuple(addresses)


def bearer_token_for(settings: Settings, target: BlobTarget) -> str | None:
    """BLOB_READ_WRITE_TOKEN, only for an https ``*.private.blob.vercel-storage.com`` target."""
    if not settings.blob_read_write_token or target.scheme != "https":
        return None
    label = target.host[: -len(PRIVATE_BLOB_SUFFIX)] if target.host.endswith(PRIVATE_BLOB_SUFFIX) else ""
    if not _LABEL.fullmatch(label):
        return None
    # The target already passed check_blob_url, so the host is allowed; re-check for safety.
    if match_allowed_host(target.host, target.port, target.scheme, settings.blob_allowed_hosts) is None:
        return None
    return settings.blob_read_write_token
