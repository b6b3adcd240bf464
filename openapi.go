package agent

import (
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
)

// operationPrefix begins the ID of every operation in the engine's OpenAPI
// document (agent-read-session, agent-issue-step-credential, ...), from
// which Vault's generated clients name their methods.
const operationPrefix = "agent"

// The response schemas below declare, for each operation, exactly the
// fields its handler answers in data; openapi_test.go checks them against
// real answers. A field marked Required is in every successful answer.
// Durations are whole seconds; times are RFC 3339 strings unless said to be
// Unix seconds.

// sessionStates are the states a session reports.
var sessionStates = []interface{}{"active", "ended", "revoked", "expired"}

func required(t framework.FieldType, description string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: t, Description: description, Required: true}
}

func optional(t framework.FieldType, description string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: t, Description: description}
}

func stateField(t framework.FieldType, description string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: t, Description: description, Required: true, AllowedValues: sessionStates}
}

// okResponses declares a 200 answer with fields.
func okResponses(fields map[string]*framework.FieldSchema) map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusOK: {{Description: "OK", Fields: fields}},
	}
}

// noContentResponses declares a write that answers nothing.
func noContentResponses() map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusNoContent: {{Description: "No Content"}},
	}
}

// warningOrNoContentResponses declares a write that answers nothing, or
// only warnings (no data) when it did more than asked.
func warningOrNoContentResponses(warning string) map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusOK:        {{Description: "OK: " + warning}},
		http.StatusNoContent: {{Description: "No Content"}},
	}
}

// listResponses declares a LIST answer.
func listResponses(what string) map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"keys": required(framework.TypeStringSlice, what),
	})
}

func configReadResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"issuer":             required(framework.TypeString, `The "iss" claim of step credentials, "vault:<mount path>" unless configured.`),
		"signing_algorithm":  required(framework.TypeString, `The JWS algorithm of step credentials: "EdDSA" or "ES256".`),
		"session_max_ttl":    required(framework.TypeDurationSecond, "The ceiling for every role's session_max_ttl, in seconds."),
		"step_max_ttl":       required(framework.TypeDurationSecond, "The ceiling for every role's step_max_ttl, in seconds."),
		"max_events":         required(framework.TypeInt, "How many timeline events one session keeps."),
		"session_retention":  required(framework.TypeDurationSecond, "How long a closed session stays readable after its last credential expired, in seconds."),
		"session_cache_size": required(framework.TypeInt, "How many active sessions the active node keeps in memory."),
	})
}

func configWriteResponses() map[int][]framework.Response {
	return warningOrNoContentResponses("signing_algorithm changed; the answer holds only a warning naming the new signing key.")
}

func roleReadResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"scopes":                required(framework.TypeStringSlice, "The scope patterns sessions of this role may ever hold, as ACTIONS:RESOURCE."),
		"audiences":             required(framework.TypeStringSlice, "The audiences step credentials of this role may be issued for."),
		"session_ttl":           required(framework.TypeDurationSecond, "Lease TTL of a session when it starts and at each renewal, in seconds."),
		"session_max_ttl":       required(framework.TypeDurationSecond, "The most a session may live, renewals included, in seconds."),
		"step_ttl":              required(framework.TypeDurationSecond, "Lifetime of a step credential when the request names none, in seconds."),
		"step_max_ttl":          required(framework.TypeDurationSecond, "The longest a step credential may live, in seconds."),
		"max_steps":             required(framework.TypeInt, "Step credentials one session may obtain."),
		"max_depth":             required(framework.TypeInt, "How deep credentials may be derived from credentials."),
		"max_rate":              required(framework.TypeInt, "Step credentials per minute per session."),
		"max_sessions":          required(framework.TypeInt, "Sessions of this role active at once; 0 for no limit."),
		"on_violation":          required(framework.TypeString, `What a violation does: "revoke" or "deny".`),
		"violation_limit":       required(framework.TypeInt, `Violations a session tolerates under on_violation="deny".`),
		"require_purpose":       required(framework.TypeBool, "Whether a session must state its purpose."),
		"on_out_of_intent":      required(framework.TypeString, `What a step outside the intent but inside the role does: "violation" or "approval".`),
		"max_pending_approvals": required(framework.TypeInt, "Approvals a session may wait for at once."),
		"approval_ttl":          required(framework.TypeDurationSecond, "How long an approval waits for a decision."),
		"denial_is_violation":   required(framework.TypeBool, "Whether a denied approval is also a violation."),
	})
}

