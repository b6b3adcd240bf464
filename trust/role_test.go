package trust

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

func TestDefaultRoleMatchesSpec(t *testing.T) {
	r := DefaultRole()
	assert.Equal(t, 15*time.Minute, r.SessionTTL)
	assert.Equal(t, time.Hour, r.SessionMaxTTL)
	assert.Equal(t, 60*time.Second, r.StepTTL)
	assert.Equal(t, 5*time.Minute, r.StepMaxTTL)
	assert.Equal(t, 100, r.MaxSteps)
	assert.Equal(t, 3, r.MaxDepth)
	assert.Equal(t, 60, r.MaxRate)
	assert.Equal(t, 0, r.MaxSessions)
	assert.Equal(t, OnViolationRevoke, r.OnViolation)
	assert.Equal(t, 3, r.ViolationLimit)
	assert.True(t, r.RequirePurpose)
	assert.Nil(t, r.Scopes)
	assert.Nil(t, r.Audiences)
}

func TestRoleValidateDefaultsPass(t *testing.T) {
	r := testRole()
	want := testRole()
	want.Scopes = []string{"list,read:secrets/web/*", "deploy:k8s/+/deployments/web"} // actions sorted
	require.NoError(t, r.Validate(Limits{}))
	assert.Equal(t, want, r, "a valid role is left as it is, scopes in canonical form")

	// Engine limits that the defaults fit exactly.
	r = testRole()
	require.NoError(t, r.Validate(Limits{SessionMaxTTL: time.Hour, StepMaxTTL: 5 * time.Minute}))
}

func TestRoleValidateCanonicalises(t *testing.T) {
	r := testRole()
	r.Scopes = []string{"write,read,read:secrets/web/*", "read,write:secrets/web/*", "deploy:k8s/+/deployments/web", "list,*:x"}
	r.Audiences = []string{"vault", "k8s", "vault"}
	require.NoError(t, r.Validate(Limits{}))
	assert.Equal(t, []string{"read,write:secrets/web/*", "deploy:k8s/+/deployments/web", "*:x"}, r.Scopes)
	assert.Equal(t, []string{"vault", "k8s"}, r.Audiences, "duplicates dropped, order kept")
}

func TestRoleValidateBoundariesPass(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Role)
		limits Limits
	}{
		{"session_ttl equals session_max_ttl", func(r *Role) { r.SessionTTL = r.SessionMaxTTL }, Limits{}},
		{"step_ttl equals step_max_ttl", func(r *Role) { r.StepTTL = r.StepMaxTTL }, Limits{}},
		{"step_max_ttl equals session_max_ttl", func(r *Role) { r.StepMaxTTL, r.SessionMaxTTL, r.SessionTTL = time.Hour, time.Hour, time.Hour }, Limits{}},
		{"session_max_ttl equals the engine's", func(r *Role) {}, Limits{SessionMaxTTL: time.Hour}},
		{"step_max_ttl equals the engine's", func(r *Role) {}, Limits{StepMaxTTL: 5 * time.Minute}},
		{"max_steps 1", func(r *Role) { r.MaxSteps = 1 }, Limits{}},
		{"max_steps ceiling", func(r *Role) { r.MaxSteps = MaxStepsCeiling }, Limits{}},
		{"max_depth 1", func(r *Role) { r.MaxDepth = 1 }, Limits{}},
		{"max_depth ceiling", func(r *Role) { r.MaxDepth = MaxDepthCeiling }, Limits{}},
		{"max_rate 1", func(r *Role) { r.MaxRate = 1 }, Limits{}},
		{"max_rate ceiling", func(r *Role) { r.MaxRate = MaxRateCeiling }, Limits{}},
		{"max_sessions 0", func(r *Role) { r.MaxSessions = 0 }, Limits{}},
		{"max_sessions ceiling", func(r *Role) { r.MaxSessions = MaxSessionsCeiling }, Limits{}},
		{"on_violation deny", func(r *Role) { r.OnViolation = OnViolationDeny }, Limits{}},
		{"violation_limit 0", func(r *Role) { r.ViolationLimit = 0 }, Limits{}},
		{"violation_limit ceiling", func(r *Role) { r.ViolationLimit = ViolationLimitCeiling }, Limits{}},
		{"require_purpose false", func(r *Role) { r.RequirePurpose = false }, Limits{}},
		{"64 scopes", func(r *Role) { r.Scopes = nScopes(scope.MaxSetSize) }, Limits{}},
		{"64 audiences", func(r *Role) { r.Audiences = nStrings("aud", MaxAudiences) }, Limits{}},
		{"audience of 256 bytes", func(r *Role) { r.Audiences = []string{strings.Repeat("a", MaxAudienceLength)} }, Limits{}},
		{"audience that is a URL", func(r *Role) { r.Audiences = []string{"https://api.example.com/v1"} }, Limits{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testRole()
			c.mutate(&r)
			require.NoError(t, r.Validate(c.limits))
		})
	}
}

