"""Verification of step credentials with the engine's rules (its Go package
token), on top of PyJWT for the JWS signature. The pre-checks here only ever
refuse: what PyJWT alone would accept but a credential of the engine never is
(a non-canonical encoding, a header member other than alg, kid and typ,
duplicate JSON members, a high-S ES256 signature) is refused before PyJWT
sees it."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any, Iterable, Mapping

import jwt
from jwt.exceptions import InvalidSignatureError, PyJWTError

from .casefold import FOLD

MAX_TOKEN_SIZE = 16 << 10
DEFAULT_LEEWAY = 30
TYPES = {"txn_token": "txntoken+jwt", "access_token": "at+jwt"}
ALGORITHMS = ("EdDSA", "ES256")

_HEADER = ("alg", "kid", "typ")
_REFUSED_HEADERS = ("crit", "b64", "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256")
_CLAIMS = ("iss", "sub", "aud", "client_id", "iat", "nbf", "exp", "jti", "txn", "scope", "tctx", "rctx", "par", "dep", "act", "cnf")
_STRING_CLAIMS = ("iss", "sub", "aud", "client_id", "jti", "txn", "scope", "par")
_INT_CLAIMS = ("iat", "nbf", "exp", "dep")
_P256_HALF_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551 >> 1
_B64URL = re.compile(r"[A-Za-z0-9_-]*\Z")


class VerifierError(Exception):
    """A refused credential. code is stable: malformed, too_large, algorithm,
    unknown_key, signature, type, issuer, audience, expired, not_yet_valid,
    claims, lifetime, session_closed, proof_required, stale, scope,
    no_credential. Messages never quote the credential."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


def b64decode(seg: str) -> bytes | None:
    """Decodes canonical unpadded base64url, or returns None."""
    if not _B64URL.match(seg) or len(seg) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))
    except (binascii.Error, ValueError):
        return None
    # One spelling per byte string: no non-zero unused bits.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != seg:
        return None
    return raw


