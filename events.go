package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// The Vault event types the engine sends.
const (
	eventSessionStart  = "agent/session-start"
	eventSessionEnd    = "agent/session-end"
	eventSessionRevoke = "agent/session-revoke"
	eventViolation     = "agent/violation"
)

// eventQueueSize bounds the events waiting to be sent; beyond it, events
// are dropped (and counted) rather than slowing a request.
const eventQueueSize = 1024

// eventQueue sends Vault events in the background, so that sending never
// fails or slows a request: send only enqueues, and a full queue drops.
type eventQueue struct {
	sender    logical.EventSender
	logger    hclog.Logger
	queue     chan queuedEvent
	dropped   atomic.Uint64
	sent      atomic.Uint64
	start     sync.Once
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

type queuedEvent struct {
	eventType string
	pairs     []string
}

func newEventQueue(sender logical.EventSender, logger hclog.Logger) *eventQueue {
	return &eventQueue{
		sender: sender,
		logger: logger,
		queue:  make(chan queuedEvent, eventQueueSize),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// send enqueues an event of eventType with metadata key/value pairs. It
// never blocks. Metadata must hold no secret: IDs, roles, kinds, reasons.
func (q *eventQueue) send(eventType string, pairs ...string) {
	if q == nil || q.sender == nil {
		return
	}
	q.start.Do(func() { go q.run() })
	select {
	case q.queue <- queuedEvent{eventType: eventType, pairs: pairs}:
	default:
		if q.dropped.Add(1)%100 == 1 {
			q.logger.Warn("event queue full; dropping events", "dropped_total", q.dropped.Load())
		}
	}
}

func (q *eventQueue) run() {
	defer close(q.done)
	for {
		select {
		case <-q.stop:
			return
		case ev := <-q.queue:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := logical.SendEvent(ctx, q.sender, ev.eventType, ev.pairs...)
			cancel()
			if err != nil {
				// Vault CE may have no event bus to send to; this is
				// not the caller's problem.
				q.logger.Debug("sending event failed", "event_type", ev.eventType, "error", err)
				continue
			}
			q.sent.Add(1)
		}
	}
}

// close stops the sender and waits for it; events still queued are
// dropped. Events sent after close are never sent.
func (q *eventQueue) close() {
	if q == nil {
		return
	}
	q.closeOnce.Do(func() {
		q.start.Do(func() { close(q.done) }) // never started: nothing to wait for
		close(q.stop)
		<-q.done
	})
}
