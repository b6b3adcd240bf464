package agent

import (
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// fuzzBackend is a backend with a role, a session and one credential.
func fuzzBackend(f *testing.F) (*backend, logical.Storage, string, string) {
	b, s := testBackend(f)
	writeRole(f, b, s, "web", map[string]interface{}{
		"scopes": "read,list:secrets/web/*", "audiences": "api",
		"on_violation": "deny", "violation_limit": 1000, "max_steps": 1000000, "max_rate": 100000,
	})
	id, _ := startSession(f, b, s, agentA, map[string]interface{}{"role": "web", "purpose": "fuzz"})
	tok := mustDo(f, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "api"}).Data["token"].(string)
	return b, s, id, tok
}

// fuzzRequest sends one fuzzed request; it must not panic, and any error
// must be a 4xx (coded) or an error response, never an internal error.
func fuzzRequest(t *testing.T, b *backend, s logical.Storage, op logical.Operation, path string, data map[string]interface{}) {
	t.Helper()
	if resp, err := do(t, b, s, agentA, op, path, data); internalError(resp, err) {
		t.Fatalf("%s %s %v: internal error %v", op, path, data, err)
	}
}

func FuzzRoleWrite(f *testing.F) {
	b, s, _, _ := fuzzBackend(f)
	f.Add("read:x/*", "api", "15m", "1h", 10, "revoke")
	f.Add("read,list:a/+/b*", "a,b", "1", "0", -1, "deny")
	f.Add("", "", "", "", 0, "")
	f.Add("*:*", "x y", "99999999999h", "-1s", 1<<30, "REVOKE")
	f.Fuzz(func(t *testing.T, scopes, auds, ttl, maxTTL string, n int, onv string) {
		fuzzRequest(t, b, s, logical.CreateOperation, "roles/fuzz", map[string]interface{}{
			"scopes": scopes, "audiences": auds, "session_ttl": ttl, "session_max_ttl": maxTTL,
			"max_steps": n, "max_depth": n, "on_violation": onv,
		})
	})
}

func FuzzSessionStart(f *testing.F) {
	b, s, _, _ := fuzzBackend(f)
	f.Add("web", "purpose", "read:secrets/web/x", "api", "10m", 5, "k=v")
	f.Add("nope", "", "", "", "", 0, "")
	f.Add("web", "\x00", "read:secrets/web/*,list:secrets/web/x", "api,api", "-1", -5, "=,=")
	f.Fuzz(func(t *testing.T, role, purpose, scopes, auds, ttl string, n int, meta string) {
		fuzzRequest(t, b, s, logical.UpdateOperation, "session", map[string]interface{}{
			"role": role, "purpose": purpose, "scopes": scopes, "audiences": auds, "ttl": ttl,
			"max_steps": n, "max_depth": n, "max_rate": n, "metadata": meta,
		})
	})
}

func FuzzCredsRequest(f *testing.F) {
	b, s, id, tok := fuzzBackend(f)
	f.Add("read:secrets/web/x", "api", "30s", "", "description", "actor", "")
	f.Add("read,list:secrets/web/*", "api", "", tok, "", "", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
	f.Add("", "", "x", tok[:20], "\n", "\x00", "short")
	f.Fuzz(func(t *testing.T, scopes, aud, ttl, parent, description, actor, jkt string) {
		fuzzRequest(t, b, s, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
			"scopes": scopes, "audience": aud, "ttl": ttl, "parent_token": parent,
			"description": description, "actor": actor, "cnf_jkt": jkt,
		})
	})
}

func FuzzIntrospectAndReport(f *testing.F) {
	b, s, _, tok := fuzzBackend(f)
	f.Add(tok, "read", "secrets/web/x", "allowed")
	f.Add(tok+"x", "READ", "a/../b", "")
	f.Add("", "", "", "\x00")
	f.Add("a.b.c", "*", "*", "")
	f.Fuzz(func(t *testing.T, token, action, resource, outcome string) {
		fuzzRequest(t, b, s, logical.UpdateOperation, "introspect", map[string]interface{}{"token": token})
		fuzzRequest(t, b, s, logical.UpdateOperation, "report", map[string]interface{}{
			"token": token, "action": action, "resource": resource, "outcome": outcome,
		})
	})
}

func FuzzConfigWrite(f *testing.F) {
	b, s, _, _ := fuzzBackend(f)
	f.Add("iss", "EdDSA", "24h", "1h", 1000)
	f.Add("", "ES256", "1s", "2s", 0)
	f.Add("\x7f", "none", "x", "", -1)
	f.Fuzz(func(t *testing.T, iss, alg, maxSession, maxStep string, events int) {
		fuzzRequest(t, b, s, logical.UpdateOperation, "config", map[string]interface{}{
			"issuer": iss, "signing_algorithm": alg, "session_max_ttl": maxSession, "step_max_ttl": maxStep, "max_events": events,
		})
		// Put the defaults back so later inputs start from a working engine.
		fuzzRequest(t, b, s, logical.DeleteOperation, "config", nil)
	})
}
