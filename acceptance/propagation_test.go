//go:build acceptance

package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// TestCloseReachesResourceServersAtOnce: against a real Vault (dev and
// raft), a blocking revocations query held at the engine answers within a
// second of a session's end, with only what was added; and a resource
// server's verifier, with polling turned so slow that only its blocking
// query can explain it, refuses the session's credential within a second.
func TestCloseReachesResourceServersAtOnce(t *testing.T) {
	for name, mode := range map[string]storageMode{"dev": devMode, "raft": raftMode} {
		t.Run(name, func(t *testing.T) {
			v := startVault(t, mode)
			agent, _ := setupJourney(t, v)
			id := v.startSession(agent, "scopes=read:secrets/web/*", "audiences=secrets-api").Data["session_id"].(string)
			tok := v.mustJSONAs(agent, "read", "agent/creds/"+id, "scopes=read:secrets/web/tls", "audience=secrets-api").Data["token"].(string)
			other := v.startSession(agent, "scopes=read:secrets/web/*", "audiences=secrets-api").Data["session_id"].(string)
			v.mustCLI2(agent, "write", "-f", "agent/sessions/"+other+"/end")
			version, listed := v.revocations()
			require.Equal(t, []string{other}, listed)

			ctx := context.Background()
			ver, err := verifier.New(ctx, verifier.Config{
				VaultAddr: v.addr, Issuer: "vault:agent", Audience: "secrets-api",
				RevocationPoll: time.Hour, MaxStaleness: 2 * time.Hour,
			})
			require.NoError(t, err)
			defer ver.Close()
			_, err = ver.Verify(ctx, tok)
			require.NoError(t, err)

			// A raw blocking query, as any verifier may send it.
			type answer struct {
				at       time.Time
				version  uint64
				complete bool
				ids      []string
				err      error
			}
			raw := make(chan answer, 1)
			go func() {
				resp, err := http.Get(fmt.Sprintf("%s/v1/agent/revocations?after=%d&wait=30", v.addr, version))
				if err != nil {
					raw <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				var out struct {
					Data struct {
						Version  uint64 `json:"version"`
						Complete bool   `json:"complete"`
						Sessions []struct {
							ID string `json:"id"`
						} `json:"sessions"`
					} `json:"data"`
				}
				err = json.Unmarshal(body, &out)
				a := answer{at: time.Now(), version: out.Data.Version, complete: out.Data.Complete, err: err}
				for _, s := range out.Data.Sessions {
					a.ids = append(a.ids, s.ID)
				}
				raw <- a
			}()
			// Both queries are held (nothing changes for them to return).
			time.Sleep(time.Second)
			select {
			case a := <-raw:
				t.Fatalf("the blocking query answered before the close: %+v", a)
			default:
			}

			ended := time.Now()
			v.mustCLI2(agent, "write", "-f", "agent/sessions/"+id+"/end")
			endAnswered := time.Now()

			a := <-raw
			require.NoError(t, a.err)
			assert.Equal(t, []string{id}, a.ids, "only what was added after the version held")
			assert.False(t, a.complete)
			assert.Greater(t, a.version, version)
			assert.Less(t, a.at.Sub(endAnswered), time.Second, "the held query answered within a second of the close")

			var refusedAt time.Time
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if _, err := ver.Verify(ctx, tok); err != nil {
					require.ErrorIs(t, err, verifier.ErrSessionClosed)
					refusedAt = time.Now()
					break
				}
			}
			require.False(t, refusedAt.IsZero(), "the verifier never refused the closed session's credential")
			t.Logf("end took %s; the held query answered %s after the end returned; the verifier refused %s after",
				endAnswered.Sub(ended), a.at.Sub(endAnswered), refusedAt.Sub(endAnswered))
			assert.Less(t, refusedAt.Sub(endAnswered), time.Second)
		})
	}
}
