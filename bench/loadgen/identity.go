package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/vault/api"
)

// The "identity" scenario (issue 21): step credentials beside what a
// Vault user would pick instead, Vault's own signed JWT
// (identity/oidc/token/<role>, EdDSA), both taken by the same
// entity-bound token (userpass), in the same run; then both again with a
// file audit device enabled, as production Vaults audit every request.
// Step credentials are taken as the Go SDK takes them (GET, fields as
// query parameters: Vault then asks the plugin nothing but the request)
// and by PUT (Vault first asks the plugin whether the resource exists,
// a second gRPC round trip).

// IdentityResult is the scenario's outcome.
type IdentityResult struct {
	Identity      RateResult `json:"identity"`
	Creds         RateResult `json:"creds"`
	IdentityAudit RateResult `json:"identity_audit"`
	CredsAudit    RateResult `json:"creds_audit"`
	// CredsPut and CredsPutAudit: the same step credentials by PUT.
	CredsPut      RateResult `json:"creds_put"`
	CredsPutAudit RateResult `json:"creds_put_audit"`
	// Exchange and ExchangeAudit: step credentials by token exchange
	// (agent/token, RFC 8693) of a delegation credential, with no Vault
	// token: the path of a sub-agent.
	Exchange      RateResult `json:"exchange"`
	ExchangeAudit RateResult `json:"exchange_audit"`
	// Floor and FloorAudit: the agent reading its own session by the same
	// token, the cheapest authenticated request to the plugin: what any
	// request to an external plugin costs before the plugin does work.
	Floor      RateResult `json:"floor"`
	FloorAudit RateResult `json:"floor_audit"`
	// Rounds is how many times each row was measured (rows interleaved);
	// each row is its median round.
	Rounds     int   `json:"rounds,omitempty"`
	AuditBytes int64 `json:"audit_bytes"`
}

const identityName = "bench-id"

// delegateRole is the role of the token-exchange rows: its audiences
// include the engine itself, for delegation credentials.
const delegateRole = "bench-delegate"

