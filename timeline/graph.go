package timeline

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// maxUsesShown is how many reported uses a node's label lists; the rest
// are counted.
const maxUsesShown = 5

// Node is one step credential in the access path, or a step the engine
// refused as a violation (Violation set, Credential empty).
type Node struct {
	Credential  string
	Parent      string
	Scopes      []string
	Audience    string
	Depth       int
	Description string
	Actor       string
	Issued      time.Time
	Expires     time.Time
	// State is "active", "expired", or the session's final state
	// ("ended", "revoked") when the session closed before the credential
	// expired.
	State string
	// Reports counts resource-server reports of this credential's use;
	// Misuses counts those that were violations.
	Reports int
	Misuses int
	// Uses lists what resource servers reported the credential did, in
	// order, as "action resource (outcome)", e.g. "call tools/search
	// (allowed)".
	Uses []string
	// Violation is the kind of a refused step (scope_outside_intent, ...)
	// and Detail what the engine said; Parent is the credential it named,
	// if any.
	Violation string
	Detail    string
	// Approval is the approval of a step that waited for a person (Violation
	// and Credential empty); Decision is what became of it: "waiting",
	// "approved by <who>", "denied by <who>" or "expired".
	Approval string
	// Unaccounted is the number of steps of a steps_unaccounted event,
	// drawn as a node under the session (everything else empty).
	Unaccounted int
	Decision    string
}

// Graph is the access path of a session: its credentials as a forest.
type Graph struct {
	Session string
	Nodes   []Node // in issue order
	// Partial is true when the oldest events were dropped, so some
	// credentials may be missing (a missing parent shows as a root).
	Partial bool
}

// Build derives the access path from a session's events. sessionState is
// the session's state at now ("active", "ended", "revoked", "expired").
func Build(session string, events []Event, sessionState string, now time.Time, partial bool) Graph {
	g := Graph{Session: session, Partial: partial}
	index := map[string]int{}
	for _, e := range events {
		switch e.Kind {
		case CredentialIssued:
			n := Node{
				Credential: e.Credential, Parent: e.Parent, Scopes: e.Scopes, Audience: e.Audience,
				Depth: e.Depth, Description: e.Description, Actor: e.Actor, Issued: e.Time, Expires: time.Unix(e.Expires, 0),
			}
			index[n.Credential] = len(g.Nodes)
			g.Nodes = append(g.Nodes, n)
		case ApprovalRequested:
			index["approval:"+e.Approval] = len(g.Nodes)
			g.Nodes = append(g.Nodes, Node{
				Approval: e.Approval, Scopes: e.Scopes, Audience: e.Audience, Description: e.Description,
				Issued: e.Time, Decision: "waiting", State: "waiting",
			})
		case ApprovalApproved, ApprovalDenied, ApprovalExpired:
			if i, ok := index["approval:"+e.Approval]; ok {
				n := &g.Nodes[i]
				switch e.Kind {
				case ApprovalApproved:
					n.Decision, n.State = "approved by "+e.Actor, "active"
				case ApprovalDenied:
					n.Decision, n.State = "denied by "+e.Actor, "refused"
				default:
					n.Decision, n.State = "expired", "expired"
				}
				if e.Detail != "" {
					n.Decision += ": " + clip(e.Detail)
				}
			}
		case StepsUnaccounted:
			g.Nodes = append(g.Nodes, Node{Unaccounted: e.Steps, Detail: e.Detail, Issued: e.Time})
		case Report:
			if i, ok := index[e.Credential]; ok {
				g.Nodes[i].Reports++
				if e.Action != "" {
					g.Nodes[i].Uses = append(g.Nodes[i].Uses, use(e.Action, e.Resource, e.Outcome))
				}
			}
		case Violation:
			if e.Violation == string(trust.ReportedMisuse) {
				if i, ok := index[e.Credential]; ok {
					g.Nodes[i].Reports++
					g.Nodes[i].Misuses++
					g.Nodes[i].Uses = append(g.Nodes[i].Uses, misuse(e.Detail))
				}
				continue
			}
			if e.Violation == "" {
				continue
			}
			// A refused step: drawn where it was asked, under the
			// parent it named or under the session.
			g.Nodes = append(g.Nodes, Node{
				Parent: e.Credential, Violation: e.Violation, Detail: e.Detail,
				Issued: e.Time, State: "refused",
			})
		}
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		switch {
		case n.Approval != "":
			// Its state follows its decision, set above.
		case n.Unaccounted > 0:
			n.State = "unaccounted"
		case n.Violation != "":
			n.State = "refused"
		case !now.Before(n.Expires):
			n.State = "expired"
		case sessionState != "active":
			n.State = sessionState
		default:
			n.State = "active"
		}
	}
	return g
}

// children lists the credentials derived from each credential, and the
// roots (taken straight from the session, or whose parent is unknown).
func (g Graph) children() (roots []int, kids map[string][]int) {
	known := map[string]bool{}
	for _, n := range g.Nodes {
		known[n.Credential] = true
	}
	kids = map[string][]int{}
	for i, n := range g.Nodes {
		if n.Parent != "" && known[n.Parent] {
			kids[n.Parent] = append(kids[n.Parent], i)
		} else {
			roots = append(roots, i)
		}
	}
	return roots, kids
}

// use describes a reported use.
func use(action, resource, outcome string) string {
	s := action + " " + resource
	if outcome != "" {
		s += " (" + outcome + ")"
	}
	return s
}

// maxDetailShown bounds the violation detail in a label.
const maxDetailShown = 64

// clip shortens a detail to maxDetailShown bytes.
func clip(d string) string {
	if len(d) > maxDetailShown {
		return strings.ToValidUTF8(d[:maxDetailShown], "") + "…"
	}
	return d
}

