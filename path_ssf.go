package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// wellKnownSSF is where SSF receivers discover the transmitter (SSF 1.0
// §7.2), under the mount.
const wellKnownSSF = ".well-known/ssf-configuration"

// Bounds of the stream fields.
const (
	maxEndpointURLLength   = 2048
	maxAuthorizationLength = 4096
	maxStreamAudience      = 256
	maxVerifyState         = 1024
	maxPollEvents          = 1000
	maxPollAcks            = 1000
	maxJTILength           = 256
)

func pathSSF(b *backend) []*framework.Path {
	streamID := &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "The stream's ID, as its creation answered.",
		Required:    true,
	}
	forwarded := func(op *framework.PathOperation) *framework.PathOperation {
		// Writes replicated storage: run on the active node of the primary.
		op.ForwardPerformanceStandby = true
		op.ForwardPerformanceSecondary = true
		return op
	}
	return []*framework.Path{
		{
			Pattern: "ssf/streams/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
			},
			Fields: ssfStreamFields(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback:     b.pathSSFStreamsList,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "list", OperationSuffix: "ssf-streams"},
					Summary:      "List the Shared Signals streams.",
					Responses:    listResponses("The IDs of the streams."),
				},
				logical.UpdateOperation: forwarded(&framework.PathOperation{
					Callback:     b.pathSSFStreamCreate,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "create", OperationSuffix: "ssf-stream"},
					Summary:      "Create a Shared Signals stream: subscribe a receiver to session closes.",
					Responses:    ssfStreamResponses(),
				}),
			},
			HelpSynopsis:    pathSSFStreamsHelpSyn,
			HelpDescription: pathSSFStreamsHelpDesc,
		},
		{
			Pattern: "ssf/streams/" + framework.GenericNameRegex("stream_id") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationSuffix: "ssf-stream",
			},
			Fields: func() map[string]*framework.FieldSchema {
				f := ssfStreamFields()
				f["stream_id"] = streamID
				return f
			}(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathSSFStreamRead,
					Summary:   "Read a Shared Signals stream (its authorization_header is never shown).",
					Responses: ssfStreamResponses(),
				},
				logical.UpdateOperation: forwarded(&framework.PathOperation{
					Callback:  b.pathSSFStreamUpdate,
					Summary:   "Update a Shared Signals stream. Omitted fields keep their values.",
					Responses: ssfStreamResponses(),
				}),
				logical.DeleteOperation: forwarded(&framework.PathOperation{
					Callback:  b.pathSSFStreamDelete,
					Summary:   "Delete a Shared Signals stream and the SETs it has not delivered.",
					Responses: noContentResponses(),
				}),
			},
			HelpSynopsis:    pathSSFStreamHelpSyn,
			HelpDescription: pathSSFStreamHelpDesc,
		},
		{
			Pattern: "ssf/streams/" + framework.GenericNameRegex("stream_id") + "/verify$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "verify", OperationSuffix: "ssf-stream",
			},
			Fields: map[string]*framework.FieldSchema{
				"stream_id": streamID,
				"state": {
					Type:        framework.TypeString,
					Description: "Optional. An opaque value the verification SET echoes in its \"state\", so the receiver can match it.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: forwarded(&framework.PathOperation{
					Callback:  b.pathSSFStreamVerify,
					Summary:   "Queue an SSF verification SET on the stream, delivered like the others.",
					Responses: ssfVerifyResponses(),
				}),
			},
			HelpSynopsis:    pathSSFVerifyHelpSyn,
			HelpDescription: pathSSFVerifyHelpDesc,
		},
		{
			Pattern: "ssf/streams/" + framework.GenericNameRegex("stream_id") + "/poll$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "poll", OperationSuffix: "ssf-stream",
			},
			Fields: map[string]*framework.FieldSchema{
				"stream_id": streamID,
				"maxEvents": {
					Type:        framework.TypeInt,
					Description: "The most SETs to answer (RFC 8936 §2.1), 0 to only acknowledge; at most 1000. Defaults to 100.",
				},
				"returnImmediately": {
					Type:        framework.TypeBool,
					Description: "Answer at once even when no SET is pending (RFC 8936 §2.1); otherwise wait up to 30s for one. Defaults to false.",
				},
				"ack": {
					Type:        framework.TypeCommaStringSlice,
					Description: "The jti of each SET received and processed since the last poll: they are not served again.",
				},
				"setErrs": {
					Type:        framework.TypeMap,
					Description: `SETs the receiver could not process, by jti, each {"err": ..., "description": ...} (RFC 8936 §2.4): logged and not served again.`,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: forwarded(&framework.PathOperation{
					Callback:  b.pathSSFStreamPoll,
					Summary:   "Poll a poll stream for SETs and acknowledge them (RFC 8936; raw JSON, not Vault's envelope).",
					Responses: ssfPollResponses(),
				}),
			},
			HelpSynopsis:    pathSSFPollHelpSyn,
			HelpDescription: pathSSFPollHelpDesc,
		},
		{
			Pattern: strings.ReplaceAll(wellKnownSSF, ".", `\.`) + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: "ssf-configuration",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathSSFConfiguration,
					Summary:   "The SSF transmitter metadata (no Vault token needed; raw JSON).",
					Responses: ssfConfigurationResponses(),
				},
			},
			HelpSynopsis:    pathSSFConfigurationHelpSyn,
			HelpDescription: pathSSFConfigurationHelpDesc,
		},
	}
}

func ssfStreamFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"delivery_method": {
			Type: framework.TypeString,
			Description: `Required when creating. "push" (RFC 8935: the engine POSTs each SET to endpoint_url) ` +
				`or "poll" (RFC 8936: the receiver polls ssf/streams/<id>/poll). The URNs ` +
				`urn:ietf:rfc:8935 and urn:ietf:rfc:8936 are accepted too.`,
			AllowedValues: []interface{}{deliveryPush, deliveryPoll, ssf.DeliveryPush, ssf.DeliveryPoll},
		},
		"endpoint_url": {
			Type:        framework.TypeString,
			Description: "Push streams only, required for them: the receiver's http or https URL, where each SET is POSTed.",
		},
		"authorization_header": {
			Type: framework.TypeString,
			Description: `Push streams only, optional: the Authorization header sent with each SET, ` +
				`e.g. "Bearer <token>". Stored seal-wrapped and never shown again; an empty value removes it.`,
			DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
		},
		"audience": {
			Type:        framework.TypeString,
			Description: `Required when creating. The SETs' "aud" claim: the receiver, which checks it.`,
		},
		"events_requested": {
			Type: framework.TypeCommaStringSlice,
			Description: `The event types to deliver. Defaults to CAEP's session revoked, ` +
				`"` + ssf.EventSessionRevoked + `", the only event the engine emits besides ` +
				`SSF's verification event, which every stream gets when asked for.`,
		},
	}
}

// applyStreamFields applies the fields a stream write names to rec and
// auth, and checks the result: it refuses a malformed field, and a stream
// whose fields do not fit its delivery method.
func applyStreamFields(req *logical.Request, d *framework.FieldData, rec *ssfStream, auth *string, creating bool) error {
	if err := refuseUnknownFields(req, d); err != nil {
		return err
	}
	if v, ok := d.GetOk("delivery_method"); ok {
		switch m := strings.TrimSpace(v.(string)); m {
		case deliveryPush, ssf.DeliveryPush:
			rec.DeliveryMethod = deliveryPush
		case deliveryPoll, ssf.DeliveryPoll:
			rec.DeliveryMethod = deliveryPoll
		default:
			return badField("delivery_method", `must be "push" or "poll" (or %s or %s)`, ssf.DeliveryPush, ssf.DeliveryPoll)
		}
	} else if creating {
		return badField("delivery_method", `is required: "push" or "poll"`)
	}
	endpointGiven, authGiven := false, false
	if v, ok := d.GetOk("endpoint_url"); ok {
		u := strings.TrimSpace(v.(string))
		if u != "" {
			if err := checkEndpointURL(u); err != nil {
				return err
			}
			endpointGiven = true
		}
		rec.EndpointURL = u
	}
	if v, ok := d.GetOk("authorization_header"); ok {
		a := strings.TrimSpace(v.(string))
		if err := trust.ValidLine("authorization_header", a, maxAuthorizationLength); err != nil {
			return badRequest(err)
		}
		*auth = a
		authGiven = a != ""
	}
	if v, ok := d.GetOk("audience"); ok {
		a := strings.TrimSpace(v.(string))
		if err := trust.ValidLine("audience", a, maxStreamAudience); err != nil {
			return badRequest(err)
		}
		if a == "" {
			return badField("audience", "must not be empty")
		}
		if strings.ContainsFunc(a, unicode.IsSpace) {
			return badField("audience", "must not contain whitespace")
		}
		rec.Audience = a
	} else if creating {
		return badField("audience", `is required: the SETs' "aud", which the receiver checks`)
	}
	if v, ok := d.GetOk("events_requested"); ok {
		var events []string
		for _, e := range v.([]string) {
			e = strings.TrimSpace(e)
			if !slices.Contains(ssf.EventTypes, e) {
				return badField("events_requested", "%q is not an event type this engine sends (%s)", trimForMessage(e), strings.Join(ssf.EventTypes, ", "))
			}
			if !slices.Contains(events, e) {
				events = append(events, e)
			}
		}
		if len(events) == 0 {
			return badField("events_requested", "must name at least one event type")
		}
		rec.EventsRequested = events
	} else if creating {
		rec.EventsRequested = []string{ssf.EventSessionRevoked}
	}

	switch rec.DeliveryMethod {
	case deliveryPush:
		if rec.EndpointURL == "" {
			return badField("endpoint_url", "is required for a push stream")
		}
	case deliveryPoll:
		if endpointGiven {
			return badField("endpoint_url", "is for push streams only; a poll stream's receiver polls ssf/streams/<id>/poll")
		}
		if authGiven {
			return badField("authorization_header", "is for push streams only")
		}
		rec.EndpointURL, *auth = "", ""
	}
	return nil
}