func (h *harness) scenarioIdentity(ctx context.Context) error {
	h.waitQuiet(ctx)
	m := h.cfg.mount
	auths, err := h.root.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return err
	}
	if _, ok := auths["userpass/"]; !ok {
		if err := h.root.Sys().EnableAuthWithOptionsWithContext(ctx, "userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
			return fmt.Errorf("enabling userpass: %w", err)
		}
	}
	if err := h.root.Sys().PutPolicyWithContext(ctx, identityName, fmt.Sprintf(`
path "%[1]s/session"               { capabilities = ["update"] }
path "%[1]s/session/+"             { capabilities = ["read"] }
path "%[1]s/creds/*"               { capabilities = ["read", "update"] }
path "identity/oidc/token/%[2]s"   { capabilities = ["read"] }
`, m, identityName)); err != nil {
		return err
	}
	const password = "bench-identity-password"
	if _, err := h.root.Logical().WriteWithContext(ctx, "auth/userpass/users/"+identityName, map[string]interface{}{
		"password": password, "token_policies": identityName, "token_ttl": "4h",
	}); err != nil {
		return err
	}
	if _, err := h.root.Logical().WriteWithContext(ctx, "identity/oidc/key/"+identityName, map[string]interface{}{
		"algorithm": "EdDSA", "allowed_client_ids": "*",
	}); err != nil {
		return fmt.Errorf("identity key: %w", err)
	}
	if _, err := h.root.Logical().WriteWithContext(ctx, "identity/oidc/role/"+identityName, map[string]interface{}{
		// A one-claim template, as identity tokens usually carry one
		// (without any, Vault 1.21 logs a warning for every token).
		"key": identityName, "ttl": "60s", "template": `{"entity_name": {{identity.entity.name}}}`,
	}); err != nil {
		return fmt.Errorf("identity role: %w", err)
	}
	anon, err := newClient(h.cfg, "")
	if err != nil {
		return err
	}
	login, err := anon.Logical().WriteWithContext(ctx, "auth/userpass/login/"+identityName, map[string]interface{}{"password": password})
	if err != nil {
		return fmt.Errorf("userpass login: %w", err)
	}
	if login.Auth == nil || login.Auth.EntityID == "" {
		return errors.New("the userpass login has no entity")
	}
	user, err := newClient(h.cfg, login.Auth.ClientToken)
	if err != nil {
		return err
	}
	identity := rateScenario{
		label:   "identity token (Vault's signed JWT)",
		request: "`GET identity/oidc/token/" + identityName + "` (EdDSA, ttl 60s) by an entity-bound userpass token",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			return same(func(ctx context.Context) error {
				sec, err := user.Logical().ReadWithContext(ctx, "identity/oidc/token/"+identityName)
				if err == nil && (sec == nil || sec.Data["token"] == nil) {
					err = errors.New("no token in the answer")
				}
				return err
			}, workers), nil
		},
	}
	// startSession starts a session of the workers' token: one per worker.
	startSession := func(ctx context.Context, role, purpose, audiences string) (string, error) {
		sec, err := user.Logical().WriteWithContext(ctx, m+"/session", map[string]interface{}{
			"role": role, "purpose": purpose, "scopes": "read:bench/*", "audiences": audiences,
		})
		if err != nil {
			return "", err
		}
		sid, _ := sec.Data["session_id"].(string)
		if sid == "" {
			return "", errors.New("no session_id in the answer")
		}
		return sid, nil
	}
	creds := func(put bool) rateScenario {
		sc := rateScenario{
			label:   "step credential (same token, GET)",
			request: "`GET " + m + "/creds/<session>?scopes=…` by the same entity-bound token, one session per worker, as the Go SDK takes it",
		}
		if put {
			sc.label = "step credential (same token, PUT)"
			sc.request = "`PUT " + m + "/creds/<session>` by the same entity-bound token, one session per worker"
		}
		sc.prepare = func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			ops := make([]func(context.Context) error, workers)
			for w := range ops {
				sid, err := startSession(ctx, benchRole, fmt.Sprintf("identity comparison, worker %d", w), benchAudience)
				if err != nil {
					return nil, err
				}
				path := m + "/creds/" + sid
				ops[w] = func(ctx context.Context) error {
					var sec *api.Secret
					var err error
					if put {
						sec, err = user.Logical().WriteWithContext(ctx, path, map[string]interface{}{
							"scopes": benchScope, "audience": benchAudience, "description": "benchmark step",
						})
					} else {
						sec, err = user.Logical().ReadWithDataWithContext(ctx, path, map[string][]string{
							"scopes": {benchScope}, "audience": {benchAudience}, "description": {"benchmark step"},
						})
					}
					if err == nil && (sec == nil || sec.Data["token"] == nil) {
						err = errors.New("no token in the answer")
					}
					return err
				}
			}
			return ops, nil
		}
		return sc
	}
	get, put := creds(false), creds(true)
	if _, err := h.root.Logical().WriteWithContext(ctx, m+"/roles/"+delegateRole, map[string]interface{}{
		"scopes": "read:bench/*", "audiences": benchAudience + "," + h.issuer,
		"max_steps": 1000000, "max_rate": 100000, "on_violation": "deny", "violation_limit": 1000,
		"session_ttl": "2h", "session_max_ttl": "2h", "step_ttl": "60s",
	}); err != nil {
		return fmt.Errorf("writing role %s: %w", delegateRole, err)
	}
	exchange := rateScenario{
		label:   "step credential by token exchange (no Vault token)",
		request: "`POST " + m + "/token` (RFC 8693) of a delegation credential (audience: the engine), with no Vault token, one session per worker",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			ops := make([]func(context.Context) error, workers)
			for w := range ops {
				sid, err := startSession(ctx, delegateRole, fmt.Sprintf("token exchange, worker %d", w), benchAudience+","+h.issuer)
				if err != nil {
					return nil, err
				}
				del, err := user.Logical().WriteWithContext(ctx, m+"/creds/"+sid, map[string]interface{}{
					"scopes": "read:bench/*", "audience": h.issuer, "description": "delegation to the sub-agent",
				})
				if err != nil {
					return nil, fmt.Errorf("delegation credential: %w", err)
				}
				body, err := json.Marshal(map[string]string{
					"grant_type":         "urn:ietf:params:oauth:grant-type:token-exchange",
					"subject_token":      fmt.Sprint(del.Data["token"]),
					"subject_token_type": "urn:ietf:params:oauth:token-type:txn_token",
					"scope":              benchScope, "audience": benchAudience, "description": "benchmark step",
				})
				if err != nil {
					return nil, err
				}
				ops[w] = func(ctx context.Context) error {
					r := h.anon.NewRequest(http.MethodPost, "/v1/"+m+"/token")
					r.BodyBytes = body
					resp, err := h.anon.RawRequestWithContext(ctx, r)
					if resp != nil {
						defer resp.Body.Close()
					}
					if err != nil {
						return err
					}
					var answer struct {
						AccessToken string `json:"access_token"`
					}
					if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.AccessToken == "" {
						return fmt.Errorf("no access_token in the answer (%v)", err)
					}
					return nil
				}
			}
			return ops, nil
		},
	}
	floor := rateScenario{
		label:   "the agent reads its own session (same token)",
		request: "`GET " + m + "/session/<session>` by the same entity-bound token, one session per worker",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			ops := make([]func(context.Context) error, workers)
			for w := range ops {
				sid, err := startSession(ctx, benchRole, fmt.Sprintf("plugin floor, worker %d", w), benchAudience)
				if err != nil {
					return nil, err
				}
				path := m + "/session/" + sid
				ops[w] = func(ctx context.Context) error {
					sec, err := user.Logical().ReadWithContext(ctx, path)
					if err == nil && (sec == nil || sec.Data["state"] != "active") {
						err = errors.New("the session is not active")
					}
					return err
				}
			}
			return ops, nil
		},
	}
	ir := &IdentityResult{Rounds: h.cfg.identityRounds}
	h.res.Identity = ir
	type row struct {
		name string
		sc   *rateScenario
		into *RateResult
	}
	// measure runs the rows, interleaved, for every round, and keeps each
	// row's median round (by rate): on a shared machine the rate drifts
	// by ±10% from one minute to the next, and the rows are compared with
	// each other.
	measure := func(rows []row) error {
		got := make([][]RateResult, len(rows))
		for round := 0; round < max(1, ir.Rounds); round++ {
			for i, rw := range rows {
				ops, err := rw.sc.prepare(ctx, h, h.cfg.concurrency)
				if err != nil {
					return fmt.Errorf("%s: %w", rw.name, err)
				}
				r, err := h.measureProfiled(ctx, rw.name, *rw.sc, ops)
				if err != nil {
					return fmt.Errorf("%s: %w", rw.name, err)
				}
				got[i] = append(got[i], r)
				log.Printf("round %d: %-50s %8.0f/s  p50 %.2f ms  p99 %.2f ms", round+1, r.Label, r.PerSec, r.P50ms, r.P99ms)
			}
		}
		for i, rw := range rows {
			*rw.into = medianByRate(got[i])
		}
		return nil
	}
	if err := measure([]row{
		{"identity", &identity, &ir.Identity}, {"floor", &floor, &ir.Floor},
		{"creds-entity", &get, &ir.Creds}, {"creds-entity-put", &put, &ir.CredsPut},
		{"exchange", &exchange, &ir.Exchange},
	}); err != nil {
		return err
	}

	// The same with a file audit device.
	dir, err := os.MkdirTemp("", "loadgen-audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	auditPath := filepath.Join(dir, "audit.log")
	if err := h.root.Sys().EnableAuditWithOptionsWithContext(ctx, "bench-file", &api.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": auditPath},
	}); err != nil {
		return fmt.Errorf("enabling a file audit device: %w", err)
	}
	defer func() {
		if err := h.root.Sys().DisableAuditWithContext(context.Background(), "bench-file"); err != nil {
			log.Printf("disabling the audit device: %v", err)
		}
	}()
	for _, sc := range []*rateScenario{&identity, &floor, &get, &put, &exchange} {
		sc.label += ", audited"
	}
	if err := measure([]row{
		{"identity-audit", &identity, &ir.IdentityAudit}, {"floor-audit", &floor, &ir.FloorAudit},
		{"creds-entity-audit", &get, &ir.CredsAudit}, {"creds-entity-put-audit", &put, &ir.CredsPutAudit},
		{"exchange-audit", &exchange, &ir.ExchangeAudit},
	}); err != nil {
		return err
	}
	if st, err := os.Stat(auditPath); err == nil {
		ir.AuditBytes = st.Size()
	}
	return nil
}

