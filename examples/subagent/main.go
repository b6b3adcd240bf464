// Command subagent is an example sub-agent: it runs in a process of its
// own with no Vault token. Its parent hands it one credential of the
// session, issued for the engine itself (a delegation credential, audience
// the engine's issuer; PARENT_TOKEN in the environment); it exchanges that at the
// engine's token endpoint (RFC 8693) for a narrower child bound to a key
// only it holds (DPoP, RFC 9449), and writes the summary at the docserver
// with that child and a fresh proof per request. It shows that the child
// is useless without the key, and that it cannot widen what it was given.
//
// It prints a narrative and exits 0 only if every expected outcome
// happened.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/client"
	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
)

func main() {
	tokenEndpoint := flag.String("token-endpoint", os.Getenv("VAULT_ADDR")+"/v1/agent/token", "the engine's token endpoint")
	docs := flag.String("docs", "http://127.0.0.1:8300", "the docserver's address")
	flag.Parse()
	if err := run(*tokenEndpoint, *docs, os.Getenv("PARENT_TOKEN")); err != nil {
		fmt.Printf("   sub-agent FAILED: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("   sub-agent: "+format+"\n", args...) }

func run(tokenEndpoint, docs, parent string) error {
	if parent == "" {
		return errors.New("PARENT_TOKEN is empty")
	}
	if os.Getenv("VAULT_TOKEN") != "" {
		return errors.New("a sub-agent runs without a Vault token")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	key, err := dpop.GenerateKey("EdDSA")
	if err != nil {
		return err
	}
	x := &client.Exchanger{TokenEndpoint: tokenEndpoint, Key: key}
	say("no Vault token; exchanges its parent's credential for write:docs/summaries-q3, bound to its own key")
	child, err := x.Exchange(ctx, client.ExchangeRequest{
		SubjectToken: parent, Scopes: []string{"write:docs/summaries-q3"}, Audience: "docs-api",
		Actor: "summariser", Description: "write the Q3 summary",
	})
	if err != nil {
		return fmt.Errorf("exchange: %w", err)
	}
	say("got a credential for %v, expiring at %s", child.Scopes, child.ExpiresAt.Format(time.TimeOnly))

	url := docs + "/docs/summaries-q3"
	code, body, err := put(ctx, &http.Client{Transport: &client.DPoPTransport{Key: key, Credential: child, Origin: docs}}, url)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("writing the summary with a proof: %d %s %v", code, body, err)
	}
	say("wrote the summary with a DPoP proof: docserver answered %d: %s", code, body)

	// The same credential without the key: what a thief would have.
	code, body, err = put(ctx, &http.Client{Transport: bearer(child.Token)}, url)
	if err != nil || code != http.StatusUnauthorized {
		return fmt.Errorf("the credential worked without its key: %d %s %v", code, body, err)
	}
	say("the same credential without a proof: docserver answered %d: %s", code, body)
	return nil
}

func put(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader("Q3 in one line: agents get continuous trust."))
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}
