package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
)

// Delivering the SETs of the streams (see storage_ssf.go).
//
// Push streams (RFC 8935) are drained by the active node only (see
// ownsStorage): one drainer per stream with SETs pending, run in the
// background (b.bg, so Clean stops it), POSTs the outbox's first SET, and
// deletes it once the receiver took it (202, or any 2xx) or refused it for
// good (a 4xx other than 408 and 429, RFC 8935 §2.3: logged at Debug with
// its error code); any other answer, or none, is retried with a backoff
// from half a second to a minute. One SET at a time: in order, at least
// once. A drainer is woken by every SET queued, started by the periodic
// function and by the first request a node serves (after a restart, or on
// a node that just became active), and runs at most backgroundTimeout at
// a time before handing over to a fresh one.
//
// Poll streams (RFC 8936) are served by the poll path: SETs stay in the
// outbox, served again in order at each poll, until the receiver
// acknowledges them.

// Push delivery settings.
const (
	ssfPushTimeout     = 10 * time.Second
	ssfMinBackoff      = 500 * time.Millisecond
	ssfMaxBackoff      = time.Minute
	ssfDefaultPollWait = 30 * time.Second
	// ssfMaxReceiverAnswer bounds what is read of a receiver's answer.
	ssfMaxReceiverAnswer = 4 << 10
)

// HandleRequest notes the mount path of every request (the default issuer
// of SETs, see ssfIssuer) and, on this node's first request, starts the
// deliveries that storage holds; then it handles the request as the
// framework does.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	b.ssfNote(req)
	return b.Backend.HandleRequest(ctx, req)
}

// ssfNote keeps req's mount path, and starts the deliveries at the first
// request that brings storage.
func (b *backend) ssfNote(req *logical.Request) {
	h := &b.ssf
	h.mu.Lock()
	if req.MountPoint != "" {
		h.mount = req.MountPoint
	}
	start := !h.started && req.Storage != nil
	h.started = h.started || start
	h.mu.Unlock()
	if start {
		b.ssfKick(req.Storage)
	}
}

// ssfIssuer is the "iss" of SETs: the engine's issuer for the mount of
// the latest request, or, before any, for the mount the stream was
// written through.
func (b *backend) ssfIssuer(cfg *agentConfig, rec *ssfStream) string {
	b.ssf.mu.Lock()
	mount := b.ssf.mount
	b.ssf.mu.Unlock()
	if mount == "" {
		mount = rec.Mount
	}
	return cfg.issuerFor(mount)
}

// ssfKick starts the drainer of every push stream with SETs pending, in
// the background. Nodes that do not own the storage deliver nothing.
func (b *backend) ssfKick(s logical.Storage) {
	if !b.ownsStorage() {
		return
	}
	b.bg.run(func(ctx context.Context) {
		ids, err := b.ssfStreamIDs(ctx, s)
		if err != nil {
			b.Logger().Warn("listing the streams to deliver", "error", err)
			return
		}
		for _, id := range ids {
			st := b.ssf.state(id)
			st.mu.Lock()
			err := b.ssfLoad(ctx, s, st)
			st.mu.Unlock()
			if err != nil {
				b.Logger().Warn("loading a stream to deliver", "stream_id", id, "error", err)
				continue
			}
			b.ssfWake(s, st)
		}
	})
}

// ssfWake starts st's drainer when st is a push stream with SETs pending
// and none runs; a running drainer finds new SETs by itself. Nodes that
// do not own the storage deliver nothing.
func (b *backend) ssfWake(s logical.Storage, st *ssfStreamState) {
	st.mu.Lock()
	start := st.loaded && !st.gone && !st.running && st.rec.DeliveryMethod == deliveryPush && len(st.pending) > 0
	st.mu.Unlock()
	if !start || !b.ownsStorage() {
		return
	}
	st.mu.Lock()
	if st.running {
		st.mu.Unlock()
		return
	}
	st.running = true
	st.mu.Unlock()
	b.bg.run(func(ctx context.Context) { b.drain(ctx, s, st) })
}

