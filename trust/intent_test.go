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

// validRole is testRole after Validate (scopes canonical).
func validRole(t *testing.T) Role {
	t.Helper()
	r := testRole()
	require.NoError(t, r.Validate(Limits{}))
	return r
}

func TestNegotiateOmittedFieldsTakeRole(t *testing.T) {
	r := validRole(t)
	in, ttl, err := Negotiate("web", r, IntentRequest{Purpose: "  deploy the web frontend \n"}, 0)
	require.NoError(t, err)

	assert.Equal(t, r.Scopes, in.Scopes)
	assert.Equal(t, r.Audiences, in.Audiences)
	assert.Equal(t, r.MaxSteps, in.MaxSteps)
	assert.Equal(t, r.MaxDepth, in.MaxDepth)
	assert.Equal(t, r.MaxRate, in.MaxRate)
	assert.Equal(t, r.SessionTTL, ttl, "the first lease is the role's session_ttl")
	assert.Equal(t, "deploy the web frontend", in.Purpose, "purpose trimmed")
	assert.Nil(t, in.Metadata)

	// The role's rules are copied.
	assert.Equal(t, r.StepTTL, in.StepTTL)
	assert.Equal(t, r.StepMaxTTL, in.StepMaxTTL)
	assert.Equal(t, r.SessionTTL, in.SessionTTL)
	assert.Equal(t, r.SessionMaxTTL, in.SessionMaxTTL)
	assert.Equal(t, r.OnViolation, in.OnViolation)
	assert.Equal(t, r.ViolationLimit, in.ViolationLimit)
}

func TestNegotiateOmittedScopesAreCanonical(t *testing.T) {
	// Negotiate parses the role's scopes itself, so even a role stored
	// before canonicalisation yields a canonical intent.
	r := testRole() // not validated: "read,list:..."
	in, _, err := Negotiate("web", r, IntentRequest{Purpose: "p"}, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"list,read:secrets/web/*", "deploy:k8s/+/deployments/web"}, in.Scopes)
}

func TestNegotiateNarrowerIntentGranted(t *testing.T) {
	r := validRole(t)
	in, ttl, err := Negotiate("web", r, IntentRequest{
		Scopes:    []string{"read,read:secrets/web/tls", "deploy:k8s/prod/deployments/web", "read:secrets/web/tls"},
		Audiences: []string{"k8s", "k8s"},
		TTL:       ptr(30 * time.Minute),
		MaxSteps:  ptr(10),
		MaxDepth:  ptr(2),
		MaxRate:   ptr(5),
		Purpose:   "roll out v2",
		Metadata:  map[string]string{"ticket": "OPS-12", "agent.version": "1.2.3"},
	}, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"read:secrets/web/tls", "deploy:k8s/prod/deployments/web"}, in.Scopes, "canonical, deduplicated")
	assert.Equal(t, []string{"k8s"}, in.Audiences, "deduplicated")
	assert.Equal(t, 30*time.Minute, ttl)
	assert.Equal(t, 10, in.MaxSteps)
	assert.Equal(t, 2, in.MaxDepth)
	assert.Equal(t, 5, in.MaxRate)
	assert.Equal(t, "roll out v2", in.Purpose)
	assert.Equal(t, map[string]string{"ticket": "OPS-12", "agent.version": "1.2.3"}, in.Metadata)
	// The rules stay the role's whatever the request.
	assert.Equal(t, r.SessionMaxTTL, in.SessionMaxTTL)
	assert.Equal(t, r.StepMaxTTL, in.StepMaxTTL)
}

func TestNegotiateEqualToRoleGranted(t *testing.T) {
	r := validRole(t)
	in, ttl, err := Negotiate("web", r, IntentRequest{
		Scopes:    r.Scopes,
		Audiences: r.Audiences,
		TTL:       ptr(r.SessionMaxTTL),
		MaxSteps:  ptr(r.MaxSteps),
		MaxDepth:  ptr(r.MaxDepth),
		MaxRate:   ptr(r.MaxRate),
		Purpose:   "p",
	}, 0)
	require.NoError(t, err)
	assert.Equal(t, r.Scopes, in.Scopes)
	assert.Equal(t, r.SessionMaxTTL, ttl)
	assert.Equal(t, r.MaxSteps, in.MaxSteps)
}

