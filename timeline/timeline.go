// Package timeline records what happened in an agent session, decision by
// decision, and draws the access path the agent actually took: its step
// credentials as a tree (root credentials taken from the session, children
// derived from them), as Graphviz DOT and as Mermaid text.
//
// It has no Vault import. The engine stores a session's events in
// compressed chunks of consecutive events; reviewers read them back in
// order (sessions/<id>/events) or as a graph (sessions/<id>/graph). These timeline events are not Vault events: what
// the engine sends through Vault's event system are notifications.
package timeline

import "time"

// EventKind names the kind of a timeline event (not to be confused with
// trust.ViolationKind, which names a violation).
type EventKind string

// The kinds of event in a session's timeline.
const (
	// SessionStart: the session was granted its intent.
	SessionStart EventKind = "session_start"
	// CredentialIssued: a step credential was issued.
	CredentialIssued EventKind = "credential_issued"
	// RequestRefused: a request was refused without being a violation
	// (malformed, or on a session that is no longer active).
	RequestRefused EventKind = "request_refused"
	// Violation: a request exceeded the intent.
	Violation EventKind = "violation"
	// Report: a resource server reported a use of a credential.
	Report EventKind = "report"
	// SessionRenew: the session's lease was renewed.
	SessionRenew EventKind = "session_renew"
	// SessionEnd: the agent ended the session.
	SessionEnd EventKind = "session_end"
	// SessionRevoke: the session was revoked; Detail says why.
	SessionRevoke EventKind = "session_revoke"
	// SessionExpire: the session's lease ran out.
	SessionExpire EventKind = "session_expire"
	// ApprovalRequested: a step outside the intent but inside the role
	// waits for a person (on_out_of_intent=approval); Approval names it.
	ApprovalRequested EventKind = "approval_requested"
	// ApprovalApproved: a person approved it; Actor is who, Detail the
	// comment, Expires until when the intent is widened.
	ApprovalApproved EventKind = "approval_approved"
	// ApprovalDenied: a person denied it; Actor is who, Detail the reason.
	ApprovalDenied EventKind = "approval_denied"
	// ApprovalExpired: nobody decided it in time.
	ApprovalExpired EventKind = "approval_expired"
	// StepsUnaccounted: after a restart or a change of active node, Steps
	// steps that were reserved have no credential_issued event: either
	// their credentials were issued and their events, kept back to be
	// written in a batch, were lost with the node, or they were never
	// issued. Vault's audit log has every issuance.
	StepsUnaccounted EventKind = "steps_unaccounted"
)

// Event is one decision in a session's life. Fields that do not apply to
// a kind are empty.
type Event struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Kind   EventKind `json:"kind"`
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
	// Description says what the step is for, as the agent put it.
	Description string `json:"description,omitempty"`
	Actor       string `json:"actor,omitempty"`
	Expires     int64  `json:"expires,omitempty"`
	// Format is the credential's format when it is not the default
	// ("access_token").
	Format string `json:"format,omitempty"`
	// Approval is the approval an approval_* event is about.
	Approval string `json:"approval,omitempty"`

	// Steps is the number of steps a steps_unaccounted event is about.
	Steps int `json:"steps,omitempty"`

	// Violation is the violation kind, for Violation events.
	Violation string `json:"violation,omitempty"`
	// Action and Resource are what a Report saw.
	Action   string `json:"action,omitempty"`
	Resource string `json:"resource,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
}