// checkEndpointURL checks a push stream's receiver URL: absolute http or
// https with a host, no credentials (they belong in
// authorization_header, which is never read back) and no fragment.
func checkEndpointURL(s string) error {
	if len(s) > maxEndpointURLLength {
		return badField("endpoint_url", "must be at most %d bytes, got %d", maxEndpointURLLength, len(s))
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return badField("endpoint_url", "must not contain whitespace or control characters")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return badField("endpoint_url", "is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return badField("endpoint_url", "must be an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return badField("endpoint_url", "must name a host")
	case u.User != nil:
		return badField("endpoint_url", "must not hold credentials; use authorization_header")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return badField("endpoint_url", "must not have a fragment")
	}
	return nil
}

// trimForMessage bounds an input quoted in a refusal.
func trimForMessage(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func (b *backend) pathSSFStreamsList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	ids, err := req.Storage.List(ctx, ssfStreamsPrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(ids), nil
}

func (b *backend) pathSSFStreamCreate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, err := uuid.GenerateUUID()
	if err != nil {
		return nil, err
	}
	rec := ssfStream{ID: id, Mount: req.MountPoint, CreatedAt: b.now().UTC().Truncate(time.Second)}
	var auth string
	if err := applyStreamFields(req, d, &rec, &auth, true); err != nil {
		return nil, err
	}
	if err := b.createStream(ctx, req.Storage, rec, auth); err != nil {
		return nil, err
	}
	return b.streamResponse(ctx, req.Storage, id)
}

func (b *backend) pathSSFStreamRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	resp, err := b.streamResponse(ctx, req.Storage, d.Get("stream_id").(string))
	if isNoStream(err) {
		return nil, nil // 404, as for a role
	}
	return resp, err
}

func (b *backend) pathSSFStreamUpdate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id := d.Get("stream_id").(string)
	err := b.ssfLocked(ctx, req.Storage, id, func(st *ssfStreamState) error {
		rec, auth := st.rec, st.auth
		rec.EventsRequested = slices.Clone(rec.EventsRequested)
		if err := applyStreamFields(req, d, &rec, &auth, false); err != nil {
			return err
		}
		rec.Mount = req.MountPoint
		return b.saveStream(ctx, req.Storage, st, rec, &auth)
	})
	if err != nil {
		return nil, err
	}
	b.Logger().Info("stream updated", "stream_id", id)
	// A stream that became push may have SETs to deliver.
	b.ssfWake(req.Storage, b.ssf.state(id))
	return b.streamResponse(ctx, req.Storage, id)
}

func (b *backend) pathSSFStreamDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return nil, b.deleteStream(ctx, req.Storage, d.Get("stream_id").(string))
}

