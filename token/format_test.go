package token

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func accessClaims() *Claims {
	c := sampleClaims()
	c.Format = FormatAccessToken
	c.Audience = "https://tools.example.com/mcp"
	c.ClientID = c.Subject
	return c
}

func TestAccessTokenRoundTrip(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			k := fixedKey(t, alg)
			want := accessClaims()
			raw := mustMint(t, k, want)

			var hdr map[string]any
			if err := json.Unmarshal(dec(t, strings.Split(raw, ".")[0]), &hdr); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(hdr, map[string]any{"alg": alg, "kid": k.ID, "typ": "at+jwt"}) {
				t.Fatalf("header %v", hdr)
			}
			var payload map[string]any
			if err := json.Unmarshal(dec(t, strings.Split(raw, ".")[1]), &payload); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "txn", "dep", "tctx"} {
				if _, ok := payload[name]; !ok {
					t.Errorf("claim %q missing from %v", name, payload)
				}
			}
			if payload["client_id"] != want.Subject || payload["aud"] != "https://tools.example.com/mcp" {
				t.Fatalf("client_id %v, aud %v", payload["client_id"], payload["aud"])
			}

			opts := VerifyOptions{Issuer: want.Issuer, Audience: want.Audience, Now: testNow, Formats: []Format{FormatAccessToken}}
			got, err := Verify(raw, StaticKeys(k.Public()), opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("claims %+v, want %+v", got, want)
			}
			both := opts
			both.Formats = Formats
			if got, err := Verify(raw, StaticKeys(k.Public()), both); err != nil || got.Format != FormatAccessToken {
				t.Fatalf("both formats: %v, %v", got, err)
			}
		})
	}
}

// A verifier accepts only the formats it asks for: an access token is not
// a transaction token, and a transaction token is not an access token (RFC
// 9068 section 4: resource servers check typ).
func TestFormatsAreNotInterchangeable(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	at := accessClaims()
	atRaw := mustMint(t, k, at)
	txn := sampleClaims()
	txn.Audience = at.Audience
	txnRaw := mustMint(t, k, txn)
	base := VerifyOptions{Issuer: at.Issuer, Audience: at.Audience, Now: testNow}

	if _, err := Verify(atRaw, StaticKeys(k.Public()), base); !errors.Is(err, ErrType) {
		t.Fatalf("access token under the default formats: %v, want ErrType", err)
	}
	onlyAT := base
	onlyAT.Formats = []Format{FormatAccessToken}
	if _, err := Verify(txnRaw, StaticKeys(k.Public()), onlyAT); !errors.Is(err, ErrType) {
		t.Fatalf("txn token where only access tokens are accepted: %v, want ErrType", err)
	}
	if c, err := Verify(txnRaw, StaticKeys(k.Public()), base); err != nil || c.Format != FormatTxnToken {
		t.Fatalf("txn token: %v, %v", c, err)
	}
}

func TestAccessTokenRequiredClaims(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	for name, mutate := range map[string]func(*Claims){
		"no client_id": func(c *Claims) { c.ClientID = "" },
		"no sub":       func(c *Claims) { c.Subject = "" },
		"no aud":       func(c *Claims) { c.Audience = "" },
	} {
		c := accessClaims()
		mutate(c)
		if _, err := Mint(k, c); !errors.Is(err, ErrClaims) {
			t.Errorf("%s: Mint gave %v, want ErrClaims", name, err)
		}
		// The same claims signed by hand are refused by Verify.
		c.Format = ""
		payload, _ := json.Marshal(c)
		raw, err := SignJWS(k, TypeAccessToken, payload)
		if err != nil {
			t.Fatal(err)
		}
		opts := VerifyOptions{Issuer: c.Issuer, AnyAudience: true, Now: testNow, Formats: []Format{FormatAccessToken}}
		if _, err := Verify(raw, StaticKeys(k.Public()), opts); !errors.Is(err, ErrClaims) {
			t.Errorf("%s: Verify gave %v, want ErrClaims", name, err)
		}
	}
	// A transaction token needs none of them beyond its own.
	c := sampleClaims()
	c.Subject = ""
	if _, err := Mint(k, c); err != nil {
		t.Errorf("txn token without sub: %v", err)
	}
}

func TestFormatNames(t *testing.T) {
	for in, want := range map[string]Format{"": FormatTxnToken, "txn_token": FormatTxnToken, "access_token": FormatAccessToken} {
		if f, err := ParseFormat(in); err != nil || f != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, f, err)
		}
	}
	for _, bad := range []string{"jwt", "Access_Token", "at+jwt", "txntoken+jwt"} {
		if _, err := ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q) accepted", bad)
		}
	}
	if FormatTxnToken.Type() != Type || FormatAccessToken.Type() != TypeAccessToken || Format("x").Type() != "" {
		t.Fatal("Format.Type")
	}
	k := fixedKey(t, AlgEdDSA)
	c := sampleClaims()
	c.Format = "x"
	if _, err := Mint(k, c); !errors.Is(err, ErrClaims) {
		t.Fatalf("unknown format minted: %v", err)
	}
	raw := mustMint(t, k, sampleClaims())
	if _, err := Verify(raw, StaticKeys(k.Public()), VerifyOptions{Issuer: "i", AnyAudience: true, Formats: []Format{"x"}}); !errors.Is(err, ErrOptions) {
		t.Fatalf("unknown format in options: %v", err)
	}
}
