"""Origin pinning: signed credentials go only to the connection's origin (scheme, host, port).

A host name alone is not enough: ``http://api.example:8080`` is another server than
``https://api.example`` and would receive the session token in clear. Hosts compare in IDNA form
(``bücher.example`` is sent as ``xn--bcher-kva.example``), ports as numbers with the scheme's
default filled in, and a URL is refused when Python's and urllib3's parsers disagree about where
it goes (``http://a:9\\@b/`` is ``b`` to one and ``a`` to the other).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from airflow_cognito_iam.auth.errors import HostNotAllowedError, UnsafeUrlError

#: (scheme, host in IDNA form without brackets, port)
Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_host(hostname: str | None) -> bool:
    """True for localhost and loopback addresses, where plain http cannot leak anything."""
    if not hostname:
        return False
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def normal_host(host: str) -> str:
    """Lowercase IDNA (punycode) form of a host name, IPv6 literals without brackets."""
    host = host.strip().strip("[]").lower()
    if not host or host.isascii():
        return host
    try:
        encoded = parse_url(f"//{host}").host or host
    except LocationParseError:
        return host
    return encoded.strip("[]").lower()


#: One C-level scan instead of a Python loop over every character (it ran on every request).
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=1024)
def origin_of(url: str) -> Origin:
    """The origin a request to ``url`` reaches; UnsafeUrlError when that is not clear-cut.

    Cached (a pure function of the string; errors are not cached; 1,024 URLs bound the memory): a
    request's URL is checked when it is built and again when it is sent, and the second parse
    cost ~7 % of a fan-out worker's time.
    """
    if _CONTROL_CHARACTER.search(url):
        raise UnsafeUrlError(url, "contains control characters")
    try:
        split = urlsplit(url)
        split_port = split.port
        parsed = parse_url(url)
    except (ValueError, LocationParseError) as exc:
        raise UnsafeUrlError(url, f"cannot be parsed ({type(exc).__name__})") from None
    scheme = split.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrlError(url, "must be an http(s) URL")
    if split.username is not None or split.password is not None or parsed.auth:
        raise UnsafeUrlError(url, "must not contain user information ('user@host')")
    host = normal_host(split.hostname or "")
    if not host:
        raise UnsafeUrlError(url, "has no host")
    port = split_port or DEFAULT_PORTS[scheme]
    other = (normal_host(parsed.host or ""), parsed.port or DEFAULT_PORTS[scheme])
    if (host, port) != other:
        raise UnsafeUrlError(url, "is read as two different hosts by URL parsers")
    return scheme, host, port


def describe_origin(origin: Origin) -> str:
    """``scheme://host[:port]`` with the default port left out."""
    scheme, host, port = origin
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if DEFAULT_PORTS[scheme] == port else f"{scheme}://{shown}:{port}"


def entry_origins(entry: str, *, allow_http: bool = False) -> list[Origin]:
    """Origins an ``allowed_hosts`` entry stands for.

    ``https://h[:p]`` and ``http://h[:p]`` are exact (http only on loopback or with allow_http).
    A bare ``h[:p]`` means https on ``p`` (default 443), plus http on ``p`` (default 80) where
    plain http is allowed: a port is never a wildcard.
    """
    entry = entry.strip()
    if not entry:
        return []
    if "://" in entry:
        try:
            scheme, host, port = origin_of(entry)
        except UnsafeUrlError:
            return []
        if scheme == "http" and not (allow_http or is_loopback_host(host)):
            return []
        return [(scheme, host, port)]
    try:
        parts = urlsplit(f"//{entry}")
        host, entry_port = normal_host(parts.hostname or ""), parts.port
    except ValueError:
        return []
    if not host:
        return []
    origins: list[Origin] = [("https", host, entry_port or 443)]
    if allow_http or is_loopback_host(host):
        origins.append(("http", host, entry_port or 80))
    return origins


class OriginPin:
    """The set of origins signed requests may reach; everything else is refused before sending."""

    def __init__(self, base_url: str | None = None, hosts: Iterable[str] = (), *, allow_http: bool = False) -> None:
        origins: list[Origin] = [origin_of(base_url)] if base_url else []
        for entry in hosts:
            origins.extend(entry_origins(entry, allow_http=allow_http))
        self.origins = frozenset(origins)
        self._order = list(dict.fromkeys(origins))

    def __repr__(self) -> str:
        return f"OriginPin({self.described()})"

    def described(self) -> list[str]:
        """The allowed origins, as a user would write them."""
        return [describe_origin(o) for o in self._order]

    def allows(self, url: str) -> bool:
        """True when ``url`` is safe to parse and its origin is pinned."""
        try:
            return origin_of(url) in self.origins
        except UnsafeUrlError:
            return False

    def check(self, url: str) -> Origin:
        """The pinned origin of ``url``; HostNotAllowedError or UnsafeUrlError otherwise."""
        origin = origin_of(url)
        if origin not in self.origins:
            raise HostNotAllowedError(describe_origin(origin), self.described())
        return origin


def as_pin(allowed: OriginPin | Iterable[str] | None) -> OriginPin | None:
    """Accept a pin or plain ``host[:port]`` / URL entries (loopback http allowed)."""
    if allowed is None or isinstance(allowed, OriginPin):
        return allowed
    return OriginPin(None, allowed)
