package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/testhelpers/schema"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// answered is one successful request and its answer.
type answered struct {
	op   logical.Operation
	path string
	resp *logical.Response
}

// httpStatus is the status Vault's HTTP layer gives an answer: a raw
// answer's own, 204 for an answer with nothing in it, 200 otherwise.
func httpStatus(resp *logical.Response) int {
	if resp == nil {
		return http.StatusNoContent
	}
	if code, ok := resp.Data[logical.HTTPStatusCode].(int); ok {
		return code
	}
	if len(resp.Data) == 0 && len(resp.Warnings) == 0 && resp.Secret == nil && resp.Auth == nil {
		return http.StatusNoContent
	}
	return http.StatusOK
}

// answerData is what a client reads from an answer: its data, or for a raw
// answer its JSON body, which is not wrapped in data.
func answerData(t *testing.T, resp *logical.Response, declared framework.Response) map[string]interface{} {
	t.Helper()
	raw, ok := resp.Data[logical.HTTPRawBody]
	if !ok {
		return resp.Data
	}
	require.Equal(t, declared.MediaType, resp.Data[logical.HTTPContentType], "a raw answer's content type is declared")
	var body map[string]interface{}
	require.NoError(t, json.Unmarshal(raw.([]byte), &body))
	return body
}

// uuidRe matches the session IDs in request paths, to name subtests.
var uuidRe = regexp.MustCompile(`[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}`)

// operationKey names an operation of a path.
type operationKey struct {
	pattern string
	op      logical.Operation
}

