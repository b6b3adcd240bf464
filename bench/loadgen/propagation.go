package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// The kill → refusal scenario (issue 15 §3): how long after a session is
// ended its credentials are refused by resource servers, and what the
// revocation list costs a resource server per kill.
//
// N resource servers (verifier.Verifier instances in this process, each
// with its own HTTP client, talking to the bench Vault) each hold a live
// credential of one session. The session is ended (PUT
// agent/sessions/<id>/end, as the agent); each verifier is then checked
// every propSweep, and its refusal time is the first check at which it
// holds the session closed and Verify refuses the credential with
// verifier.ErrSessionClosed, minus the moment the end request was sent.
// Three ways of learning of the kill:
//
//	(a) poll:     the whole list every -prop-poll (RevocationWait -1);
//	(b) blocking: the verifier's default, a held revocations query with
//	              deltas (RevocationWait 30s);
//	(c) ssf:      an SSF push stream per verifier (RFC 8935), POSTing to
//	              the verifier's SETReceiver on a local HTTP server; the
//	              verifier's own list sync polls every minute meanwhile,
//	              and only the push counts.
//
// Then the list is filled with the sessions it would hold at each kill
// rate, and the full answer (what a poller fetches every -prop-poll) and a
// one-kill delta answer are measured on the wire.

const (
	propRole = "bench-prop"
	// propStepTTL is the role's step_ttl and step_max_ttl: a killed
	// session is listed for it plus trust.RevocationGrace.
	propStepTTL = 60 * time.Second
	// propSweep is how often each verifier is checked for the refusal.
	propSweep = 250 * time.Microsecond
	// propSettle lets held queries (b) and push connections (c) settle
	// between a round's credentials and its kill.
	propSettle = 300 * time.Millisecond
	// propSamples: full and delta answers measured per kill rate (the
	// median counts).
	propSamples = 3
	// propMaxAnswer bounds an answer read for the bytes measurement.
	propMaxAnswer = 256 << 20
)

func (h *harness) scenarioPropagation(ctx context.Context) error {
	h.waitQuiet(ctx)
	_, err := h.root.Logical().WriteWithContext(ctx, h.cfg.mount+"/roles/"+propRole, map[string]interface{}{
		"scopes":          "read:bench/*",
		"audiences":       benchAudience,
		"max_steps":       1000000,
		"max_rate":        100000,
		"on_violation":    "deny",
		"violation_limit": 1000,
		"session_ttl":     "30m",
		"session_max_ttl": "30m",
		"step_ttl":        fmt.Sprintf("%ds", int(propStepTTL/time.Second)),
		"step_max_ttl":    fmt.Sprintf("%ds", int(propStepTTL/time.Second)),
	})
	if err != nil {
		return fmt.Errorf("writing role %s: %w", propRole, err)
	}
	pr := &PropagationResult{
		PollS: h.cfg.propPoll.Seconds(), StepMaxTTLS: propStepTTL.Seconds(), GraceS: trust.RevocationGrace.Seconds(),
		Rounds: h.cfg.propRounds, SweepUs: float64(propSweep) / float64(time.Microsecond),
	}
	h.res.Propagation = pr

	ssfWhyNot := ""
	if slices.Contains(h.cfg.propMethods, propSSF) {
		ssfWhyNot = h.ssfUnsupported(ctx)
	}
	for _, m := range h.cfg.propMethods {
		for _, n := range h.cfg.propCounts {
			if m == propSSF && ssfWhyNot != "" {
				pr.Rows = append(pr.Rows, PropagationRow{Method: m, N: n, NotMeasured: ssfWhyNot})
				continue
			}
			row, err := h.propagationRow(ctx, m, n)
			if err != nil && m == propSSF && ctx.Err() == nil {
				// The SSF transmitter is new: a failure there is reported,
				// and the rest of the run goes on.
				log.Printf("propagation, ssf, %d resource servers: %v", n, err)
				row = PropagationRow{Method: m, N: n, NotMeasured: "failed: " + firstLine(err)}
			} else if err != nil {
				return fmt.Errorf("%s, %d resource servers: %w", m, n, err)
			}
			pr.Rows = append(pr.Rows, row)
		}
	}
	if len(h.cfg.propKillRates) > 0 {
		if err := h.killBytes(ctx, pr); err != nil {
			if ctx.Err() != nil {
				return err
			}
			pr.BytesErr = firstLine(err)
			log.Printf("propagation, bytes per kill: %v", err)
		}
	}
	return nil
}

