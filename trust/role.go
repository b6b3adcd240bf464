package trust

import (
	"cmp"
	"errors"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

// What a role does when a session commits a violation.
const (
	// OnViolationRevoke revokes the session at its first violation.
	OnViolationRevoke = "revoke"
	// OnViolationDeny refuses the request and revokes the session once its
	// violations exceed the role's violation limit.
	OnViolationDeny = "deny"
)

// Bounds on role and intent fields.
const (
	MaxAudiences         = 64
	MaxAudienceLength    = 256
	MaxPurposeLength     = 1024
	MaxDescriptionLength = 256
	MaxActorLength       = 256
	MaxMetadataPairs     = 16
	MaxMetadataKey       = 128
	MaxMetadataValue     = 512

	MaxStepsCeiling       = 1_000_000
	MaxDepthCeiling       = 16
	MaxRateCeiling        = 100_000
	MaxSessionsCeiling    = 1_000_000
	ViolationLimitCeiling = 1000
)

// Role is the hard ceiling for every session started under it.
type Role struct {
	Scopes         []string      `json:"scopes"`
	Audiences      []string      `json:"audiences"`
	SessionTTL     time.Duration `json:"session_ttl"`
	SessionMaxTTL  time.Duration `json:"session_max_ttl"`
	StepTTL        time.Duration `json:"step_ttl"`
	StepMaxTTL     time.Duration `json:"step_max_ttl"`
	MaxSteps       int           `json:"max_steps"`
	MaxDepth       int           `json:"max_depth"`
	MaxRate        int           `json:"max_rate"`
	MaxSessions    int           `json:"max_sessions"`
	OnViolation    string        `json:"on_violation"`
	ViolationLimit int           `json:"violation_limit"`
	RequirePurpose bool          `json:"require_purpose"`
	// OnOutOfIntent is what a step outside the session's intent but
	// inside the role does: "violation" (also the empty value, for roles
	// stored before it existed) or "approval".
	OnOutOfIntent       string        `json:"on_out_of_intent,omitempty"`
	MaxPendingApprovals int           `json:"max_pending_approvals,omitempty"`
	ApprovalTTL         time.Duration `json:"approval_ttl,omitempty"`
	DenialIsViolation   bool          `json:"denial_is_violation,omitempty"`
}

// DefaultRole returns a role with every optional field at its default.
func DefaultRole() Role {
	return Role{
		SessionTTL:          15 * time.Minute,
		SessionMaxTTL:       time.Hour,
		StepTTL:             60 * time.Second,
		StepMaxTTL:          5 * time.Minute,
		MaxSteps:            100,
		MaxDepth:            3,
		MaxRate:             60,
		MaxSessions:         0,
		OnViolation:         OnViolationRevoke,
		ViolationLimit:      3,
		RequirePurpose:      true,
		OnOutOfIntent:       OnOutOfIntentViolation,
		MaxPendingApprovals: DefaultMaxPendingApprovals,
		ApprovalTTL:         DefaultApprovalTTL,
	}
}

// Limits are the engine-wide ceilings a role must stay within.
type Limits struct {
	SessionMaxTTL time.Duration
	StepMaxTTL    time.Duration
}

// Within returns the role with its TTLs lowered to the engine's limits,
// which may have been lowered since the role was written: the role as it
// applies now.
func (r Role) Within(l Limits) Role {
	if l.SessionMaxTTL > 0 {
		r.SessionMaxTTL = min(r.SessionMaxTTL, l.SessionMaxTTL)
		r.SessionTTL = min(r.SessionTTL, r.SessionMaxTTL)
	}
	if l.StepMaxTTL > 0 {
		r.StepMaxTTL = min(r.StepMaxTTL, l.StepMaxTTL)
	}
	r.StepMaxTTL = min(r.StepMaxTTL, r.SessionMaxTTL)
	r.StepTTL = min(r.StepTTL, r.StepMaxTTL)
	return r
}

// Validate checks every field of the role against its own rules and the
// engine's limits, and returns a *FieldError naming the first bad field.
// On success the role's scopes are in canonical form.
func (r *Role) Validate(limits Limits) error {
	set, err := parseScopes("scopes", r.Scopes)
	if err != nil {
		return err
	}
	if len(set) == 0 {
		return fieldErr("scopes", "at least one scope is required")
	}
	r.Scopes = set.Strings()

	if len(r.Audiences) == 0 {
		return fieldErr("audiences", "at least one audience is required")
	}
	auds, err := normaliseAudiences("audiences", r.Audiences)
	if err != nil {
		return err
	}
	r.Audiences = auds

	if r.SessionTTL <= 0 {
		return fieldErr("session_ttl", "must be a positive duration")
	}
	if r.SessionMaxTTL <= 0 {
		return fieldErr("session_max_ttl", "must be a positive duration")
	}
	if r.SessionTTL > r.SessionMaxTTL {
		return fieldErr("session_ttl", "%s exceeds session_max_ttl %s", r.SessionTTL, r.SessionMaxTTL)
	}
	if limits.SessionMaxTTL > 0 && r.SessionMaxTTL > limits.SessionMaxTTL {
		return fieldErr("session_max_ttl", "%s exceeds the engine's session_max_ttl %s (see config)", r.SessionMaxTTL, limits.SessionMaxTTL)
	}
	if r.StepTTL <= 0 {
		return fieldErr("step_ttl", "must be a positive duration")
	}
	if r.StepMaxTTL <= 0 {
		return fieldErr("step_max_ttl", "must be a positive duration")
	}
	if r.StepTTL > r.StepMaxTTL {
		return fieldErr("step_ttl", "%s exceeds step_max_ttl %s", r.StepTTL, r.StepMaxTTL)
	}
	if r.StepMaxTTL > r.SessionMaxTTL {
		return fieldErr("step_max_ttl", "%s exceeds session_max_ttl %s; a step credential cannot outlive its session", r.StepMaxTTL, r.SessionMaxTTL)
	}
	if limits.StepMaxTTL > 0 && r.StepMaxTTL > limits.StepMaxTTL {
		return fieldErr("step_max_ttl", "%s exceeds the engine's step_max_ttl %s (see config)", r.StepMaxTTL, limits.StepMaxTTL)
	}
	if err := inRange("max_steps", r.MaxSteps, 1, MaxStepsCeiling); err != nil {
		return err
	}
	if err := inRange("max_depth", r.MaxDepth, 1, MaxDepthCeiling); err != nil {
		return err
	}
	if err := inRange("max_rate", r.MaxRate, 1, MaxRateCeiling); err != nil {
		return err
	}
	if err := inRange("max_sessions", r.MaxSessions, 0, MaxSessionsCeiling); err != nil {
		return err
	}
	if r.OnViolation != OnViolationRevoke && r.OnViolation != OnViolationDeny {
		return fieldErr("on_violation", "%q is not one of %q or %q", scope.Clip(r.OnViolation), OnViolationRevoke, OnViolationDeny)
	}
	if err := inRange("violation_limit", r.ViolationLimit, 0, ViolationLimitCeiling); err != nil {
		return err
	}
	if r.OnOutOfIntent != "" && r.OnOutOfIntent != OnOutOfIntentViolation && r.OnOutOfIntent != OnOutOfIntentApproval {
		return fieldErr("on_out_of_intent", "%q is not one of %q or %q", scope.Clip(r.OnOutOfIntent), OnOutOfIntentViolation, OnOutOfIntentApproval)
	}
	if err := inRange("max_pending_approvals", cmp.Or(r.MaxPendingApprovals, DefaultMaxPendingApprovals), 1, MaxPendingApprovalsCeiling); err != nil {
		return err
	}
	if r.ApprovalTTL < 0 || r.ApprovalTTL > MaxApprovalTTL || (r.ApprovalTTL > 0 && r.ApprovalTTL < time.Second) {
		return fieldErr("approval_ttl", "must be between 1s and %s, got %s", MaxApprovalTTL, r.ApprovalTTL)
	}
	return nil
}

func inRange(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fieldErr(field, "must be between %d and %d, got %d", lo, hi, v)
	}
	return nil
}

