package trust

import (
	"cmp"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

// IntentRequest is what an agent declares when it starts a session. A nil
// slice or pointer means "omitted": scopes and audiences then take the
// role's whole set, budgets the role's values, ttl the role's session_ttl.
type IntentRequest struct {
	Scopes    []string
	Audiences []string
	TTL       *time.Duration
	MaxSteps  *int
	MaxDepth  *int
	MaxRate   *int
	Purpose   string
	Metadata  map[string]string
}

// Intent is a session's declared intent as granted, together with the
// role's rules that the session keeps for its whole life: a session copies
// them at start, so changing the role never widens a live session.
type Intent struct {
	Scopes    []string          `json:"scopes"`
	Audiences []string          `json:"audiences"`
	MaxSteps  int               `json:"max_steps"`
	MaxDepth  int               `json:"max_depth"`
	MaxRate   int               `json:"max_rate"`
	Purpose   string            `json:"purpose,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`

	// The role's rules, copied at session start.
	StepTTL        time.Duration `json:"step_ttl"`
	StepMaxTTL     time.Duration `json:"step_max_ttl"`
	SessionTTL     time.Duration `json:"session_ttl"`
	SessionMaxTTL  time.Duration `json:"session_max_ttl"`
	OnViolation    string        `json:"on_violation"`
	ViolationLimit int           `json:"violation_limit"`

	// Step-up approval (on_out_of_intent=approval): the role's ceiling,
	// what an approval may widen the intent to, and its settings.
	OnOutOfIntent       string        `json:"on_out_of_intent,omitempty"`
	Ceiling             *Ceiling      `json:"ceiling,omitempty"`
	MaxPendingApprovals int           `json:"max_pending_approvals,omitempty"`
	ApprovalTTL         time.Duration `json:"approval_ttl,omitempty"`
	DenialIsViolation   bool          `json:"denial_is_violation,omitempty"`
}

var metadataKeyRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)

