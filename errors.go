package agent

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// answerCodedErrors wraps every operation of paths so that a handler may
// refuse a request by returning logical.CodedError(4xx, message): the
// client then gets that status with {"errors": [message]}, as from
// Vault itself, rather than the message wrapped in Vault's "1 error
// occurred" list.
func answerCodedErrors(paths []*framework.Path) {
	for _, p := range paths {
		for op, h := range p.Operations {
			po, ok := h.(*framework.PathOperation)
			if !ok || po.Callback == nil {
				continue
			}
			next := po.Callback
			po.Callback = func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				resp, err := next(ctx, req, d)
				var coded logical.HTTPCodedError
				if errors.As(err, &coded) && coded.Code() >= 400 && coded.Code() < 500 {
					return errorWithStatus(coded.Code(), coded.Error()), nil
				}
				return resp, err
			}
			p.Operations[op] = po
		}
	}
}

// errorWithStatus is an error response with a given HTTP status.
func errorWithStatus(code int, msg string) *logical.Response {
	body, _ := json.Marshal(map[string][]string{"errors": {msg}})
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  code,
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     body,
	}}
}