func TestNegotiateWiderIsRefused(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Role)
		req    IntentRequest
		field  string
		parts  []string
	}{
		{
			name:   "scope outside the only role scope, with a witness",
			mutate: func(r *Role) { r.Scopes = []string{"read,list:secrets/web/*"} },
			req:    IntentRequest{Scopes: []string{"read:secrets/web/tls", "read:secrets/*"}},
			field:  "scopes",
			parts: []string{
				`read:secrets/* is wider than role "web" allows`,
				`(e.g. read on secrets/x is allowed by read:secrets/* but not by list,read:secrets/web/*)`,
			},
		},
		{
			name:   "action outside the only role scope, with a witness",
			mutate: func(r *Role) { r.Scopes = []string{"read,list:secrets/web/*"} },
			req:    IntentRequest{Scopes: []string{"write:secrets/web/tls"}},
			field:  "scopes",
			parts:  []string{"write:secrets/web/tls is wider", "(not inside list,read:secrets/web/*)"},
		},
		{
			name:  "scope outside every role scope",
			req:   IntentRequest{Scopes: []string{"deploy:k8s/+/deployments/*"}},
			field: "scopes",
			parts: []string{"deploy:k8s/+/deployments/* is wider", "not inside any of [list,read:secrets/web/* deploy:k8s/+/deployments/web]"},
		},
		{
			name:  "scope covered only by the union of role scopes",
			req:   IntentRequest{Scopes: []string{"*:secrets/web/tls"}},
			field: "scopes",
			parts: []string{"*:secrets/web/tls is wider"},
		},
		{
			name:  "audience not in the role",
			req:   IntentRequest{Audiences: []string{"vault", "payments"}},
			field: "audiences",
			parts: []string{`"payments" is not among role "web"'s audiences [vault k8s]`},
		},
		{
			name:  "max_steps above the role's",
			req:   IntentRequest{MaxSteps: ptr(101)},
			field: "max_steps",
			parts: []string{`101 exceeds role "web"'s max_steps 100`},
		},
		{
			name:  "max_depth above the role's",
			req:   IntentRequest{MaxDepth: ptr(4)},
			field: "max_depth",
			parts: []string{`4 exceeds role "web"'s max_depth 3`},
		},
		{
			name:  "max_rate above the role's",
			req:   IntentRequest{MaxRate: ptr(61)},
			field: "max_rate",
			parts: []string{`61 exceeds role "web"'s max_rate 60`},
		},
		{
			name:  "ttl above session_max_ttl",
			req:   IntentRequest{TTL: ptr(time.Hour + time.Second)},
			field: "ttl",
			parts: []string{`1h0m1s exceeds role "web"'s session_max_ttl 1h0m0s`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testRole()
			if c.mutate != nil {
				c.mutate(&r)
			}
			require.NoError(t, r.Validate(Limits{}))
			c.req.Purpose = "p"
			in, ttl, err := Negotiate("web", r, c.req, 0)
			requireWiderError(t, err, c.field)
			for _, p := range c.parts {
				assert.Contains(t, err.Error(), p)
			}
			assert.Zero(t, in, "nothing is granted")
			assert.Zero(t, ttl)
		})
	}
}

func TestNegotiateMalformedIsFieldError(t *testing.T) {
	tooManyPairs := map[string]string{}
	for i := 0; i <= MaxMetadataPairs; i++ {
		tooManyPairs[fmt.Sprintf("k%d", i)] = "v"
	}
	cases := []struct {
		name  string
		req   IntentRequest
		field string
		part  string
	}{
		{"max_steps zero", IntentRequest{MaxSteps: ptr(0)}, "max_steps", "at least 1, got 0"},
		{"max_steps negative", IntentRequest{MaxSteps: ptr(-5)}, "max_steps", "got -5"},
		{"max_depth zero", IntentRequest{MaxDepth: ptr(0)}, "max_depth", "at least 1"},
		{"max_rate zero", IntentRequest{MaxRate: ptr(0)}, "max_rate", "at least 1"},
		{"scopes empty slice", IntentRequest{Scopes: []string{}}, "scopes", "must not be empty"},
		{"scope bad syntax", IntentRequest{Scopes: []string{"read:secrets//web"}}, "scopes", "empty path segment"},
		{"scope empty string", IntentRequest{Scopes: []string{""}}, "scopes", "empty scope"},
		{"too many scopes", IntentRequest{Scopes: nScopes(scope.MaxSetSize + 1)}, "scopes", "at most 64"},
		{"audiences empty slice", IntentRequest{Audiences: []string{}}, "audiences", "must not be empty"},
		{"audience with a space", IntentRequest{Audiences: []string{"va ult"}}, "audiences", "spaces"},
		{"audience empty string", IntentRequest{Audiences: []string{""}}, "audiences", "must not be empty"},
		{"too many audiences", IntentRequest{Audiences: nStrings("a", MaxAudiences+1)}, "audiences", "at most 64"},
		{"ttl zero", IntentRequest{TTL: ptr(time.Duration(0))}, "ttl", "positive"},
		{"ttl negative", IntentRequest{TTL: ptr(-time.Minute)}, "ttl", "positive"},
		{"purpose too long", IntentRequest{Purpose: strings.Repeat("p", MaxPurposeLength+1)}, "purpose", "at most 1024 bytes, got 1025"},
		{"purpose with NUL", IntentRequest{Purpose: "deploy\x00web"}, "purpose", "control characters"},
		{"purpose with ESC", IntentRequest{Purpose: "deploy \x1b[31mweb"}, "purpose", "control characters"},
		{"purpose with DEL", IntentRequest{Purpose: "deploy\x7f"}, "purpose", "control characters"},
		{"purpose not UTF-8", IntentRequest{Purpose: "deploy \xff"}, "purpose", "UTF-8"},
		{"metadata too many pairs", IntentRequest{Metadata: tooManyPairs}, "metadata", "at most 16 pairs are allowed, got 17"},
		{"metadata key with a space", IntentRequest{Metadata: map[string]string{"a key": "v"}}, "metadata", `key "a key"`},
		{"metadata empty key", IntentRequest{Metadata: map[string]string{"": "v"}}, "metadata", `key ""`},
		{"metadata non-ASCII key", IntentRequest{Metadata: map[string]string{"clé": "v"}}, "metadata", "key"},
		{"metadata key too long", IntentRequest{Metadata: map[string]string{strings.Repeat("k", MaxMetadataKey+1): "v"}}, "metadata", "1 to 128"},
		{"metadata value too long", IntentRequest{Metadata: map[string]string{"k": strings.Repeat("v", MaxMetadataValue+1)}}, "metadata", `value of "k": must be at most 512 bytes`},
		{"metadata value with control", IntentRequest{Metadata: map[string]string{"k": "a\x07b"}}, "metadata", `value of "k": must not contain control characters`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := validRole(t)
			if c.req.Purpose == "" {
				c.req.Purpose = "p"
			}
			in, ttl, err := Negotiate("web", r, c.req, 0)
			requireFieldError(t, err, c.field)
			assert.Contains(t, err.Error(), c.part)
			assert.Zero(t, in)
			assert.Zero(t, ttl)
		})
	}
}