// streamResponse answers a stream: its settings (never its Authorization
// header, only whether it has one) and its outbox's counters.
func (b *backend) streamResponse(ctx context.Context, s logical.Storage, id string) (*logical.Response, error) {
	var data map[string]interface{}
	err := b.ssfLocked(ctx, s, id, func(st *ssfStreamState) error {
		r := st.rec
		data = map[string]interface{}{
			"stream_id":                r.ID,
			"delivery_method":          r.DeliveryMethod,
			"audience":                 r.Audience,
			"events_requested":         r.EventsRequested,
			"authorization_header_set": r.AuthorizationSet,
			"created_at":               r.CreatedAt.UTC().Format(time.RFC3339),
			"pending":                  len(st.pending),
			"dropped":                  r.Dropped,
		}
		if r.EndpointURL != "" {
			data["endpoint_url"] = r.EndpointURL
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: data}, nil
}

// isNoStream tells refuseNoStream's error.
func isNoStream(err error) bool {
	var r *refusal
	return errors.As(err, &r) && r.data["reason"] == reasonNotFound && r.data["field"] == "stream_id"
}

func (b *backend) pathSSFStreamVerify(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id := d.Get("stream_id").(string)
	state := d.Get("state").(string)
	if err := trust.ValidLine("state", state, maxVerifyState); err != nil {
		return nil, badRequest(err)
	}
	jti, err := uuid.GenerateUUID()
	if err != nil {
		return nil, err
	}
	if err := b.ssfLocked(ctx, req.Storage, id, func(*ssfStreamState) error { return nil }); err != nil {
		return nil, err
	}
	queued, err := b.enqueueSET(ctx, req.Storage, id, ssfVerifyPrefix+jti, &outboxEntry{JTI: jti, Event: ssf.EventVerification, State: state})
	if err != nil {
		return nil, err
	}
	if !queued {
		return nil, refuseNoStream(id) // deleted meanwhile
	}
	return &logical.Response{Data: map[string]interface{}{"jti": jti}}, nil
}

func (b *backend) pathSSFStreamPoll(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id := d.Get("stream_id").(string)
	maxEvents := 100
	if v, ok := d.GetOk("maxEvents"); ok {
		maxEvents = v.(int)
		if maxEvents < 0 || maxEvents > maxPollEvents {
			return nil, badField("maxEvents", "must be between 0 and %d", maxPollEvents)
		}
	}
	acks := d.Get("ack").([]string)
	if len(acks) > maxPollAcks {
		return nil, badField("ack", "must list at most %d jti", maxPollAcks)
	}
	for _, a := range acks {
		if a == "" || len(a) > maxJTILength {
			return nil, badField("ack", "each jti must be 1 to %d bytes", maxJTILength)
		}
	}
	errs := map[string]receiverError{}
	if v, ok := d.GetOk("setErrs"); ok {
		raw := v.(map[string]interface{})
		if len(raw) > maxPollAcks {
			return nil, badField("setErrs", "must hold at most %d jti", maxPollAcks)
		}
		for jti, e := range raw {
			var re receiverError
			encoded, err := json.Marshal(e)
			if err == nil {
				err = json.Unmarshal(encoded, &re)
			}
			if err != nil || jti == "" || len(jti) > maxJTILength {
				return nil, badField("setErrs", `must map each jti to {"err": ..., "description": ...}`)
			}
			errs[jti] = re
		}
	}
	answer, err := b.pollStream(ctx, req.Storage, id, maxEvents, !d.Get("returnImmediately").(bool), acks, errs)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(answer)
	if err != nil {
		return nil, err
	}
	return rawJSON(body), nil
}

// rawJSON is an answer whose body is body itself, not Vault's envelope.
func rawJSON(body []byte) *logical.Response {
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusOK,
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     body,
	}}
}

// ssfConfiguration is the SSF transmitter metadata (SSF 1.0 §7.1).
type ssfConfiguration struct {
	SpecVersion              string   `json:"spec_version"`
	Issuer                   string   `json:"issuer"`
	JWKSURI                  string   `json:"jwks_uri"`
	DeliveryMethodsSupported []string `json:"delivery_methods_supported"`
	ConfigurationEndpoint    string   `json:"configuration_endpoint"`
}

func (b *backend) pathSSFConfiguration(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	issuer := cfg.issuerFor(req.MountPoint)
	base := ssfBaseURL(issuer, req.MountPoint)
	body, err := json.Marshal(&ssfConfiguration{
		SpecVersion:              ssf.SpecVersion,
		Issuer:                   issuer,
		JWKSURI:                  base + "/jwks",
		DeliveryMethodsSupported: []string{ssf.DeliveryPush, ssf.DeliveryPoll},
		ConfigurationEndpoint:    base + "/ssf/streams",
	})
	if err != nil {
		return nil, err
	}
	return rawJSON(body), nil
}

