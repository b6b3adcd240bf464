"""WSGI and ASGI middleware: each request must carry a credential the verifier
accepts, for the (action, resource) the mapper says it performs. Refusals
follow RFC 6750 (and RFC 9449 for proofs of possession): 401 with a Bearer or
DPoP challenge, 403 insufficient_scope, 503 when the revocation list is
stale. The verified claims are put in the WSGI environ / ASGI scope under
"agent.claims"."""

from __future__ import annotations

import json
from typing import Any, Callable

from .token import VerifierError
from .verifier import Verifier

CHALLENGES = {
    "no_credential": 'Bearer, DPoP algs="EdDSA ES256"',
    "proof_required": 'DPoP error="invalid_dpop_proof", algs="EdDSA ES256"',
    "scope": 'Bearer error="insufficient_scope"',
}
_REASONS = {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable", 400: "Bad Request"}


def method_action(method: str) -> str:
    """GET/HEAD read, POST create, PUT/PATCH write, DELETE delete."""
    return {"GET": "read", "HEAD": "read", "POST": "create", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method, method.lower())


def refusal(err: VerifierError) -> tuple[int, str | None]:
    """The HTTP status and WWW-Authenticate challenge for a refusal."""
    if err.code == "stale":
        return 503, None
    if err.code == "scope":
        return 403, CHALLENGES["scope"]
    return 401, CHALLENGES.get(err.code, 'Bearer error="invalid_token"')


Mapper = Callable[[str, str], "tuple[str, str]"]  # (method, path) -> (action, resource)


def default_mapper(method: str, path: str) -> tuple[str, str]:
    return method_action(method), path.lstrip("/")


class WSGIMiddleware:
    """Protects a WSGI app. With report=True, uses and refused out-of-scope
    uses are reported to the engine in the background."""

    def __init__(self, app: Callable, verifier: Verifier, mapper: Mapper = default_mapper, report: bool = False):
        self.app, self.verifier, self.mapper, self.report = app, verifier, mapper, report

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        seen = self.verifier.now()
        try:
            action, resource = self.mapper(method, path)
        except ValueError as e:
            return _wsgi_refuse(start_response, 400, None, str(e))
        try:
            token, claims = self.verifier.authorize_request(
                method, path, headers, action, resource,
                host=environ.get("HTTP_HOST", environ.get("SERVER_NAME", "")), scheme=environ.get("wsgi.url_scheme", "http"),
            )
        except VerifierError as e:
            self._report_refusal(e, headers, action, resource, seen)
            status, challenge = refusal(e)
            return _wsgi_refuse(start_response, status, challenge, str(e))
        if self.report:
            self.verifier.report_later(token, action, resource, "allowed", seen)
        environ["agent.claims"] = claims
        return self.app(environ, start_response)

    def _report_refusal(self, e: VerifierError, headers: dict, action: str, resource: str, seen: int) -> None:
        parts = (headers.get("authorization") or "").split()
        if self.report and e.code in ("scope", "session_closed") and len(parts) == 2:
            self.verifier.report_later(parts[1], action, resource, "denied", seen)


def _wsgi_refuse(start_response: Callable, status: int, challenge: str | None, message: str) -> list[bytes]:
    headers = [("Content-Type", "application/json")]
    if challenge:
        headers.append(("WWW-Authenticate", challenge))
    start_response(f"{status} {_REASONS.get(status, '')}", headers)
    return [json.dumps({"error": message}).encode()]


class ASGIMiddleware:
    """Protects an ASGI app's HTTP requests (other scopes pass through).
    Verification is CPU-bound and short; it runs inline."""

    def __init__(self, app: Callable, verifier: Verifier, mapper: Mapper = default_mapper, report: bool = False):
        self.app, self.verifier, self.mapper, self.report = app, verifier, mapper, report

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        seen = self.verifier.now()
        try:
            action, resource = self.mapper(method, path)
            token, claims = self.verifier.authorize_request(
                method, path, headers, action, resource, host=headers.get("host", ""), scheme=scope.get("scheme", "http"),
            )
        except VerifierError as e:
            parts = (headers.get("authorization") or "").split()
            if self.report and e.code in ("scope", "session_closed") and len(parts) == 2:
                self.verifier.report_later(parts[1], action, resource, "denied", seen)
            status, challenge = refusal(e)
            return await _asgi_refuse(send, status, challenge, str(e))
        except ValueError as e:
            return await _asgi_refuse(send, 400, None, str(e))
        if self.report:
            self.verifier.report_later(token, action, resource, "allowed", seen)
        scope = dict(scope)
        scope["agent.claims"] = claims
        return await self.app(scope, receive, send)


async def _asgi_refuse(send: Callable, status: int, challenge: str | None, message: str) -> None:
    headers = [(b"content-type", b"application/json")]
    if challenge:
        headers.append((b"www-authenticate", challenge.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"error": message}).encode()})
