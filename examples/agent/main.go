// Command agent is an example agent: it runs a multi-step task through the
// docserver example with step credentials of the agent secrets engine,
// hands one credential to a sub-agent process (examples/subagent), which
// has no Vault token and exchanges it for a narrower child bound to its own
// key, then goes rogue, asks beyond its intent, and sees its session
// revoked and its earlier credentials stop working at the resource server.
//
// (Using a credential outside its scope at the docserver would revoke the
// session too: the docserver reports every refused out-of-scope use to the
// engine as reported_misuse.)
//
// It prints a narrative of each step and exits 0 only if every expected
// outcome happened. VAULT_ADDR and VAULT_TOKEN (an agent token) come from
// the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/continuoustrust/vault-plugin-secrets-agent/client"
)

func main() {
	docs := flag.String("docs", "http://127.0.0.1:8300", "the docserver's address")
	role := flag.String("role", "doc-editor", "the role to start the session under")
	wait := flag.Duration("revocation-wait", 10*time.Second, "how long to wait for the docserver to learn of the revocation")
	subagent := flag.String("subagent", "", "the sub-agent's binary (examples/subagent)")
	flag.Parse()
	if err := run(*docs, *role, *subagent, *wait); err != nil {
		fmt.Printf("\nFAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\nEvery expected outcome happened.")
}

func say(format string, args ...interface{}) { fmt.Printf(format+"\n", args...) }

func run(docs, role, subagent string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vc, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		return err
	}
	agents := client.New(vc, "agent")

	say("1. The agent starts a session, declaring its intent.")
	sess, err := agents.Start(ctx, client.Intent{
		Role:     role,
		Purpose:  "summarise the Q3 plan",
		Scopes:   []string{"read:docs/*", "write:docs/summaries-*"},
		MaxSteps: 10,
	})
	if err != nil {
		return fmt.Errorf("starting the session: %w", err)
	}
	say("   session %s: scopes %v, audiences %v, up to %d steps", sess.ID, sess.Scopes, sess.Audiences, sess.MaxSteps)
	keepAlive, stopKeepAlive := context.WithCancel(ctx)
	defer stopKeepAlive()
	go func() { _ = sess.KeepAlive(keepAlive) }()

	say("2. Step: read the plan, with a credential for read:docs/q3-plan only.")
	read, err := sess.Step(ctx, client.StepRequest{Scopes: []string{"read:docs/q3-plan"}, Audience: "docs-api", Description: "read the plan"})
	if err != nil {
		return fmt.Errorf("step credential: %w", err)
	}
	code, body, err := call(ctx, http.MethodGet, docs+"/docs/q3-plan", read.Token, "")
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("reading the plan: %d %s %v", code, body, err)
	}
	say("   docserver answered %d: %s", code, strings.TrimSpace(body))

	say("3. A sub-agent, in a process of its own with no Vault token, writes the summary.")
	// A delegation credential: issued for the engine itself (its issuer
	// is the audience), which no resource server takes, to be exchanged.
	engine := strings.TrimRight(vc.Address(), "/") + "/v1/agent"
	planner, err := sess.Step(ctx, client.StepRequest{Scopes: []string{"write:docs/summaries-*"}, Audience: engine, Description: "delegate the summary"})
	if err != nil {
		return fmt.Errorf("step credential: %w", err)
	}
	say("   the agent hands it one credential, for write:docs/summaries-*, issued for the engine (%s)", engine)
	if subagent == "" {
		return errors.New("-subagent is required: the sub-agent's binary")
	}
	cmd := exec.CommandContext(ctx, subagent, "-docs", docs, "-token-endpoint", engine+"/token")
	cmd.Env = append(withoutVaultToken(os.Environ()), "PARENT_TOKEN="+planner.Token)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the sub-agent: %w", err)
	}

	say("4. The agent goes rogue and asks to delete the plan: outside its intent.")
	_, err = sess.Step(ctx, client.StepRequest{Scopes: []string{"delete:docs/q3-plan"}, Audience: "docs-api", Description: "tidy up"})
	var refusal *client.Error
	if !errors.As(err, &refusal) || !errors.Is(err, client.ErrScopeOutsideIntent) || !errors.Is(err, client.ErrSessionClosed) {
		return fmt.Errorf("the rogue step should have been refused as scope_outside_intent and revoked the session, got %v", err)
	}
	say("   refused (%d): %s", refusal.StatusCode, refusal.Message)
	st, err := sess.Status(ctx)
	if err != nil {
		return err
	}
	if st.State != "revoked" {
		return fmt.Errorf("the session should be revoked, it is %s", st.State)
	}
	say("   the session is %s: %s", st.State, st.RevokedReason)

	say("5. Its earlier credentials stop working at the resource server.")
	deadline := time.Now().Add(wait)
	for {
		code, body, err = call(ctx, http.MethodGet, docs+"/docs/q3-plan", read.Token, "")
		if err != nil {
			return err
		}
		if code == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the docserver still accepts the revoked session's credential: %d %s", code, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	say("   docserver answered %d: %s", code, strings.TrimSpace(body))

	say("6. And no new credential can be had for it.")
	_, err = sess.Step(ctx, client.StepRequest{Scopes: []string{"read:docs/q3-plan"}, Audience: "docs-api"})
	if !errors.Is(err, client.ErrSessionClosed) {
		return fmt.Errorf("a revoked session should issue nothing, got %v", err)
	}
	say("   refused: %v", err)
	return nil
}

// withoutVaultToken is env without VAULT_TOKEN: the sub-agent has none.
func withoutVaultToken(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "VAULT_TOKEN=") {
			out = append(out, e)
		}
	}
	return out
}

func call(ctx context.Context, method, url, tok, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b), nil
}