// TestResponsesMatchTheirDeclarations drives every operation of the engine
// with successful requests and checks each answer against the operation's
// declared responses: its status is declared, its data holds only declared
// fields, of their declared types, with every required one; and across the
// answers every declared status and every declared field shows up.
func TestResponsesMatchTheirDeclarations(t *testing.T) {
	b, s := testBackend(t)
	var log []answered
	call := func(c caller, op logical.Operation, path string, data map[string]interface{}) *logical.Response {
		t.Helper()
		resp := mustDo(t, b, s, c, op, path, data)
		log = append(log, answered{op: op, path: path, resp: resp})
		return resp
	}

	call(operator, logical.UpdateOperation, "config", map[string]interface{}{"max_events": 500})
	call(operator, logical.ReadOperation, "config", nil)
	call(operator, logical.CreateOperation, "roles/web", map[string]interface{}{
		"scopes": "read,list:secrets/web/*,write:secrets/web/tmp/*", "audiences": "secrets-api,docs-api,vault:agent",
		"on_violation": "deny", "violation_limit": 5,
	})
	call(operator, logical.UpdateOperation, "roles/web", map[string]interface{}{"max_rate": 100})
	call(operator, logical.ReadOperation, "roles/web", nil)
	call(operator, logical.CreateOperation, "roles/spare", map[string]interface{}{"scopes": "read:x/*", "audiences": "x-api"})
	call(operator, logical.ListOperation, "roles/", nil)
	call(operator, logical.DeleteOperation, "roles/spare", nil)
	call(operator, logical.UpdateOperation, "keys/rotate", nil)

	start := call(agentA, logical.UpdateOperation, "session", map[string]interface{}{
		"role": "web", "purpose": "rotate web TLS", "scopes": "read:secrets/web/*", "audiences": "secrets-api",
		"metadata": map[string]interface{}{"ticket": "OPS-42"},
	})
	id := start.Data["session_id"].(string)
	parent := call(agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "secrets-api", "description": "fetch cert",
	})
	// Reading and writing creds are two operations: derive with both.
	read := call(agentA, logical.ReadOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "secrets-api", "parent_token": parent.Data["token"],
		"actor": "sub-agent-1", "cnf_jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
	})
	require.NotEmpty(t, read.Data["parent_id"])
	child := call(agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "secrets-api", "parent_token": parent.Data["token"],
		"actor": "sub-agent-1", "cnf_jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
	})
	require.NotEmpty(t, child.Data["parent_id"])
	call(caller{}, logical.UpdateOperation, "introspect", map[string]interface{}{"token": child.Data["token"]})
	access := call(agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "secrets-api", "format": "access_token",
	})
	call(caller{}, logical.UpdateOperation, "introspect", map[string]interface{}{"token": access.Data["token"]})
	call(caller{}, logical.UpdateOperation, "introspect", map[string]interface{}{"token": "not.a.token"})
	// Token exchange answers raw OAuth JSON, refusals included.
	exchanged := func(fields map[string]interface{}) {
		log = append(log, answered{op: logical.UpdateOperation, path: "token", resp: exchange(t, b, s, "", fields).resp})
	}
	deleg, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	delegCred := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+deleg, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "vault:agent",
	})
	exchanged(map[string]interface{}{"subject_token": delegCred.Data["token"], "actor": "helper", "audience": "secrets-api"})
	exchanged(map[string]interface{}{"subject_token": "not.a.token"})
	slow, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "max_rate": 1})
	slowCred := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+slow, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "vault:agent",
	})
	exchanged(map[string]interface{}{"subject_token": slowCred.Data["token"]})
	report := func(action string) *logical.Response {
		return call(operator, logical.UpdateOperation, "report", map[string]interface{}{
			"token": parent.Data["token"], "action": action, "resource": "secrets/web/tls", "outcome": "allowed",
		})
	}
	report("read")
	require.Equal(t, false, report("write").Data["session_revoked"], "a misuse under on_violation=deny")
	call(agentA, logical.ReadOperation, "session/"+id, nil)
	call(operator, logical.ReadOperation, "sessions/"+id, nil)
	call(operator, logical.ReadOperation, "sessions/"+id+"/events", nil)
	call(operator, logical.ReadOperation, "sessions/"+id+"/graph", nil)
	call(operator, logical.ListOperation, "sessions/", nil)
	call(operator, logical.ListOperation, "sessions/", map[string]interface{}{"role": "web", "state": "active"})
	call(operator, logical.ListOperation, "sessions/", map[string]interface{}{"limit": 1})
	call(agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	require.Equal(t, false, report("read").Data["recorded"], "a report once the session is closed")
	call(agentA, logical.ReadOperation, "session/"+id, nil)

	other, _ := startSession(t, b, s, agentB, map[string]interface{}{"role": "web"})
	call(operator, logical.UpdateOperation, "sessions/"+other+"/revoke", map[string]interface{}{"reason": "drill"})
	call(operator, logical.ReadOperation, "sessions/"+other, nil)
	call(caller{}, logical.ReadOperation, "revocations", nil)
	call(caller{}, logical.ReadOperation, "jwks", nil)
	mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"issuer": "https://vault.example.com/v1/agent"})
	call(caller{}, logical.ReadOperation, wellKnownOAuth, nil)
	call(caller{}, logical.ReadOperation, wellKnownOpenID, nil)
	call(caller{}, logical.ReadOperation, wellKnownSSF, nil)
	push := call(operator, logical.UpdateOperation, "ssf/streams", map[string]interface{}{
		"delivery_method": "push", "endpoint_url": "https://rs.example.com/ssf", "audience": "rs",
		"authorization_header": "Bearer s3cret",
	}).Data["stream_id"].(string)
	call(operator, logical.UpdateOperation, "ssf/streams/"+push, map[string]interface{}{"audience": "rs-2"})
	call(operator, logical.ReadOperation, "ssf/streams/"+push, nil)
	call(operator, logical.ListOperation, "ssf/streams/", nil)
	call(operator, logical.DeleteOperation, "ssf/streams/"+push, nil)
	poll := call(operator, logical.UpdateOperation, "ssf/streams", map[string]interface{}{
		"delivery_method": "poll", "audience": "rs",
	}).Data["stream_id"].(string)
	call(operator, logical.UpdateOperation, "ssf/streams/"+poll+"/verify", map[string]interface{}{"state": "abc"})
	call(operator, logical.UpdateOperation, "ssf/streams/"+poll+"/poll", map[string]interface{}{"returnImmediately": true})

	// Step-up approval.
	call(operator, logical.CreateOperation, "roles/appr", map[string]interface{}{
		"scopes": "read:secrets/*", "audiences": "secrets-api", "on_out_of_intent": "approval", "approval_ttl": "10m",
	})
	ap, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "appr", "scopes": "read:secrets/web/*"})
	asked := func(sc string) string {
		r := call(agentA, logical.UpdateOperation, "creds/"+ap, map[string]interface{}{"scopes": sc, "audience": "secrets-api"})
		var body struct {
			Data map[string]interface{} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(r.Data[logical.HTTPRawBody].([]byte), &body))
		return body.Data["approval_id"].(string)
	}
	first := asked("read:secrets/db/creds")
	// Reading creds asks too.
	call(agentA, logical.ReadOperation, "creds/"+ap, map[string]interface{}{"scopes": "read:secrets/db/third", "audience": "secrets-api"})
	call(operator, logical.ListOperation, "approvals/", nil)
	call(operator, logical.ListOperation, "approvals/", map[string]interface{}{"role": "appr", "state": "all"})
	call(operator, logical.ListOperation, "approvals/", map[string]interface{}{"state": "all", "limit": 1})
	call(operator, logical.UpdateOperation, "approvals/"+first+"/approve", map[string]interface{}{"ttl": "5m", "comment": "ok"})
	call(operator, logical.ReadOperation, "approvals/"+first, nil)
	call(agentA, logical.ReadOperation, "session/"+ap, nil)
	call(operator, logical.ReadOperation, "sessions/"+ap, nil)
	call(operator, logical.UpdateOperation, "approvals/"+asked("read:secrets/db/other")+"/deny", map[string]interface{}{"reason": "no"})

	// Answers that hold only a warning.
	require.NotEmpty(t, call(operator, logical.UpdateOperation, "config", map[string]interface{}{"signing_algorithm": "ES256"}).Warnings)
	startSession(t, b, s, agentB, map[string]interface{}{"role": "web"})
	require.NotEmpty(t, call(operator, logical.DeleteOperation, "roles/web", nil).Warnings)
	call(operator, logical.DeleteOperation, "config", nil)

	type seen struct {
		statuses map[int]bool
		fields   map[string]bool
	}
	seenBy := map[operationKey]*seen{}
	for _, a := range log {
		p := b.Route(a.path)
		require.NotNil(t, p, a.path)
		key := operationKey{p.Pattern, a.op}
		handler, ok := p.Operations[a.op]
		require.True(t, ok, "%s %s", a.op, a.path)
		declared := handler.Properties().Responses
		status := httpStatus(a.resp)
		responses, ok := declared[status]
		require.True(t, ok, "%s %s answered %d, which is not declared", a.op, a.path, status)
		if seenBy[key] == nil {
			seenBy[key] = &seen{statuses: map[int]bool{}, fields: map[string]bool{}}
		}
		seenBy[key].statuses[status] = true
		if status == http.StatusNoContent {
			continue
		}
		data := answerData(t, a.resp, responses[0])
		if _, raw := a.resp.Data[logical.HTTPRawBody]; raw && len(responses[0].Fields) == 0 && status != http.StatusOK {
			// A raw body described in its response's description: token
			// exchange's OAuth errors, and the 202 of a step that waits
			// for approval (Vault's envelope).
			if status >= 400 {
				require.NotEmpty(t, data["error"], "%s %s: a raw error body names its error", a.op, a.path)
			} else {
				require.NotEmpty(t, data["data"], "%s %s: a raw 2xx body has data", a.op, a.path)
			}
			continue
		}
		if len(responses[0].Fields) == 0 {
			require.Empty(t, data, "%s %s answered data where none is declared", a.op, a.path)
			continue
		}
		t.Run(string(a.op)+" "+uuidRe.ReplaceAllString(a.path, ":id"), func(t *testing.T) {
			// Strict: no undeclared field, every required one, each
			// converting to its declared type.
			schema.ValidateResponseData(t, &responses[0], data, true)
		})
		for k := range data {
			seenBy[key].fields[k] = true
		}
	}

	// Every operation declares its responses, was answered with each
	// declared status, and showed each declared field.
	for _, p := range b.Paths {
		for op, handler := range p.Operations {
			key := operationKey{p.Pattern, op}
			declared := handler.Properties().Responses
			require.NotEmpty(t, declared, "%s %s declares no responses", op, p.Pattern)
			got := seenBy[key]
			require.NotNil(t, got, "%s %s was never answered", op, p.Pattern)
			for status, responses := range declared {
				require.True(t, got.statuses[status], "%s %s never answered its declared %d", op, p.Pattern, status)
				for name := range responses[0].Fields {
					require.True(t, got.fields[name], "%s %s never answered its declared field %q", op, p.Pattern, name)
				}
			}
		}
	}
}

