package agent

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// The revocation list is stored in buckets of at most bucketSessions
// sessions, by the minute in which their last credentials expire
// (revocations/<minute>-<n>), so that no storage entry grows with the
// number of closed sessions: adding a session rewrites one bucket, and pruning
// deletes whole buckets once their minute plus trust.RevocationGrace has
// passed.
//
// The list's version grows with every change: each bucket records the
// version it was written at, revocations/version the version of the last
// prune, and the list's version is the largest of them. The active node
// keeps the whole list in memory, so that polling resource servers cost no
// storage reads.
const (
	revocationsVersionKey = revocationsPrefix + "version"
	// bucketSessions bounds a bucket: about 22 KB of JSON.
	bucketSessions = 256
)

// revocations is the in-memory copy of the list. The backend's
// revocationsLock guards it.
type revocations struct {
	loaded  bool
	version uint64
	// epoch names this history of the list (stored with
	// revocationsVersionKey, made at the first change).
	epoch string
	// buckets by storage key, and the bucket that lists each session.
	buckets map[string]*trust.RevocationList
	listed  map[string]string
}

// bucketFor is the bucket with room for a session whose credentials all
// expire by exp: the first of that minute's buckets that is not full.
func (r *revocations) bucketFor(exp time.Time) string {
	for n := 0; ; n++ {
		key := fmt.Sprintf("%s%012d-%d", revocationsPrefix, exp.Unix()/60, n)
		if b := r.buckets[key]; b == nil || len(b.Sessions) < bucketSessions {
			return key
		}
	}
}

// loadRevocations fills the in-memory copy from storage, once.
// revocationsLock must be held.
func (b *backend) loadRevocations(ctx context.Context, s logical.Storage) (*revocations, error) {
	if b.revs.loaded {
		return &b.revs, nil
	}
	r := revocations{buckets: map[string]*trust.RevocationList{}, listed: map[string]string{}}
	keys, err := s.List(ctx, revocationsPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing revocations: %w", err)
	}
	for _, k := range keys {
		key := revocationsPrefix + k
		var list trust.RevocationList
		ok, err := getJSON(ctx, s, key, &list)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		r.version = max(r.version, list.Version)
		if key == revocationsVersionKey {
			r.epoch = list.Epoch
		} else {
			r.buckets[key] = &list
			for _, e := range list.Sessions {
				r.listed[e.ID] = key
			}
		}
	}
	r.loaded = true
	b.revs = r
	return &b.revs, nil
}

// forgetRevocations drops the in-memory copy: another node changed the
// list. Blocking queries wake and read it again.
func (b *backend) forgetRevocations() {
	b.revocationsLock.Lock()
	b.revs = revocations{}
	b.revocationsChanged()
	b.revocationsLock.Unlock()
}

// ensureEpoch gives the list its epoch before its first change: a random
// name for this history, stored once with the version marker.
// revocationsLock must be held.
func (b *backend) ensureEpoch(ctx context.Context, s logical.Storage, r *revocations) error {
	if r.epoch != "" {
		return nil
	}
	epoch, err := uuid.GenerateUUID()
	if err != nil {
		return err
	}
	if err := putJSON(ctx, s, revocationsVersionKey, &trust.RevocationList{Version: r.version, Epoch: epoch}); err != nil {
		b.revs = revocations{}
		return err
	}
	r.epoch = epoch
	return nil
}

// revocationsChanged wakes every blocking query. revocationsLock must be
// held.
func (b *backend) revocationsChanged() {
	if b.revsChanged != nil {
		close(b.revsChanged)
		b.revsChanged = nil
	}
}

// addRevocation lists a closed session until its last credential has
// expired, by rewriting one bucket. Listing it again changes nothing.
func (b *backend) addRevocation(ctx context.Context, s logical.Storage, sess *trust.Session, now time.Time) error {
	b.revocationsLock.Lock()
	defer b.revocationsLock.Unlock()
	r, err := b.loadRevocations(ctx, s)
	if err != nil {
		return err
	}
	if _, ok := r.listed[sess.ID]; ok {
		return nil
	}
	if err := b.ensureEpoch(ctx, s, r); err != nil {
		return err
	}
	key := r.bucketFor(sess.TokensValidUntil())
	// The bucket is written at the list's next version: Add raises it.
	bucket := &trust.RevocationList{Version: r.version}
	if have := r.buckets[key]; have != nil {
		bucket.Sessions = slices.Clone(have.Sessions)
	}
	if !bucket.Add(sess, now) {
		return nil
	}
	if err := putJSON(ctx, s, key, bucket); err != nil {
		// Storage may or may not hold it: read it again next time.
		b.revs = revocations{}
		return err
	}
	r.buckets[key] = bucket
	r.listed[sess.ID] = key
	r.version = bucket.Version
	b.revocationsChanged()
	return nil
}