// startSessionRole starts a session of role as the agent.
func (h *harness) startSessionRole(ctx context.Context, role, purpose string) (string, error) {
	sec, err := h.agent.Logical().WriteWithContext(ctx, h.cfg.mount+"/session", map[string]interface{}{
		"role": role, "purpose": purpose, "scopes": "read:bench/*", "audiences": benchAudience,
	})
	if err != nil {
		return "", fmt.Errorf("starting a session: %w", err)
	}
	id, _ := sec.Data["session_id"].(string)
	if id == "" {
		return "", errors.New("starting a session: no session_id in the answer")
	}
	return id, nil
}

// endSession ends a session as its agent.
func (h *harness) endSession(ctx context.Context, sid string) error {
	_, err := h.agent.Logical().WriteWithContext(ctx, h.cfg.mount+"/sessions/"+sid+"/end", nil)
	return err
}

// resourceServer is one verifier and the credential it holds.
type resourceServer struct {
	v    *verifier.Verifier
	tr   *http.Transport
	cred string
	// pushed: session ID → when a session-revoked SET for it was accepted
	// (method ssf).
	pushed sync.Map
	// verified: a verification SET arrived (method ssf).
	verified atomic.Bool
}

// fleet is N resource servers learning of kills one way.
type fleet struct {
	method  string
	servers []*resourceServer
	// cleanup releases what the method set up besides the verifiers.
	cleanup func()
}

func (f *fleet) close() {
	if f.cleanup != nil {
		f.cleanup()
	}
	for _, rs := range f.servers {
		if rs.v != nil {
			rs.v.Close()
		}
		if rs.tr != nil {
			rs.tr.CloseIdleConnections()
		}
	}
}

// closedFor reports whether rs has learnt that session sid is closed the
// fleet's way: its revocation list (poll, blocking) or a pushed SET (ssf).
func (f *fleet) closedFor(rs *resourceServer, sid string) bool {
	if f.method == propSSF {
		_, ok := rs.pushed.Load(sid)
		return ok
	}
	return rs.v.SessionClosed(sid)
}

// verifierConfig is a resource server's configuration for method, with an
// HTTP client of its own (separate resource servers share no connection).
func (h *harness) verifierConfig(method string, tr *http.Transport) verifier.Config {
	c := verifier.Config{
		VaultAddr: h.cfg.addr, Mount: h.cfg.mount, Issuer: h.issuer, Audience: benchAudience,
		HTTPClient: &http.Client{Transport: tr},
	}
	switch method {
	case propPoll:
		c.RevocationWait, c.RevocationPoll = -1, h.cfg.propPoll
	case propSSF:
		// The push alone is measured; the list is synced rarely meanwhile.
		c.RevocationWait, c.RevocationPoll = -1, time.Minute
	}
	return c
}

func newTransport() *http.Transport {
	return http.DefaultTransport.(*http.Transport).Clone()
}

// newFleet starts n resource servers for method. Pollers are started
// spread evenly over one poll interval, as independent servers would be.
func (h *harness) newFleet(ctx context.Context, method string, n int) (*fleet, error) {
	if method == propSSF {
		return h.newSSFFleet(ctx, n)
	}
	f := &fleet{method: method}
	for i := 0; i < n; i++ {
		if method == propPoll && i > 0 {
			sleepUntil(ctx, time.Now().Add(h.cfg.propPoll/time.Duration(n)))
		}
		rs := &resourceServer{tr: newTransport()}
		v, err := verifier.New(ctx, h.verifierConfig(method, rs.tr))
		if err != nil {
			f.close()
			return nil, fmt.Errorf("starting resource server %d: %w", i+1, err)
		}
		rs.v = v
		f.servers = append(f.servers, rs)
	}
	return f, nil
}