func nScopes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("read:secrets/s%d", i)
	}
	return out
}

func nStrings(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestRoleValidateFieldErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Role)
		limits Limits
		field  string
		reason string // a part of the message
	}{
		// scopes
		{"scopes missing", func(r *Role) { r.Scopes = nil }, Limits{}, "scopes", "at least one scope"},
		{"scopes empty", func(r *Role) { r.Scopes = []string{} }, Limits{}, "scopes", "at least one scope"},
		{"scope unparsable", func(r *Role) { r.Scopes = []string{"read:secrets/web/tls", "read:a//b"} }, Limits{}, "scopes", "element 1: scope \"read:a//b\": empty path segment"},
		{"scope without resource", func(r *Role) { r.Scopes = []string{"read"} }, Limits{}, "scopes", "missing ':'"},
		{"scope empty string", func(r *Role) { r.Scopes = []string{""} }, Limits{}, "scopes", "empty scope"},
		{"scope upper case action", func(r *Role) { r.Scopes = []string{"READ:x"} }, Limits{}, "scopes", "element 0: "},
		{"scope too long", func(r *Role) { r.Scopes = []string{"read:" + strings.Repeat("a", scope.MaxLength)} }, Limits{}, "scopes", "longer than"},
		{"too many scopes", func(r *Role) { r.Scopes = nScopes(scope.MaxSetSize + 1) }, Limits{}, "scopes", "at most 64 scopes"},

		// audiences
		{"audiences missing", func(r *Role) { r.Audiences = nil }, Limits{}, "audiences", "at least one audience"},
		{"audiences empty", func(r *Role) { r.Audiences = []string{} }, Limits{}, "audiences", "at least one audience"},
		{"audience empty string", func(r *Role) { r.Audiences = []string{"vault", ""} }, Limits{}, "audiences", "audience 1: must not be empty"},
		{"audience with a space", func(r *Role) { r.Audiences = []string{"my api"} }, Limits{}, "audiences", "spaces"},
		{"audience with a tab", func(r *Role) { r.Audiences = []string{"my\tapi"} }, Limits{}, "audiences", "spaces"},
		{"audience with a control character", func(r *Role) { r.Audiences = []string{"api\x00"} }, Limits{}, "audiences", "control"},
		{"audience with a no-break space", func(r *Role) { r.Audiences = []string{"my\u00a0api"} }, Limits{}, "audiences", "spaces"},
		{"audience not UTF-8", func(r *Role) { r.Audiences = []string{"api\xff"} }, Limits{}, "audiences", "UTF-8"},
		{"audience too long", func(r *Role) { r.Audiences = []string{strings.Repeat("a", MaxAudienceLength+1)} }, Limits{}, "audiences", "at most 256 bytes"},
		{"too many audiences", func(r *Role) { r.Audiences = nStrings("aud", MaxAudiences+1) }, Limits{}, "audiences", "at most 64 audiences"},

		// TTLs: each positive
		{"session_ttl zero", func(r *Role) { r.SessionTTL = 0 }, Limits{}, "session_ttl", "positive"},
		{"session_ttl negative", func(r *Role) { r.SessionTTL = -time.Minute }, Limits{}, "session_ttl", "positive"},
		{"session_max_ttl zero", func(r *Role) { r.SessionMaxTTL = 0 }, Limits{}, "session_max_ttl", "positive"},
		{"session_max_ttl negative", func(r *Role) { r.SessionMaxTTL = -time.Hour }, Limits{}, "session_max_ttl", "positive"},
		{"step_ttl zero", func(r *Role) { r.StepTTL = 0 }, Limits{}, "step_ttl", "positive"},
		{"step_ttl negative", func(r *Role) { r.StepTTL = -time.Second }, Limits{}, "step_ttl", "positive"},
		{"step_max_ttl zero", func(r *Role) { r.StepMaxTTL = 0 }, Limits{}, "step_max_ttl", "positive"},
		{"step_max_ttl negative", func(r *Role) { r.StepMaxTTL = -time.Second }, Limits{}, "step_max_ttl", "positive"},
		// TTLs: ordering
		{"session_ttl above session_max_ttl", func(r *Role) { r.SessionTTL = 2 * time.Hour }, Limits{}, "session_ttl", "exceeds session_max_ttl"},
		{"session_max_ttl above the engine's", func(r *Role) {}, Limits{SessionMaxTTL: 30 * time.Minute}, "session_max_ttl", "session_max_ttl"},
		{"step_ttl above step_max_ttl", func(r *Role) { r.StepTTL = 10 * time.Minute }, Limits{}, "step_ttl", "exceeds step_max_ttl"},
		{"step_max_ttl above session_max_ttl", func(r *Role) {
			r.SessionTTL, r.SessionMaxTTL, r.StepMaxTTL = time.Minute, 2*time.Minute, 3*time.Minute
		}, Limits{}, "step_max_ttl", "exceeds session_max_ttl"},
		{"step_max_ttl above the engine's", func(r *Role) {}, Limits{StepMaxTTL: time.Minute}, "step_max_ttl", "step_max_ttl"},

		// numbers
		{"max_steps zero", func(r *Role) { r.MaxSteps = 0 }, Limits{}, "max_steps", "between 1 and 1000000, got 0"},
		{"max_steps negative", func(r *Role) { r.MaxSteps = -1 }, Limits{}, "max_steps", "got -1"},
		{"max_steps above ceiling", func(r *Role) { r.MaxSteps = MaxStepsCeiling + 1 }, Limits{}, "max_steps", "got 1000001"},
		{"max_depth zero", func(r *Role) { r.MaxDepth = 0 }, Limits{}, "max_depth", "between 1 and 16"},
		{"max_depth above ceiling", func(r *Role) { r.MaxDepth = MaxDepthCeiling + 1 }, Limits{}, "max_depth", "got 17"},
		{"max_rate zero", func(r *Role) { r.MaxRate = 0 }, Limits{}, "max_rate", "between 1 and 100000"},
		{"max_rate above ceiling", func(r *Role) { r.MaxRate = MaxRateCeiling + 1 }, Limits{}, "max_rate", "got 100001"},
		{"max_sessions negative", func(r *Role) { r.MaxSessions = -1 }, Limits{}, "max_sessions", "between 0 and 1000000"},
		{"max_sessions above ceiling", func(r *Role) { r.MaxSessions = MaxSessionsCeiling + 1 }, Limits{}, "max_sessions", "got 1000001"},

		// on_violation and violation_limit
		{"on_violation empty", func(r *Role) { r.OnViolation = "" }, Limits{}, "on_violation", `"" is not one of "revoke" or "deny"`},
		{"on_violation unknown", func(r *Role) { r.OnViolation = "kill" }, Limits{}, "on_violation", `"kill"`},
		{"on_violation wrong case", func(r *Role) { r.OnViolation = "REVOKE" }, Limits{}, "on_violation", `"REVOKE"`},
		{"on_violation padded", func(r *Role) { r.OnViolation = " deny" }, Limits{}, "on_violation", `" deny"`},
		{"violation_limit negative", func(r *Role) { r.ViolationLimit = -1 }, Limits{}, "violation_limit", "between 0 and 1000"},
		{"violation_limit above ceiling", func(r *Role) { r.ViolationLimit = ViolationLimitCeiling + 1 }, Limits{}, "violation_limit", "got 1001"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testRole()
			c.mutate(&r)
			err := r.Validate(c.limits)
			requireFieldError(t, err, c.field)
			assert.Contains(t, err.Error(), c.reason)
		})
	}
}

