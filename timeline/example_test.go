package timeline_test

import (
	"fmt"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
)

// A session with a root credential and one derived from it, drawn as a
// Mermaid flowchart: paste the text into any Markdown that renders
// Mermaid.
func ExampleGraph_Mermaid() {
	start := time.Date(2025, 1, 2, 10, 0, 0, 0, time.UTC)
	events := []timeline.Event{
		{Seq: 1, Time: start, Kind: timeline.SessionStart},
		{
			Seq: 2, Time: start, Kind: timeline.CredentialIssued,
			Credential: "5f0c2a9e-root", Scopes: []string{"read:secrets/web/*"}, Audience: "secrets-api",
			Description: `fetch "web" certs`, Expires: start.Add(15 * time.Minute).Unix(),
		},
		{
			Seq: 3, Time: start.Add(time.Minute), Kind: timeline.CredentialIssued,
			Credential: "9b7d1c3f-child", Parent: "5f0c2a9e-root", Scopes: []string{"read:secrets/web/tls"},
			Audience: "secrets-api", Depth: 1, Actor: "tls-helper", Expires: start.Add(5 * time.Minute).Unix(),
		},
		{Seq: 4, Time: start.Add(2 * time.Minute), Kind: timeline.Report, Credential: "9b7d1c3f-child"},
	}
	g := timeline.Build("sess-42", events, "active", start.Add(3*time.Minute), false)
	fmt.Print(g.Mermaid())
	// Output:
	// flowchart LR
	//   session(["session sess-42"])
	//   c0["read:secrets/web/*<br/>aud: secrets-api<br/>description: fetch #quot;web#quot; certs<br/>depth 0 · active<br/>5f0c2a9e"]:::active
	//   c1["read:secrets/web/tls<br/>aud: secrets-api<br/>actor: tls-helper<br/>depth 1 · active<br/>reports: 1<br/>9b7d1c3f"]:::active
	//   session --> c0
	//   c0 --> c1
	//   classDef active fill:#98fb98
	//   classDef expired fill:#d3d3d3
	//   classDef ended fill:#add8e6
	//   classDef revoked fill:#fa8072
	//   classDef refused fill:#ff4500
	//   classDef unaccounted fill:#f0e68c
}