// propagationRow measures kill → refusal for method with n resource
// servers over the configured rounds.
func (h *harness) propagationRow(ctx context.Context, method string, n int) (PropagationRow, error) {
	row := PropagationRow{Method: method, N: n}
	f, err := h.newFleet(ctx, method, n)
	if err != nil {
		return row, err
	}
	defer f.close()
	var ends []float64
	for r := 0; r < h.cfg.propRounds; r++ {
		samples, missed, endMs, err := h.propagationRound(ctx, f, r)
		if err != nil {
			return row, fmt.Errorf("round %d: %w", r+1, err)
		}
		row.Rounds++
		row.SamplesMs = append(row.SamplesMs, samples...)
		row.Missed += missed
		ends = append(ends, endMs)
		log.Printf("propagation, %s, %d resource servers, round %d: %d refused, p50 %.1f ms, slowest %.1f ms, %d missed; the end answered in %.1f ms",
			method, n, r+1, len(samples), quantile(samples, 0.5), quantile(samples, 1), missed, endMs)
	}
	row.P50ms = quantile(row.SamplesMs, 0.50)
	row.P99ms = quantile(row.SamplesMs, 0.99)
	row.MaxMs = quantile(row.SamplesMs, 1)
	row.EndMs = median(ends)
	log.Printf("propagation, %s, %d resource servers: %d refusals over %d kills: p50 %.1f ms, p99 %.1f ms, slowest %.1f ms, %d missed",
		method, n, len(row.SamplesMs), row.Rounds, row.P50ms, row.P99ms, row.MaxMs, row.Missed)
	return row, nil
}

// propagationRound gives every resource server of f a credential of a new
// session, checks that each accepts it, ends the session and times each
// server's first refusal. It returns the refusal times (ms after the end
// request was sent), how many servers had not refused within the round's
// bound, and how long the end request took to be answered.
func (h *harness) propagationRound(ctx context.Context, f *fleet, round int) ([]float64, int, float64, error) {
	sid, err := h.startSessionRole(ctx, propRole, fmt.Sprintf("kill → refusal: %s, %d resource servers, round %d", f.method, len(f.servers), round+1))
	if err != nil {
		return nil, 0, 0, err
	}
	for i, rs := range f.servers {
		if rs.cred, err = h.issue(ctx, sid); err != nil {
			return nil, 0, 0, fmt.Errorf("issuing the credential of resource server %d: %w", i+1, err)
		}
	}
	for i, rs := range f.servers {
		if _, err := rs.v.Verify(ctx, rs.cred); err != nil {
			return nil, 0, 0, fmt.Errorf("resource server %d refuses a live credential: %w", i+1, err)
		}
	}
	bound := h.cfg.propTimeout
	if f.method == propPoll {
		// The kill lands at a random moment of the poll cycle.
		sleepUntil(ctx, time.Now().Add(rand.N(h.cfg.propPoll)))
		bound += h.cfg.propPoll
	} else {
		sleepUntil(ctx, time.Now().Add(propSettle))
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, err
	}

	type endOut struct {
		d   time.Duration
		err error
	}
	endc := make(chan endOut, 1)
	t0 := time.Now()
	go func() {
		err := h.endSession(ctx, sid)
		endc <- endOut{time.Since(t0), err}
	}()
	var samples []float64
	pending := make([]int, len(f.servers))
	for i := range pending {
		pending[i] = i
	}
	deadline := t0.Add(bound)
	type hit struct {
		i int
		t time.Time
	}
	var hits []hit
	for len(pending) > 0 && ctx.Err() == nil && time.Now().Before(deadline) {
		// First note who knows (cheap), then confirm with Verify (tens of
		// µs each), so that no server's time includes another's Verify.
		hits = hits[:0]
		rest := pending[:0]
		for _, i := range pending {
			if f.closedFor(f.servers[i], sid) {
				hits = append(hits, hit{i, time.Now()})
			} else {
				rest = append(rest, i)
			}
		}
		pending = rest
		for _, x := range hits {
			rs := f.servers[x.i]
			if _, err := rs.v.Verify(ctx, rs.cred); !errors.Is(err, verifier.ErrSessionClosed) {
				return nil, 0, 0, fmt.Errorf("resource server %d holds the session closed, but Verify answered %v", x.i+1, err)
			}
			samples = append(samples, float64(x.t.Sub(t0))/float64(time.Millisecond))
		}
		if len(pending) > 0 {
			time.Sleep(propSweep)
		}
	}
	var e endOut
	select {
	case e = <-endc:
	case <-time.After(requestTimeout):
		return nil, 0, 0, errors.New("the end request did not answer")
	}
	if e.err != nil {
		return nil, 0, 0, fmt.Errorf("ending the session: %w", e.err)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, err
	}
	return samples, len(pending), float64(e.d) / float64(time.Millisecond), nil
}

