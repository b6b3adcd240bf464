package agent

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
)

func pathTimeline(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "sessions/" + framework.GenericNameRegex("session_id") + "/events$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: "session-events",
			},
			Fields: map[string]*framework.FieldSchema{
				"session_id": sessionIDField()["session_id"],
				"after": {
					Type:        framework.TypeInt,
					Description: "Only events with a seq greater than this, to follow a timeline as it grows.",
					Query:       true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathSessionEvents,
					Summary:   "The ordered timeline of every decision about a session.",
					Responses: sessionEventsResponses(),
				},
			},
			HelpSynopsis:    pathEventsHelpSyn,
			HelpDescription: pathEventsHelpDesc,
		},
		{
			Pattern: "sessions/" + framework.GenericNameRegex("session_id") + "/graph$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: "session-graph",
			},
			Fields: sessionIDField(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathSessionGraph,
					Summary:   "The access path the agent took, as Graphviz DOT and Mermaid text.",
					Responses: sessionGraphResponses(),
				},
			},
			HelpSynopsis:    pathGraphHelpSyn,
			HelpDescription: pathGraphHelpDesc,
		},
	}
}

func (b *backend) pathSessionEvents(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	after := d.Get("after").(int)
	if after < 0 {
		return nil, badField("after", "must not be negative")
	}
	sess, err := b.getSession(ctx, req.Storage, d.Get("session_id").(string))
	if err != nil || sess == nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	events, err := b.eventsOf(ctx, req.Storage, sess, cfg.MaxEvents, uint64(after), 0)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]interface{}, 0, len(events))
	for _, e := range events {
		out = append(out, eventData(e))
	}
	return &logical.Response{Data: map[string]interface{}{
		"session_id": sess.ID,
		"events":     out,
		"dropped":    droppedEvents(sess, cfg.MaxEvents),
		"last_seq":   sess.EventSeq,
	}}, nil
}

func (b *backend) pathSessionGraph(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	sess, err := b.getSession(ctx, req.Storage, d.Get("session_id").(string))
	if err != nil || sess == nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	events, err := b.eventsOf(ctx, req.Storage, sess, cfg.MaxEvents, 0, 0)
	if err != nil {
		return nil, err
	}
	now := b.now()
	g := timeline.Build(sess.ID, events, string(sess.StateAt(now)), now, droppedEvents(sess, cfg.MaxEvents) > 0)
	return &logical.Response{Data: map[string]interface{}{
		"session_id":        sess.ID,
		"state":             string(sess.StateAt(now)),
		"credentials_shown": len(g.Nodes),
		"partial":           g.Partial,
		"dot":               g.DOT(),
		"mermaid":           g.Mermaid(),
	}}, nil
}

// eventData lays out an event as response data, leaving out what does not
// apply to its kind.
func eventData(e timeline.Event) map[string]interface{} {
	m := map[string]interface{}{
		"seq":  e.Seq,
		"time": e.Time.UTC().Format(time.RFC3339Nano),
		"kind": string(e.Kind),
	}
	str := map[string]string{
		"detail": e.Detail, "source": e.Source, "credential": e.Credential, "parent": e.Parent,
		"audience": e.Audience, "description": e.Description, "actor": e.Actor, "violation": e.Violation,
		"action": e.Action, "resource": e.Resource, "outcome": e.Outcome, "format": e.Format, "approval": e.Approval,
	}
	for k, v := range str {
		if v != "" {
			m[k] = v
		}
	}
	if len(e.Scopes) > 0 {
		m["scopes"] = e.Scopes
	}
	if e.Depth > 0 {
		m["depth"] = e.Depth
	}
	if e.Steps > 0 {
		m["steps"] = e.Steps
	}
	if e.Expires > 0 {
		m["expires_at"] = time.Unix(e.Expires, 0).UTC().Format(time.RFC3339)
	}
	return m
}

const pathEventsHelpSyn = `The ordered timeline of every decision about a session.`

const pathEventsHelpDesc = `
Every decision the engine made about the session, in order: session_start,
credential_issued, request_refused, violation, report, session_renew, and the
closing session_end, session_revoke (with its reason) or session_expire. Each
event has a seq, a time, a kind and the details that apply (credential,
parent, scopes, audience, description, actor, violation, source, and the
format of a credential issued as an access token).

These are timeline events, kept with the session; the notifications the
engine sends through Vault's event system are something else.

A session keeps the engine's max_events most recent events; "dropped" counts
the older ones. Pass after=<seq> to read only newer events.
`

const pathGraphHelpSyn = `The access path a session actually took, as a graph.`

const pathGraphHelpDesc = `
Draws the session's step credentials as a tree: credentials taken straight
from the session hang off the session, derived ones off their parent. Each
node shows scopes, audience, description, actor, depth, state (active,
expired, ended or revoked) and how often resource servers reported its use.

"dot" is Graphviz text (render with: dot -Tsvg), "mermaid" is a Mermaid
flowchart (paste it into any Mermaid renderer). "credentials_shown" counts
the credentials drawn. "partial" is true when the oldest events were
dropped, so some credentials may be missing.
`
