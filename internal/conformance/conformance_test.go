package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

const dir = "../../testdata/conformance"

func load(t *testing.T, name string, v any) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("%v (run go run ./internal/conformance/cmd)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
	return b
}

// What is checked in is what the generator writes: regenerate with
// `go run ./internal/conformance/cmd` after a deliberate change.
func TestVectorsAreUpToDate(t *testing.T) {
	files, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "tokens.json" {
			got, want = withoutRandomSignatures(t, got), withoutRandomSignatures(t, want)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/conformance/%s differs from what the generator writes: run go run ./internal/conformance/cmd", name)
		}
	}
}

// The verifiers' case-folding tables are what the generator writes.
func TestCaseFoldTablesAreUpToDate(t *testing.T) {
	for path, want := range CaseFoldSources() {
		got, err := os.ReadFile(filepath.Join("../..", path))
		if err != nil {
			t.Fatalf("%s: %v (run go run ./internal/conformance/cmd)", path, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the generator writes: run go run ./internal/conformance/cmd", path)
		}
	}
}

// withoutRandomSignatures blanks the signatures of randomized (ES256)
// cases, which differ at every generation.
func withoutRandomSignatures(t *testing.T, b []byte) []byte {
	var f TokenFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for i, c := range f.Cases {
		if c.RandomizedSignature {
			f.Cases[i].Token = c.Token[:strings.LastIndexByte(c.Token, '.')+1]
		}
	}
	out, _ := json.Marshal(f)
	return out
}

func TestScopeVectors(t *testing.T) {
	var f ScopeFile
	load(t, "scope.json", &f)
	for _, c := range f.Parse {
		sc, err := scope.Parse(c.Input)
		switch {
		case c.Valid && (err != nil || sc.String() != c.Canonical):
			t.Errorf("parse %q: %v %q, want %q", c.Input, err, sc.String(), c.Canonical)
		case !c.Valid && (err == nil || err.(*scope.ParseError).Offset != *c.Offset):
			t.Errorf("parse %q: %v, want an error at offset %d", c.Input, err, *c.Offset)
		}
	}
	for _, c := range f.Match {
		if got := scope.MustParse(c.Scope).Match(c.Action, c.Resource); got != c.Allowed {
			t.Errorf("%q allows (%q, %q): %v, want %v", c.Scope, c.Action, c.Resource, got, c.Allowed)
		}
	}
	for _, c := range f.Contains {
		if got := scope.Contains(scope.MustParse(c.Outer), scope.MustParse(c.Inner)); got != c.Contained {
			t.Errorf("%q contains %q: %v, want %v", c.Outer, c.Inner, got, c.Contained)
		}
	}
	for _, c := range f.Sets {
		set, err := scope.ParseSpaceSeparated(c.Claim)
		if (err == nil) != c.Valid {
			t.Errorf("claim %q: %v, want valid %v", c.Claim, err, c.Valid)
			continue
		}
		for _, m := range c.Matches {
			if got := set.Match(m.Action, m.Resource); got != m.Allowed {
				t.Errorf("claim %q allows (%q, %q): %v", c.Claim, m.Action, m.Resource, got)
			}
		}
	}
	if len(f.Parse) < 100 || len(f.Match) < 1000 || len(f.Contains) < 1000 {
		t.Fatalf("too few vectors: %d parse, %d match, %d contains", len(f.Parse), len(f.Match), len(f.Contains))
	}
}

// Every credential vector, through the resource-server package itself: a
// Verifier that fetched the vectors' JWKS and revocation list from a
// stand-in engine, at the vectors' now, checking a request that carries
// the credential as a bearer token.
func TestTokenVectorsWithTheVerifier(t *testing.T) {
	var f TokenFile
	load(t, "tokens.json", &f)
	revoked := []map[string]any{}
	for _, id := range f.RevokedSessions {
		revoked = append(revoked, map[string]any{"id": id, "exp": f.Now + 3600})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/agent/jwks":
			_, _ = w.Write(f.JWKS)
		case "/v1/agent/revocations":
			_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"version": 1, "sessions": revoked}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	now := func() time.Time { return time.Unix(f.Now, 0) }
	verifiers := map[string]*verifier.Verifier{}
	get := func(aud string, formats []string) *verifier.Verifier {
		key := aud + fmt.Sprint(formats)
		if v, ok := verifiers[key]; ok {
			return v
		}
		fs := make([]token.Format, len(formats))
		for i, x := range formats {
			fs[i] = token.Format(x)
		}
		v, err := verifier.New(context.Background(), verifier.Config{
			VaultAddr: srv.URL, Issuer: f.Issuer, Audience: aud, Formats: fs, Now: now,
			Leeway: time.Duration(f.LeewaySeconds) * time.Second, MaxLifetime: time.Duration(f.MaxLifetimeSeconds) * time.Second,
			RevocationWait: -1, RevocationPoll: time.Hour, MaxStaleness: 2 * time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Close)
		verifiers[key] = v
		return v
	}
	valid := 0
	for _, c := range f.Cases {
		req := httptest.NewRequest(http.MethodGet, "https://rs.example/docs/plan", nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		_, claims, err := get(c.Audience, c.Formats).VerifyRequest(context.Background(), req)
		got := ""
		if err != nil {
			got = Code(err)
		}
		if got != c.Error {
			t.Errorf("%s: %q, want %q", c.Name, got, c.Error)
			continue
		}
		if c.Valid {
			valid++
			if claims.ID != c.Claims["jti"] || claims.Scope != c.Claims["scope"] || claims.Audience != c.Claims["aud"] {
				t.Errorf("%s: claims %+v, want %v", c.Name, claims, c.Claims)
			}
		}
	}
	if valid < 4 || len(f.Cases) < 30 {
		t.Fatalf("%d cases, %d valid: too few", len(f.Cases), valid)
	}
}

func TestRevocationVectors(t *testing.T) {
	var f RevocationFile
	load(t, "revocations.json", &f)
	for _, s := range f.Sequences {
		var l verifier.RevocationList
		for i, st := range s.Steps {
			changed, err := l.Apply(st.Answer, time.Unix(st.Now, 0))
			closed := l.Sessions()
			if (err == nil) != st.Accepted || changed != st.Changed || l.Version() != st.Version || len(closed) != len(st.Closed) {
				t.Errorf("%s, step %d: accepted %v changed %v version %d closed %v; want %+v", s.Name, i, err == nil, changed, l.Version(), closed, st)
				continue
			}
			for _, id := range st.Closed {
				if !l.Closed(id) {
					t.Errorf("%s, step %d: %s not closed", s.Name, i, id)
				}
			}
		}
	}
}