// parseScopes parses a list of scopes, naming the field and the element
// in errors.
func parseScopes(field string, in []string) (scope.Set, error) {
	if len(in) > scope.MaxSetSize {
		return nil, fieldErr(field, "at most %d scopes are allowed, got %d", scope.MaxSetSize, len(in))
	}
	set, err := scope.ParseSet(in)
	var se *scope.SetError
	switch {
	case errors.As(err, &se):
		return nil, fieldErr(field, "element %d: %v", se.Index, se.Err)
	case err != nil:
		return nil, fieldErr(field, "%v", err)
	}
	return set, nil
}

// normaliseAudiences validates audiences and removes duplicates, keeping
// their order.
func normaliseAudiences(field string, in []string) ([]string, error) {
	if len(in) > MaxAudiences {
		return nil, fieldErr(field, "at most %d audiences are allowed, got %d", MaxAudiences, len(in))
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for i, a := range in {
		a, err := CanonicalAudience(a)
		if err != nil {
			return nil, fieldErr(field, "audience %d: %s", i, err.Reason)
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, nil
}

func validAudience(a string) *FieldError {
	switch {
	case a == "":
		return fieldErr("audience", "must not be empty")
	case len(a) > MaxAudienceLength:
		return fieldErr("audience", "must be at most %d bytes", MaxAudienceLength)
	case !utf8.ValidString(a):
		return fieldErr("audience", "must be valid UTF-8")
	case strings.ContainsFunc(a, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fieldErr("audience", "%q must not contain spaces or control characters", scope.Clip(a))
	}
	return nil
}

// CanonicalAudience checks an audience and returns its canonical form, the
// one that is stored and compared (exact string equality). A plain name
// ("secrets-api") is its own canonical form. An absolute http or https URI,
// such as an MCP server's resource URI (RFC 8707, RFC 9728), is
// canonicalised as the MCP authorization specification describes: the
// scheme and host in lower case, the scheme's default port dropped; the
// path, including a trailing slash or its absence, is kept as written.
// An http(s) URI with a fragment or user information is refused. Other
// URIs (spiffe://...) are plain names.
func CanonicalAudience(a string) (string, *FieldError) {
	if err := validAudience(a); err != nil {
		return "", err
	}
	if !strings.Contains(a, "://") {
		return a, nil
	}
	u, err := url.Parse(a)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", fieldErr("audience", "%q is not an absolute URI", scope.Clip(a))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "https" && u.Scheme != "http" {
		// Another kind of URI (spiffe://, urn-like names...) is a plain
		// name, compared as written.
		return a, nil
	}
	if u.Fragment != "" || strings.Contains(a, "#") {
		return "", fieldErr("audience", "%q: a resource URI has no fragment (RFC 8707)", scope.Clip(a))
	}
	if u.User != nil {
		return "", fieldErr("audience", "%q: a resource URI has no user information", scope.Clip(a))
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	u.Host = host
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	return u.String(), nil
}

// validText checks free text such as a purpose or a step description: at
// most max bytes of UTF-8, with no control characters (C0, DEL or C1) but
// newlines and tabs. Its error is a *FieldError naming field.
func validText(field, s string, max int) error {
	return checkText(field, s, max, func(r rune) bool { return r == '\n' || r == '\t' })
}

// ValidLine checks a one-line value such as an issuer or a revocation
// reason as validText checks free text, without newlines or tabs either.
// Its error is a *FieldError naming field.
func ValidLine(field, s string, max int) error {
	return checkText(field, s, max, func(rune) bool { return false })
}

// checkText checks that s is at most max bytes of UTF-8 with no control
// characters but those allowed.
func checkText(field, s string, max int, allowed func(rune) bool) error {
	if len(s) > max {
		return fieldErr(field, "must be at most %d bytes, got %d", max, len(s))
	}
	if !utf8.ValidString(s) {
		return fieldErr(field, "must be valid UTF-8")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && !allowed(r) }) {
		return fieldErr(field, "must not contain control characters")
	}
	return nil
}
