package token

// This file keeps, for tests only, the oracle of TestVerifyStrictCompact,
// FuzzVerify and FuzzVerifyMatchesGoJose: plain go-jose, jwt.ParseSigned
// and JSONWebToken.Claims, with the key found by "kid" and none of
// Verify's pre-checks. Verify must accept nothing that the oracle refuses,
// must read the same claims, and may refuse what the oracle accepts (or
// refuse for another reason) only for the strictness rules that
// strictnessExplains re-implements, independently of the package code.

import (
	"bytes"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// refAllowedAlgorithms is the go-jose allow-list for names.
func refAllowedAlgorithms(names []string) []jose.SignatureAlgorithm {
	supported := []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}
	if len(names) == 0 {
		return supported
	}
	out := make([]jose.SignatureAlgorithm, 0, len(supported))
	for _, a := range supported {
		if slices.Contains(names, string(a)) {
			out = append(out, a)
		}
	}
	return out
}

// refVerify verifies raw with go-jose alone: jwt.ParseSigned, the key
// that lookup gives for the "kid" go-jose reads (whose algorithm must be
// the header's), JSONWebToken.Claims, then the same checks of the claims
// as Verify (VerifyOptions.validate).
func refVerify(raw string, lookup KeyLookup, opts VerifyOptions) (*Claims, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	algs := refAllowedAlgorithms(opts.Algorithms)
	if len(algs) == 0 {
		return nil, fmt.Errorf("%w: no supported algorithm allowed", ErrAlgorithm)
	}
	tok, err := jwt.ParseSigned(raw, algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, fmt.Errorf("%w: header alg not in allow-list", ErrAlgorithm)
		}
		return nil, fmt.Errorf("%w: go-jose refuses it", ErrMalformed)
	}
	h := tok.Headers[0]
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !slices.Contains(opts.types(), typ) {
		return nil, fmt.Errorf("%w: typ not accepted", ErrType)
	}
	if h.KeyID == "" {
		return nil, fmt.Errorf("%w: missing kid", ErrMalformed)
	}
	if lookup == nil {
		return nil, fmt.Errorf("%w: no key lookup", ErrUnknownKey)
	}
	pk, ok := lookup(h.KeyID)
	if !ok {
		return nil, ErrUnknownKey
	}
	if pk.Algorithm != h.Algorithm {
		return nil, fmt.Errorf("%w: header alg does not match key", ErrAlgorithm)
	}
	if !keyFitsAlgorithm(pk.Algorithm, pk.Key) {
		return nil, fmt.Errorf("%w: key does not fit its algorithm", ErrAlgorithm)
	}
	if err := tok.Claims(pk.Key); err != nil { // the signature alone
		return nil, ErrSignature
	}
	c := new(Claims)
	if err := tok.Claims(pk.Key, c); err != nil {
		return nil, fmt.Errorf("%w: go-jose cannot decode the claims", ErrMalformed)
	}
	c.Format, _ = formatOfType(typ)
	if err := opts.validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

// strictnessExplains reports whether tok breaks one of the rules by which
// Verify refuses more than go-jose alone, as listed in jws.go and
// strictjson.go. It is written independently of the package code (other
// decoders, strings.EqualFold), so that it does not share its mistakes.
func strictnessExplains(tok string) bool {
	if len(tok) > MaxTokenSize || strings.ContainsAny(tok, "\r\n") {
		return true
	}
	segs := strings.Split(tok, ".")
	if len(segs) != 3 {
		return true
	}
	var dec [3][]byte
	for i, seg := range segs {
		b, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != seg {
			return true // not canonical base64url
		}
		dec[i] = b
	}
	header, payload, sig := dec[0], dec[1], dec[2]

	// Header: only "alg", "kid" and "typ", each a string or null.
	var hm map[string]json.RawMessage
	if json.Unmarshal(header, &hm) != nil || hm == nil {
		return true
	}
	for name, v := range hm {
		if name != "alg" && name != "kid" && name != "typ" {
			return true
		}
		var s *string
		if json.Unmarshal(v, &s) != nil {
			return true
		}
	}
	if strictNamesBroken(header, nil) {
		return true
	}

	// ES256: 64 bytes, S <= N/2. (Only the header says the algorithm here;
	// a mismatch with the key is refused by go-jose too.)
	if alg, _ := hm["alg"]; string(alg) == `"ES256"` && len(sig) == 64 {
		half := new(big.Int).Rsh(elliptic.P256().Params().N, 1)
		if new(big.Int).SetBytes(sig[32:]).Cmp(half) > 0 {
			return true
		}
	}

	// Claims: a JSON object, with no duplicate or case-variant names.
	if bytes.TrimSpace(payload) == nil || bytes.TrimSpace(payload)[0] != '{' {
		return true
	}
	return strictNamesBroken(payload, claimNames)
}

// claimNames are the member names that Verify reads from the claims, by
// object: "" for the top level, then the nested objects by the name of the
// member that holds them ("act" holds an object of the same kind as
// itself).
var claimNames = map[string][]string{
	"":     {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "txn", "scope", "tctx", "rctx", "par", "dep", "act", "cnf"},
	"tctx": {"role", "purpose"},
	"rctx": {"description", "req_ip"},
	"act":  {"sub", "act"},
	"cnf":  {"jkt"},
}

// strictNamesBroken walks the JSON text b with encoding/json's tokenizer
// and reports whether some object has two names equal under
// strings.EqualFold (a duplicate included), or whether an object that
// Verify reads (known, from the top level down through known members) has
// a name equal under strings.EqualFold to one it reads, but spelled
// differently. Invalid JSON is reported as broken too.
func strictNamesBroken(b []byte, known map[string][]string) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	type frame struct {
		object bool
		names  []string // names seen so far, in an object
		read   []string // names Verify reads from this object; nil if none
		key    string   // the member being read, in an object
		isKey  bool     // in an object, the next token is a name
	}
	var stack []*frame
	valueDone := func() {
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].isKey = true
		}
	}
	for {
		t, err := d.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return true
		}
		if len(stack) > 0 {
			if f := stack[len(stack)-1]; f.isKey && t != json.Delim('}') {
				name := t.(string)
				for _, n := range f.names {
					if strings.EqualFold(n, name) {
						return true
					}
				}
				for _, r := range f.read {
					if strings.EqualFold(r, name) && r != name {
						return true
					}
				}
				f.names = append(f.names, name)
				f.key, f.isKey = name, false
				continue
			}
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			var read []string
			if known != nil && t == json.Delim('{') {
				if len(stack) == 0 {
					read = known[""]
				} else if p := stack[len(stack)-1]; p.object && slices.Contains(p.read, p.key) {
					read = known[p.key]
				}
			}
			object := t == json.Delim('{')
			stack = append(stack, &frame{object: object, read: read, isKey: object})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}