def _fold(k: str) -> str:
    """A key two member names share exactly when Go's strings.EqualFold says
    they are equal (Unicode simple case folding, rune by rune): the engine's
    strict JSON reading compares names so. A lone surrogate (from a \\ud800
    escape) is U+FFFD, as Go reads it."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else chr(FOLD.get(ord(c), ord(c))) for c in k)


class _Duplicate(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    folds = set()
    for k, _ in pairs:
        f = _fold(k)
        if f in folds:
            raise _Duplicate(k)
        folds.add(f)
    return dict(pairs)


def strict_object(text: str | bytes, known: Iterable[str] = ()) -> dict | None:
    """Parses one JSON object by the engine's strict rules: no duplicate
    member and no two members differing only in case, at any depth, and at
    the top level no member differing only in case from one of known."""
    if isinstance(text, (bytes, bytearray)):
        # UTF-8 only, as Go reads it: no BOM, no UTF-16 or UTF-32 guess.
        if text.startswith(b"\xef\xbb\xbf"):
            return None
        try:
            # Valid UTF-8 only: Go replaces each bad byte with U+FFFD,
            # which Python's replacement does not copy exactly, and the
            # engine never signs such bytes.
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_refuse)
    except (ValueError, _Duplicate, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    known_folds = {_fold(k): k for k in known}
    for k in value:
        want = known_folds.get(_fold(k))
        if want is not None and want != k:
            return None
    return value


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _fail(code: str, message: str) -> None:
    raise VerifierError(code, message)


def verify_token(
    raw: str,
    *,
    keys: Mapping[str, tuple[str, Any]],
    issuer: str,
    audience: str,
    formats: Iterable[str] = ("txn_token",),
    now: int | None = None,
    leeway: int = DEFAULT_LEEWAY,
    max_lifetime: int = 0,
    algorithms: Iterable[str] | None = None,
) -> dict:
    """Verifies a credential and returns its claims, with "format" set from
    its typ header. keys maps kid to (alg, key) as import_jwks makes."""
    if not issuer or not audience:
        raise ValueError("verify_token: issuer and audience are required")
    types = [TYPES[f] for f in formats]
    if not isinstance(raw, str) or raw == "":
        _fail("malformed", "empty credential")
    if len(raw.encode()) > MAX_TOKEN_SIZE:
        _fail("too_large", f"over {MAX_TOKEN_SIZE} bytes")
    parts = raw.split(".")
    if len(parts) != 3 or "\r" in raw or "\n" in raw:
        _fail("malformed", "not a compact JWS")
    if parts[0] == "":
        _fail("malformed", "empty header")
    hb = b64decode(parts[0])
    if hb is None:
        _fail("malformed", "header is not canonical base64url")
    if b64decode(parts[1]) is None:
        _fail("malformed", "payload is not canonical base64url")
    sig = b64decode(parts[2])
    if sig is None:
        _fail("malformed", "signature is not canonical base64url")
    header = strict_object(hb, _HEADER)
    if header is None:
        _fail("malformed", "header is not a valid JWS header")
    for k in _HEADER:
        if header.get(k) is not None and not isinstance(header[k], str):
            _fail("malformed", f"header {k} is not a string")
    alg = header.get("alg") or ""
    if alg not in ALGORITHMS or (algorithms is not None and alg not in algorithms):
        _fail("algorithm", "header alg not in allow-list")
    if any(k in header for k in _REFUSED_HEADERS) or any(k not in _HEADER for k in header):
        _fail("malformed", "header member not allowed (only alg, kid and typ are)")
    typ = header.get("typ") or ""
    if typ not in types:
        _fail("type", "typ must be " + " or ".join(types))
    kid = header.get("kid") or ""
    if kid == "":
        _fail("malformed", "missing kid")
    entry = keys.get(kid)
    if entry is None:
        _fail("unknown_key", "no key with that kid")
    key_alg, key = entry
    if key_alg != alg:
        _fail("algorithm", "header alg does not match the key")
    if alg == "ES256" and (len(sig) != 64 or int.from_bytes(sig[32:], "big") > _P256_HALF_ORDER):
        _fail("signature", "ES256 signature is not 64 bytes with a low S")
    try:
        payload = jwt.api_jws.PyJWS().decode_complete(raw, key=key, algorithms=[alg])["payload"]
    except InvalidSignatureError:
        _fail("signature", "invalid signature")
    except PyJWTError:
        _fail("signature", "the signature does not verify")
    # Only now, with the signature checked, is the payload looked at.
    c = strict_object(payload, _CLAIMS)
    if c is None:
        _fail("malformed", "payload is not a claims object read by the strict rules")
    for k in _STRING_CLAIMS:
        if k in c and c[k] is None:
            del c[k]
        elif k in c and not isinstance(c[k], str):
            _fail("malformed", f"{k} is not a string")
    for k in _INT_CLAIMS:
        if k in c and c[k] is None:
            del c[k]
        elif k in c and (isinstance(c[k], bool) or not isinstance(c[k], int) or not -(2**63) <= c[k] < 2**63):
            _fail("malformed", f"{k} is not an integer")
    _check_shapes(c)
    c["format"] = next(f for f, t in TYPES.items() if t == typ)
    _check_required(c)
    if c.get("iss") != issuer:
        _fail("issuer", "issuer mismatch")
    if c.get("aud") != audience:
        _fail("audience", "audience mismatch")
    if max_lifetime > 0:
        start = c["iat"]
        if c.get("nbf") and c["nbf"] < start:
            start = c["nbf"]
        if start < c["exp"] - max_lifetime:
            _fail("lifetime", "lifetime too long")
    n = int(now if now is not None else time.time())
    if leeway == 0:
        leeway = DEFAULT_LEEWAY
    leeway = max(leeway, 0)
    if n - leeway >= c["exp"]:
        _fail("expired", "expired")
    if c.get("nbf") and n + leeway < c["nbf"]:
        _fail("not_yet_valid", "nbf in the future")
    if n + leeway < c["iat"]:
        _fail("not_yet_valid", "iat in the future")
    return c


_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}\Z")


def _shape(name: str, v: Any, members: dict) -> None:
    """An object claim: an object whose known members have the right types
    and exact names (a case variant is refused, as in Go)."""
    if not isinstance(v, dict):
        _fail("malformed", f"{name} is not an object")
    folds = {_fold(k): k for k in members}
    for k, val in v.items():
        want = folds.get(_fold(k))
        if want is not None and want != k:
            _fail("malformed", f"{name} has a member differing only in case from {want}")
        if want is not None and val is not None and not members[want](val):
            _fail("malformed", f"{name}.{k} has the wrong type")


def _check_shapes(c: dict) -> None:
    """The object claims as Go decodes them: cnf, tctx, rctx, act; null is absent."""
    def is_str(v: Any) -> bool:
        return isinstance(v, str)

    for k in ("cnf", "tctx", "rctx", "act"):
        if k in c and c[k] is None:
            del c[k]
    if "cnf" in c:
        _shape("cnf", c["cnf"], {"jkt": is_str})
        if not _THUMBPRINT.match(c["cnf"].get("jkt") or ""):
            _fail("claims", "cnf.jkt is not a SHA-256 JWK thumbprint")
    if "tctx" in c:
        _shape("tctx", c["tctx"], {"role": is_str, "purpose": is_str})
    if "rctx" in c:
        _shape("rctx", c["rctx"], {"description": is_str, "req_ip": is_str})
    a, depth = c.get("act"), 0
    while a is not None:
        if depth > 32:
            _fail("malformed", "act is nested too deep")
        _shape("act", a, {"sub": is_str, "act": lambda v: isinstance(v, dict)})
        if not a.get("sub"):
            _fail("claims", "an actor has no sub")
        a, depth = a.get("act"), depth + 1


def _check_required(c: dict) -> None:
    if c["format"] == "access_token":
        for k in ("sub", "aud", "client_id"):
            if not c.get(k):
                _fail("claims", f"missing {k}")
    for k in ("jti", "txn", "scope"):
        if not c.get(k):
            _fail("claims", f"missing {k}")
    if not c.get("iat", 0) > 0:
        _fail("claims", "missing iat")
    if not c.get("exp", 0) > 0:
        _fail("claims", "missing exp")
    if c["exp"] <= c["iat"]:
        _fail("claims", "exp not after iat")
    if not c.get("dep", 0) >= 1:
        _fail("claims", "dep must be at least 1")


def import_jwks(jwks: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """Reads a JWK Set (the engine's jwks answer) into the map verify_token
    takes: kid -> (alg, key). Keys of other algorithms are skipped."""
    keys: dict[str, tuple[str, Any]] = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("alg") not in ALGORITHMS or not isinstance(jwk.get("kid"), str) or "d" in jwk:
            continue
        keys[jwk["kid"]] = (jwk["alg"], jwt.PyJWK(jwk, jwk["alg"]).key)
    return keys