// ssfBaseURL is where the mount's paths are served: <vault address>/v1/<mount>.
// A plugin never learns Vault's address (requests reach it without their
// Host), so it is the issuer when that is the URL of this mount, as
// authorization-server metadata requires too (see issuerURL); otherwise it
// is the path alone, /v1/<mount>, relative to Vault's address.
func ssfBaseURL(issuer, mountPoint string) string {
	if u, _ := issuerURL(issuer, mountPoint); u != nil {
		return strings.TrimSuffix(issuer, "/")
	}
	return "/v1/" + strings.Trim(mountPoint, "/")
}

const pathSSFStreamsHelpSyn = `List the Shared Signals streams, or create one: subscribe a receiver to session closes.`

const pathSSFStreamsHelpDesc = `
The engine is an OpenID Shared Signals transmitter (SSF 1.0). Every session
that stops being active (ended, revoked for any reason, or expired) yields a
CAEP session-revoked Security Event Token (SET), signed with the engine's
signing key (verify it against jwks), for every stream. A LIST answers the
streams' IDs; a write creates a stream and answers it, with its stream_id.

  delivery_method        required; "push" (RFC 8935) or "poll" (RFC 8936)
  endpoint_url           push: the receiver's http(s) URL, where SETs are POSTed
  authorization_header   push, optional: sent as Authorization with each SET;
                         stored seal-wrapped and never shown again
  audience               required; the SETs' "aud"
  events_requested       defaults to CAEP's session-revoked event type

Delivery is at least once and in order per stream, across restarts and
changes of active node: each stream has an outbox in storage, holding at
most 10000 SETs (past it the oldest are dropped and counted in "dropped").
A push stream's SETs are POSTed one at a time, retried with backoff until
the receiver answers 202 (a 4xx other than 408 and 429 drops the SET). A
poll stream's receiver polls ssf/streams/<id>/poll. Receivers drop
duplicates by jti. Metadata: .well-known/ssf-configuration.
`

const pathSSFStreamHelpSyn = `Read, update or delete a Shared Signals stream.`

const pathSSFStreamHelpDesc = `
A read answers the stream's settings, "authorization_header_set" (never the
header itself), "pending" (SETs not yet delivered, or for a poll stream not
yet acknowledged) and "dropped" (SETs dropped past the outbox's bound of
10000). A write changes only the fields given (see ssf/streams); an empty
authorization_header removes it, and a stream made "poll" loses its
endpoint_url and authorization_header. Deleting a stream deletes the SETs it
has not delivered.
`

const pathSSFVerifyHelpSyn = `Queue an SSF verification event on a stream.`

const pathSSFVerifyHelpDesc = `
Queues an SSF verification SET (event type
https://schemas.openid.net/secevent/ssf/event-type/verification, sub_id the
stream) on the stream, echoing "state" when given, and answers its jti. It
is delivered like every other SET of the stream, in order: a receiver that
gets it knows that the stream works end to end.
`

const pathSSFPollHelpSyn = `Poll a poll stream for its SETs (RFC 8936).`

const pathSSFPollHelpDesc = `
The receiver of a poll stream POSTs here, with a Vault token allowed to
update this path, the members of RFC 8936: "ack" (the jti of the SETs it
processed), "setErrs" (those it could not), "maxEvents" (0 to only
acknowledge) and "returnImmediately". The answer is RFC 8936's raw JSON,
not Vault's envelope: {"sets": {"<jti>": "<SET>", ...}, "moreAvailable":
bool}. SETs come oldest first and are served again until acknowledged.
Without returnImmediately, a poll with nothing pending waits up to 30s for
a SET.
`

const pathSSFConfigurationHelpSyn = `The Shared Signals transmitter metadata (no Vault token needed).`

const pathSSFConfigurationHelpDesc = `
Answers SSF 1.0's transmitter configuration metadata as raw JSON (not
Vault's envelope): "spec_version", "issuer" (the engine's issuer, the "iss"
of every SET), "jwks_uri" (the keys that verify SETs), "delivery_methods_supported"
(urn:ietf:rfc:8935 and urn:ietf:rfc:8936) and "configuration_endpoint" (the
streams, managed with Vault's own API by an administrator). A plugin does
not know Vault's address: set config's "issuer" to a URL such as
https://vault.example.com:8200/v1/agent for absolute URLs; with the default
issuer they are paths relative to Vault's address (/v1/agent/jwks).
`
