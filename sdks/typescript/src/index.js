export { createVerifier, Verifier, credentialOf } from './verifier.js';
export { verifyToken, importJWKS, VerifierError, MAX_TOKEN_SIZE, TYPES } from './token.js';
export { RevocationList, REVOCATION_GRACE } from './revocations.js';
export { parse, parseSet, parseSpaceSeparated, contains, validAction, validResource, Scope, ScopeSet, ScopeError } from './scope.js';
export { verifyProof, ReplayCache, accessTokenHash, normalizeURL } from './dpop.js';
export { middleware, methodAction, refusal } from './middleware.js';
