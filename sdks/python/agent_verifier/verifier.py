"""A verifier for resource servers: the engine's JWKS, cached with a refetch
floor; the revocation list, kept current by blocking queries
(revocations?after=<version>&wait=<seconds>) in a background thread and
failing closed past a staleness limit; credentials checked by verify_token,
then against the list, then, for a credential bound to a key, its DPoP
proof."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterable, Mapping

from .dpop import ReplayCache, verify_proof
from .revocations import REVOCATION_GRACE, RevocationList
from .scope import ScopeError, parse_space_separated
from .token import VerifierError, import_jwks, verify_token


def _now() -> int:
    return int(time.time())


class Verifier:
    """Verifies step credentials of the agent secrets engine. Construct it
    with the engine's address, issuer and this server's audience; it fetches
    the keys and the revocation list at once and keeps the list current in a
    background thread until close()."""

    def __init__(
        self,
        *,
        vault_addr: str,
        issuer: str,
        audience: str,
        mount: str = "agent",
        formats: Iterable[str] = ("txn_token",),
        leeway: int = 30,
        max_lifetime: int = 3600,
        revocation_wait: int = 30,
        revocation_poll: int = 5,
        max_staleness: int | None = None,
        fail_open: bool = False,
        jwks_refresh_floor: int = 10,
        public_url: str = "",
        dpop_window: int = 60,
        vault_token: str = "",
        now: Callable[[], int] = _now,
        start: bool = True,
    ):
        if not vault_addr or not issuer or not audience:
            raise ValueError("Verifier: vault_addr, issuer and audience are required")
        if leeway > REVOCATION_GRACE:
            raise ValueError(f"Verifier: leeway must not exceed {REVOCATION_GRACE}s")
        if revocation_wait > 60:
            raise ValueError("Verifier: revocation_wait must be at most 60s")
        self.base = f"{vault_addr.rstrip('/')}/v1/{mount.strip('/')}"
        self.issuer, self.audience, self.formats = issuer, audience, tuple(formats)
        self.leeway, self.max_lifetime = leeway, max_lifetime
        self.revocation_wait, self.revocation_poll = revocation_wait, revocation_poll
        self.max_staleness = max_staleness if max_staleness is not None else max(60, 2 * revocation_poll, revocation_wait + 30)
        if self.max_staleness <= revocation_wait:
            raise ValueError("Verifier: max_staleness must be longer than revocation_wait")
        self.fail_open, self.jwks_refresh_floor = fail_open, jwks_refresh_floor
        self.public_url, self.dpop_window, self.vault_token = public_url, dpop_window, vault_token
        self.now = now
        self._keys: dict[str, tuple[str, Any]] = {}
        self._last_fetch = 0
        self._list = RevocationList()
        self._last_sync = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._replay = ReplayCache()
        self.refresh_keys()
        self.poll_revocations()
        self._thread = None
        if start:
            self._thread = threading.Thread(target=self._sync, name="agent-verifier-revocations", daemon=True)
            self._thread.start()

    # ---- the engine ----

    def _get(self, path: str, timeout: float) -> str:
        with urllib.request.urlopen(self.base + path, timeout=timeout) as res:
            return res.read(64 << 20).decode()

    def refresh_keys(self) -> None:
        """Fetches the JWKS now."""
        keys = import_jwks(json.loads(self._get("/jwks", 10)))
        with self._lock:
            self._keys, self._last_fetch = keys, self.now()

    def poll_revocations(self) -> None:
        """Fetches the whole revocation list now."""
        body = self._get("/revocations", 10)
        with self._lock:
            self._list.apply(body, self.now())
            self._last_sync = self.now()

    def _wait_revocations(self) -> bool:
        with self._lock:
            synced, version, epoch = self._list.synced, self._list.version, self._list.epoch
        path = "/revocations"
        if synced:
            q = {"after": version, "wait": self.revocation_wait}
            if epoch:
                q["epoch"] = epoch
            path += "?" + urllib.parse.urlencode(q)
        body = self._get(path, self.revocation_wait + 10)
        with self._lock:
            changed = self._list.apply(body, self.now())
            self._last_sync = self.now()
        return changed

    def _sync(self) -> None:
        backoff = 0.25
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self.revocation_wait < 0:
                    if self._stop.wait(self.revocation_poll):
                        return
                    self.poll_revocations()
                else:
                    changed = self._wait_revocations()
                    if not changed and time.monotonic() - started < 1:
                        # An engine (or a node) that does not hold queries.
                        self._stop.wait(self.revocation_poll)
                backoff = 0.25
            except Exception:  # noqa: BLE001: a failed sync is retried; staleness guards it
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.revocation_poll)

    def close(self) -> None:
        """Stops the background sync (a held query ends when it answers)."""
        self._stop.set()

    @property
    def last_revocation_sync(self) -> int:
        return self._last_sync

    def session_closed(self, session_id: str) -> bool:
        with self._lock:
            return self._list.closed(session_id)

    # ---- credentials ----

    def _verify(self, token: str) -> dict:
        opts = dict(
            issuer=self.issuer, audience=self.audience, formats=self.formats,
            now=self.now(), leeway=self.leeway, max_lifetime=self.max_lifetime,
        )
        try:
            claims = verify_token(token, keys=self._keys, **opts)
        except VerifierError as e:
            if e.code != "unknown_key" or self.now() - self._last_fetch < self.jwks_refresh_floor:
                raise
            try:
                self.refresh_keys()  # the engine may have rotated
            except Exception:  # noqa: BLE001
                raise e from None
            claims = verify_token(token, keys=self._keys, **opts)
        with self._lock:
            closed, synced = self._list.closed(claims["txn"]), self._last_sync
        if closed:
            raise VerifierError("session_closed", "the credential's session is closed")
        if not self.fail_open and self.now() - synced > self.max_staleness:
            raise VerifierError("stale", f"the revocation list was last synced {self.now() - synced}s ago")
        return claims

    def verify(self, token: str) -> dict:
        """Verifies a credential presented as a bearer token; a credential
        bound to a key is refused (proof_required): use verify_request."""
        claims = self._verify(token)
        if "cnf" in claims:
            raise VerifierError("proof_required", "the credential is bound to a key: send it as DPoP, with a proof")
        return claims

    def authorize(self, token: str, action: str, resource: str) -> dict:
        """Verifies a bearer credential and checks that it allows action on
        resource with the engine's scope grammar."""
        return self._allow(self.verify(token), action, resource)

    @staticmethod
    def _allow(claims: dict, action: str, resource: str) -> dict:
        try:
            scopes = parse_space_separated(claims["scope"])
        except ScopeError:
            raise VerifierError("claims", "the scope claim is not a set of scopes") from None
        if not scopes.match(action, resource):
            raise VerifierError("scope", f"the credential's scope does not allow {action} on {resource}")
        return claims

    def verify_request(self, method: str, url_path: str, headers: Mapping[str, str], host: str = "", scheme: str = "http") -> tuple[str, dict]:
        """Verifies the credential of an HTTP request: "Authorization: Bearer
        <token>", or "Authorization: DPoP <token>" with a DPoP proof by the key
        a bound credential names. headers are matched case-insensitively.
        Returns (token, claims)."""
        h = {k.lower(): v for k, v in headers.items()}
        parts = (h.get("authorization") or "").split()
        if len(parts) != 2 or parts[0].lower() not in ("bearer", "dpop"):
            raise VerifierError("no_credential", "the request carries no credential")
        scheme_name, token = parts[0].lower(), parts[1]
        claims = self._verify(token)
        if "cnf" not in claims:
            if scheme_name == "dpop":
                raise VerifierError("proof_required", "the credential is not bound to a key: send it as Bearer")
            return token, claims
        if scheme_name != "dpop":
            raise VerifierError("proof_required", "the credential is bound to a key: send it as DPoP, with a proof")
        base = self.public_url.rstrip("/") if self.public_url else f"{scheme}://{host or h.get('host', 'localhost')}"
        try:
            verify_proof(
                h.get("dpop"), method=method, url=base + url_path, access_token=token, jkt=claims["cnf"]["jkt"],
                now=self.now(), window=self.dpop_window, replay=self._replay,
            )
        except ValueError as e:  # a request URL no proof can name (a bad Host)
            if isinstance(e, VerifierError):
                raise
            raise VerifierError("proof_required", "the request's URL is not one a proof can name") from None
        return token, claims

    def authorize_request(self, method: str, url_path: str, headers: Mapping[str, str], action: str, resource: str, **kw: Any) -> tuple[str, dict]:
        token, claims = self.verify_request(method, url_path, headers, **kw)
        return token, self._allow(claims, action, resource)

    def report(self, token: str, action: str, resource: str, outcome: str, observed_at: int | None = None) -> None:
        """Reports a use to the engine (needs vault_token), judged as of
        observed_at."""
        if not self.vault_token:
            raise ValueError("report: vault_token is required")
        body = json.dumps({
            "token": token, "action": action, "resource": resource, "outcome": outcome,
            "observed_at": str(observed_at if observed_at is not None else self.now()), "leeway": self.leeway,
        }).encode()
        req = urllib.request.Request(self.base + "/report", data=body, method="POST",
                                     headers={"X-Vault-Token": self.vault_token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as res:
            res.read()

    def report_later(self, *args: Any) -> None:
        """report() in a background thread: the request is never slowed."""
        threading.Thread(target=self._report_quietly, args=args, daemon=True).start()

    def _report_quietly(self, *args: Any) -> None:
        try:
            self.report(*args)
        except Exception:  # noqa: BLE001: a report is best effort
            pass
