"""CognitoCredentialProvider: user pool tokens → identity pool → botocore ``RefreshableCredentials``.

Callers never refresh by hand: they call ``get_frozen_credentials()`` on what this hands out, and
botocore's refresh windows and lock decide when (and in which single thread) the callback runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from botocore.credentials import RefreshableCredentials

from airflow_cognito_iam.auth import metrics
from airflow_cognito_iam.auth.cache import CacheEntry, CredentialCache
from airflow_cognito_iam.auth.errors import ClockSkewError, ConfigurationError
from airflow_cognito_iam.auth.identity_pool import IdentityPoolExchanger, IdTokenRejectedError
from airflow_cognito_iam.auth.machine import ClientCredentialsAuthenticator
from airflow_cognito_iam.auth.models import CognitoTokens, IdentityCredentials
from airflow_cognito_iam.auth.settings import CognitoSettings
from airflow_cognito_iam.auth.startup import freeze_startup_heap
from airflow_cognito_iam.auth.user_pool import CLOCK_SKEW_SECONDS, UserPoolAuthenticator

log = logging.getLogger(__name__)

TimeFetcher = Callable[[], datetime]
#: Called with every secret value received (tokens, keys) so the Airflow layer can mask it.
SecretSink = Callable[[str], None]

# An ID token only has to outlive the GetCredentialsForIdentity call (or one bearer request);
# Cognito's shortest token lifetime is 5 minutes, so this never forces a refresh per call.
_TOKEN_MARGIN_CAP = 60.0
# Fraction of the credential lifetime used as the advisory window at most: moto's 90 s credentials
# get a 30 s window instead of the configured 5 min (which would mean a refresh on every request).
_LIFETIME_FRACTION = 1 / 3
# botocore's defaults keep mandatory at 2/3 of advisory (10 min vs 15 min); keep that shape.
_MANDATORY_FRACTION = 2 / 3


@dataclass(frozen=True)
class FrozenCredentials:
    """A consistent (access_key, secret_key, token) triple, named as botocore names them."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str = field(repr=False)
    identity_id: str | None = None
    expiration: datetime | None = None


class CognitoRefreshableCredentials(RefreshableCredentials):
    """botocore's ``RefreshableCredentials`` plus two knobs it only has privately.

    botocore documents per-instance windows (constructor ``advisory_timeout``/``mandatory_timeout``)
    but not changing them later, nor a forced refresh; both reuse its own fields and lock so a
    forced refresh serialises with the automatic ones.
    """

    def set_windows(self, advisory: float, mandatory: float) -> None:
        """Retune the refresh windows after a refresh brought credentials of another lifetime."""
        this = cast(Any, self)
        this._advisory_refresh_timeout = advisory
        this._mandatory_refresh_timeout = mandatory

    def force_refresh(self) -> None:
        """Refresh now, whatever the expiry says (the API rejected these credentials)."""
        this = cast(Any, self)
        with this._refresh_lock:
            this._protected_refresh(is_mandatory=True)


# "Near expiry" by any measure: makes get_valid_tokens refresh whatever the tokens' expiry says.
_FORCE_MARGIN = 10 * 365 * 86400.0


def utc_now() -> datetime:
    """Default clock (aware UTC)."""
    return datetime.now(UTC)


def refresh_windows(configured_margin: float, lifetime: float) -> tuple[float, float]:
    """(advisory, mandatory) seconds before expiry for credentials that live ``lifetime`` seconds."""
    advisory = max(0.0, min(configured_margin, lifetime * _LIFETIME_FRACTION))
    return advisory, advisory * _MANDATORY_FRACTION