func TestRoleValidateQuotesLongInputTruncated(t *testing.T) {
	r := testRole()
	r.OnViolation = strings.Repeat("x", 10_000)
	err := r.Validate(Limits{})
	requireFieldError(t, err, "on_violation")
	assert.Less(t, len(err.Error()), 200, "a huge value is not echoed in full")
	assert.Contains(t, err.Error(), "...")

	// Truncation never splits a multi-byte character.
	r.OnViolation = strings.Repeat("é", 100)
	err = r.Validate(Limits{})
	requireFieldError(t, err, "on_violation")
	assert.True(t, strings.Contains(err.Error(), strings.Repeat("é", 32)+"..."), err.Error())
}

// ValidLine refuses what free text refuses (C0, DEL and C1 control
// characters, invalid UTF-8, too many bytes) and newlines and tabs too.
func TestValidLine(t *testing.T) {
	require.NoError(t, ValidLine("reason", "compromised host ✓", 256))
	for name, s := range map[string]string{
		"NUL": "a\x00b", "ESC": "a\x1bb", "DEL": "a\x7fb", "NEL (C1)": "a\u0085b", "CSI (C1)": "a\u009bb",
		"newline": "a\nb", "tab": "a\tb", "invalid UTF-8": "a\xffb", "too long": strings.Repeat("a", 257),
	} {
		t.Run(name, func(t *testing.T) { requireFieldError(t, ValidLine("reason", s, 256), "reason") })
	}
	// Free text refuses the same control characters, but not newlines and tabs.
	require.NoError(t, validText("purpose", "line one\n\tline two", 256))
	requireFieldError(t, validText("purpose", "a\u0085b", 256), "purpose")
}