// drain pushes st's outbox, in order, until it is empty, the stream is
// gone or no longer push, or ctx ends (then a fresh drainer takes over,
// unless the backend is closing).
func (b *backend) drain(ctx context.Context, s logical.Storage, st *ssfStreamState) {
	for {
		st.mu.Lock()
		if err := b.ssfLoad(ctx, s, st); err != nil {
			st.running = false
			st.mu.Unlock()
			b.Logger().Warn("loading a stream to deliver", "stream_id", st.id, "error", err)
			return
		}
		if st.gone || st.rec.DeliveryMethod != deliveryPush || len(st.pending) == 0 || ctx.Err() != nil {
			st.running = false
			st.mu.Unlock()
			if ctx.Err() != nil {
				// Hand over (a no-op once the backend is closing).
				b.ssfWake(s, st)
			}
			return
		}
		it, rec, auth, wait := st.pending[0], st.rec, st.auth, time.Until(st.retryAt)
		st.mu.Unlock()

		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		done, err := b.deliverItem(ctx, s, &rec, auth, it)
		st.mu.Lock()
		if err == nil && done {
			err = b.removeItem(ctx, s, st, it)
		}
		if err != nil {
			if ctx.Err() == nil {
				st.backoff = min(max(2*st.backoff, b.ssfMinBackoff()), b.ssfMaxBackoff())
				st.retryAt = time.Now().Add(st.backoff)
				if !st.failing {
					st.failing = true
					b.Logger().Warn("cannot deliver to a stream's receiver; retrying with backoff", "stream_id", st.id, "error", err)
				} else {
					b.Logger().Debug("retrying a stream's delivery", "stream_id", st.id, "retry_in", st.backoff, "error", err)
				}
			}
		} else {
			if st.failing {
				b.Logger().Info("a stream's receiver accepts SETs again", "stream_id", st.id)
			}
			st.backoff, st.retryAt, st.failing = 0, time.Time{}, false
		}
		st.mu.Unlock()
	}
}

func (b *backend) ssfMinBackoff() time.Duration {
	if b.ssf.minBackoff > 0 {
		return b.ssf.minBackoff
	}
	return ssfMinBackoff
}

func (b *backend) ssfMaxBackoff() time.Duration {
	if b.ssf.maxBackoff > 0 {
		return b.ssf.maxBackoff
	}
	return ssfMaxBackoff
}

// deliverItem pushes one outbox entry. It reports whether the entry is
// done with (delivered, refused for good, or no longer in storage); an
// error means it is to be tried again.
func (b *backend) deliverItem(ctx context.Context, s logical.Storage, rec *ssfStream, auth string, it outboxItem) (bool, error) {
	var e outboxEntry
	ok, err := getJSON(ctx, s, outboxKey(rec.ID, it.name), &e)
	if err != nil || !ok {
		return !ok && err == nil, err
	}
	raw, err := b.buildSET(ctx, s, rec, &e)
	if err != nil {
		return false, err
	}
	return b.push(ctx, rec, auth, e.JTI, raw)
}

// buildSET signs an outbox entry's SET for rec with the current signing
// key.
func (b *backend) buildSET(ctx context.Context, s logical.Storage, rec *ssfStream, e *outboxEntry) (string, error) {
	cfg, ring, err := b.loadConfigAndKeyring(ctx, s)
	if err != nil {
		return "", err
	}
	env := ssf.Envelope{Issuer: b.ssfIssuer(cfg, rec), ID: e.JTI, Audience: rec.Audience, IssuedAt: b.now()}
	switch e.Event {
	case ssf.EventSessionRevoked:
		return ssf.BuildSessionRevoked(ring.current, env, e.Session, time.Unix(e.EventTimestamp, 0), e.Initiating, e.Reason)
	case ssf.EventVerification:
		return ssf.BuildVerification(ring.current, env, rec.ID, e.State)
	}
	return "", fmt.Errorf("outbox entry %s of stream %s: unknown event type", e.JTI, rec.ID)
}