// misuse describes a reported misuse.
func misuse(detail string) string {
	if detail == "" {
		return "misuse"
	}
	return "misuse: " + clip(detail)
}

func (n Node) label() string {
	if n.Unaccounted > 0 {
		return fmt.Sprintf("%d reserved steps without an event\n(restart or change of active node:\nsee Vault's audit log)", n.Unaccounted)
	}
	if n.Violation != "" {
		return "refused: " + n.Violation + "\n" + clip(n.Detail)
	}
	if n.Approval != "" {
		s := "approval: " + strings.Join(n.Scopes, " ") + "\naud: " + n.Audience
		if n.Description != "" {
			s += "\ndescription: " + n.Description
		}
		return s + "\n" + n.Decision + "\n" + shortID(n.Approval)
	}
	var b strings.Builder
	b.WriteString(strings.Join(n.Scopes, " "))
	b.WriteString("\naud: " + n.Audience)
	if n.Description != "" {
		b.WriteString("\ndescription: " + n.Description)
	}
	if n.Actor != "" {
		b.WriteString("\nactor: " + n.Actor)
	}
	fmt.Fprintf(&b, "\ndepth %d · %s", n.Depth, n.State)
	if n.Reports > 0 {
		fmt.Fprintf(&b, "\nreports: %d", n.Reports)
		if n.Misuses > 0 {
			fmt.Fprintf(&b, " (%d misuse)", n.Misuses)
		}
		for i, u := range n.Uses {
			if i == maxUsesShown {
				fmt.Fprintf(&b, "\n… %d more", len(n.Uses)-maxUsesShown)
				break
			}
			b.WriteString("\nused: " + u)
		}
	}
	b.WriteString("\n" + shortID(n.Credential))
	return b.String()
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

var dotColours = map[string]string{
	"active":      "palegreen",
	"expired":     "lightgrey",
	"ended":       "lightblue",
	"revoked":     "salmon",
	"refused":     "orangered",
	"unaccounted": "khaki",
}

// DOT renders the graph as a Graphviz digraph: `dot -Tsvg` draws it.
func (g Graph) DOT() string {
	var b strings.Builder
	b.WriteString("digraph access_path {\n")
	b.WriteString("  rankdir=LR;\n")
	b.WriteString("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n")
	title := "session " + g.Session
	if g.Partial {
		title += " (oldest events dropped)"
	}
	fmt.Fprintf(&b, "  session [label=%s, shape=ellipse, fillcolor=white];\n", dotQuote(title))
	roots, kids := g.children()
	for i, n := range g.Nodes {
		colour := dotColours[n.State]
		if colour == "" {
			colour = "white"
		}
		fmt.Fprintf(&b, "  c%d [label=%s, fillcolor=%s];\n", i, dotQuote(n.label()), colour)
	}
	for _, i := range roots {
		fmt.Fprintf(&b, "  session -> c%d;\n", i)
	}
	parents := make([]string, 0, len(kids))
	for p := range kids {
		parents = append(parents, p)
	}
	sort.Strings(parents)
	pos := map[string]int{}
	for i, n := range g.Nodes {
		pos[n.Credential] = i
	}
	for _, p := range parents {
		for _, c := range kids[p] {
			fmt.Fprintf(&b, "  c%d -> c%d;\n", pos[p], c)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote makes s a DOT double-quoted string, with newlines as line
// breaks.
func dotQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Mermaid renders the graph as a Mermaid flowchart.
func (g Graph) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	title := "session " + g.Session
	if g.Partial {
		title += " (oldest events dropped)"
	}
	fmt.Fprintf(&b, "  session([%s])\n", mermaidQuote(title))
	roots, kids := g.children()
	for i, n := range g.Nodes {
		// Only a state with a classDef below is a class: any other
		// text after ::: would break the line.
		class := ""
		if _, known := dotColours[n.State]; known {
			class = ":::" + n.State
		}
		fmt.Fprintf(&b, "  c%d[%s]%s\n", i, mermaidQuote(n.label()), class)
	}
	for _, i := range roots {
		fmt.Fprintf(&b, "  session --> c%d\n", i)
	}
	pos := map[string]int{}
	for i, n := range g.Nodes {
		pos[n.Credential] = i
	}
	for i, n := range g.Nodes {
		if pos[n.Credential] != i {
			// A repeated credential id: its children are drawn once,
			// from its last issue, as in DOT.
			continue
		}
		for _, c := range kids[n.Credential] {
			fmt.Fprintf(&b, "  c%d --> c%d\n", i, c)
		}
	}
	b.WriteString("  classDef active fill:#98fb98\n")
	b.WriteString("  classDef expired fill:#d3d3d3\n")
	b.WriteString("  classDef ended fill:#add8e6\n")
	b.WriteString("  classDef revoked fill:#fa8072\n")
	b.WriteString("  classDef refused fill:#ff4500\n")
	b.WriteString("  classDef unaccounted fill:#f0e68c\n")
	return b.String()
}

// mermaidQuote makes s a Mermaid quoted label: quotes become #quot;,
// newlines <br/>. % and ` are escaped too: Mermaid reads %%{...}%%
// anywhere in the text as a directive that changes its configuration, and
// a label between backticks as Markdown.
func mermaidQuote(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "\n", "<br/>", "<", "#lt;", ">", "#gt;", "%", "#37;", "`", "#96;")
	var b strings.Builder
	for _, c := range s {
		if c < 0x20 && c != '\n' {
			c = ' '
		}
		b.WriteRune(c)
	}
	return `"` + r.Replace(b.String()) + `"`
}
