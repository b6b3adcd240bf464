package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// Notifications are what the engine sends through Vault's event system:
// they are Vault events, named apart from the events of a session's
// timeline. These are their Vault event types.
const (
	notifySessionStart  = "agent/session-start"
	notifySessionEnd    = "agent/session-end"
	notifySessionRevoke = "agent/session-revoke"
	notifyViolation     = "agent/violation"
	// notifyApprovalRequest and notifyApprovalDecision: a step waits for
	// approval; a person decided it.
	notifyApprovalRequest  = "agent/approval-request"
	notifyApprovalDecision = "agent/approval-decision"
)

// notifierQueueSize bounds the notifications waiting to be sent; beyond
// it, notifications are dropped (and counted) rather than slowing a
// request.
const notifierQueueSize = 1024

// notifier sends notifications in the background, so that sending never
// fails or slows a request: send only enqueues, and a full queue drops.
type notifier struct {
	sender    logical.EventSender
	logger    hclog.Logger
	queue     chan notification
	dropped   atomic.Uint64
	start     sync.Once
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// notification is one queued notification: its Vault event type and
// metadata.
type notification struct {
	eventType string
	pairs     []string
}

func newNotifier(sender logical.EventSender, logger hclog.Logger) *notifier {
	return &notifier{
		sender: sender,
		logger: logger,
		queue:  make(chan notification, notifierQueueSize),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// send enqueues a notification of eventType with metadata key/value pairs.
// It never blocks. Metadata must hold no secret: IDs, roles, kinds,
// reasons.
func (q *notifier) send(eventType string, pairs ...string) {
	if q == nil || q.sender == nil {
		return
	}
	q.start.Do(func() { go q.run() })
	select {
	case q.queue <- notification{eventType: eventType, pairs: pairs}:
	default:
		if q.dropped.Add(1)%100 == 1 {
			q.logger.Warn("notification queue full; dropping notifications", "dropped_total", q.dropped.Load())
		}
	}
}

func (q *notifier) run() {
	defer close(q.done)
	for {
		select {
		case <-q.stop:
			return
		case n := <-q.queue:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := logical.SendEvent(ctx, q.sender, n.eventType, n.pairs...)
			cancel()
			if err != nil {
				// Vault CE may have no event bus to send to; this is
				// not the caller's problem.
				q.logger.Debug("sending a notification failed", "event_type", n.eventType, "error", err)
			}
		}
	}
}

// close stops the sender and waits for it; notifications still queued
// are dropped. Notifications sent after close are never sent.
func (q *notifier) close() {
	if q == nil {
		return
	}
	q.closeOnce.Do(func() {
		q.start.Do(func() { close(q.done) }) // never started: nothing to wait for
		close(q.stop)
		<-q.done
	})
}