func TestNegotiateBoundedFieldsAtTheirLimits(t *testing.T) {
	pairs := map[string]string{}
	for i := 0; i < MaxMetadataPairs; i++ {
		pairs[fmt.Sprintf("k%d", i)] = strings.Repeat("v", MaxMetadataValue)
	}
	pairs[strings.Repeat("k", MaxMetadataKey)] = "multi\nline\ttext"
	delete(pairs, "k0")
	r := validRole(t)
	in, _, err := Negotiate("web", r, IntentRequest{
		// 1024 bytes with inner newline and tab, padded with spaces that
		// are trimmed before the length is checked.
		Purpose:  "   " + strings.Repeat("p", MaxPurposeLength-4) + "\n\tpp" + "   ",
		Metadata: pairs,
	}, 0)
	require.NoError(t, err)
	assert.Len(t, in.Purpose, MaxPurposeLength)
	assert.Equal(t, pairs, in.Metadata)
}

func TestNegotiateRequirePurpose(t *testing.T) {
	r := validRole(t)
	require.True(t, r.RequirePurpose)
	for _, p := range []string{"", "   ", "\n\t "} {
		_, _, err := Negotiate("web", r, IntentRequest{Purpose: p}, 0)
		requireFieldError(t, err, "purpose")
		assert.Contains(t, err.Error(), `role "web" requires a purpose`)
	}

	r.RequirePurpose = false
	in, _, err := Negotiate("web", r, IntentRequest{Purpose: "  "}, 0)
	require.NoError(t, err)
	assert.Equal(t, "", in.Purpose)
}

