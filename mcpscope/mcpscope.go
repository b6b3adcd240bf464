// Package mcpscope maps Model Context Protocol (MCP) requests to the
// engine's scopes, so that an MCP client asks for exactly the scope a
// request needs and an MCP server checks it with package scope, by the same
// rules on both sides.
//
// # The mapping
//
// A JSON-RPC request that uses one tool, resource or prompt needs one
// (action, resource) pair; the resource lives under a prefix per kind
// ([Mapping], by default "tools", "resources" and "prompts"):
//
//	tools/call of tool T                          call on tools/T
//	resources/read of URI U                        read on resources/<path of U>
//	resources/subscribe, resources/unsubscribe U   read on resources/<path of U>
//	prompts/get of prompt P                        get  on prompts/P
//
// subscriptions/listen needs read on each URI it subscribes to, and
// completion/complete what its reference names (get on the prompt, read
// on the resource).
//
// A tool or prompt name is taken as written: it must be a resource path of
// package scope (segments of letters, digits and "._~@=-"; a "/" in a name
// separates segments). The path of a resource URI "scheme://authority/path"
// is "scheme/authority/path" ("docs://plans/q3" is "docs/plans/q3"); a file
// URI has an empty authority ("file:///srv/a.md" is "file/srv/a.md"). A URI
// that is not written "scheme://" with a lower-case scheme, a file URI with
// an authority or another URI without one, or one with a query, a fragment,
// user information, percent-encoding or an empty or dot segment cannot be
// named by a scope, and is refused ([ErrUnmappable]) rather than mapped onto
// a name another URI could share.
//
// The methods that use nothing in particular (initialize, ping,
// notifications, responses, logging/setLevel, server/discover, and the
// lists tools/list, resources/list, resources/templates/list and
// prompts/list) need no particular scope: any valid credential for the
// server will do. Any other method is refused (ErrUnmappable): what the
// mapping does not know, it does not let through. A server shows in a list
// only what the credential could use: tool T if it allows call on tools/T
// ([Mapping.Tool]), and so on.
//
// Messages are read by package token's strict JSON rules, so that the
// mapping reads exactly what an MCP SDK reads (no duplicate member names,
// no names differing only in case).
package mcpscope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// The actions of the mapping.
const (
	// ActionCall is the action of a tool call.
	ActionCall = "call"
	// ActionRead is the action of reading (or subscribing to) a resource.
	ActionRead = "read"
	// ActionGet is the action of getting a prompt.
	ActionGet = "get"
)

// The MCP methods the mapping gives a scope.
const (
	MethodCallTool    = "tools/call"
	MethodReadRes     = "resources/read"
	MethodSubscribe   = "resources/subscribe"
	MethodUnsubscribe = "resources/unsubscribe"
	MethodGetPrompt   = "prompts/get"
)

// MaxMessageSize is the largest JSON-RPC body Messages reads.
const MaxMessageSize = 4 << 20

// ErrUnmappable: a request names a tool, resource or prompt that no scope
// can name, or uses a method the mapping does not know (see the package
// documentation).
var ErrUnmappable = errors.New("mcpscope: the request names something no scope can name")

// ErrMalformed: a body is not a JSON-RPC message or batch, or a request
// lacks the parameter its method needs.
var ErrMalformed = errors.New("mcpscope: malformed JSON-RPC message")

// Mapping holds the resource prefixes of the three kinds; an empty prefix
// takes the default ("tools", "resources", "prompts"). A prefix is a
// resource path of package scope, without a trailing "/".
type Mapping struct {
	Tools     string
	Resources string
	Prompts   string
}

// Default is the mapping with the default prefixes.
var Default = Mapping{Tools: "tools", Resources: "resources", Prompts: "prompts"}

// withDefaults fills empty prefixes.
func (m Mapping) withDefaults() Mapping {
	if m.Tools == "" {
		m.Tools = Default.Tools
	}
	if m.Resources == "" {
		m.Resources = Default.Resources
	}
	if m.Prompts == "" {
		m.Prompts = Default.Prompts
	}
	return m
}

// Check reports a prefix that is not a valid resource path.
func (m Mapping) Check() error {
	m = m.withDefaults()
	for _, p := range []struct{ name, v string }{{"Tools", m.Tools}, {"Resources", m.Resources}, {"Prompts", m.Prompts}} {
		if err := scope.ValidRequest(ActionCall, p.v); err != nil {
			return fmt.Errorf("mcpscope: Mapping.%s %q is not a resource path: %v", p.name, p.v, err)
		}
	}
	return nil
}

// Prefixes returns the three prefixes, defaults filled in.
func (m Mapping) Prefixes() []string {
	m = m.withDefaults()
	return []string{m.Tools, m.Resources, m.Prompts}
}

// Need is what a request needs: an action on a resource. The zero Need
// means no particular scope.
type Need struct {
	Action   string
	Resource string
}