// medianByRate is the result whose rate is the median of rs (the lower
// middle one for an even count).
func medianByRate(rs []RateResult) RateResult {
	sorted := append([]RateResult(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].PerSec < sorted[j].PerSec })
	return sorted[(len(sorted)-1)/2]
}

func renderIdentity(p func(string, ...interface{}), r *Results, svgPath string) {
	x := r.Identity
	p("## 7. Beside Vault's own signed JWTs\n\n")
	p("What a Vault user would take instead of a step credential: Vault's identity token\n")
	p("(`identity/oidc/token/<role>`, a signed JWT, EdDSA, 60 s). Both are taken by the same entity-bound\n")
	p("token (a userpass login), with %d requests in flight, %.0f s each after %.0f s of warm-up, in the same run;\n", r.Run.Concurrency, r.Run.DurationS, r.Run.WarmupS)
	if x.Rounds > 1 {
		p("each row is the median of %d rounds, the rows interleaved (rates on this shared machine drift by ±10%%);\n", x.Rounds)
	}
	p("then both again with a file audit device enabled (every request and answer written, HMAC'd, to a file).\n")
	p("The identity role has a one-claim template. An ordinary step credential writes nothing to storage on its\n")
	p("request path: its `credential_issued` event waits for the session's batch (64 events or 1 s). Step\n")
	p("credentials are taken by GET, as the Go SDK takes them, and by PUT.\n\n")
	p("| request | per second | p50 | p99 | CPU per request: Vault / plugin |\n|---|---:|---:|---:|---:|\n")
	for _, rr := range []RateResult{x.Identity, x.Floor, x.Creds, x.CredsPut, x.Exchange, x.IdentityAudit, x.FloorAudit, x.CredsAudit, x.CredsPutAudit, x.ExchangeAudit} {
		if rr.Label == "" {
			continue // an earlier run without the row
		}
		p("| %s | %s | %.2f ms | %.2f ms | %s / %s |\n", rr.Label, num(rr.PerSec), rr.P50ms, rr.P99ms, us(rr.VaultCPUus), us(rr.PluginCPUus))
	}
	p("\n")
	if svgPath != "" {
		p("![Step credentials beside identity tokens](%s)\n\n", filepath.Base(identitySVGPath(svgPath)))
	}
	p("Where the difference goes. Everything here shares %d cores: Vault, the plugin and the load generator.\n", r.Env.NProc)
	p("An identity token is signed inside Vault's process. A request to an external plugin crosses the plugin's\n")
	p("gRPC connection: Vault routes it, checks the token and the policy, forwards it, and the answer returns the\n")
	p("same way. The row \"the agent reads its own session\" is the cheapest authenticated request to the plugin\n")
	p("(the session is in memory, nothing is signed or written): what any request to an external plugin costs\n")
	if x.Floor.PerSec > 0 && x.Identity.PerSec > 0 {
		p("before the plugin does any work. It ran at %.2f× the identity token's rate here.", x.Floor.PerSec/x.Identity.PerSec)
		if x.Creds.PerSec > 0 {
			p(" A step credential, at %.2f× that floor, adds\n", x.Creds.PerSec/x.Floor.PerSec)
		} else {
			p(" A step credential adds\n")
		}
	} else {
		p("before the plugin does any work. A step credential adds\n")
	}
	p("the step's checks (scopes, budget, rate), a signature (EdDSA through go-jose) and its staged event. By PUT,\n")
	p("Vault first asks the plugin whether the path exists, as it does before every write to a plugin: one more\n")
	p("round trip between Vault and the plugin, which is why the Go SDK takes steps by GET and derives\n")
	p("(parent_token in the body) by PUT.")
	if x.Creds.PerSec > 0 && x.CredsPut.PerSec > 0 && x.CredsAudit.PerSec > 0 && x.CredsPutAudit.PerSec > 0 {
		g, ga := x.Creds.PerSec/x.CredsPut.PerSec, x.CredsAudit.PerSec/x.CredsPutAudit.PerSec
		p(" Here GET ran at %.2f× PUT (%.2f× audited)", g, ga)
		if math.Abs(g-1) < 0.05 || math.Abs(ga-1) < 0.05 {
			p(": that round trip costs less than this machine's drift from one round to the next")
		}
		p(".")
	}
	p(" The CPU columns say where the time goes.\n\n")
	if x.Exchange.PerSec > 0 && x.Identity.PerSec > 0 {
		p("Token exchange: a sub-agent, or any holder of a delegation credential (one issued for the engine\n")
		p("itself), takes its step credentials at `agent/token` (RFC 8693) with no Vault token. The path is\n")
		p("unauthenticated in Vault's sense: the subject credential is the authority, and the engine checks it\n")
		p("(signature, session, narrowing, budget, rate), so Vault checks no token and no policy for it. The engine\n")
		p("checks the signature of a delegation credential once and remembers it, by a hash of the whole credential\n")
		p("(its expiry, key, session and everything else are checked on every exchange), and signs a new credential\n")
		p("for each exchange. It ran at %.2f× the identity token's rate", x.Exchange.PerSec/x.Identity.PerSec)
		if x.ExchangeAudit.PerSec > 0 && x.IdentityAudit.PerSec > 0 {
			p(" (%.2f× audited)", x.ExchangeAudit.PerSec/x.IdentityAudit.PerSec)
		}
		p(".\n\n")
	}
}

