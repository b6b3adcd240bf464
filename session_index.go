package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// The session index: every session of the mount, in the order they
// started, in pages of indexPageSize. A session's place is its index
// sequence number (trust.Session.IndexSeq), handed out by a counter
// reserved in blocks like the step budgets (one write per indexSeqBlock
// starts); its entry is session-index/<seq / indexPageSize>/<id>, empty.
//
// Listing a page reads one index page, whatever the number of sessions:
// a storage list of a prefix costs what the prefix holds (Vault's raft
// storage walks every key under it), so no list ever walks "sessions/".
// The periodic tidy walks the index too, a page at a time, and moves the
// first page past those it emptied.

const (
	sessionIndexPrefix  = "session-index/"
	sessionIndexHeadKey = "session-index-head"
	indexPageSize       = 256
	indexSeqBlock       = 256
)

// indexHead is the index's stored counter.
type indexHead struct {
	// Reserved is one past the highest sequence number that may have
	// been handed out; a restart resumes there.
	Reserved uint64 `json:"reserved"`
	// FirstPage is the first page that may hold an entry: the tidy moves
	// it past the pages it emptied.
	FirstPage uint64 `json:"first_page"`
	// Complete is set once every session stored before the index existed
	// has its place (see indexExisting).
	Complete bool `json:"complete,omitempty"`
}

// sessionIndex is the index's counter on the node that writes it.
type sessionIndex struct {
	mu     sync.Mutex
	loaded bool
	// first is the first number this node handed out (or would).
	first uint64
	next  uint64
	head  indexHead
	// starting holds the numbers handed out to starts not yet done: their
	// entries may still be on their way to storage.
	starting map[uint64]struct{}
}

func indexPageKey(page uint64) string {
	return fmt.Sprintf("%s%010d/", sessionIndexPrefix, page)
}

func indexEntryKey(seq uint64, id string) string {
	return indexPageKey(seq/indexPageSize) + id
}

func readIndexHead(ctx context.Context, s logical.Storage) (indexHead, bool, error) {
	var h indexHead
	ok, err := getJSON(ctx, s, sessionIndexHeadKey, &h)
	return h, ok, err
}

// loadLocked reads the head once; ix.mu must be held.
func (ix *sessionIndex) loadLocked(ctx context.Context, s logical.Storage) error {
	if ix.loaded {
		return nil
	}
	h, _, err := readIndexHead(ctx, s)
	if err != nil {
		return err
	}
	ix.head, ix.next, ix.loaded = h, max(h.Reserved, 1), true
	ix.first = ix.next
	return nil
}

// firstHandedOut is the first number this node handed out, or the next
// it would: every number below was handed out by an earlier run. Before
// the node loaded the counter it is 0.
func (ix *sessionIndex) firstHandedOut() uint64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !ix.loaded {
		return 0
	}
	return ix.first
}

// nextSeq hands out the next index sequence number, reserving a block in
// storage first when the last one ran out: a crash skips the rest of a
// block, never hands a number out twice.
func (ix *sessionIndex) nextSeq(ctx context.Context, s logical.Storage) (uint64, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.loadLocked(ctx, s); err != nil {
		return 0, err
	}
	if ix.next >= ix.head.Reserved {
		h := ix.head
		h.Reserved = ix.next + indexSeqBlock
		if err := putJSON(ctx, s, sessionIndexHeadKey, &h); err != nil {
			return 0, err
		}
		ix.head = h
	}
	seq := ix.next
	ix.next++
	if ix.starting == nil {
		ix.starting = map[uint64]struct{}{}
	}
	ix.starting[seq] = struct{}{}
	return seq, nil
}

// done says that the start that was handed seq is over, whether or not
// it succeeded.
func (ix *sessionIndex) done(seq uint64) {
	ix.mu.Lock()
	delete(ix.starting, seq)
	ix.mu.Unlock()
}

// bounds returns the first and the last page that may hold entries.
func (ix *sessionIndex) bounds(ctx context.Context, s logical.Storage) (first, last uint64, err error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.loadLocked(ctx, s); err != nil {
		return 0, 0, err
	}
	return ix.head.FirstPage, ix.head.Reserved / indexPageSize, nil
}

// advanceFirst moves the first page to page, never past the page being
// filled.
func (ix *sessionIndex) advanceFirst(ctx context.Context, s logical.Storage, page uint64) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.loadLocked(ctx, s); err != nil {
		return err
	}
	page = min(page, ix.next/indexPageSize)
	for seq := range ix.starting {
		// A start whose entry may not have landed yet.
		page = min(page, seq/indexPageSize)
	}
	if page <= ix.head.FirstPage {
		return nil
	}
	h := ix.head
	h.FirstPage = page
	if err := putJSON(ctx, s, sessionIndexHeadKey, &h); err != nil {
		return err
	}
	ix.head = h
	return nil
}

// drop forgets the counter (another node wrote it).
func (ix *sessionIndex) drop() {
	ix.mu.Lock()
	ix.loaded = false
	ix.mu.Unlock()
}