// wireAnswer is one revocations answer as received.
type wireAnswer struct {
	wire     int // status line, headers and body as received
	body     int // the JSON body, decoded
	gzip     bool
	version  uint64
	complete bool
	ids      []string
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// fetchRevocations sends GET <mount>/revocations<query> on a connection of
// its own, with the headers Go's HTTP client sends (Accept-Encoding: gzip
// included), and counts the bytes of the answer as they arrive.
func (h *harness) fetchRevocations(ctx context.Context, query string) (wireAnswer, error) {
	var a wireAnswer
	u, err := url.Parse(h.cfg.addr)
	if err != nil {
		return a, err
	}
	if u.Scheme != "http" {
		return a, fmt.Errorf("answers are counted on plain http only, not %s", u.Scheme)
	}
	d := net.Dialer{Timeout: requestTimeout}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return a, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	path := "/v1/" + h.cfg.mount + "/revocations" + query
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n", path, u.Host); err != nil {
		return a, err
	}
	cr := &countingReader{r: conn}
	br := bufio.NewReader(cr)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return a, err
	}
	raw, err := readAllLimited(resp.Body, propMaxAnswer)
	resp.Body.Close()
	if err != nil {
		return a, err
	}
	a.wire = cr.n - br.Buffered()
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("GET %s answered %s", path, resp.Status)
	}
	body := raw
	if resp.Header.Get("Content-Encoding") == "gzip" {
		a.gzip = true
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return a, err
		}
		if body, err = readAllLimited(zr, propMaxAnswer); err != nil {
			return a, err
		}
	}
	a.body = len(body)
	var out struct {
		Data struct {
			Version  uint64 `json:"version"`
			Complete bool   `json:"complete"`
			Sessions []struct {
				ID string `json:"id"`
			} `json:"sessions"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return a, fmt.Errorf("decoding the revocations answer: %w", err)
	}
	a.version, a.complete = out.Data.Version, out.Data.Complete
	for _, s := range out.Data.Sessions {
		a.ids = append(a.ids, s.ID)
	}
	return a, nil
}

// fillRevocations starts and ends up to n sessions (the harness's
// concurrency in parallel), for at most budget. It returns how many it
// ended.
func (h *harness) fillRevocations(ctx context.Context, n int, budget time.Duration) (int, error) {
	deadline := time.Now().Add(budget)
	var (
		next, ended, failures atomic.Int64
		firstErr              atomic.Value
	)
	maxFailures := int64(100 + n/100)
	var wg sync.WaitGroup
	for w := 0; w < h.cfg.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) && failures.Load() <= maxFailures {
				if next.Add(1) > int64(n) {
					return
				}
				sid, err := h.startSessionRole(ctx, propRole, "revocation list fill")
				if err == nil {
					err = h.endSession(ctx, sid)
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					next.Add(-1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ended.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failures.Load(); f > maxFailures {
		return int(ended.Load()), fmt.Errorf("filling the revocation list: %d failures, the first: %v", f, firstErr.Load())
	}
	return int(ended.Load()), ctx.Err()
}

// killBytes fills the revocation list with the sessions it holds at each
// kill rate and measures a full answer and a one-kill delta answer.
func (h *harness) killBytes(ctx context.Context, pr *PropagationResult) error {
	hold := propStepTTL + trust.RevocationGrace
	rates := slices.Clone(h.cfg.propKillRates)
	slices.Sort(rates)
	for _, rate := range rates {
		kb := KillBytes{KillsPerMin: rate, ListTarget: listTarget(rate, hold)}
		cur, err := h.fetchRevocations(ctx, "")
		if err != nil {
			return err
		}
		if need := kb.ListTarget - len(cur.ids); need > 0 {
			t0 := time.Now()
			kb.Filled, err = h.fillRevocations(ctx, need, h.cfg.propFillTime)
			kb.FillSeconds = time.Since(t0).Seconds()
			if err != nil {
				return err
			}
			log.Printf("propagation, %d kills/min: the list held %d sessions; %d more started and ended in %.1fs (%.0f/s)",
				rate, len(cur.ids), kb.Filled, kb.FillSeconds, float64(kb.Filled)/kb.FillSeconds)
		}

		var wires []float64
		var last wireAnswer
		for i := 0; i < propSamples; i++ {
			if last, err = h.fetchRevocations(ctx, ""); err != nil {
				return err
			}
			wires = append(wires, float64(last.wire))
		}
		kb.FullWire, kb.FullBody, kb.Gzip, kb.ListEntries = int(median(wires)), last.body, last.gzip, len(last.ids)

		// One kill at a time, and the delta that carries it.
		wires = wires[:0]
		version := last.version
		for i := 0; i < propSamples; i++ {
			sid, err := h.startSessionRole(ctx, propRole, "one kill for a delta")
			if err != nil {
				return err
			}
			if err := h.endSession(ctx, sid); err != nil {
				return err
			}
			d, err := h.fetchRevocations(ctx, fmt.Sprintf("?after=%d", version))
			if err != nil {
				return err
			}
			if !slices.Contains(d.ids, sid) {
				return fmt.Errorf("the delta after version %d does not hold the session just ended", version)
			}
			wires = append(wires, float64(d.wire))
			kb.DeltaBody, kb.DeltaEntries = d.body, len(d.ids)
			version = d.version
		}
		kb.DeltaWire = int(median(wires))

		// Can a resource server start against this list at all? New
		// fetches the whole list.
		tr := newTransport()
		v, err := verifier.New(ctx, h.verifierConfig(propPoll, tr))
		kb.NewVerifierOK = err == nil
		if err != nil {
			kb.NewVerifierErr = firstLine(err)
		} else {
			v.Close()
		}
		tr.CloseIdleConnections()
		pr.Bytes = append(pr.Bytes, kb)
		log.Printf("propagation, %d kills/min: the list holds %d sessions (target %d): full answer %d B on the wire (%d B of JSON, gzip %v), %.0f B per kill polled every %s; delta of one kill %d B (%d B of JSON); a new verifier syncs: %v %s",
			rate, kb.ListEntries, kb.ListTarget, kb.FullWire, kb.FullBody, kb.Gzip, pollBytesPerKill(kb.FullWire, h.cfg.propPoll, rate), h.cfg.propPoll,
			kb.DeltaWire, kb.DeltaBody, kb.NewVerifierOK, kb.NewVerifierErr)
	}
	return nil
}
