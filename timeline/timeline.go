// Package timeline records what happened in an agent session, decision by
// decision, and draws the access path the agent actually took: its step
// credentials as a tree (root credentials taken from the session, children
// derived from them), as Graphviz DOT and as Mermaid text.
//
// It has no Vault import. The engine stores events one by one; reviewers
// read them back in order (sessions/<id>/events) or as a graph
// (sessions/<id>/graph).
package timeline

import "time"

// Kind names an event.
type Kind string

// The kinds of event in a session's timeline.
const (
	// SessionStart: the session was granted its intent.
	SessionStart Kind = "session_start"
	// CredentialIssued: a step credential was issued.
	CredentialIssued Kind = "credential_issued"
	// RequestRefused: a request was refused without being a violation
	// (malformed, or on a session that is no longer active).
	RequestRefused Kind = "request_refused"
	// Violation: a request exceeded the intent.
	Violation Kind = "violation"
	// Report: a resource server reported a use of a credential.
	Report Kind = "report"
	// SessionRenew: the session's lease was renewed.
	SessionRenew Kind = "session_renew"
	// SessionEnd: the agent ended the session.
	SessionEnd Kind = "session_end"
	// SessionRevoke: the session was killed; Detail says why.
	SessionRevoke Kind = "session_revoke"
	// SessionExpire: the session's lease ran out.
	SessionExpire Kind = "session_expire"
)

// Event is one decision in a session's life. Fields that do not apply to
// a kind are empty.
type Event struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Kind   Kind      `json:"kind"`
	Detail string    `json:"detail,omitempty"`
	// Source is the remote address of the request, when known.
	Source string `json:"source,omitempty"`

	// The credential involved: the one issued, reported, or named as a
	// parent by a refused request.
	Credential string   `json:"credential,omitempty"`
	Parent     string   `json:"parent,omitempty"`
	Scopes     []string `json:"scopes,omitempty"`
	Audience   string   `json:"audience,omitempty"`
	Depth      int      `json:"depth,omitempty"`
	Step       string   `json:"step,omitempty"`
	Actor      string   `json:"actor,omitempty"`
	Expires    int64    `json:"expires,omitempty"`

	// Violation is the violation kind, for Violation events.
	Violation string `json:"violation,omitempty"`
	// Action and Resource are what a Report saw.
	Action   string `json:"action,omitempty"`
	Resource string `json:"resource,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
}