func (r *Results) identityVerdicts() []Verdict {
	a := Verdict{ID: "7a", What: "step credentials/s (GET, as the Go SDK) vs identity tokens/s (same entity-bound token)", Target: "≥ 1.0×", Met: "not measured"}
	b := Verdict{ID: "7b", What: "the same, with a file audit device", Target: "≥ 1.0×", Met: "not measured"}
	if x := r.Identity; x != nil {
		if x.Identity.PerSec > 0 {
			f := x.Creds.PerSec / x.Identity.PerSec
			a.Measured = fmt.Sprintf("%s/s vs %s/s = %.2f×", num(x.Creds.PerSec), num(x.Identity.PerSec), f)
			a.Met = yesNo(f >= 1)
		}
		if x.IdentityAudit.PerSec > 0 {
			f := x.CredsAudit.PerSec / x.IdentityAudit.PerSec
			b.Measured = fmt.Sprintf("%s/s vs %s/s = %.2f×", num(x.CredsAudit.PerSec), num(x.IdentityAudit.PerSec), f)
			b.Met = yesNo(f >= 1)
		}
	}
	c := Verdict{ID: "7c", What: "step credentials/s by token exchange (no Vault token) vs identity tokens/s", Target: "≥ 1.0×", Met: "not measured"}
	if x := r.Identity; x != nil && x.Exchange.PerSec > 0 && x.Identity.PerSec > 0 {
		f := x.Exchange.PerSec / x.Identity.PerSec
		c.Measured = fmt.Sprintf("%s/s vs %s/s = %.2f×", num(x.Exchange.PerSec), num(x.Identity.PerSec), f)
		met := f >= 1
		if x.ExchangeAudit.PerSec > 0 && x.IdentityAudit.PerSec > 0 {
			fa := x.ExchangeAudit.PerSec / x.IdentityAudit.PerSec
			c.Measured += fmt.Sprintf("; audited %.2f×", fa)
			met = met && fa >= 1 // the target holds with and without audit
		}
		c.Met = yesNo(met)
	}
	return []Verdict{a, b, c}
}

