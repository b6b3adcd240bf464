package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// scenarioVerify measures offline verification of a credential the engine
// issued, in one goroutine: raw ed25519.Verify over its signing input, the
// token package's Verify with the keys from jwks, and the resource-server
// package's Verifier.Verify (and Authorize, which adds the scope check).
// The methods alternate for several rounds and each keeps its best round,
// so a noisy neighbour does not favour one method.
func (h *harness) scenarioVerify(ctx context.Context) error {
	sid, err := h.startSession(ctx, "offline verification")
	if err != nil {
		return err
	}
	raw, err := h.issue(ctx, sid)
	if err != nil {
		return fmt.Errorf("issuing a credential: %w", err)
	}

	resp, err := h.anon.Logical().ReadRawWithContext(ctx, h.cfg.mount+"/jwks")
	if err != nil {
		return fmt.Errorf("reading jwks: %w", err)
	}
	body, err := readAllLimited(resp.Body, 1<<20)
	resp.Body.Close()
	if err != nil {
		return err
	}
	keys, err := token.ParseJWKS(body)
	if err != nil {
		return err
	}
	lookup := token.StaticKeys(keys...)
	opts := token.VerifyOptions{Issuer: h.issuer, Audience: benchAudience}

	v, err := verifier.New(ctx, verifier.Config{
		VaultAddr: h.cfg.addr, Mount: h.cfg.mount, Issuer: h.issuer, Audience: benchAudience,
		RevocationPoll: time.Minute,
	})
	if err != nil {
		return err
	}
	defer v.Close()

	// The raw floor: the same signature over the same signing input.
	dot := strings.LastIndexByte(raw, '.')
	if dot < 0 {
		return errors.New("the credential is not a compact JWS")
	}
	msg := []byte(raw[:dot])
	sig, err := base64.RawURLEncoding.DecodeString(raw[dot+1:])
	if err != nil {
		return err
	}
	kid, err := token.PeekKeyID(raw)
	if err != nil {
		return err
	}
	pk, ok := lookup(kid)
	if !ok {
		return fmt.Errorf("jwks has no key %q", kid)
	}
	pub, ok := pk.Key.(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("the signing key is %s, not Ed25519: the raw floor is ed25519.Verify", pk.Algorithm)
	}

	methods := []struct {
		name string
		op   func() error
	}{
		{"raw", func() error {
			if !ed25519.Verify(pub, msg, sig) {
				return errors.New("ed25519.Verify: bad signature")
			}
			return nil
		}},
		{"token", func() error { _, err := token.Verify(raw, lookup, opts); return err }},
		{"verifier", func() error { _, err := v.Verify(ctx, raw); return err }},
		{"authorize", func() error { _, err := v.Authorize(ctx, raw, "read", "bench/data"); return err }},
	}
	for _, m := range methods {
		if err := m.op(); err != nil {
			return fmt.Errorf("%s does not accept the engine's credential: %w", m.name, err)
		}
	}
	best := map[string]float64{}
	rounds := h.cfg.verifyRounds
	if rounds < 1 {
		rounds = 1
	}
	for r := 0; r < rounds; r++ {
		for _, m := range methods {
			rate, err := opsPerSecond(ctx, h.cfg.verifyDuration, m.op)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if rate > best[m.name] {
				best[m.name] = rate
			}
		}
	}
	h.res.Verify = &VerifyResult{
		TokenBytes: len(raw), SignedBytes: len(msg),
		RawPerSec: best["raw"], TokenPerSec: best["token"], VerifierPS: best["verifier"], AuthorizePS: best["authorize"],
		RoundSeconds: h.cfg.verifyDuration.Seconds(), Rounds: rounds,
	}
	log.Printf("offline verification of a %d-byte credential, 1 goroutine: raw ed25519 %.0f/s, token.Verify %.0f/s, verifier.Verify %.0f/s, Authorize %.0f/s",
		len(raw), best["raw"], best["token"], best["verifier"], best["authorize"])
	return nil
}

// opsPerSecond runs op in a loop for d (checking the clock every 64 calls)
// and returns its rate.
func opsPerSecond(ctx context.Context, d time.Duration, op func() error) (float64, error) {
	start := time.Now()
	deadline := start.Add(d)
	n := 0
	for {
		for i := 0; i < 64; i++ {
			if err := op(); err != nil {
				return 0, err
			}
		}
		n += 64
		now := time.Now()
		if now.After(deadline) || ctx.Err() != nil {
			return float64(n) / now.Sub(start).Seconds(), ctx.Err()
		}
	}
}
