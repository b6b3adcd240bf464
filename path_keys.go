package agent

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathKeysRotate(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "keys/rotate$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix, OperationVerb: "rotate", OperationSuffix: "signing-key",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathKeysRotate,
				// Writes replicated storage: run on the active node of the primary.
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Summary:                     "Create a new signing key; older keys stay in jwks until their credentials expire.",
				Responses:                   keysRotateResponses(),
			},
		},
		HelpSynopsis:    pathKeysRotateHelpSyn,
		HelpDescription: pathKeysRotateHelpDesc,
	}
}

func (b *backend) pathKeysRotate(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	r, err := b.rotateKey(ctx, req.Storage, cfg)
	if err != nil {
		return nil, err
	}
	kids := make([]string, 0, len(r.keys))
	for _, k := range r.keys {
		kids = append(kids, k.key.ID)
	}
	return &logical.Response{Data: map[string]interface{}{
		"kid":               r.current.ID,
		"signing_algorithm": r.current.Algorithm,
		"jwks_kids":         kids,
	}}, nil
}

const pathKeysRotateHelpSyn = `Rotate the signing key of step credentials.`

const pathKeysRotateHelpDesc = `
Creates a new signing key with the configured signing_algorithm; every step
credential issued from now on is signed with it. The previous key stays in
jwks (and keeps verifying in introspect) until every credential it could
have signed has expired, that is for step_max_ttl after the rotation, so
resource servers never see a valid credential they cannot verify.

Private keys never leave Vault's storage, where they are seal-wrapped when
the seal supports it.
`