// colExchange is the colour of the token-exchange bars.
const colExchange = "#2f855a"

// identitySVGPath is the picture of section 7, next to the main one.
func identitySVGPath(main string) string { return siblingSVGPath(main, "identity") }

// renderIdentitySVG draws section 7: requests per second of each row,
// without and with the audit device, the identity token's rate marked
// as the target.
func renderIdentitySVG(r *Results) string {
	const w, h = 1120.0, 380.0
	d := newSVG(w, h)
	d.text(w/2, 24, "Step credentials beside Vault's own signed JWTs (same entity-bound token)", "middle", 15, `font-weight="bold" fill="#1a202c"`)
	x := r.Identity
	if x == nil {
		return d.String()
	}
	type bar struct {
		rr     RateResult
		short  string
		colour string
	}
	groups := []struct {
		title string
		bars  []bar
	}{
		{"without an audit device", []bar{
			{x.Identity, "identity token", colToken}, {x.Floor, "own session read", colPlugin},
			{x.Creds, "step, GET", colCreds}, {x.CredsPut, "step, PUT", colRef},
			{x.Exchange, "token exchange", colExchange},
		}},
		{"with a file audit device", []bar{
			{x.IdentityAudit, "identity token", colToken}, {x.FloorAudit, "own session read", colPlugin},
			{x.CredsAudit, "step, GET", colCreds}, {x.CredsPutAudit, "step, PUT", colRef},
			{x.ExchangeAudit, "token exchange", colExchange},
		}},
	}
	top := 0.0
	for _, g := range groups {
		for _, b := range g.bars {
			top = math.Max(top, b.rr.PerSec)
		}
	}
	top = niceCeil(top * 1.08)
	const y0, ph, pw = 70.0, 240.0, 470.0
	for gi, g := range groups {
		x0 := 70.0 + float64(gi)*(pw+80)
		d.text(x0+pw/2, 52, g.title, "middle", 13, `fill="#1a202c"`)
		for i := 0; i <= 4; i++ {
			v := top * float64(i) / 4
			y := y0 + ph - ph*float64(i)/4
			d.line(x0, y, x0+pw, y, `stroke="`+colGrid+`"`)
			d.text(x0-6, y+4, num(v), "end", 10, `fill="#4a5568"`)
		}
		d.line(x0, y0+ph, x0+pw, y0+ph, `stroke="`+colAxis+`"`)
		d.line(x0, y0, x0, y0+ph, `stroke="`+colAxis+`"`)
		slot := pw / float64(len(g.bars))
		for i, b := range g.bars {
			if b.rr.PerSec <= 0 {
				continue // a row an earlier run did not measure
			}
			cx := x0 + slot*(float64(i)+0.5)
			bh := ph * b.rr.PerSec / top
			d.rect(cx-slot*0.3, y0+ph-bh, slot*0.6, bh, `fill="`+b.colour+`"`)
			d.text(cx, y0+ph-bh-5, num(b.rr.PerSec), "middle", 11, `font-weight="bold" fill="#1a202c"`+halo)
			d.text(cx, y0+ph+16, b.short, "middle", 10.5, `fill="#1a202c"`)
		}
		if id := g.bars[0].rr.PerSec; id > 0 {
			y := y0 + ph - ph*id/top
			d.line(x0, y, x0+pw, y, `stroke="`+colTarget+`" stroke-width="1.5" stroke-dasharray="6,4"`)
			if c := g.bars[2].rr.PerSec; c > 0 {
				d.text(x0+pw/2, y0+ph+38, fmt.Sprintf("step (GET) = %.2f × identity token (target ≥ 1.0×, dashed)", c/id), "middle", 11, `fill="`+colTarget+`"`)
			}
		}
	}
	d.text(w/2, h-12, "requests per second; "+fmt.Sprintf("%d in flight, %.0f s each, %d cores shared by Vault, the plugin and the load generator", r.Run.Concurrency, r.Run.DurationS, r.Env.NProc), "middle", 10.5, `fill="#4a5568"`)
	return d.String()
}
