package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// Method (c) of the kill → refusal scenario: SSF push. Every resource
// server's verifier serves its SETReceiver on one local HTTP server
// (127.0.0.1), and the engine gets a push stream per resource server
// (agent/ssf/streams, delivery_method=push, its own audience and
// Authorization header). The streams are deleted afterwards, so no later
// close queues SETs.

// ssfVerifyWait bounds the wait for every stream's verification SET.
const ssfVerifyWait = 30 * time.Second

// ssfUnsupported says why the engine cannot be measured with SSF push
// ("" when it can): it has no ssf/streams path.
func (h *harness) ssfUnsupported(ctx context.Context) string {
	if _, err := h.root.Logical().ListWithContext(ctx, h.cfg.mount+"/ssf/streams"); err != nil {
		return "the engine has no SSF streams (LIST " + h.cfg.mount + "/ssf/streams: " + firstLine(err) + ")"
	}
	return ""
}

// newSSFFleet starts n resource servers that learn of kills by SSF push,
// subscribes a push stream for each, and waits until each stream has
// delivered a verification SET (so that every stream works end to end and
// the engine's connections to the receivers are open, as in a steady
// state).
func (h *harness) newSSFFleet(ctx context.Context, n int) (_ *fleet, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	f := &fleet{method: propSSF}
	var streams []string
	f.cleanup = func() {
		// Streams first, so the engine stops pushing; then the receivers.
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, id := range streams {
			if _, err := h.root.Logical().DeleteWithContext(cctx, h.cfg.mount+"/ssf/streams/"+id); err != nil {
				log.Printf("deleting SSF stream %s: %v", id, firstLine(err))
			}
		}
		_ = srv.Shutdown(cctx)
	}
	defer func() {
		if err != nil {
			f.close()
		}
	}()

	base := "http://" + ln.Addr().String()
	for i := 0; i < n; i++ {
		rs := &resourceServer{tr: newTransport()}
		f.servers = append(f.servers, rs)
		if rs.v, err = verifier.New(ctx, h.verifierConfig(propSSF, rs.tr)); err != nil {
			return nil, fmt.Errorf("starting resource server %d: %w", i+1, err)
		}
		secret := make([]byte, 16)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		auth := "Bearer " + hex.EncodeToString(secret)
		audience := fmt.Sprintf("bench-rs-%d", i+1)
		path := fmt.Sprintf("/ssf/%d", i+1)
		mux.Handle(path, rs.v.SETReceiver(verifier.SETReceiverConfig{
			Audience: audience, Authorization: auth,
			OnSET: func(set *ssf.SET) {
				switch set.Events.Type() {
				case ssf.EventSessionRevoked:
					rs.pushed.LoadOrStore(set.SessionID(), time.Now())
				case ssf.EventVerification:
					rs.verified.Store(true)
				}
			},
		}))
		sec, err := h.root.Logical().WriteWithContext(ctx, h.cfg.mount+"/ssf/streams", map[string]interface{}{
			"delivery_method": "push", "endpoint_url": base + path, "audience": audience, "authorization_header": auth,
		})
		if err != nil {
			return nil, fmt.Errorf("creating the push stream of resource server %d: %w", i+1, err)
		}
		id, _ := sec.Data["stream_id"].(string)
		if id == "" {
			return nil, errors.New("creating a push stream: no stream_id in the answer")
		}
		streams = append(streams, id)
	}
	for _, id := range streams {
		if _, err := h.root.Logical().WriteWithContext(ctx, h.cfg.mount+"/ssf/streams/"+id+"/verify", map[string]interface{}{"state": "bench"}); err != nil {
			return nil, fmt.Errorf("asking stream %s for a verification SET: %w", id, err)
		}
	}
	deadline := time.Now().Add(ssfVerifyWait)
	for {
		waiting := 0
		for _, rs := range f.servers {
			if !rs.verified.Load() {
				waiting++
			}
		}
		if waiting == 0 {
			return f, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("%d of %d receivers got no verification SET within %s", waiting, n, ssfVerifyWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