// revocationView is an answer of revocations: the entries, the list's
// version, whether the entries are the whole list, and the channel that
// is closed at the list's next change.
type revocationView struct {
	sessions []trust.ClosedSession
	version  uint64
	epoch    string
	complete bool
	changed  <-chan struct{}
}

// listRevocations returns the sessions to serve at now, oldest revocation
// first, with the list's version: all of them when after is nil, and
// otherwise only those added after version *after (a delta). A delta from
// a version the list never had, or of another epoch (its storage wiped or
// restored, or another engine), is the whole list, marked complete.
func (b *backend) listRevocations(ctx context.Context, s logical.Storage, now time.Time, after *uint64, epoch string) (revocationView, error) {
	b.revocationsLock.Lock()
	defer b.revocationsLock.Unlock()
	r, err := b.loadRevocations(ctx, s)
	if err != nil {
		return revocationView{}, err
	}
	if b.revsChanged == nil {
		b.revsChanged = make(chan struct{})
	}
	view := revocationView{version: r.version, epoch: r.epoch, changed: b.revsChanged,
		complete: after == nil || *after > r.version || (epoch != "" && epoch != r.epoch)}
	for _, bucket := range r.buckets {
		for _, e := range bucket.Sessions {
			if e.Listed(now) && (view.complete || e.Version > *after) {
				view.sessions = append(view.sessions, e)
			}
		}
	}
	slices.SortFunc(view.sessions, func(a, b trust.ClosedSession) int {
		return cmp.Or(cmp.Compare(a.RevokedAt, b.RevokedAt), strings.Compare(a.ID, b.ID))
	})
	return view, nil
}

// Blocking revocations queries: at most maxRevocationWaiters are held at
// once on a node (past it, a query is answered at once), each for at most
// maxRevocationWait.
const (
	maxRevocationWaiters = 4096
	maxRevocationWait    = 60 * time.Second
)

// waitRevocations answers a revocations query. With after and a wait, it
// holds the answer until the list's version passes after (or the wait
// runs out, or the client goes away), costing no storage read and no
// goroutine while it waits: the list is in memory, and the query sleeps
// on the channel that the next change closes.
func (b *backend) waitRevocations(ctx context.Context, s logical.Storage, after *uint64, epoch string, wait time.Duration) (revocationView, error) {
	view, err := b.listRevocations(ctx, s, b.now(), after, epoch)
	if err != nil || after == nil || wait <= 0 || view.complete || view.version > *after {
		return view, err
	}
	if b.revWaiters.Add(1) > maxRevocationWaiters {
		b.revWaiters.Add(-1)
		return view, nil
	}
	defer b.revWaiters.Add(-1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for view.version <= *after && !view.complete {
		select {
		case <-view.changed:
		case <-timer.C:
			return view, nil
		case <-ctx.Done():
			return view, nil
		}
		if view, err = b.listRevocations(ctx, s, b.now(), after, epoch); err != nil {
			return view, err
		}
	}
	return view, nil
}

// pruneRevocations deletes the buckets whose every entry has expired past
// its grace. The version is raised first, so that it grows with the change
// even on a node that reads the list afresh.
func (b *backend) pruneRevocations(ctx context.Context, s logical.Storage, now time.Time) error {
	b.revocationsLock.Lock()
	defer b.revocationsLock.Unlock()
	r, err := b.loadRevocations(ctx, s)
	if err != nil {
		return err
	}
	var gone []string
	for key, bucket := range r.buckets {
		if !slices.ContainsFunc(bucket.Sessions, func(e trust.ClosedSession) bool { return e.Listed(now) }) {
			gone = append(gone, key)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	slices.Sort(gone)
	if err := b.ensureEpoch(ctx, s, r); err != nil {
		return err
	}
	next := r.version + 1
	if err := putJSON(ctx, s, revocationsVersionKey, &trust.RevocationList{Version: next, Epoch: r.epoch}); err != nil {
		b.revs = revocations{}
		return err
	}
	r.version = next
	b.revocationsChanged()
	for _, key := range gone {
		if err := s.Delete(ctx, key); err != nil {
			b.revs = revocations{}
			return fmt.Errorf("pruning revocations: %w", err)
		}
		for _, e := range r.buckets[key].Sessions {
			delete(r.listed, e.ID)
		}
		delete(r.buckets, key)
	}
	return nil
}

// initialize runs when the mount starts on the active node: it indexes
// sessions stored before the session index existed, and gives the
// revocation list its epoch there, so that no session's close pays for
// it.
func (b *backend) initialize(ctx context.Context, req *logical.InitializationRequest) error {
	if !b.ownsStorage() {
		return nil
	}
	if err := b.checkStorageVersion(ctx, req.Storage); err != nil {
		return err
	}
	b.revocationsLock.Lock()
	defer b.revocationsLock.Unlock()
	r, err := b.loadRevocations(ctx, req.Storage)
	if err != nil {
		return err
	}
	return b.ensureEpoch(ctx, req.Storage, r)
}
