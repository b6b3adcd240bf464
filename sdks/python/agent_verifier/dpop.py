"""DPoP proofs (RFC 9449) for credentials bound to a key (cnf.jkt), checked as
the engine's Go package dpop checks them: PyJWT verifies the proof with the
key embedded in its header; the claims are read by the strict rules; htm,
htu, iat, ath, the key's thumbprint and replays are checked here."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import threading
import time
from collections import OrderedDict

import jwt
from jwt.exceptions import PyJWTError

from .token import VerifierError, b64decode, strict_object

MAX_PROOF_SIZE = 4 << 10
DEFAULT_WINDOW = 60


def _fail(message: str) -> None:
    raise VerifierError("proof_required", message)


def access_token_hash(token: str) -> str:
    """base64url(SHA-256(token)): a proof's "ath" for a credential."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode("ascii")).digest()).rstrip(b"=").decode()


_URL_SHAPE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)(?:\?[^#]*)?(?:#.*)?$", re.DOTALL)
# A host (no user information) and an optional port.
_AUTHORITY = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=]+)(?::([0-9]*))?$")
# Unreserved and sub-delimiter characters, ':', '@', '/' and escapes.
_PATH = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]*$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def normalize_url(u: str) -> str:
    """An htu as compared (RFC 9449 section 4.3; as Go compares it): no query
    or fragment, lower-case scheme and host, no default port, an empty path
    as "/", and the path otherwise as written. Only URLs whose every reading
    agrees are taken: printable ASCII, no backslash, no user information, a
    host of RFC 3986 name characters or a bracketed IPv6 address, and a path
    of characters Go keeps as written."""
    m = _URL_SHAPE.match(u) if isinstance(u, str) else None
    if not m or not _PRINTABLE.match(u) or "\\" in u or _BAD_ESCAPE.search(u):
        raise ValueError("not an absolute http(s) URL")
    scheme = m.group(1).lower()
    if scheme not in ("http", "https"):
        raise ValueError("not an http(s) URL")
    hp = _AUTHORITY.match(m.group(2))
    if not hp:
        raise ValueError("not an absolute http(s) URL with a plain host")
    host = hp.group(1).lower()
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("not an absolute http(s) URL with a plain host") from None
    if not _PATH.match(m.group(3)):
        raise ValueError("the URL path has characters that are read differently")
    port = hp.group(2) or ""
    if (scheme == "https" and port == "443") or (scheme == "http" and port == "80"):
        port = ""
    return f"{scheme}://{host}{':' + port if port else ''}{m.group(3) or '/'}"


def thumbprint(jwk: dict) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK (OKP or EC)."""
    members = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}.get(jwk.get("kty"))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        _fail("the DPoP proof jwk is not an OKP or EC public key")
    canon = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode()


class ReplayCache:
    """Remembers the proofs seen until their window ends; refuses, rather than
    forgets, when full. Safe for use from several threads."""

    def __init__(self, max_size: int = 100_000):
        self.max_size = max_size
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, key: str, until: int, now: int) -> None:
        with self._lock:
            while self._seen:
                k, t = next(iter(self._seen.items()))
                if t >= now:
                    break
                self._seen.popitem(last=False)
            t = self._seen.get(key)
            if t is not None and t >= now:
                _fail("the DPoP proof was replayed")
            if len(self._seen) >= self.max_size:
                for k in [k for k, t in self._seen.items() if t < now]:
                    del self._seen[k]
                if len(self._seen) >= self.max_size:
                    _fail("too many proofs to remember; try again")
            self._seen[key] = until


def verify_proof(
    proof: str | None,
    *,
    method: str,
    url: str,
    access_token: str = "",
    jkt: str = "",
    now: int | None = None,
    window: int = DEFAULT_WINDOW,
    replay: ReplayCache | None = None,
) -> dict:
    """Verifies a DPoP proof for a request; raises VerifierError with code
    proof_required. Returns {"jkt", "jti", "iat"}."""
    if not proof:
        _fail("the credential is bound to a key: a DPoP proof is needed")
    if len(proof) > MAX_PROOF_SIZE or proof.count(".") != 2:
        _fail("the DPoP proof is not a compact JWS")
    hb = b64decode(proof.split(".")[0])
    h = strict_object(hb, ("typ", "alg", "jwk")) if hb is not None else None
    if h is None or any(k not in ("typ", "alg", "jwk") for k in h):
        _fail("the DPoP proof header holds only typ, alg and jwk")
    if h.get("typ") != "dpop+jwt":
        _fail("the DPoP proof typ must be dpop+jwt")
    alg = h.get("alg")
    if alg not in ("EdDSA", "ES256"):
        _fail("the DPoP proof alg must be EdDSA or ES256")
    jwk = h.get("jwk")
    if not isinstance(jwk, dict) or "d" in jwk:
        _fail("the DPoP proof jwk must be a public key")
    want = {"EdDSA": ("OKP", "Ed25519"), "ES256": ("EC", "P-256")}[alg]
    if (jwk.get("kty"), jwk.get("crv")) != want:
        _fail(f"the DPoP proof jwk must be a {want[1]} key for {alg}")
    try:
        key = jwt.PyJWK(jwk, alg).key
        payload = jwt.api_jws.PyJWS().decode_complete(proof, key=key, algorithms=[alg])["payload"]
    except (PyJWTError, ValueError, TypeError):
        _fail("the DPoP proof signature does not verify")
    c = strict_object(payload, ("jti", "htm", "htu", "iat", "ath", "nonce"))
    if c is None:
        _fail("the DPoP proof claims are not a JSON object read by the strict rules")
    n = int(now if now is not None else time.time())
    try:
        htu = normalize_url(c.get("htu") if isinstance(c.get("htu"), str) else "")
    except ValueError:
        _fail("the DPoP proof htu is not a URL")
    jti, iat = c.get("jti"), c.get("iat")
    if not isinstance(jti, str) or not jti or len(jti.encode()) > 128:
        _fail("the DPoP proof jti must be 1 to 128 bytes")
    if c.get("htm") != method:
        _fail("the DPoP proof htm is not the request's method")
    if htu != normalize_url(url):
        _fail("the DPoP proof htu is not the request's URL")
    if isinstance(iat, bool) or not isinstance(iat, int) or iat <= 0 or abs(n - iat) > window:
        _fail(f"the DPoP proof iat is not within {window}s of now")
    if "nonce" in c:
        _fail("nonces are not used here")
    if (c.get("ath") != access_token_hash(access_token)) if access_token else ("ath" in c):
        _fail("the DPoP proof ath is not the hash of the credential")
    tp = thumbprint(jwk)
    if jkt and tp != jkt:
        _fail("the DPoP proof is not by the credential's key")
    if replay is not None:
        replay.remember(f"{tp}:{jti}", iat + window, n)
    return {"jkt": tp, "jti": jti, "iat": iat}