// listScanLimit bounds how many sessions one filtered page reads: a page
// that would need more ends early, with next telling where to go on.
const listScanLimit = 1000

// sessionPage is one page of a session list: the IDs, and the value of
// "after" for the next page ("" when there is none).
type sessionPage struct {
	IDs  []string
	Next string
}

// listSessionPage lists the sessions after the session after (none: from
// the first), at most limit (0: all), of role in state at now (empty:
// any). Without a filter a page reads only the index; with one, it reads
// the sessions it passes, at most listScanLimit of them when limit is
// set.
func (b *backend) listSessionPage(ctx context.Context, s logical.Storage, role string, state trust.State, after string, limit int, now time.Time) (sessionPage, error) {
	first, last, err := b.index.bounds(ctx, s)
	if err != nil {
		return sessionPage{}, err
	}
	page := first
	var afterPage uint64
	if after != "" {
		if p, id, ok := parseCursor(after); ok {
			// A cursor from a previous page: no session to look up, so it
			// holds even when its session has been deleted since.
			afterPage, after = p, id
		} else {
			sess, err := b.getSession(ctx, s, after)
			if err != nil {
				return sessionPage{}, err
			}
			if sess == nil || sess.IndexSeq == 0 {
				return sessionPage{}, badField("after", "no session %q: pass the next value of the previous page, or a session ID", after)
			}
			afterPage = sess.IndexSeq / indexPageSize
		}
		page = max(page, afterPage)
	}
	filtered := role != "" || state != ""
	var out sessionPage
	scanned := 0
	for ; page <= last; page++ {
		ids, err := s.List(ctx, indexPageKey(page))
		if err != nil {
			return sessionPage{}, err
		}
		for _, id := range ids {
			if after != "" && page == afterPage && id <= after {
				continue
			}
			if filtered {
				sess, err := b.getSession(ctx, s, id)
				if err != nil {
					return sessionPage{}, err
				}
				scanned++
				if sess != nil && (role == "" || sess.Role == role) && (state == "" || sess.StateAt(now) == state) {
					out.IDs = append(out.IDs, id)
				}
				if limit > 0 && (len(out.IDs) == limit || scanned >= max(limit, listScanLimit)) {
					out.Next = cursor(page, id)
					return out, nil
				}
				continue
			}
			out.IDs = append(out.IDs, id)
			if limit > 0 && len(out.IDs) == limit {
				out.Next = cursor(page, id)
				return out, nil
			}
		}
	}
	return out, nil
}

// indexExisting gives the sessions stored before the index existed (by
// a release without it) their places, once: it runs when the mount starts
// on the active node, and finds nothing to do once the index has a head.
// It costs a walk of every session, once; a crash half-way is resumed by
// the next start (sessions that have a place keep it).
func (b *backend) indexExisting(ctx context.Context, s logical.Storage) error {
	if h, _, err := readIndexHead(ctx, s); err != nil || h.Complete {
		return err
	}
	ids, err := s.List(ctx, sessionsPrefix)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		b.Logger().Info("indexing the sessions stored before the session index", "sessions", len(ids))
	}
	for _, id := range ids {
		lock := b.sessionLock(id)
		lock.Lock()
		err := b.indexOne(ctx, s, id)
		lock.Unlock()
		if err != nil {
			return fmt.Errorf("indexing session %s: %w", id, err)
		}
	}
	// Only now: a walk cut short is walked again at the next start.
	return b.index.markComplete(ctx, s)
}

// markComplete stores that every session has its place.
func (ix *sessionIndex) markComplete(ctx context.Context, s logical.Storage) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.loadLocked(ctx, s); err != nil {
		return err
	}
	h := ix.head
	h.Complete = true
	// Numbers up to next may have been handed out: keep them reserved.
	h.Reserved = max(h.Reserved, ix.next)
	if err := putJSON(ctx, s, sessionIndexHeadKey, &h); err != nil {
		return err
	}
	ix.head = h
	return nil
}

func (b *backend) indexOne(ctx context.Context, s logical.Storage, id string) error {
	sess, err := readSession(ctx, s, id)
	if err != nil || sess == nil {
		return err
	}
	if sess.IndexSeq == 0 {
		seq, err := b.index.nextSeq(ctx, s)
		if err != nil {
			return err
		}
		// The entry first, then the record that names it.
		if err := s.Put(ctx, &logical.StorageEntry{Key: indexEntryKey(seq, id), Value: []byte("{}")}); err != nil {
			return err
		}
		sess.IndexSeq = seq
		if err := putSession(ctx, s, sess); err != nil {
			return err
		}
		b.forget(id)
	}
	return nil
}

// A cursor names a place in the index, "<page>.<session ID>": the value
// of next, and of after for the page that follows.
func cursor(page uint64, id string) string {
	return strconv.FormatUint(page, 10) + "." + id
}

func parseCursor(c string) (uint64, string, bool) {
	p, id, ok := strings.Cut(c, ".")
	if !ok || id == "" {
		return 0, "", false
	}
	page, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return page, id, true
}
