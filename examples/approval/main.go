// Command approval is an example agent under a role with
// on_out_of_intent=approval: a step outside its declared intent, but inside
// its role, does not kill the session; it waits for a person. The agent
// asks, waits (WaitForApproval) while an administrator approves, retries
// and gets its credential; then it asks for something outside the role,
// which is a violation as ever. It prints a narrative and exits 0 only if
// every expected outcome happened. VAULT_ADDR and VAULT_TOKEN (an agent
// token) come from the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/continuoustrust/vault-plugin-secrets-agent/client"
)

func main() {
	role := flag.String("role", "release", "the role to start the session under")
	flag.Parse()
	if err := run(*role); err != nil {
		fmt.Printf("\nFAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\nEvery expected outcome happened.")
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func run(role string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vc, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		return err
	}
	say("1. The agent starts a session to publish release notes: it declares it reads docs/notes/*.")
	sess, err := client.New(vc, "agent").Start(ctx, client.Intent{
		Role: role, Purpose: "publish the release notes",
		Scopes: []string{"read:docs/notes/*"}, Audiences: []string{"docs-api"},
	})
	if err != nil {
		return fmt.Errorf("starting the session: %w", err)
	}
	say("   session %s, scopes %v", sess.ID, sess.Scopes)
	if _, err := sess.Step(ctx, client.StepRequest{Scopes: []string{"read:docs/notes/v2"}, Audience: "docs-api", Description: "read the draft"}); err != nil {
		return fmt.Errorf("a step inside the intent: %w", err)
	}
	say("   read:docs/notes/v2: issued")

	say("\n2. It finds it must also write the notes: outside its intent, inside its role. The step waits for a person.")
	write := client.StepRequest{Scopes: []string{"write:docs/notes/v2"}, Audience: "docs-api", Description: "publish the notes"}
	_, err = sess.Step(ctx, write)
	var pending *client.ApprovalPendingError
	if !errors.As(err, &pending) {
		return fmt.Errorf("the step should wait for approval, got %v", err)
	}
	say("   waiting for approval %s (until %s)", pending.ID, pending.ExpiresAt.Format(time.TimeOnly))
	if err := sess.WaitForApproval(ctx, pending.ID, 250*time.Millisecond); err != nil {
		return fmt.Errorf("waiting for the approval: %w", err)
	}
	say("   approved by an administrator")
	cred, err := sess.Step(ctx, write)
	if err != nil {
		return fmt.Errorf("the approved step: %w", err)
	}
	say("   retried: issued %v, expiring at %s", cred.Scopes, cred.ExpiresAt.Format(time.TimeOnly))

	say("\n3. It asks to delete the notes: outside its role. That is a violation, approval or not.")
	_, err = sess.Step(ctx, client.StepRequest{Scopes: []string{"delete:docs/notes/v2"}, Audience: "docs-api"})
	if !errors.Is(err, client.ErrScopeOutsideIntent) || !errors.Is(err, client.ErrSessionClosed) {
		return fmt.Errorf("the step outside the role should be a violation that revokes the session, got %v", err)
	}
	say("   refused: %v", err)
	return nil
}