// None reports whether n needs no particular scope.
func (n Need) None() bool { return n.Action == "" }

// Scope is n as a scope string, "action:resource".
func (n Need) Scope() string { return n.Action + ":" + n.Resource }

// Message is what the mapping reads of one JSON-RPC message: its method
// (empty for a response) and, for the methods with a scope, what they
// name.
type Message struct {
	Method string
	// IsRequest: the message has an "id" (a request, not a notification
	// or a response).
	IsRequest bool
	// Name is params.name (tools/call, prompts/get).
	Name string
	// URI is params.uri (resources/read, subscribe, unsubscribe).
	URI string
	// URIs are params.notifications.resourceSubscriptions
	// (subscriptions/listen).
	URIs []string
	// RefType, RefName and RefURI are params.ref (completion/complete).
	RefType, RefName, RefURI string
}

// The methods that need no particular scope: any valid credential for the
// server will do. Every other method the mapping does not know is refused.
var sessionMethods = map[string]bool{
	"":                         true, // a response to a server's request
	"initialize":               true,
	"ping":                     true,
	"tools/list":               true,
	"resources/list":           true,
	"resources/templates/list": true,
	"prompts/list":             true,
	"logging/setLevel":         true,
	"server/discover":          true,
}

// More methods with a scope.
const (
	MethodListen   = "subscriptions/listen"
	MethodComplete = "completion/complete"
)

// wireHead is the part of a message every message is read for.
type wireHead struct {
	Method string `json:"method"`
}

// wireMessage is a message of a method with a scope.
type wireMessage struct {
	Method string      `json:"method"`
	Params *wireParams `json:"params"`
}

type wireParams struct {
	Name *string `json:"name"`
	URI  *string `json:"uri"`
	Ref  *struct {
		Type string `json:"type"`
		Name string `json:"name"`
		URI  string `json:"uri"`
	} `json:"ref"`
	Notifications *struct {
		ResourceSubscriptions []string `json:"resourceSubscriptions"`
	} `json:"notifications"`
}