func roleDeleteResponses() map[int][]framework.Response {
	return warningOrNoContentResponses("the role had live sessions; the answer holds only a warning counting the sessions revoked with it.")
}

func keysRotateResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"kid":               required(framework.TypeString, "The ID of the new signing key."),
		"signing_algorithm": required(framework.TypeString, `The new key's algorithm: "EdDSA" or "ES256".`),
		"jwks_kids":         required(framework.TypeStringSlice, "The IDs of every key now in jwks, the new one included."),
	})
}

func sessionStartResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"session_id": required(framework.TypeString, "The session's ID."),
		"role":       required(framework.TypeString, "The role the session lives under."),
		"expires_at": required(framework.TypeTime, "When the session's lease runs out unless renewed."),
		"scopes":     required(framework.TypeStringSlice, "The scopes granted to the session."),
		"audiences":  required(framework.TypeStringSlice, "The audiences granted to the session."),
		"max_steps":  required(framework.TypeInt, "Step credentials the session may obtain."),
		"max_depth":  required(framework.TypeInt, "How deep the session's credentials may be derived."),
		"max_rate":   required(framework.TypeInt, "Step credentials per minute."),
		"purpose":    required(framework.TypeString, "The purpose the session declared."),
	})
}

// sessionReadResponses declares sessionData, for session/<id> and
// sessions/<id>.
func sessionReadResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"session_id": required(framework.TypeString, "The session's ID."),
		"role":       required(framework.TypeString, "The role the session lives under."),
		"state":      stateField(framework.TypeString, `The session's state: "active", "ended", "revoked" or "expired".`),
		"intent": required(framework.TypeMap, "The intent as granted: scopes, audiences, max_steps, max_depth, max_rate, purpose, "+
			"step_ttl, step_max_ttl and session_max_ttl (seconds), on_violation, violation_limit, and metadata when given."),
		"steps_used":      required(framework.TypeInt, "Step credentials issued so far."),
		"violations":      required(framework.TypeSlice, "The most recent violations (at most 100), each {kind, time, detail} with source and credential when known."),
		"violation_count": required(framework.TypeInt, "Every violation recorded, those no longer listed included."),
		"revoked_reason":  required(framework.TypeString, "Why the session was revoked; empty unless it was."),
		"created_at":      required(framework.TypeTime, "When the session started."),
		"expires_at":      required(framework.TypeTime, "When the session's lease runs out (or ran out)."),
		"ended_at":        optional(framework.TypeTime, "When the session closed (ended, revoked or expired); absent while active."),
		"foreign_calls": required(framework.TypeMap, "Requests refused because another caller made them: {count}, and first, last "+
			"and last_caller once count > 0."),
		"inactive_calls": required(framework.TypeMap, "Requests and reports that arrived after the session closed: {count}, and "+
			"first, last and last_caller once count > 0."),
		"pending_approvals": optional(framework.TypeSlice, "Under on_out_of_intent=approval: the approvals the session waits for, {approval_id, expires_at}."),
		"grants": optional(framework.TypeSlice, "Under on_out_of_intent=approval: what approvals widened the intent by, "+
			"{approval_id, scopes, audience, until}."),
		"decided_approvals": optional(framework.TypeSlice, "Under on_out_of_intent=approval: the latest decisions of its approvals, "+
			"{approval_id, state} (approved, denied, expired), newest last."),
	})
}

func sessionEventsResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"session_id": required(framework.TypeString, "The session's ID."),
		"events": required(framework.TypeSlice, "The timeline events in order, each {seq, time, kind} with the details that apply: "+
			"detail, source, credential, parent, scopes, audience, description, actor, violation, action, resource, outcome, depth, expires_at."),
		"dropped":  required(framework.TypeInt64, "How many of the oldest events are no longer kept (beyond max_events)."),
		"last_seq": required(framework.TypeInt64, "The seq of the session's latest event; pass it as after to read only newer ones."),
	})
}

func sessionGraphResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"session_id":        required(framework.TypeString, "The session's ID."),
		"state":             stateField(framework.TypeString, `The session's state: "active", "ended", "revoked" or "expired".`),
		"credentials_shown": required(framework.TypeInt, "How many step credentials the graph draws."),
		"partial":           required(framework.TypeBool, "Whether the oldest events were dropped, so some credentials may be missing."),
		"dot":               required(framework.TypeString, "The graph as Graphviz DOT text."),
		"mermaid":           required(framework.TypeString, "The graph as a Mermaid flowchart."),
	})
}

func credsResponses() map[int][]framework.Response {
	fields := map[string]*framework.FieldSchema{
		"token":         required(framework.TypeString, `The step credential: a JWS compact JWT of type "txntoken+jwt" (format txn_token) or "at+jwt" (format access_token).`),
		"credential_id": required(framework.TypeString, `The credential's ID (its "jti" claim).`),
		"format":        required(framework.TypeString, `The credential's format: "txn_token" or "access_token".`),
		"session_id":    required(framework.TypeString, "The session the credential belongs to."),
		"expires_at":    required(framework.TypeTime, "When the credential expires."),
		"scopes":        required(framework.TypeStringSlice, "The scopes granted to the credential."),
		"audience":      required(framework.TypeString, "The resource server the credential is for."),
		"depth":         required(framework.TypeInt, "The credential's derivation depth: 1 when taken straight from the session."),
		"steps_used":    required(framework.TypeInt, "Step credentials the session has obtained, this one included."),
		"steps_left":    required(framework.TypeInt, "Step credentials the session may still obtain."),
		"parent_id":     optional(framework.TypeString, "The parent credential's ID, for a credential derived from parent_token."),
	}
	r := okResponses(fields)
	r[http.StatusAccepted] = []framework.Response{{
		Description: `Accepted: the step lies outside the session's intent but inside its role, under on_out_of_intent=approval: ` +
			`it waits for an administrator's approval and nothing is issued. The raw body is Vault's envelope: data holds ` +
			`approval_id, session_id, state, scopes, audience, expires_at and detail; warnings says to retry once approved.`,
		MediaType: "application/json",
	}}
	return r
}

func reportResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"recorded":        required(framework.TypeBool, "Whether the use was recorded in the session's history; false once the session is closed (then it is only counted)."),
		"session_id":      required(framework.TypeString, "The session the credential belongs to."),
		"violation":       required(framework.TypeString, `"reported_misuse" when the use was a violation; empty otherwise.`),
		"session_state":   stateField(framework.TypeString, "The session's state after the report."),
		"session_revoked": optional(framework.TypeBool, "For a misuse: whether it revoked the session."),
		"detail":          optional(framework.TypeString, "For a misuse: what was wrong with the use."),
	})
}

func jwksResponses() map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusOK: {{
			Description: `OK: an RFC 7517 JWK Set as the raw response body, {"keys": [...]}, not wrapped in Vault's "data".`,
			MediaType:   "application/json",
			Fields: map[string]*framework.FieldSchema{
				"keys": required(framework.TypeSlice, `The public signing keys, each with kid, alg ("EdDSA" or "ES256"), use "sig" and its key parameters.`),
			},
		}},
	}
}

func revocationsResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"version":  required(framework.TypeInt64, "Grows with every change to the list."),
		"sessions": required(framework.TypeSlice, "The closed sessions whose credentials may be unexpired (with after, only those added since), each {id, revoked_at, exp, version} with times in Unix seconds and the list version that added it."),
		"epoch":    required(framework.TypeString, "The name of this history of the list (empty until its first change). A list that starts again, its storage wiped or restored, has another: a client that held another epoch gets complete=true and must replace its list, even at a lower version."),
		"complete": required(framework.TypeBool, "Whether sessions is the whole list: always without after; with after, false for a delta and true when after was a version this list never had."),
	})
}

func introspectResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"active":        required(framework.TypeBool, "Whether the credential is active now; every other field is present only when it is."),
		"iss":           optional(framework.TypeString, "The issuer."),
		"sub":           optional(framework.TypeString, `The session creator: its entity ID, or "hmac-sha256:<hex>" (a salted hash of its token accessor).`),
		"aud":           optional(framework.TypeString, "The audience."),
		"iat":           optional(framework.TypeInt64, "When the credential was issued, in Unix seconds."),
		"nbf":           optional(framework.TypeInt64, "When the credential's validity starts, in Unix seconds."),
		"exp":           optional(framework.TypeInt64, "When the credential expires, in Unix seconds."),
		"jti":           optional(framework.TypeString, "The credential's ID."),
		"txn":           optional(framework.TypeString, "The session's ID."),
		"scope":         optional(framework.TypeString, "The granted scopes, space-separated."),
		"dep":           optional(framework.TypeInt, "The derivation depth."),
		"tctx":          optional(framework.TypeMap, "The transaction context: {role, purpose}."),
		"rctx":          optional(framework.TypeMap, "The request context: {description, req_ip}, each when known."),
		"par":           optional(framework.TypeString, "The parent credential's ID, for a derived credential."),
		"act":           optional(framework.TypeMap, "The actor chain: {sub, act: {...}}, for a credential taken by a sub-agent."),
		"cnf":           optional(framework.TypeMap, "The proof-of-possession binding: {jkt}."),
		"session_state": optional(framework.TypeString, `The session's state ("active").`),
		"token_type":    optional(framework.TypeString, `The credential's "typ" header: "txntoken+jwt" or "at+jwt".`),
		"format":        optional(framework.TypeString, `The credential's format: "txn_token" or "access_token".`),
		"client_id":     optional(framework.TypeString, `For an access token: the OAuth client it was issued to (the session's creator).`),
	})
}

// ssfStreamResponses declares streamResponse, for the creation, the read
// and the update of a Shared Signals stream.
func ssfStreamResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"stream_id":                required(framework.TypeString, "The stream's ID."),
		"delivery_method":          required(framework.TypeString, `"push" (RFC 8935) or "poll" (RFC 8936).`),
		"endpoint_url":             optional(framework.TypeString, "For a push stream: the receiver's URL, where each SET is POSTed."),
		"authorization_header_set": required(framework.TypeBool, "Whether pushes carry an Authorization header (never shown)."),
		"audience":                 required(framework.TypeString, `The SETs' "aud" claim.`),
		"events_requested":         required(framework.TypeStringSlice, "The event types delivered (SSF's verification event always is)."),
		"created_at":               required(framework.TypeTime, "When the stream was created."),
		"pending":                  required(framework.TypeInt, "SETs not yet delivered (for a poll stream: not yet acknowledged)."),
		"dropped":                  required(framework.TypeInt64, "SETs dropped because the outbox held its bound of 10000."),
	})
}

func ssfVerifyResponses() map[int][]framework.Response {
	return okResponses(map[string]*framework.FieldSchema{
		"jti": required(framework.TypeString, "The jti of the verification SET queued."),
	})
}

func ssfPollResponses() map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusOK: {{
			Description: `OK: RFC 8936's answer as the raw response body, {"sets": {...}, "moreAvailable": bool}, not wrapped in Vault's "data".`,
			MediaType:   "application/json",
			Fields: map[string]*framework.FieldSchema{
				"sets":          required(framework.TypeMap, "The SETs served, by jti, each a compact JWS of type secevent+jwt."),
				"moreAvailable": required(framework.TypeBool, "Whether more SETs are pending than were served."),
			},
		}},
	}
}

func ssfConfigurationResponses() map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusOK: {{
			Description: `OK: SSF 1.0 transmitter metadata as the raw response body, not wrapped in Vault's "data".`,
			MediaType:   "application/json",
			Fields: map[string]*framework.FieldSchema{
				"spec_version":               required(framework.TypeString, `The SSF version, "1_0".`),
				"issuer":                     required(framework.TypeString, `The "iss" of every SET: the engine's issuer.`),
				"jwks_uri":                   required(framework.TypeString, "Where the keys that verify SETs are: this mount's jwks."),
				"delivery_methods_supported": required(framework.TypeStringSlice, "urn:ietf:rfc:8935 (push) and urn:ietf:rfc:8936 (poll)."),
				"configuration_endpoint":     required(framework.TypeString, "The streams, managed by an administrator with Vault's API: this mount's ssf/streams."),
			},
		}},
	}
}
