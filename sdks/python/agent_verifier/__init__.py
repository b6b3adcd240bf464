"""Verify step credentials of the agent secrets engine (a HashiCorp Vault
plugin) in Python resource servers, with the engine's own rules: the scope
grammar, the credential formats, revocations by blocking query with a
fail-closed staleness limit, and DPoP proofs for credentials bound to a key.
Refusals are VerifierError, with a stable code."""

from .dpop import ReplayCache, access_token_hash, normalize_url, verify_proof
from .middleware import ASGIMiddleware, WSGIMiddleware, method_action, refusal
from .revocations import RevocationError, RevocationList
from .scope import Scope, ScopeError, ScopeSet, contains, parse, parse_set, parse_space_separated, valid_action, valid_resource
from .token import MAX_TOKEN_SIZE, TYPES, VerifierError, import_jwks, verify_token
from .verifier import Verifier

__version__ = "0.1.0"

__all__ = [
    "ASGIMiddleware", "MAX_TOKEN_SIZE", "ReplayCache", "RevocationError", "RevocationList", "Scope", "ScopeError",
    "ScopeSet", "TYPES", "Verifier", "VerifierError", "WSGIMiddleware", "access_token_hash", "contains",
    "import_jwks", "method_action", "normalize_url", "parse", "parse_set", "parse_space_separated", "refusal",
    "valid_action", "valid_resource", "verify_proof", "verify_token",
]
