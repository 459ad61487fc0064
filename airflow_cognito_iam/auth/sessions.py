"""``requests`` sessions that read the proxy environment once instead of on every request.

With ``trust_env`` (the default) requests re-reads ``os.environ`` on every request, twice: once for
``NO_PROXY`` and once for the proxies themselves (``get_environ_proxies``), plus the CA-bundle
variables. Against a fast API that was a fifth of the operator's per-request profile. The
environment of a task process does not change under it, so ``EnvironmentOnceSession`` keeps
requests' own answer per origin (scheme + host + port: ``NO_PROXY`` is per host) and reuses it.
Everything else (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``,
``CURL_CA_BUNDLE``, explicit ``proxies=``) behaves exactly as with a plain session.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:
    from requests.sessions import _Settings

#: Origins remembered per session; signed requests only go to pinned origins, so a handful.
MAX_ORIGINS = 64


class EnvironmentOnceSession(requests.Session):
    """A ``requests.Session`` that reads environment proxies once per origin and the CA bundle once."""

    def __init__(self) -> None:
        super().__init__()
        self._proxies_by_origin: dict[str, dict[str, str]] = {}
        self._ca_bundle: str | None = None
        self._ca_bundle_read = False

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: MutableMapping[str, str] | None,
        stream: bool | None,
        verify: bool | str | None,
        cert: str | tuple[str, str] | None,
    ) -> _Settings:
        """requests' own merge (same precedence), with the environment read once."""
        if not self.trust_env or proxies or not isinstance(url, str):
            # Explicit proxies= (maybe with its own no_proxy): requests' path, unchanged.
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        environment_proxies = self._environment_proxies(url)
        if verify is True or verify is None:
            if not self._ca_bundle_read:
                self._ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                self._ca_bundle_read = True
            verify = self._ca_bundle or verify
        merge: Any = requests.sessions.merge_setting  # untyped in the stubs
        # merge_setting of two dicts costs two runtime Protocol checks in requests 2.34: skip it
        # when the session has no proxies of its own (the result is the same).
        proxies = merge(dict(environment_proxies), self.proxies) if self.proxies else dict(environment_proxies)
        return {
            "proxies": proxies,
            "stream": merge(stream, self.stream),
            "verify": merge(verify, self.verify),
            "cert": merge(cert, self.cert),
        }

    def _environment_proxies(self, url: str) -> dict[str, str]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._proxies_by_origin.get(origin)
        if found is None:
            # NO_PROXY matches on host and port only, so the origin's answer holds for every path.
            found = dict(requests.utils.get_environ_proxies(origin + "/"))
            if len(self._proxies_by_origin) >= MAX_ORIGINS:
                self._proxies_by_origin.clear()
            self._proxies_by_origin[origin] = found
        return found