func TestNegotiateEngineSessionMaxTTLClamps(t *testing.T) {
	r := validRole(t) // session 15m/1h, step 60s/5m

	// No engine ceiling.
	in, ttl, err := Negotiate("web", r, IntentRequest{Purpose: "p"}, 0)
	require.NoError(t, err)
	assert.Equal(t, time.Hour, in.SessionMaxTTL)
	assert.Equal(t, 15*time.Minute, ttl)

	// The engine ceiling lowers session_max_ttl; the rest fits.
	in, ttl, err = Negotiate("web", r, IntentRequest{Purpose: "p"}, 30*time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 30*time.Minute, in.SessionMaxTTL)
	assert.Equal(t, 15*time.Minute, in.SessionTTL)
	assert.Equal(t, 15*time.Minute, ttl)
	_, _, err = Negotiate("web", r, IntentRequest{Purpose: "p", TTL: ptr(45 * time.Minute)}, 30*time.Minute)
	requireWiderError(t, err, "ttl")
	assert.Contains(t, err.Error(), "30m0s")
	_, ttl, err = Negotiate("web", r, IntentRequest{Purpose: "p", TTL: ptr(30 * time.Minute)}, 30*time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 30*time.Minute, ttl)

	// Lower than session_ttl: the default lease follows.
	in, ttl, err = Negotiate("web", r, IntentRequest{Purpose: "p"}, 10*time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Minute, in.SessionMaxTTL)
	assert.Equal(t, 10*time.Minute, in.SessionTTL)
	assert.Equal(t, 10*time.Minute, ttl)
	assert.Equal(t, 5*time.Minute, in.StepMaxTTL)

	// Lower than step_max_ttl: a credential cannot outlive its session.
	in, _, err = Negotiate("web", r, IntentRequest{Purpose: "p"}, 2*time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, in.StepMaxTTL)
	assert.Equal(t, 60*time.Second, in.StepTTL)

	// Lower than step_ttl.
	in, ttl, err = Negotiate("web", r, IntentRequest{Purpose: "p"}, 30*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, in.SessionMaxTTL)
	assert.Equal(t, 30*time.Second, in.StepMaxTTL)
	assert.Equal(t, 30*time.Second, in.StepTTL)
	assert.Equal(t, 30*time.Second, ttl)

	// Above the role's: no effect.
	in, _, err = Negotiate("web", r, IntentRequest{Purpose: "p"}, 24*time.Hour)
	require.NoError(t, err)
	assert.Equal(t, time.Hour, in.SessionMaxTTL)

	// The session's renewal ceiling follows the clamped value.
	in, ttl, err = Negotiate("web", r, IntentRequest{Purpose: "p"}, 20*time.Minute)
	require.NoError(t, err)
	s := NewSession("s", "web", creator, in, ttl, t0)
	assert.Equal(t, t0.Add(20*time.Minute), s.MaxExpiresAt)
}

func TestNegotiateIntentIsIndependentOfRoleAndRequest(t *testing.T) {
	r := validRole(t)
	in, ttl, err := Negotiate("web", r, IntentRequest{Purpose: "p"}, 0)
	require.NoError(t, err)
	snapshot := cloneIntent(in)

	// Widen the role every way, in place.
	r.Scopes[0] = "*:*"
	r.Scopes = append(r.Scopes, "*:more")
	r.Audiences[0] = "anyone"
	r.Audiences = append(r.Audiences, "more")
	r.MaxSteps, r.MaxDepth, r.MaxRate = 1000, 10, 1000
	r.StepTTL, r.StepMaxTTL, r.SessionTTL, r.SessionMaxTTL = time.Hour, time.Hour, 10*time.Hour, 10*time.Hour
	r.OnViolation, r.ViolationLimit = OnViolationDeny, 1000
	assert.Equal(t, snapshot, in, "changing the role after Negotiate changes nothing in the intent")

	// A session started from the intent keeps refusing what the role now
	// allows.
	s := NewSession("s", "web", creator, in, ttl, t0)
	_, err = s.CheckStep(StepRequest{Caller: creator, Scopes: []string{"write:secrets/web/tls"}, Audience: "vault"}, t0)
	requireViolation(t, err, ScopeOutsideIntent, t0)
	_, err = s.CheckStep(StepRequest{Caller: creator, Scopes: []string{"read:secrets/web/tls"}, Audience: "anyone"}, t0)
	requireViolation(t, err, AudienceOutsideIntent, t0)

	// The same holds for the request's slices and map.
	r = validRole(t)
	req := IntentRequest{
		Purpose:   "p",
		Scopes:    []string{"read:secrets/web/tls"},
		Audiences: []string{"vault"},
		Metadata:  map[string]string{"ticket": "1"},
	}
	in, _, err = Negotiate("web", r, req, 0)
	require.NoError(t, err)
	snapshot = cloneIntent(in)
	req.Scopes[0] = "*:*"
	req.Audiences[0] = "anyone"
	req.Metadata["ticket"] = "2"
	req.Metadata["extra"] = "x"
	assert.Equal(t, snapshot, in, "changing the request after Negotiate changes nothing in the intent")
}

func cloneIntent(in Intent) Intent {
	out := in
	out.Scopes = append([]string(nil), in.Scopes...)
	out.Audiences = append([]string(nil), in.Audiences...)
	if in.Metadata != nil {
		out.Metadata = make(map[string]string, len(in.Metadata))
		for k, v := range in.Metadata {
			out.Metadata[k] = v
		}
	}
	return out
}

func TestNegotiateInvalidRoleIsNotBlamedOnTheRequest(t *testing.T) {
	r := testRole()
	r.Scopes = []string{"read:a//b"} // a stored role that no longer parses
	_, _, err := Negotiate("web", r, IntentRequest{Purpose: "p"}, 0)
	require.Error(t, err)
	var fe *FieldError
	var we *WiderError
	assert.False(t, asFieldError(err, &fe))
	assert.False(t, asWiderError(err, &we))
	assert.Contains(t, err.Error(), `role "web" holds an invalid scope`)
}
