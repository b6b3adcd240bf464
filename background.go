package agent

import (
	"context"
	"sync"
	"time"
)

// backgroundTimeout bounds work done after an answer.
const backgroundTimeout = 30 * time.Second

// background runs work after a request has been answered (such as
// deleting a completed close's WAL entry, see wal.go), and lets Clean wait
// for it.
type background struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

// run runs f with a context that close cancels. After close, f does not
// run.
func (g *background) run(f func(ctx context.Context)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ctx, cancel := context.WithTimeout(g.ctx, backgroundTimeout)
		defer cancel()
		f(ctx)
	}()
}

// wait waits for the work under way.
func (g *background) wait() { g.wg.Wait() }

// close cancels the work under way and waits for it.
func (g *background) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}
