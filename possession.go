package agent

import (
	"errors"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
)

// errNoProofURL refuses a DPoP proof when the engine cannot say which URL
// it is reached at.
var errNoProofURL = errors.New("DPoP proofs are checked against this mount's URL: set config issuer to https://<vault address>/v1/<mount> to use them")

// dpopHeader returns the request's DPoP proof, "" when there is none. The
// mount passes the header to the engine only when it is tuned with
// passthrough_request_headers=DPoP. Two proofs are refused.
func dpopHeader(req *logical.Request) (string, error) {
	vals := http.Header(req.Headers).Values(dpop.HeaderName)
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(vals[0]), nil
	}
	return "", errors.New("more than one DPoP header")
}

// proofMethods are the HTTP methods a request with op may have been sent
// with: a plugin sees a write, not whether it came as POST or PUT.
func proofMethods(op logical.Operation) (string, []string) {
	switch op {
	case logical.ReadOperation:
		return http.MethodGet, nil
	case logical.ListOperation:
		return "LIST", []string{http.MethodGet}
	case logical.DeleteOperation:
		return http.MethodDelete, nil
	}
	return http.MethodPost, []string{http.MethodPut}
}

// checkProof checks the DPoP proof of a request to path (relative to the
// mount) against the engine's URL, the credential it goes with (its ath,
// when accessToken is set) and, when jkt is set, the key a credential is
// bound to. It returns nil, nil when the request carries no proof. It does
// not look at the replay cache: the caller remembers the proof
// (rememberProof) once the request is known to come from a live session's
// rightful caller, so that nobody else can fill the cache.
func (b *backend) checkProof(req *logical.Request, cfg *agentConfig, path, accessToken, jkt string) (*dpop.Proof, error) {
	raw, err := dpopHeader(req)
	if err != nil {
		return nil, err
	}
	if raw == "" {
		if jkt != "" {
			return nil, dpop.ErrMissing
		}
		return nil, nil
	}
	issuer, why := issuerURL(cfg.issuerFor(req.MountPoint), req.MountPoint)
	if issuer == nil {
		return nil, errors.New(why + ": " + errNoProofURL.Error())
	}
	method, alt := proofMethods(req.Operation)
	return dpop.Verify(raw, dpop.Options{
		Method: method, AltMethods: alt,
		URL:         strings.TrimSuffix(issuer.String(), "/") + "/" + path,
		AccessToken: accessToken, JKT: jkt, Now: b.now(),
	})
}

// rememberProof records a checked proof in this node's replay cache, or
// refuses it as replayed (or the cache as full). nil is no proof.
func (b *backend) rememberProof(p *dpop.Proof) error {
	if p == nil {
		return nil
	}
	return b.proofs.Remember(p, b.now())
}