// Messages decodes body, a JSON-RPC message or a batch (an array of them),
// as sent in the body of a streamable HTTP POST. Each message is read by
// package token's strict JSON rules (exact member names, no duplicate
// member and no two members differing only in case, at any depth), so
// that what the mapping reads is what an MCP SDK reads, whichever JSON
// reader it uses. It fails with ErrMalformed for anything else, or for a
// body over MaxMessageSize.
func Messages(body []byte) ([]Message, error) {
	if len(body) > MaxMessageSize {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrMalformed, MaxMessageSize)
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var raws []json.RawMessage
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(body, &raws); err != nil || len(raws) == 0 {
			return nil, fmt.Errorf("%w: not a JSON-RPC batch", ErrMalformed)
		}
	} else {
		raws = []json.RawMessage{body}
	}
	out := make([]Message, 0, len(raws))
	for _, raw := range raws {
		m, err := decodeMessage(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func decodeMessage(raw []byte) (Message, error) {
	var head wireHead
	members, err := token.DecodeStrict(raw, &head)
	if err != nil {
		return Message{}, fmt.Errorf("%w: not a JSON-RPC message read by the strict rules", ErrMalformed)
	}
	id, hasID := members["id"]
	m := Message{Method: head.Method, IsRequest: hasID && id != nil}
	if !needsParams(head.Method) {
		return m, nil
	}
	var w wireMessage
	if _, err := token.DecodeStrict(raw, &w); err != nil || w.Params == nil {
		return Message{}, fmt.Errorf("%w: %s without params an MCP server reads", ErrMalformed, head.Method)
	}
	p := w.Params
	if p.Name != nil {
		m.Name = *p.Name
	}
	if p.URI != nil {
		m.URI = *p.URI
	}
	if p.Ref != nil {
		m.RefType, m.RefName, m.RefURI = p.Ref.Type, p.Ref.Name, p.Ref.URI
	}
	if p.Notifications != nil {
		m.URIs = p.Notifications.ResourceSubscriptions
	}
	return m, nil
}

func needsParams(method string) bool {
	switch method {
	case MethodCallTool, MethodGetPrompt, MethodReadRes, MethodSubscribe, MethodUnsubscribe, MethodListen, MethodComplete:
		return true
	}
	return false
}

// Needs returns what msg needs under m: nothing for the methods that need
// no particular scope, one need for a call, a read or a get, one per URI
// for subscriptions/listen. It fails with ErrMalformed when the method
// lacks the name or URI it needs, and with ErrUnmappable when no scope can
// name what it names, or when the method is one the mapping does not know
// (default deny).
func (m Mapping) Needs(msg Message) ([]Need, error) {
	m = m.withDefaults()
	one := func(n Need, err error) ([]Need, error) {
		if err != nil {
			return nil, err
		}
		return []Need{n}, nil
	}
	switch msg.Method {
	case MethodCallTool:
		if msg.Name == "" {
			return nil, fmt.Errorf("%w: tools/call without a tool name", ErrMalformed)
		}
		return one(named(ActionCall, m.Tools, msg.Name))
	case MethodGetPrompt:
		if msg.Name == "" {
			return nil, fmt.Errorf("%w: prompts/get without a prompt name", ErrMalformed)
		}
		return one(named(ActionGet, m.Prompts, msg.Name))
	case MethodReadRes, MethodSubscribe, MethodUnsubscribe:
		if msg.URI == "" {
			return nil, fmt.Errorf("%w: %s without a uri", ErrMalformed, msg.Method)
		}
		return one(m.resourceNeed(msg.URI))
	case MethodListen:
		var out []Need
		for _, u := range msg.URIs {
			n, err := m.resourceNeed(u)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
		return out, nil
	case MethodComplete:
		switch msg.RefType {
		case "ref/prompt":
			return one(named(ActionGet, m.Prompts, msg.RefName))
		case "ref/resource":
			return one(m.resourceNeed(msg.RefURI))
		}
		return nil, fmt.Errorf("%w: completion/complete without a ref/prompt or ref/resource", ErrMalformed)
	}
	if sessionMethods[msg.Method] || strings.HasPrefix(msg.Method, "notifications/") {
		return nil, nil
	}
	return nil, fmt.Errorf("%w: method %q is not one the mapping knows", ErrUnmappable, clipName(msg.Method))
}

func clipName(s string) string { return scope.Clip(s) }

// Tool is the need of a call of the tool name.
func (m Mapping) Tool(name string) (Need, error) {
	return named(ActionCall, m.withDefaults().Tools, name)
}

// Prompt is the need of getting the prompt name.
func (m Mapping) Prompt(name string) (Need, error) {
	return named(ActionGet, m.withDefaults().Prompts, name)
}

// Resource is the need of reading the resource at uri.
func (m Mapping) Resource(uri string) (Need, error) {
	return m.withDefaults().resourceNeed(uri)
}

func named(action, prefix, name string) (Need, error) {
	n := Need{Action: action, Resource: prefix + "/" + name}
	if err := scope.ValidRequest(n.Action, n.Resource); err != nil {
		return Need{}, fmt.Errorf("%w: name %q", ErrUnmappable, scope.Clip(name))
	}
	return n, nil
}

func (m Mapping) resourceNeed(uri string) (Need, error) {
	bad := fmt.Errorf("%w: resource URI %q", ErrUnmappable, scope.Clip(uri))
	if strings.ContainsAny(uri, "%?#") {
		return Need{}, bad
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" || u.Scheme != strings.ToLower(u.Scheme) || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(uri, u.Scheme+"://") {
		return Need{}, bad
	}
	// One name per URI: a file URI has an empty authority (file:///p),
	// every other URI a non-empty one (docs://plans/q3), so that
	// scheme/authority/path never names two URIs.
	if (u.Scheme == "file") != (u.Host == "") {
		return Need{}, bad
	}
	parts := []string{m.Resources, u.Scheme}
	if u.Host != "" {
		parts = append(parts, u.Host)
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		parts = append(parts, p)
	}
	n := Need{Action: ActionRead, Resource: strings.Join(parts, "/")}
	if err := scope.ValidRequest(n.Action, n.Resource); err != nil {
		return Need{}, bad
	}
	return n, nil
}

// Allowed reports whether the space-separated scope string granted
// (a credential's "scope" claim) allows n. A zero Need is allowed by any
// scope.
func Allowed(granted string, n Need) bool {
	if n.None() {
		return true
	}
	set, err := scope.ParseSpaceSeparated(granted)
	if err != nil {
		return false
	}
	return set.Match(n.Action, n.Resource)
}

// Under returns, in order and without repeats, the part of the scopes in
// set that lies under m's prefixes: each scope whose resource lies under a
// prefix, as it is, and for a scope wider than a prefix (such as "*:*"),
// that prefix with the scope's actions ("*:tools/*"). Scopes that do not
// reach under a prefix are left out. It is what a credential for an MCP
// server's session-level requests (initialize, the lists) needs: what the
// session may do on that server, and nothing beyond it.
func (m Mapping) Under(set []string) []string {
	var out []string
	add := func(s string) {
		for _, o := range out {
			if o == s {
				return
			}
		}
		out = append(out, s)
	}
	for _, s := range set {
		sc, err := scope.Parse(s)
		if err != nil {
			continue
		}
		actions := strings.Join(sc.Actions(), ",")
		for _, p := range m.Prefixes() {
			probe, err := scope.Parse(actions + ":" + p + "/*")
			if err != nil {
				continue
			}
			switch {
			case scope.Contains(probe, sc):
				add(sc.String())
			case scope.Contains(sc, probe):
				add(probe.String())
			}
		}
	}
	return out
}