class CognitoCredentialProvider:
    """Hands out refreshing AWS credentials for one Cognito user, sharing them through ``cache``.

    Concurrency: threads sharing the returned ``RefreshableCredentials`` refresh once (botocore's
    lock); several providers of one connection in one process, or several processes with the
    shared cache, refresh once because the fetch runs under ``cache.lock()`` and re-reads the cache.
    """

    def __init__(
        self,
        settings: CognitoSettings,
        *,
        cache: CredentialCache | None = None,
        time_fetcher: TimeFetcher = utc_now,
        authenticator: UserPoolAuthenticator | ClientCredentialsAuthenticator | None = None,
        exchanger: IdentityPoolExchanger | None = None,
        on_secret: SecretSink | None = None,
    ) -> None:
        self.settings = settings
        self._cache = cache
        self._now = time_fetcher
        self._authenticator = authenticator
        self._exchanger = exchanger
        self._on_secret = on_secret
        self._tokens: CognitoTokens | None = None
        self._entry: CacheEntry | None = None
        self._credentials: CognitoRefreshableCredentials | None = None
        self._force = False
        self._rejected: str | None = None
        self._lock = threading.RLock()
        self._announced = False
        # Built when a task starts work, after its imports: keep them out of the next full GC.
        freeze_startup_heap()
        #: Where the credentials (or tokens) in use came from, for the one INFO line per task.
        self.source: str | None = None

    # -- lazily built Cognito clients: a provider served from cache never creates one ------------
    @property
    def authenticator(self) -> UserPoolAuthenticator | ClientCredentialsAuthenticator:
        if self._authenticator is None:
            if self.settings.is_machine:
                self._authenticator = ClientCredentialsAuthenticator(self.settings)
            else:
                self._authenticator = UserPoolAuthenticator(self.settings)
        return self._authenticator

    @property
    def exchanger(self) -> IdentityPoolExchanger:
        if self._exchanger is None:
            self._exchanger = IdentityPoolExchanger(self.settings)
        return self._exchanger

    @property
    def identity_id(self) -> str | None:
        """The identity pool identity these credentials belong to (None before the first fetch)."""
        entry = self._entry
        if entry is not None and entry.credentials is not None:
            return entry.credentials.identity_id
        return None

    @property
    def token_margin(self) -> float:
        return min(self.settings.refresh_margin_seconds, _TOKEN_MARGIN_CAP)

    def _reveal(self, *values: str | None) -> None:
        if self._on_secret is None:
            return
        for value in values:
            if value:
                self._on_secret(value)

    def _tokens_usable(self, tokens: CognitoTokens | None, now: datetime) -> bool:
        return tokens is not None and (tokens.expires_at - now).total_seconds() > self.token_margin

    def _credentials_usable(self, entry: CacheEntry | None, now: datetime) -> bool:
        if entry is None or entry.credentials is None:
            return False
        remaining = (entry.credentials.expiration - now).total_seconds()
        issued = entry.issued_at or now
        lifetime = (entry.credentials.expiration - issued).total_seconds()
        advisory, _ = refresh_windows(self.settings.refresh_margin_seconds, lifetime)
        # Strictly outside the advisory window, or a refresh would get these same credentials back.
        return remaining > advisory

    def _adopt(self, entry: CacheEntry) -> None:
        layer = getattr(self._cache, "last_hit", None) or "memory"
        self.source = f"{layer} cache hit"
        self._entry = entry
        if entry.tokens is not None:
            self._tokens = entry.tokens
            self._reveal(entry.tokens.id_token, entry.tokens.access_token, entry.tokens.refresh_token)
        if entry.credentials is not None:
            c = entry.credentials
            self._reveal(c.access_key_id, c.secret_access_key, c.session_token)

    def _load_cached(self) -> CacheEntry | None:
        if self._cache is None:
            return None
        entry = self._cache.load()
        layer = getattr(self._cache, "last_hit", None)
        if entry is not None and layer:
            metrics.incr("cache.hit", layer=str(layer))
        else:
            metrics.incr("cache.miss", layer=self.settings.credential_cache)
        return entry

    def get_tokens(self) -> CognitoTokens:
        """User pool tokens valid for at least the token margin (cached, refreshed, or a sign-in)."""
        tokens = self._tokens
        if tokens is not None and self._tokens_usable(tokens, self._now()):
            return tokens  # the per-request path of bearer mode: no lock, no file read
        with self._lock, self._cache_lock():
            now = self._now()
            cached = self._load_cached()
            if cached is not None and self._tokens_usable(cached.tokens, now):
                self._adopt(cached)
                assert cached.tokens is not None
                self._announce_tokens()
                return cached.tokens
            if self._tokens_usable(self._tokens, now):
                assert self._tokens is not None
                return self._tokens
            tokens = self._renew_tokens(cached, now)
            self._store(
                self._entry_for(tokens, cached.credentials if cached else None, cached.issued_at if cached else None)
            )
            self._announce_tokens(renewed=True)
            return tokens

    def _announce_tokens(self, renewed: bool = False) -> None:
        # Bearer modes never hold AWS credentials: name only the tokens.
        if self._credentials is None:
            entry = self._entry
            self._announce(CacheEntry(entry.tokens) if entry is not None else None, renewed)

    def _renew_tokens(self, cached: CacheEntry | None, now: datetime) -> CognitoTokens:
        # A refresh token from any earlier process spares a full sign-in.
        current = self._tokens
        if cached is not None and cached.tokens is not None:
            current = cached.tokens
        self._seed_totp(cached)
        tokens = self.authenticator.get_valid_tokens(current, now, self.token_margin)
        self._tokens = tokens
        self._reveal(tokens.id_token, tokens.access_token, tokens.refresh_token)
        method = getattr(self.authenticator, "last_method", None)
        self.source = {"refresh": "refreshed with the refresh token", "sign-in": "full sign-in"}.get(
            method or "", self.source or "full sign-in"
        )
        return tokens

    def _announce(self, entry: CacheEntry | None, renewed: bool) -> None:
        """One INFO line per task (and per renewal): where the credentials came from, never a secret."""
        if self._announced and not renewed:
            return
        self._announced = True
        who = self.settings.principal
        if entry is not None and entry.credentials is not None:
            c = entry.credentials
            log.info(
                "Cognito credentials for %s: %s (identity %s, expires %s)",
                who,
                self.source,
                c.identity_id,
                c.expiration.isoformat(timespec="seconds"),
            )
        elif self._tokens is not None:
            expires = self._tokens.expires_at.isoformat(timespec="seconds")
            log.info("Cognito tokens for %s: %s (expires %s)", who, self.source, expires)

    def _store(self, entry: CacheEntry) -> None:
        self._entry = entry
        if self._cache is not None:
            self._cache.store(entry)

    def _cache_lock(self) -> contextlib.AbstractContextManager[None]:
        return self._cache.lock() if self._cache is not None else contextlib.nullcontext()

    def fetch(self) -> CacheEntry:
        """Credentials valid beyond the refresh window: from the cache, else from Cognito (then cached).

        After the API rejected credentials (``force_refresh``), a cached entry holding *other*
        credentials is another process's refresh: it is used instead of exchanging again, so N
        processes that all see a revocation refresh once per cache entry, not once each.
        """
        if self.settings.is_machine:
            raise ConfigurationError(
                {
                    "auth": "CLIENT_CREDENTIALS gets an access token only, and an identity pool needs a user's ID "
                    "token: call the API with auth='access_token' (a Cognito-authorizer route), not SigV4"
                },
                conn_id=self.settings.conn_id,
            )
        with self._lock, self._cache_lock():
            now = self._now()
            force, self._force = self._force, False
            rejected, self._rejected = self._rejected, None
            cached = self._load_cached()
            if self._credentials_usable(cached, now) and (not force or _replaced(cached, rejected)):
                assert cached is not None
                self._adopt(cached)
                self._announce(cached, renewed=False)
                return cached
            if not force and self._credentials_usable(self._entry, now):
                assert self._entry is not None
                return self._entry
            tokens = cached.tokens if cached is not None and self._tokens_usable(cached.tokens, now) else None
            if tokens is None:
                tokens = self._renew_tokens(cached, now)
            else:
                self._tokens = tokens
                self.source = "exchanged the cached ID token"
            warm_up = getattr(self._cache, "warm_up", None)
            if warm_up is not None:
                # The file cache derives its key (scrypt, no GIL) during the identity pool's round
                # trips: after the SRP arithmetic, so the two never compete for a core.
                warm_up()
            self._seed_identity(cached)
            try:
                credentials = self.exchanger.get_credentials(tokens.id_token)
            except IdTokenRejectedError:
                # A cached ID token can be revoked or clock-skewed: one fresh sign-in, then give up.
                self._seed_totp(cached)
                tokens = self.authenticator.sign_in(tokens.device)
                self.source = "full sign-in"
                self._tokens = tokens
                self._reveal(tokens.id_token, tokens.access_token, tokens.refresh_token)
                credentials = self.exchanger.get_credentials(tokens.id_token)
            self._reveal(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
            self._refuse_if_expired_on_arrival(credentials)
            entry = self._entry_for(tokens, credentials, self._now())
            self._store(entry)
            self._announce(entry, renewed=True)
            return entry

    def _refuse_if_expired_on_arrival(self, credentials: IdentityCredentials) -> None:
        # Fresh credentials live about an hour; "already expired" can only mean this clock is wrong
        # (botocore would otherwise loop into "refreshed credentials are still expired").
        remaining = (credentials.expiration - self._now()).total_seconds()
        offset = getattr(self.exchanger, "server_offset", None)
        skewed = offset is not None and abs(offset) > CLOCK_SKEW_SECONDS
        if remaining > 0 or not (skewed or remaining < -CLOCK_SKEW_SECONDS):
            return  # short-lived credentials on a slow machine: botocore refreshes them again
        raise ClockSkewError(
            offset if offset is not None else remaining,
            f"identity pool credentials for {self.settings.principal} expire at "
            f"{credentials.expiration.isoformat(timespec='seconds')}, already past by this worker's clock",
        )

    def _seed_totp(self, cached: CacheEntry | None) -> None:
        # A TOTP step another worker used (recorded in the shared entry) is never used again here.
        authenticator = self.authenticator
        if cached is not None and cached.totp_step is not None and isinstance(authenticator, UserPoolAuthenticator):
            authenticator.totp_ledger.observe(authenticator.totp_key, cached.totp_step)

    def _entry_for(
        self, tokens: CognitoTokens, credentials: IdentityCredentials | None, issued_at: datetime | None
    ) -> CacheEntry:
        step = None
        if self.settings.totp_secret and isinstance(self._authenticator, UserPoolAuthenticator):
            step = self._authenticator.totp_ledger.last(self._authenticator.totp_key)
        return CacheEntry(tokens, credentials, issued_at, step)

    def _seed_identity(self, cached: CacheEntry | None) -> None:
        # The identity id of a user never changes: a process that finds one spares a GetId call.
        for entry in (cached, self._entry):
            if entry is not None and entry.credentials is not None and self.exchanger.identity_id is None:
                self.exchanger.remember_identity(entry.credentials.identity_id)

    def _metadata(self) -> dict[str, Any]:
        """The refresh callback botocore calls; also retunes the windows to the new lifetime."""
        entry = self.fetch()
        assert entry.credentials is not None
        if self._credentials is not None:
            self._tune(self._credentials, entry)
        return _to_metadata(entry.credentials)

    def _tune(self, credentials: CognitoRefreshableCredentials, entry: CacheEntry) -> None:
        assert entry.credentials is not None
        issued = entry.issued_at or self._now()
        lifetime = (entry.credentials.expiration - issued).total_seconds()
        advisory, mandatory = refresh_windows(self.settings.refresh_margin_seconds, lifetime)
        # In place: every signer and boto3 session already holds this object.
        credentials.set_windows(advisory, mandatory)

    def get_refreshable_credentials(self) -> CognitoRefreshableCredentials:
        """One ``RefreshableCredentials`` per provider, shared by every signer and boto3 session."""
        with self._lock:
            if self._credentials is None:
                entry = self.fetch()
                assert entry.credentials is not None
                issued = entry.issued_at or self._now()
                lifetime = (entry.credentials.expiration - issued).total_seconds()
                advisory, mandatory = refresh_windows(self.settings.refresh_margin_seconds, lifetime)
                c = entry.credentials
                # The constructor rather than create_from_metadata: only it accepts time_fetcher.
                credentials = CognitoRefreshableCredentials(
                    access_key=c.access_key_id,
                    secret_key=c.secret_access_key,
                    token=c.session_token,
                    expiry_time=c.expiration,
                    refresh_using=self._metadata,
                    method="cognito-identity",
                    time_fetcher=self._now,
                )
                credentials.set_windows(advisory, mandatory)
                self._credentials = credentials
            return self._credentials

    def get_credentials(self) -> FrozenCredentials:
        """Frozen credentials valid now (refreshed first if needed), with the identity id."""
        frozen = self.get_refreshable_credentials().get_frozen_credentials()
        entry = self._entry
        return FrozenCredentials(
            access_key=frozen.access_key or "",
            secret_key=frozen.secret_key or "",
            token=frozen.token or "",
            identity_id=self.identity_id,
            expiration=entry.credentials.expiration if entry and entry.credentials else None,
        )

    def force_refresh_tokens(self) -> None:
        """Replace the tokens now (an authorizer said they expired): refresh token, else sign-in."""
        with self._lock, self._cache_lock():
            cached = self._load_cached()
            rejected = self._tokens
            if (
                cached is not None
                and cached.tokens is not None
                and rejected is not None
                and cached.tokens.access_token != rejected.access_token
                and self._tokens_usable(cached.tokens, self._now())
            ):
                self._adopt(cached)  # another task already replaced them
                return
            # The cached refresh token is the newest (with rotation, ours may already be spent).
            current = (cached.tokens if cached is not None else None) or rejected
            self._seed_totp(cached)
            tokens = self.authenticator.get_valid_tokens(current, self._now(), _FORCE_MARGIN)
            self._tokens = tokens
            self._reveal(tokens.id_token, tokens.access_token, tokens.refresh_token)
            base = cached or self._entry
            self._store(self._entry_for(tokens, base.credentials if base else None, base.issued_at if base else None))

    def known_secrets(self) -> tuple[str, ...]:
        """Every secret value this provider holds now, so callers can scrub them from API messages."""
        values: list[str | None] = [self.settings.password, self.settings.client_secret, self.settings.totp_secret]
        entry = self._entry
        if entry is not None and entry.credentials is not None:
            c = entry.credentials
            values += [c.access_key_id, c.secret_access_key, c.session_token]
        for tokens in (self._tokens, entry.tokens if entry else None):
            if tokens is not None:
                values += [tokens.id_token, tokens.access_token, tokens.refresh_token]
        return tuple(v for v in values if v)

    def force_refresh(self, rejected_access_key: str | None = None) -> None:
        """Replace the credentials now (the API said they expired), bypassing windows.

        ``rejected_access_key`` names the credentials the API refused: if the cache already holds
        others, those are used and Cognito is not called.
        """
        with self._lock:
            self._force = True
            self._rejected = rejected_access_key
            if self._credentials is None:
                self.get_refreshable_credentials()
                return
            credentials = self._credentials
        credentials.force_refresh()


def _replaced(entry: CacheEntry | None, rejected: str | None) -> bool:
    """True when ``entry`` holds credentials other than the rejected ones (another process refreshed)."""
    return (
        rejected is not None
        and entry is not None
        and entry.credentials is not None
        and entry.credentials.access_key_id != rejected
    )


def _to_metadata(credentials: IdentityCredentials) -> dict[str, Any]:
    return {
        "access_key": credentials.access_key_id,
        "secret_key": credentials.secret_access_key,
        "token": credentials.session_token,
        "expiry_time": credentials.expiration.isoformat(),
    }