// receiverError is the error body of RFC 8935 §2.3.
type receiverError struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// push POSTs one SET to a push stream's receiver (RFC 8935 §2). It reports
// whether the SET is done with: accepted (202, or any 2xx), or refused for
// good (a 4xx but 408 and 429: sending it again would not help). Any other
// outcome is an error: the SET is to be sent again. Neither the SET nor
// the Authorization header is ever logged.
func (b *backend) push(ctx context.Context, rec *ssfStream, auth, jti, raw string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, ssfPushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rec.EndpointURL, strings.NewReader(raw))
	if err != nil {
		// The URL was validated when written: a failure is for good.
		b.Logger().Debug("a SET could not be sent", "stream_id", rec.ID, "jti", jti, "error", err)
		return true, nil
	}
	req.Header.Set("Content-Type", ssf.ContentType)
	req.Header.Set("Accept", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := b.ssfClient().Do(req)
	if err != nil {
		// Without the URL, which the stream's read shows.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return false, fmt.Errorf("pushing a SET: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, ssfMaxReceiverAnswer))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return true, nil
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		var re receiverError
		_ = json.Unmarshal(body, &re)
		b.Logger().Debug("a stream's receiver refused a SET; it will not be sent again", "stream_id", rec.ID,
			"jti", jti, "status", code, "err", re.Err, "description", clipLog(re.Description))
		return true, nil
	default:
		return false, fmt.Errorf("the receiver answered %s", resp.Status)
	}
}

// clipLog bounds what a receiver wrote before it goes to the log.
func clipLog(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// ssfClient is the HTTP client of pushes: it follows no redirect (the
// stream names its receiver; a redirect is an error, retried).
func (b *backend) ssfClient() *http.Client {
	b.ssf.mu.Lock()
	defer b.ssf.mu.Unlock()
	if b.ssf.client == nil {
		b.ssf.client = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return b.ssf.client
}

// pollAnswer is what a poll serves (RFC 8936 §2.2).
type pollAnswer struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// pollStream serves a poll of a poll stream (RFC 8936 §2): it deletes the
// acknowledged SETs (and those the receiver reported errors for), then
// answers up to maxEvents of the outbox's first SETs, signed now, and
// whether more are pending. Without returnImmediately it waits (up to the
// hub's pollWait) for a SET when there is none.
func (b *backend) pollStream(ctx context.Context, s logical.Storage, id string, maxEvents int, wait bool, acks []string, errs map[string]receiverError) (*pollAnswer, error) {
	var notify chan struct{}
	if err := b.ssfLocked(ctx, s, id, func(st *ssfStreamState) error {
		if st.rec.DeliveryMethod != deliveryPoll {
			return badField("stream_id", "stream %s delivers by push; only poll streams are polled", id)
		}
		for _, it := range append([]outboxItem(nil), st.pending...) {
			e, reported := errs[it.jti]
			if !reported && !slices.Contains(acks, it.jti) {
				continue
			}
			if reported {
				b.Logger().Debug("a stream's receiver reported an error for a SET; it will not be sent again",
					"stream_id", id, "jti", it.jti, "err", e.Err, "description", clipLog(e.Description))
			}
			if err := b.removeItem(ctx, s, st, it); err != nil {
				return err
			}
		}
		notify = st.notify
		if len(st.pending) > 0 || maxEvents == 0 {
			notify = nil
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if notify != nil && wait {
		pollWait := b.ssf.pollWait
		if pollWait <= 0 {
			pollWait = ssfDefaultPollWait
		}
		timer := time.NewTimer(pollWait)
		select {
		case <-notify:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}

	answer := &pollAnswer{Sets: map[string]string{}}
	err := b.ssfLocked(ctx, s, id, func(st *ssfStreamState) error {
		if maxEvents == 0 {
			answer.MoreAvailable = len(st.pending) > 0
			return nil
		}
		for _, it := range st.pending {
			if len(answer.Sets) == maxEvents {
				answer.MoreAvailable = true
				break
			}
			var e outboxEntry
			ok, err := getJSON(ctx, s, outboxKey(id, it.name), &e)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			raw, err := b.buildSET(ctx, s, &st.rec, &e)
			if err != nil {
				return err
			}
			answer.Sets[e.JTI] = raw
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return answer, nil
}