// TestOpenAPIDocumentsEveryResponse generates the engine's OpenAPI document
// as Vault does (a help request on the mount's root) and checks that every
// operation is in it under the engine's prefix, with each declared response
// and the declared fields as its schema; and that the help of every path,
// which carries that path's OpenAPI document, answers.
func TestOpenAPIDocumentsEveryResponse(t *testing.T) {
	b, s := testBackend(t)
	// Root help reads Vault's version from the plugin environment.
	cached, ok := b.System().(*cachedSystemView)
	require.True(t, ok, "system view %T", b.System())
	sys, ok := cached.SystemView.(*logical.StaticSystemView)
	require.True(t, ok, "system view %T", cached.SystemView)
	sys.PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "1.21.0"}

	help := func(path string) *framework.OASDocument {
		t.Helper()
		resp, err := b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.HelpOperation, Path: path, Storage: s, MountPoint: "agent/",
		})
		require.NoError(t, err, "help %q", path)
		require.NotNil(t, resp, "help %q", path)
		doc, ok := resp.Data["openapi"].(*framework.OASDocument)
		require.True(t, ok, "help %q answers no OpenAPI document", path)
		return doc
	}
	doc := help("")

	// Find each documented operation's path and logical operation by
	// routing a concrete request to it.
	param := regexp.MustCompile(`\{[^}]+\}`)
	documented := map[operationKey]*framework.OASOperation{}
	oasPaths := make([]string, 0, len(doc.Paths))
	for oasPath := range doc.Paths {
		oasPaths = append(oasPaths, oasPath)
	}
	sort.Strings(oasPaths)
	for _, oasPath := range oasPaths {
		item := doc.Paths[oasPath]
		concrete := param.ReplaceAllString(strings.TrimPrefix(oasPath, "/"), "x1")
		p := b.Route(concrete)
		require.NotNil(t, p, "OpenAPI path %s routes nowhere", oasPath)
		require.NotNil(t, help(concrete), "help %q", concrete)
		add := func(op logical.Operation, o *framework.OASOperation) {
			if o == nil {
				return
			}
			require.True(t, strings.HasPrefix(o.OperationID, operationPrefix+"-"), "operation ID %q", o.OperationID)
			documented[operationKey{p.Pattern, op}] = o
		}
		if item.Get != nil && strings.HasSuffix(oasPath, "/") {
			add(logical.ListOperation, item.Get)
		} else {
			add(logical.ReadOperation, item.Get)
		}
		if _, ok := p.Operations[logical.UpdateOperation]; ok {
			add(logical.UpdateOperation, item.Post)
		} else {
			add(logical.CreateOperation, item.Post)
		}
		add(logical.DeleteOperation, item.Delete)
	}

	for _, p := range b.Paths {
		for op, handler := range p.Operations {
			if _, ok := p.Operations[logical.UpdateOperation]; ok && op == logical.CreateOperation {
				continue // documented as its update
			}
			o := documented[operationKey{p.Pattern, op}]
			require.NotNil(t, o, "%s %s is not in the OpenAPI document", op, p.Pattern)
			for status, responses := range handler.Properties().Responses {
				r := o.Responses[status]
				require.NotNil(t, r, "%s %s: no %d in the OpenAPI document", op, p.Pattern, status)
				require.Equal(t, responses[0].Description, r.Description)
				if len(responses[0].Fields) == 0 {
					continue
				}
				media := r.Content["application/json"]
				require.NotNil(t, media, "%s %s: no schema for %d", op, p.Pattern, status)
				ref := strings.TrimPrefix(media.Schema.Ref, "#/components/schemas/")
				component := doc.Components.Schemas[ref]
				require.NotNil(t, component, "%s %s: no component %q", op, p.Pattern, media.Schema.Ref)
				require.Len(t, component.Properties, len(responses[0].Fields), "%s %s", op, p.Pattern)
				for name, field := range responses[0].Fields {
					prop := component.Properties[name]
					require.NotNil(t, prop, "%s %s: field %q is not in %s", op, p.Pattern, name, ref)
					require.NotEmpty(t, prop.Type, "%s %s: field %q has no OpenAPI type", op, p.Pattern, name)
					require.NotEmpty(t, prop.Description, "%s %s: field %q", op, p.Pattern, name)
					require.Equal(t, strings.Join(strings.Fields(field.Description), " "), prop.Description)
				}
			}
		}
	}
}