func TestCanonicalAudience(t *testing.T) {
	for in, want := range map[string]string{
		"secrets-api":                            "secrets-api",
		"https://tools.example.com/mcp":          "https://tools.example.com/mcp",
		"HTTPS://Tools.Example.COM/mcp":          "https://tools.example.com/mcp",
		"https://tools.example.com:443/mcp":      "https://tools.example.com/mcp",
		"http://127.0.0.1:80/mcp":                "http://127.0.0.1/mcp",
		"http://127.0.0.1:8400/mcp":              "http://127.0.0.1:8400/mcp",
		"https://tools.example.com/mcp/":         "https://tools.example.com/mcp/",
		"https://tools.example.com":              "https://tools.example.com",
		"https://[::1]:8443/mcp":                 "https://[::1]:8443/mcp",
		"https://tools.example.com/MCP?tenant=a": "https://tools.example.com/MCP?tenant=a",
		"spiffe://example.org/ns/prod/sa/api":    "spiffe://example.org/ns/prod/sa/api",
		"ftp://Files.example.com/x":              "ftp://Files.example.com/x",
	} {
		got, err := CanonicalAudience(in)
		require.Nil(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{
		"", "has space", "https://tools.example.com/mcp#frag",
		"https://user:pw@tools.example.com/mcp", "https:///nohost", "https://tools.example.com/mcp#",
	} {
		_, err := CanonicalAudience(bad)
		require.NotNil(t, err, bad)
		assert.Equal(t, "audience", err.Field, bad)
	}
}

// A role, an intent and a step compare URI audiences in canonical form.
func TestURIAudiencesAreComparedCanonically(t *testing.T) {
	role := DefaultRole()
	role.Scopes, role.Audiences = []string{"call:tools/*"}, []string{"HTTPS://Tools.Example.com:443/mcp"}
	r := &role
	require.NoError(t, r.Validate(Limits{}))
	assert.Equal(t, []string{"https://tools.example.com/mcp"}, r.Audiences)
	in, _, err := Negotiate("mcp", *r, IntentRequest{Audiences: []string{"https://TOOLS.example.com/mcp"}, Purpose: "p"}, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://tools.example.com/mcp"}, in.Audiences)
	s := NewSession("s", "mcp", "c", in, time.Minute, t0)
	g, err := s.CheckStep(StepRequest{Caller: "c", Scopes: []string{"call:tools/search"}, Audience: "https://tools.example.com:443/mcp"}, t0)
	require.NoError(t, err)
	assert.Equal(t, "https://tools.example.com/mcp", g.Audience)
	_, err = s.CheckStep(StepRequest{Caller: "c", Scopes: []string{"call:tools/search"}, Audience: "https://tools.example.com/mcp/"}, t0)
	var v *Violation
	require.ErrorAs(t, err, &v, "a trailing slash is another resource")
	assert.Equal(t, AudienceOutsideIntent, v.Kind)
}
