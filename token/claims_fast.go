package token

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// decodeClaims decodes a payload whose signature has been verified.
//
// encoding/json is the reference: it decodes every payload that
// mintedClaims does not recognise. mintedClaims is a shortcut for the
// payload Mint writes, which is most of the cost of Verify after the
// signature check when done with encoding/json (reflection, and cold
// caches after the signature check). It only ever sees signed bytes, never
// rejects anything (it hands over to encoding/json instead), and
// FuzzMintedClaims checks that whatever it recognises, encoding/json
// decodes to the same value.
func decodeClaims(payload []byte) (*Claims, error) {
	if c, ok := mintedClaims(payload); ok {
		return c, nil
	}
	c := new(Claims)
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, fmt.Errorf("%w: payload is not a valid claims object", ErrMalformed)
	}
	return c, nil
}

// maxMintedActors bounds the "act" chain that mintedClaims follows; longer
// chains go to encoding/json.
const maxMintedActors = 32

// mintedClaims recognises the claims exactly as json.Marshal writes a
// Claims value (as Mint does): the members in the struct's order, the
// optional ones omitted when empty, no whitespace, strings without escapes
// or control characters and in valid UTF-8 (which encoding/json decodes
// byte for byte), and integers in JSON's integer syntax that fit their
// field. Anything else returns false, and the caller uses encoding/json.
func mintedClaims(p []byte) (*Claims, bool) {
	r := reader{b: p, ok: true}
	c := new(Claims)
	r.lit(`{"iss":`)
	c.Issuer = r.str()
	r.lit(`,"sub":`)
	c.Subject = r.str()
	r.lit(`,"aud":`)
	c.Audience = r.str()
	r.lit(`,"iat":`)
	c.IssuedAt = r.int(64)
	r.lit(`,"nbf":`)
	c.NotBefore = r.int(64)
	r.lit(`,"exp":`)
	c.Expiry = r.int(64)
	r.lit(`,"jti":`)
	c.ID = r.str()
	r.lit(`,"txn":`)
	c.Txn = r.str()
	r.lit(`,"scope":`)
	c.Scope = r.str()
	if r.next(`,"tctx":{"role":`) {
		c.Tctx = &TxnContext{Role: r.str()}
		if r.next(`,"purpose":`) {
			c.Tctx.Purpose = r.str()
		}
		r.lit(`}`)
	}
	if r.next(`,"rctx":{`) {
		c.Rctx = new(RequestContext)
		switch {
		case r.next(`"step":`):
			c.Rctx.Step = r.str()
			if r.next(`,"req_ip":`) {
				c.Rctx.ReqIP = r.str()
			}
		case r.next(`"req_ip":`):
			c.Rctx.ReqIP = r.str()
		}
		r.lit(`}`)
	}
	if r.next(`,"par":`) {
		c.Parent = r.str()
	}
	r.lit(`,"dep":`)
	c.Depth = int(r.int(strconv.IntSize))
	if r.next(`,"act":`) {
		link := &c.Act
		n := 0
		for {
			if n++; n > maxMintedActors {
				return nil, false
			}
			r.lit(`{"sub":`)
			*link = &Actor{Subject: r.str()}
			if !r.next(`,"act":`) {
				break
			}
			link = &(*link).Act
		}
		for range n {
			r.lit(`}`)
		}
	}
	if r.next(`,"cnf":{"jkt":`) {
		c.Cnf = &Confirmation{JKT: r.str()}
		r.lit(`}`)
	}
	r.lit(`}`)
	if !r.ok || len(r.b) != 0 {
		return nil, false
	}
	return c, true
}

// reader consumes JSON text for mintedClaims. Once ok is false it stays
// false, and every method does nothing more.
type reader struct {
	b  []byte
	ok bool
}

// lit consumes s, which must come next.
func (r *reader) lit(s string) {
	if !r.next(s) {
		r.ok = false
	}
}

// next consumes s if it comes next, and reports whether it did.
func (r *reader) next(s string) bool {
	if !r.ok || len(r.b) < len(s) || string(r.b[:len(s)]) != s {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// str consumes a JSON string that has no escape and no control character
// and is valid UTF-8, and returns its content.
func (r *reader) str() string {
	if !r.ok || len(r.b) == 0 || r.b[0] != '"' {
		r.ok = false
		return ""
	}
	end := 1
	for end < len(r.b) && r.b[end] != '"' && r.b[end] != '\\' && r.b[end] >= 0x20 {
		end++
	}
	if end == len(r.b) || r.b[end] != '"' || !utf8.Valid(r.b[1:end]) {
		r.ok = false
		return ""
	}
	s := string(r.b[1:end])
	r.b = r.b[end+1:]
	return s
}

// int consumes a JSON integer (-?(0|[1-9][0-9]*)) that fits in a signed
// integer of the given bit size.
func (r *reader) int(bits int) int64 {
	if !r.ok {
		return 0
	}
	i := 0
	if i < len(r.b) && r.b[i] == '-' {
		i++
	}
	start := i
	for i < len(r.b) && '0' <= r.b[i] && r.b[i] <= '9' {
		i++
	}
	if i == start || (r.b[start] == '0' && i > start+1) {
		r.ok = false
		return 0
	}
	n, err := strconv.ParseInt(string(r.b[:i]), 10, bits)
	if err != nil {
		r.ok = false
		return 0
	}
	r.b = r.b[i:]
	return n
}
