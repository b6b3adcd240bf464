// Package client is the Go SDK for agents of the agent secrets engine.
//
// An agent starts a session for a role, declaring its intent, takes a
// short-lived step credential for every step of its task, derives narrower
// credentials for sub-agents, keeps the session's lease renewed while it
// works, and ends the session when it is done:
//
//	agents := client.New(vaultClient, "agent")
//	sess, err := agents.Start(ctx, client.Intent{
//		Role:      "deployer",
//		Purpose:   "rotate the web TLS certificate",
//		Scopes:    []string{"read,list:secrets/web/*"},
//		Audiences: []string{"secrets-api"},
//	})
//	if err != nil { ... }
//	defer sess.End(context.Background())
//	go sess.KeepAlive(ctx)
//
//	cred, err := sess.Step(ctx, client.StepRequest{
//		Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api", Description: "fetch the cert",
//	})
//	// send cred.Token to the resource server: Authorization: Bearer <token>
//
// Refusals come back as *Error, which names the violation kind when there
// is one; errors.Is matches the sentinel errors (ErrViolation,
// ErrBudgetExhausted, ErrSessionClosed, ...).
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// Client starts sessions on one mount of the engine.
type Client struct {
	vault *api.Client
	mount string
	// stepsByWrite: the token may not read <mount>/creds/<id> (its
	// policy grants update only), so steps are taken by PUT.
	stepsByWrite atomic.Bool
}

// New returns a Client for the engine mounted at mount (e.g. "agent"),
// acting with vault's token. It uses a copy of vault with automatic
// retries turned off: Vault's client retries a 429 on its own, and every
// retry that is still too fast would be another rate_exceeded violation.
func New(vault *api.Client, mount string) *Client {
	c := vault
	if clone, err := vault.Clone(); err == nil {
		clone.SetToken(vault.Token())
		clone.SetMaxRetries(0)
		c = clone
	}
	return &Client{vault: c, mount: strings.Trim(mount, "/")}
}

// Intent is what an agent declares when it starts a session. Empty fields
// take the role's values.
type Intent struct {
	Role      string
	Purpose   string
	Scopes    []string
	Audiences []string
	TTL       time.Duration
	MaxSteps  int
	MaxDepth  int
	MaxRate   int
	Metadata  map[string]string
	// DPoP, when set ("EdDSA" or "ES256"), makes Start generate a key for
	// the session (Session.DPoPKey): steps with Bind are bound to it, and
	// MCPTransport binds every credential to it and signs a DPoP proof
	// (RFC 9449) for every request. The key never leaves the process.
	DPoP string
}

// Session is a live session of the agent.
type Session struct {
	ID        string
	Role      string
	Scopes    []string
	Audiences []string
	MaxSteps  int
	LeaseID   string
	// DPoPKey is the session's proof-of-possession key, when Intent.DPoP
	// asked for one.
	DPoPKey *dpop.Key

	c      *Client
	secret *api.Secret

	mu        sync.Mutex
	expiresAt time.Time
}

// ExpiresAt is when the session's lease runs out, as of its start or its
// latest renewal by KeepAlive.
func (s *Session) ExpiresAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiresAt
}

// Start starts a session with a declared intent. The intent must lie
// inside the role; a wider one is refused (an *Error with status 400
// naming what was wider) and nothing is created.
func (c *Client) Start(ctx context.Context, in Intent) (*Session, error) {
	var key *dpop.Key
	if in.DPoP != "" {
		k, err := dpop.GenerateKey(in.DPoP)
		if err != nil {
			return nil, fmt.Errorf("client: Intent.DPoP: %w", err)
		}
		key = k
	}
	data := map[string]interface{}{"role": in.Role, "purpose": in.Purpose}
	if len(in.Scopes) > 0 {
		data["scopes"] = in.Scopes
	}
	if len(in.Audiences) > 0 {
		data["audiences"] = in.Audiences
	}
	if in.TTL > 0 {
		data["ttl"] = int(in.TTL.Seconds())
	}
	for k, v := range map[string]int{"max_steps": in.MaxSteps, "max_depth": in.MaxDepth, "max_rate": in.MaxRate} {
		if v > 0 {
			data[k] = v
		}
	}
	if len(in.Metadata) > 0 {
		data["metadata"] = in.Metadata
	}
	secret, err := c.write(ctx, c.mount+"/session", data)
	if err != nil {
		return nil, err
	}
	if secret == nil || secret.Data == nil {
		return nil, fmt.Errorf("client: starting a session returned no data")
	}
	s := &Session{c: c, secret: secret, LeaseID: secret.LeaseID, Role: in.Role, DPoPKey: key}
	s.ID, _ = secret.Data["session_id"].(string)
	s.Scopes = stringList(secret.Data["scopes"])
	s.Audiences = stringList(secret.Data["audiences"])
	s.MaxSteps = intOf(secret.Data["max_steps"])
	if t, err := time.Parse(time.RFC3339, fmt.Sprint(secret.Data["expires_at"])); err == nil {
		s.expiresAt = t
	}
	if s.ID == "" {
		return nil, fmt.Errorf("client: starting a session returned no session_id")
	}
	return s, nil
}

