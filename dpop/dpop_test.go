package dpop

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var now = time.Unix(1_800_000_000, 0)

const (
	url1 = "https://api.example.com/docs/q3?x=1"
	tok  = "eyJhbGciOiJFZERTQSJ9.e30.sig"
)

func key(t *testing.T, alg string) *Key {
	t.Helper()
	k, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func opts() Options {
	return Options{Method: "GET", URL: "https://API.example.com:443/docs/q3", AccessToken: tok, Now: now}
}

func TestVerifyAcceptsAFreshProof(t *testing.T) {
	for _, alg := range Algorithms {
		k := key(t, alg)
		proof, err := k.Proof("GET", url1, tok, now.Add(-10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		o := opts()
		o.JKT = k.Thumbprint()
		o.Replay = NewReplayCache(0)
		p, err := Verify(proof, o)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if p.JKT != k.Thumbprint() || p.ID == "" {
			t.Fatalf("%s: %+v", alg, p)
		}
		// The same proof again is a replay.
		if _, err := Verify(proof, o); !errors.Is(err, ErrReplay) {
			t.Fatalf("%s: replay gave %v", alg, err)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := key(t, "EdDSA")
	other := key(t, "EdDSA")
	good := func(method, u, at string, at2 time.Time) string {
		p, err := k.Proof(method, u, at, at2)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	sign := func(header map[string]any, claims string, signer ed25519.PrivateKey) string {
		h, _ := json.Marshal(header)
		in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
		return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(signer, []byte(in)))
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwk := jose.JSONWebKey{Key: pub}
	jwkJSON, _ := jwk.MarshalJSON()
	var jwkMap map[string]any
	_ = json.Unmarshal(jwkJSON, &jwkMap)
	privJWK, _ := (&jose.JSONWebKey{Key: priv}).MarshalJSON()
	var privMap map[string]any
	_ = json.Unmarshal(privJWK, &privMap)
	claims := `{"jti":"a1","htm":"GET","htu":"https://api.example.com/docs/q3","iat":1800000000,"ath":"` + AccessTokenHash(tok) + `"}`
	hdr := func(extra map[string]any) map[string]any {
		h := map[string]any{"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwkMap}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	if _, err := Verify(sign(hdr(nil), claims, priv), opts()); err != nil {
		t.Fatalf("the hand-made proof itself should verify: %v", err)
	}

	for name, c := range map[string]struct {
		proof string
		o     func(*Options)
		want  error
	}{
		"empty":             {"", nil, ErrMissing},
		"not a JWS":         {"abc", nil, ErrInvalid},
		"other method":      {good("POST", url1, tok, now), nil, ErrInvalid},
		"other path":        {good("GET", "https://api.example.com/docs/q4", tok, now), nil, ErrInvalid},
		"other host":        {good("GET", "https://evil.example.com/docs/q3", tok, now), nil, ErrInvalid},
		"http not https":    {good("GET", "http://api.example.com/docs/q3", tok, now), nil, ErrInvalid},
		"too old":           {good("GET", url1, tok, now.Add(-61*time.Second)), nil, ErrInvalid},
		"from the future":   {good("GET", url1, tok, now.Add(61*time.Second)), nil, ErrInvalid},
		"another token":     {good("GET", url1, "another.token.x", now), nil, ErrInvalid},
		"no ath":            {good("GET", url1, "", now), nil, ErrInvalid},
		"ath where none":    {good("GET", url1, tok, now), func(o *Options) { o.AccessToken = "" }, ErrInvalid},
		"another key":       {good("GET", url1, tok, now), func(o *Options) { o.JKT = other.Thumbprint() }, ErrKey},
		"kid in header":     {sign(hdr(map[string]any{"kid": "x"}), claims, priv), nil, ErrInvalid},
		"crit in header":    {sign(hdr(map[string]any{"crit": []string{"exp"}}), claims, priv), nil, ErrInvalid},
		"typ JWT":           {sign(hdr(map[string]any{"typ": "JWT"}), claims, priv), nil, ErrInvalid},
		"alg none":          {sign(hdr(map[string]any{"alg": "none"}), claims, priv), nil, ErrInvalid},
		"alg HS256":         {sign(hdr(map[string]any{"alg": "HS256"}), claims, priv), nil, ErrInvalid},
		"alg ES256, Ed key": {sign(hdr(map[string]any{"alg": "ES256"}), claims, priv), nil, ErrInvalid},
		"private jwk":       {sign(hdr(map[string]any{"jwk": privMap}), claims, priv), nil, ErrInvalid},
		"no jwk":            {sign(map[string]any{"typ": "dpop+jwt", "alg": "EdDSA"}, claims, priv), nil, ErrInvalid},
		"signed by another": {sign(hdr(nil), claims, other.priv.(ed25519.PrivateKey)), nil, ErrInvalid},
		"no jti":            {sign(hdr(nil), strings.Replace(claims, `"jti":"a1",`, "", 1), priv), nil, ErrInvalid},
		"duplicate htu":     {sign(hdr(nil), strings.Replace(claims, `"htm"`, `"htu":"https://api.example.com/docs/q3","htm"`, 1), priv), nil, ErrInvalid},
		"case-variant name": {sign(hdr(nil), strings.Replace(claims, `"htm"`, `"HTM":"POST","htm"`, 1), priv), nil, ErrInvalid},
		"a nonce":           {sign(hdr(nil), strings.Replace(claims, `"jti"`, `"nonce":"n","jti"`, 1), priv), nil, ErrInvalid},
		"iat a string":      {sign(hdr(nil), strings.Replace(claims, `1800000000`, `"1800000000"`, 1), priv), nil, ErrInvalid},
		"oversize":          {strings.Repeat("a", MaxProofSize) + "..", nil, ErrInvalid},
	} {
		o := opts()
		if c.o != nil {
			c.o(&o)
		}
		if _, err := Verify(c.proof, o); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		} else if err != nil && c.proof != "" && strings.Contains(err.Error(), c.proof) {
			t.Errorf("%s: the error quotes the proof", name)
		}
	}
}

func TestReplayCacheIsBounded(t *testing.T) {
	k := key(t, "EdDSA")
	c := NewReplayCache(3)
	o := opts()
	o.Replay = c
	for i := 0; i < 3; i++ {
		p, _ := k.Proof("GET", url1, tok, now)
		if _, err := Verify(p, o); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := k.Proof("GET", url1, tok, now)
	if _, err := Verify(p, o); !errors.Is(err, ErrBusy) {
		t.Fatalf("a full cache gave %v, want ErrBusy", err)
	}
	// Once the window has passed, the old proofs are forgotten (they are
	// too old to be accepted anyway) and new ones fit.
	o.Now = now.Add(DefaultWindow + time.Second)
	p, _ = k.Proof("GET", url1, tok, o.Now)
	if _, err := Verify(p, o); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if c.Len() != 1 {
		t.Fatalf("%d remembered, want 1", c.Len())
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"HTTPS://Example.COM:443/a/b?q=1#f": "https://example.com/a/b",
		"http://example.com:80":             "http://example.com/",
		"http://127.0.0.1:8200/v1/agent":    "http://127.0.0.1:8200/v1/agent",
		"https://[::1]:443/x":               "https://[::1]/x",
	} {
		if got, err := NormalizeURL(in); err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/relative", "ftp://x/y", "https://"} {
		if _, err := NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) accepted", bad)
		}
	}
}