// Negotiate checks a declared intent against the role named roleName and
// returns the intent as granted and the session's first lease TTL. A
// malformed field is a *FieldError; an intent wider than the role is a
// *WiderError naming what was wider. sessionMaxTTL is the engine-wide
// ceiling (0 for none).
func Negotiate(roleName string, role Role, req IntentRequest, sessionMaxTTL time.Duration) (Intent, time.Duration, error) {
	in := Intent{
		StepTTL:        role.StepTTL,
		StepMaxTTL:     role.StepMaxTTL,
		SessionTTL:     role.SessionTTL,
		SessionMaxTTL:  role.SessionMaxTTL,
		OnViolation:    role.OnViolation,
		ViolationLimit: role.ViolationLimit,
	}
	if role.OnOutOfIntent == OnOutOfIntentApproval {
		in.OnOutOfIntent = OnOutOfIntentApproval
		in.Ceiling = &Ceiling{Scopes: append([]string(nil), role.Scopes...), Audiences: append([]string(nil), role.Audiences...)}
		in.MaxPendingApprovals = cmp.Or(role.MaxPendingApprovals, DefaultMaxPendingApprovals)
		in.ApprovalTTL = cmp.Or(role.ApprovalTTL, DefaultApprovalTTL)
		in.DenialIsViolation = role.DenialIsViolation
	}
	if sessionMaxTTL > 0 && in.SessionMaxTTL > sessionMaxTTL {
		in.SessionMaxTTL = sessionMaxTTL
	}
	if in.SessionTTL > in.SessionMaxTTL {
		in.SessionTTL = in.SessionMaxTTL
	}
	if in.StepMaxTTL > in.SessionMaxTTL {
		in.StepMaxTTL = in.SessionMaxTTL
	}
	if in.StepTTL > in.StepMaxTTL {
		in.StepTTL = in.StepMaxTTL
	}

	// Purpose.
	purpose := strings.TrimSpace(req.Purpose)
	if err := validText("purpose", purpose, MaxPurposeLength); err != nil {
		return Intent{}, 0, err
	}
	if purpose == "" && role.RequirePurpose {
		return Intent{}, 0, fieldErr("purpose", "role %q requires a purpose: say what the session is for", roleName)
	}
	in.Purpose = purpose

	// Scopes: each inside some role scope.
	roleSet, err := scope.ParseSet(role.Scopes)
	if err != nil {
		return Intent{}, 0, fmt.Errorf("role %q holds an invalid scope: %w", roleName, err)
	}
	if req.Scopes == nil {
		in.Scopes = roleSet.Strings()
	} else {
		set, err := parseScopes("scopes", req.Scopes)
		if err != nil {
			return Intent{}, 0, err
		}
		if len(set) == 0 {
			return Intent{}, 0, fieldErr("scopes", "must not be empty; omit it to take the role's scopes")
		}
		if wide, ok := roleSet.Uncovered(set); ok {
			return Intent{}, 0, widerErr("scopes", "%s is wider than role %q allows%s", wide, roleName, witnessText(roleSet, wide))
		}
		in.Scopes = set.Strings()
	}

	// Audiences: a subset of the role's.
	if req.Audiences == nil {
		in.Audiences = append([]string(nil), role.Audiences...)
	} else {
		auds, err := normaliseAudiences("audiences", req.Audiences)
		if err != nil {
			return Intent{}, 0, err
		}
		if len(auds) == 0 {
			return Intent{}, 0, fieldErr("audiences", "must not be empty; omit it to take the role's audiences")
		}
		for _, a := range auds {
			if !contains(role.Audiences, a) {
				return Intent{}, 0, widerErr("audiences", "%q is not among role %q's audiences %v", scope.Clip(a), roleName, role.Audiences)
			}
		}
		in.Audiences = auds
	}

	// Budgets: at most the role's.
	var errB error
	in.MaxSteps, errB = budget("max_steps", req.MaxSteps, role.MaxSteps, roleName)
	if errB != nil {
		return Intent{}, 0, errB
	}
	in.MaxDepth, errB = budget("max_depth", req.MaxDepth, role.MaxDepth, roleName)
	if errB != nil {
		return Intent{}, 0, errB
	}
	in.MaxRate, errB = budget("max_rate", req.MaxRate, role.MaxRate, roleName)
	if errB != nil {
		return Intent{}, 0, errB
	}

	// TTL.
	ttl := in.SessionTTL
	if req.TTL != nil {
		ttl = *req.TTL
		if ttl <= 0 {
			return Intent{}, 0, fieldErr("ttl", "must be a positive duration")
		}
		if ttl > in.SessionMaxTTL {
			return Intent{}, 0, widerErr("ttl", "%s exceeds role %q's session_max_ttl %s", ttl, roleName, in.SessionMaxTTL)
		}
	}

	// Metadata.
	if len(req.Metadata) > MaxMetadataPairs {
		return Intent{}, 0, fieldErr("metadata", "at most %d pairs are allowed, got %d", MaxMetadataPairs, len(req.Metadata))
	}
	if len(req.Metadata) > 0 {
		keys := make([]string, 0, len(req.Metadata))
		for k := range req.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		in.Metadata = make(map[string]string, len(keys))
		for _, k := range keys {
			v := req.Metadata[k]
			if len(k) > MaxMetadataKey || !metadataKeyRE.MatchString(k) {
				return Intent{}, 0, fieldErr("metadata", "key %q must be 1 to %d letters, digits, '_', '.' or '-'", scope.Clip(k), MaxMetadataKey)
			}
			if err := validText("metadata", v, MaxMetadataValue); err != nil {
				return Intent{}, 0, fieldErr("metadata", "value of %q: %s", k, err.(*FieldError).Reason)
			}
			in.Metadata[k] = v
		}
	}
	return in, ttl, nil
}

func budget(field string, asked *int, roleMax int, roleName string) (int, error) {
	if asked == nil {
		return roleMax, nil
	}
	if *asked < 1 {
		return 0, fieldErr(field, "must be at least 1, got %d", *asked)
	}
	if *asked > roleMax {
		return 0, widerErr(field, "%d exceeds role %q's %s %d", *asked, roleName, field, roleMax)
	}
	return *asked, nil
}

// witnessText explains why inner is outside every member of outer with a
// concrete request, when the set has a single member to compare with.
func witnessText(outer scope.Set, inner scope.Scope) string {
	if len(outer) == 1 {
		if a, r, ok := scope.Witness(outer[0], inner); ok && a+":"+r != inner.String() {
			return fmt.Sprintf(" (e.g. %s on %s is allowed by %s but not by %s)", a, r, inner, outer[0])
		}
		return fmt.Sprintf(" (not inside %s)", outer[0])
	}
	return fmt.Sprintf(" (not inside any of %v)", outer.Strings())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