// StepRequest asks for one step credential: a step is one credential
// issuance.
type StepRequest struct {
	// Scopes this step needs, each inside the session's intent.
	Scopes []string
	// Audience is the resource server the credential is for.
	Audience string
	// TTL of the credential; zero takes the role's step_ttl. Longer
	// requests are clamped, with a warning in Credential.Warnings.
	TTL time.Duration
	// Description says what the step is for; it is recorded in the
	// session's timeline and put in the token (rctx.description).
	Description string
	// Actor names the sub-agent acting, appended to the token's act chain.
	Actor string
	// CnfJKT binds the credential to a key (RFC 7638 thumbprint).
	CnfJKT string
	// Format is the credential's format: token.FormatTxnToken (the
	// default) or token.FormatAccessToken, an RFC 9068 JWT access token
	// for OAuth resource servers such as MCP servers.
	Format token.Format
	// Bind binds the credential to the session's DPoP key (cnf.jkt):
	// resource servers then accept it only with a proof by that key
	// (DPoPTransport, MCPTransport). It needs Intent.DPoP.
	Bind bool
}

// Credential is a step credential.
type Credential struct {
	Token     string
	ID        string
	Format    token.Format
	Scopes    []string
	Audience  string
	Depth     int
	ExpiresAt time.Time
	Warnings  []string
}

// Step takes a step credential straight from the session (depth 1).
func (s *Session) Step(ctx context.Context, req StepRequest) (*Credential, error) {
	return s.issue(ctx, "", req)
}

// Derive takes a credential derived from parent, for a sub-agent: its
// scopes must lie inside the parent's, and its depth is the parent's + 1.
func (s *Session) Derive(ctx context.Context, parent *Credential, req StepRequest) (*Credential, error) {
	if parent == nil || parent.Token == "" {
		return nil, errors.New("client: Derive needs a parent credential with its token")
	}
	return s.issue(ctx, parent.Token, req)
}

func (s *Session) issue(ctx context.Context, parent string, req StepRequest) (*Credential, error) {
	data := map[string]interface{}{"scopes": req.Scopes, "audience": req.Audience}
	if req.Bind {
		if s.DPoPKey == nil {
			return nil, errors.New("client: StepRequest.Bind needs a session started with Intent.DPoP")
		}
		if req.CnfJKT != "" && req.CnfJKT != s.DPoPKey.Thumbprint() {
			return nil, errors.New("client: StepRequest.Bind and CnfJKT name different keys")
		}
		req.CnfJKT = s.DPoPKey.Thumbprint()
	}
	if req.TTL > 0 {
		data["ttl"] = int(req.TTL.Seconds())
	}
	for k, v := range map[string]string{"description": req.Description, "actor": req.Actor, "cnf_jkt": req.CnfJKT, "parent_token": parent, "format": string(req.Format)} {
		if v != "" {
			data[k] = v
		}
	}
	secret, err := s.c.issue(ctx, s.c.mount+"/creds/"+s.ID, data)
	if err != nil {
		return nil, err
	}
	if secret == nil || secret.Data == nil {
		return nil, fmt.Errorf("client: issuing a credential returned no data")
	}
	if pending := approvalPending(secret.Data); pending != nil {
		return nil, pending
	}
	cred := &Credential{Warnings: secret.Warnings}
	cred.Token, _ = secret.Data["token"].(string)
	cred.ID, _ = secret.Data["credential_id"].(string)
	if f, _ := secret.Data["format"].(string); f != "" {
		cred.Format = token.Format(f)
	} else {
		cred.Format = token.FormatTxnToken
	}
	cred.Audience, _ = secret.Data["audience"].(string)
	cred.Scopes = stringList(secret.Data["scopes"])
	cred.Depth = intOf(secret.Data["depth"])
	if t, err := time.Parse(time.RFC3339, fmt.Sprint(secret.Data["expires_at"])); err == nil {
		cred.ExpiresAt = t
	}
	if cred.Token == "" {
		return nil, fmt.Errorf("client: issuing a credential returned no token")
	}
	return cred, nil
}

// Status is a session as the engine sees it.
type Status struct {
	State string
	// StepsUsed counts the steps taken: every credential issued is one.
	StepsUsed      int
	ViolationCount int
	RevokedReason  string
}

// Status reads the session's state (needs read on <mount>/session/<id>,
// the agent's own-session path).
func (s *Session) Status(ctx context.Context) (*Status, error) {
	secret, err := s.c.read(ctx, s.c.mount+"/session/"+s.ID)
	if err != nil {
		return nil, err
	}
	if secret == nil {
		return nil, &Error{StatusCode: 404, Message: "session " + s.ID + " not found"}
	}
	return &Status{
		State:          fmt.Sprint(secret.Data["state"]),
		StepsUsed:      intOf(secret.Data["steps_used"]),
		ViolationCount: intOf(secret.Data["violation_count"]),
		RevokedReason:  fmt.Sprint(secret.Data["revoked_reason"]),
	}, nil
}

