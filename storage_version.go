package agent

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

// The version of the mount's stored formats. A release that changes how
// something is stored raises storageVersion and brings older storage
// forward when the mount starts on the active node (initialize), then
// records the new version. A release never runs on storage of a version
// newer than its own: the mount refuses to start, with a message saying
// so, and nothing is written. A downgrade to a release of the same
// storage version works.
//
//	1  sessions, role index, timelines in chunks, revocations, keys, streams
//	2  the session index (session-index/), written for older sessions at
//	   the first start (see indexExisting)
const storageVersion = 2

const storageVersionKey = "storage-version"

type storedVersion struct {
	Version int    `json:"version"`
	Release string `json:"release,omitempty"`
}

// checkStorageVersion refuses storage written by a newer storage version,
// brings older storage forward, and records this release's version.
func (b *backend) checkStorageVersion(ctx context.Context, s logical.Storage) error {
	var stored storedVersion
	if _, err := getJSON(ctx, s, storageVersionKey, &stored); err != nil {
		return err
	}
	if stored.Version > storageVersion {
		return fmt.Errorf("this mount's storage has version %d, written by release %s; this release (%s) reads versions up to %d: "+
			"tune the mount back to that release (vault secrets tune -plugin-version=%s), or restore a snapshot taken before the upgrade",
			stored.Version, stored.Release, Version, storageVersion, stored.Release)
	}
	if err := b.indexExisting(ctx, s); err != nil {
		return err
	}
	if stored.Version == storageVersion && stored.Release == Version {
		return nil
	}
	return putJSON(ctx, s, storageVersionKey, storedVersion{Version: storageVersion, Release: Version})
}