// End ends the session: it closes, and every credential it issued is
// revoked at once.
func (s *Session) End(ctx context.Context) error {
	_, err := s.c.write(ctx, s.c.mount+"/sessions/"+s.ID+"/end", nil)
	return err
}

// KeepAlive renews the session's lease in the background with Vault's
// lifetime watcher until ctx is done, the session reaches its
// session_max_ttl, or renewal fails (the session was ended or revoked). It
// blocks; run it in a goroutine. It returns nil when ctx ends or the lease
// reached its maximum, and the renewal error otherwise.
func (s *Session) KeepAlive(ctx context.Context) error {
	// ErrorOnErrors: by default the watcher swallows renewal errors and
	// retries until the lease runs out, so an ended or revoked session
	// would keep KeepAlive running for the rest of its TTL.
	w, err := s.c.vault.NewLifetimeWatcher(&api.LifetimeWatcherInput{
		Secret: s.secret, RenewBehavior: api.RenewBehaviorErrorOnErrors,
	})
	if err != nil {
		return err
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.DoneCh():
			return asError(nil, err)
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.LeaseDuration > 0 {
				s.mu.Lock()
				s.expiresAt = r.RenewedAt.Add(time.Duration(r.Secret.LeaseDuration) * time.Second)
				s.mu.Unlock()
			}
		}
	}
}

func stringList(v interface{}) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []interface{}:
		out := make([]string, 0, len(l))
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

func intOf(v interface{}) int {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}

// write sends data to path; a refusal comes back as an *Error read from
// the answer's data.
func (c *Client) write(ctx context.Context, path string, data map[string]interface{}) (*api.Secret, error) {
	body, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return parse(c.vault.Logical().WriteRawWithContext(ctx, path, body))
}

// maxStepQuery bounds the query of a step taken by read: proxies and load
// balancers commonly refuse request lines over 8 KB, and a step may carry
// 64 scopes of 256 bytes. A longer step is a write.
const maxStepQuery = 2048

// issue asks for a step credential at path. A step without a parent is
// taken by GET, its fields as query parameters, as Vault's own signed JWTs
// (identity/oidc/token) are: for a write to a plugin Vault first asks the
// plugin whether the path exists, a round trip to the plugin process that
// a read does not make. A parent_token is a credential and never goes
// into a URL: a derived step is a PUT, and so is a step whose query would
// be long. Several scopes travel as one comma-separated value, which
// Vault's policy checks (denied_parameters, allowed_parameters) read
// piece by piece; a repeated query parameter would escape them.
//
// A token whose policy grants update but not read on the path gets
// Vault's "permission denied" to the read: the step is asked again by
// PUT, and once a PUT is not refused by the policy too, every later step
// of this Client is a PUT.
func (c *Client) issue(ctx context.Context, path string, data map[string]interface{}) (*api.Secret, error) {
	if _, derived := data["parent_token"]; derived || c.stepsByWrite.Load() {
		return c.write(ctx, path, data)
	}
	query := make(url.Values, len(data))
	for k, v := range data {
		switch v := v.(type) {
		case []string:
			query.Set(k, strings.Join(v, ","))
		default:
			query.Set(k, fmt.Sprint(v))
		}
	}
	if len(query.Encode()) > maxStepQuery {
		return c.write(ctx, path, data)
	}
	secret, err := parse(c.vault.Logical().ReadRawWithDataWithContext(ctx, path, query))
	if !deniedByPolicy(err) {
		return secret, err
	}
	secret, err = c.write(ctx, path, data)
	if !deniedByPolicy(err) {
		c.stepsByWrite.Store(true)
	}
	return secret, err
}

// deniedByPolicy reports whether err is Vault's own refusal of a request
// its policy does not allow (or an operation the path does not have),
// never one of the engine's, which always say why.
func deniedByPolicy(err error) bool {
	var refusal *Error
	if !errors.As(err, &refusal) || refusal.Reason != "" {
		return false
	}
	switch refusal.StatusCode {
	case http.StatusForbidden:
		return strings.Contains(refusal.Message, "permission denied")
	case http.StatusMethodNotAllowed:
		return true
	}
	return false
}

// read reads path; a refusal comes back as an *Error.
func (c *Client) read(ctx context.Context, path string) (*api.Secret, error) {
	return parse(c.vault.Logical().ReadRawWithContext(ctx, path))
}

func parse(resp *api.Response, err error) (*api.Secret, error) {
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, asError(resp, err)
	}
	if resp == nil || resp.StatusCode == 204 {
		return nil, nil
	}
	secret, err := api.ParseSecret(resp.Body)
	if err == io.EOF {
		return nil, nil
	}
	return secret, err
}
