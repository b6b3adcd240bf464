package timeline

import (
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// goldenDOT is DOT() of sampleGraph. A change here changes what reviewers
// see and what scripts parse: make it deliberately.
const goldenDOT = `digraph access_path {
  rankdir=LR;
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];
  session [label="session sess-1", shape=ellipse, fillcolor=white];
  c0 [label="list,read:secrets/web/* read:db/creds/ro\naud: secrets-api\ndescription: fetch cert\nactor: agent-a\ndepth 0 · active\naaaaaaaa", fillcolor=palegreen];
  c1 [label="read:secrets/web/tls\naud: secrets-api\ndescription: read tls\ndepth 1 · active\nbbbbbbbb", fillcolor=palegreen];
  c2 [label="list:secrets/web\naud: secrets-api\nactor: sub-agent\ndepth 1 · expired\ncccccccc", fillcolor=lightgrey];
  c3 [label="read:db/creds/ro\naud: db\ndepth 0 · active\nreports: 3 (1 misuse)\nused: read db/creds/ro\nused: misuse\nused: read db/creds/ro\ndddddddd", fillcolor=palegreen];
  session -> c0;
  session -> c3;
  c0 -> c1;
  c0 -> c2;
}
`

// goldenMermaid is Mermaid() of sampleGraph.
const goldenMermaid = `flowchart LR
  session(["session sess-1"])
  c0["list,read:secrets/web/* read:db/creds/ro<br/>aud: secrets-api<br/>description: fetch cert<br/>actor: agent-a<br/>depth 0 · active<br/>aaaaaaaa"]:::active
  c1["read:secrets/web/tls<br/>aud: secrets-api<br/>description: read tls<br/>depth 1 · active<br/>bbbbbbbb"]:::active
  c2["list:secrets/web<br/>aud: secrets-api<br/>actor: sub-agent<br/>depth 1 · expired<br/>cccccccc"]:::expired
  c3["read:db/creds/ro<br/>aud: db<br/>depth 0 · active<br/>reports: 3 (1 misuse)<br/>used: read db/creds/ro<br/>used: misuse<br/>used: read db/creds/ro<br/>dddddddd"]:::active
  session --> c0
  session --> c3
  c0 --> c1
  c0 --> c2
  classDef active fill:#98fb98
  classDef expired fill:#d3d3d3
  classDef ended fill:#add8e6
  classDef revoked fill:#fa8072
  classDef refused fill:#ff4500
  classDef unaccounted fill:#f0e68c
`

func TestDOTGolden(t *testing.T) {
	got := sampleGraph().DOT()
	if got != goldenDOT {
		t.Errorf("DOT() changed:\n--- got\n%s--- want\n%s", got, goldenDOT)
	}
	checkLines(t, "DOT", got, dotLines)
}

func TestMermaidGolden(t *testing.T) {
	got := sampleGraph().Mermaid()
	if got != goldenMermaid {
		t.Errorf("Mermaid() changed:\n--- got\n%s--- want\n%s", got, goldenMermaid)
	}
	checkLines(t, "Mermaid", got, mermaidLines)
}

func TestDOTColoursAndMermaidClassesFollowState(t *testing.T) {
	for _, c := range []struct{ state, colour string }{
		{"active", "palegreen"}, {"expired", "lightgrey"}, {"ended", "lightblue"}, {"revoked", "salmon"},
	} {
		g := Graph{Session: "s", Nodes: []Node{{Credential: "c", Scopes: []string{"read:a"}, State: c.state}}}
		if want := "fillcolor=" + c.colour + "];"; !strings.Contains(g.DOT(), want) {
			t.Errorf("state %s: DOT lacks %q:\n%s", c.state, want, g.DOT())
		}
		m := g.Mermaid()
		if want := "]:::" + c.state + "\n"; !strings.Contains(m, want) {
			t.Errorf("state %s: Mermaid lacks %q:\n%s", c.state, want, m)
		}
		if want := "  classDef " + c.state + " fill:"; !strings.Contains(m, want) {
			t.Errorf("state %s has no classDef:\n%s", c.state, m)
		}
	}
	// Each state Build can give has a colour and a class.
	exp := t0.Add(time.Hour)
	for _, st := range []string{"active", "ended", "revoked", "expired"} {
		g := Build("s", []Event{issued(1, "c", "", 0, exp, "read:a")}, st, t0, false)
		if _, ok := dotColours[g.Nodes[0].State]; !ok {
			t.Errorf("state %q has no DOT colour", g.Nodes[0].State)
		}
		if !strings.Contains(g.Mermaid(), "classDef "+g.Nodes[0].State+" ") {
			t.Errorf("state %q has no Mermaid class", g.Nodes[0].State)
		}
	}
}

// A state the renderers do not know (Build passes the session's state
// through) must not break either output.
func TestUnknownState(t *testing.T) {
	for _, st := range []string{"", "suspended", "a b", "x\n  evil --> c0", `"]`} {
		g := Build("s", []Event{issued(1, "c", "", 0, t0.Add(time.Hour), "read:a")}, st, t0, false)
		d := g.DOT()
		lines := checkLines(t, "DOT", d, dotLines)
		if countLines(lines, "fillcolor=white];") != 2 {
			t.Errorf("state %q: the node should be white:\n%s", st, d)
		}
		m := g.Mermaid()
		lines = checkLines(t, "Mermaid", m, mermaidLines)
		if countEdges(lines, " --> ") != 1 {
			t.Errorf("state %q: edges injected:\n%s", st, m)
		}
		renderDOT(t, d)
	}
}

func TestPartialTitle(t *testing.T) {
	events := []Event{issued(9, "orphan", "gone", 1, t0.Add(time.Hour), "read:a")}
	g := Build("s1", events, "active", t0, true)
	d, m := g.DOT(), g.Mermaid()
	if !strings.Contains(d, `session [label="session s1 (oldest events dropped)",`) {
		t.Errorf("DOT title does not say events were dropped:\n%s", d)
	}
	if !strings.Contains(m, `session(["session s1 (oldest events dropped)"])`) {
		t.Errorf("Mermaid title does not say events were dropped:\n%s", m)
	}
	if !strings.Contains(d, "  session -> c0;\n") || !strings.Contains(m, "  session --> c0\n") {
		t.Errorf("the orphan does not hang off the session:\n%s\n%s", d, m)
	}
	g.Partial = false
	if strings.Contains(g.DOT(), "dropped") || strings.Contains(g.Mermaid(), "dropped") {
		t.Errorf("a complete graph says events were dropped")
	}
}

func TestLabel(t *testing.T) {
	n := Node{
		Credential: "0123456789abcdef", Scopes: []string{"read:a", "write:b"}, Audience: "api",
		Depth: 2, Description: "st", Actor: "ac", State: "revoked", Reports: 4, Misuses: 2,
	}
	want := "read:a write:b\naud: api\ndescription: st\nactor: ac\ndepth 2 · revoked\nreports: 4 (2 misuse)\n01234567"
	if got := n.label(); got != want {
		t.Errorf("label =\n%q\nwant\n%q", got, want)
	}
	n = Node{Credential: "abc", State: "active", Reports: 1}
	want = "\naud: \ndepth 0 · active\nreports: 1\nabc"
	if got := n.label(); got != want {
		t.Errorf("label =\n%q\nwant\n%q", got, want)
	}
}

func TestShortID(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "abc": "abc", "12345678": "12345678", "123456789": "12345678",
		credA: "aaaaaaaa",
	} {
		if got := shortID(in); got != want {
			t.Errorf("shortID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDOTQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`say "hi"`, `"say \"hi\""`},
		{`a\b`, `"a\\b"`},
		{`trailing\`, `"trailing\\"`},
		{`\"`, `"\\\""`},
		{"two\nlines", `"two\nlines"`},
		{"tab\there", `"tab here"`},
		{"cr\rlf", `"cr lf"`},
		{"nul\x00bell\x07del\x7f", `"nul bell del "`},
		{"} ] ; -> { //", `"} ] ; -> { //"`},
		{`\N \G \l`, `"\\N \\G \\l"`},
		{"naïve · 日本", `"naïve · 日本"`},
		{"bad\xffutf8", "\"bad\uFFFDutf8\""},
	} {
		if got := dotQuote(c.in); got != c.want {
			t.Errorf("dotQuote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestMermaidQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`say "hi"`, `"say #quot;hi#quot;"`},
		{"<b>x</b>", `"#lt;b#gt;x#lt;/b#gt;"`},
		{"two\nlines", `"two<br/>lines"`},
		{"tab\there\rx\x00", `"tab here x "`},
		{`"] --> evil`, `"#quot;] --#gt; evil"`},
		{"%%{init: {'theme':'forest'}}%%", `"#37;#37;{init: {'theme':'forest'}}#37;#37;"`},
		{"`md`", `"#96;md#96;"`},
		{"a#b", `"a#b"`},
		{"naïve · 日本", `"naïve · 日本"`},
	} {
		if got := mermaidQuote(c.in); got != c.want {
			t.Errorf("mermaidQuote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// hostile is text an agent controls (description, actor) trying to break out of a
// label, in DOT and in Mermaid.
var hostile = []string{
	"say \"hi\" \\ back\nslash\ttab }",
	`"]; evil [label="pwned"]; c0 -> evil; //`,
	"\"];\n}\ndigraph x {\n  evil;",
	`trailing backslash \`,
	`\"`,
	"\"]\n  evil[\"pwned\"]\n  c0 --> evil\n  click c0 \"javascript:alert(1)\"",
	"x\"]:::revoked\n  session --> c0",
	"%%{init: {'theme':'dark', 'securityLevel':'loose'}}%%",
	"<img src=x onerror=alert(1)> <br/> &lt; #quot;",
	"`**bold**`",
	"\r\n\x00\x1b[31m\x7f",
	"\xff\xfe invalid utf-8",
	"\u2028line\u2029separators\u0085",
}

func hostileGraph(text string) Graph {
	exp := t0.Add(time.Hour)
	a := issued(1, "root-"+text, "", 0, exp, "read:"+text, text)
	a.Description, a.Actor, a.Audience = text, text, text
	b := issued(2, "kid", a.Credential, 1, exp, text)
	b.Description = text
	return Build(text, []Event{a, b}, "active", t0, true)
}

func TestDOTEscapesHostileText(t *testing.T) {
	for i, text := range hostile {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			d := hostileGraph(text).DOT()
			if !utf8.ValidString(d) {
				t.Errorf("DOT is not valid UTF-8:\n%q", d)
			}
			lines := checkLines(t, "DOT", d, dotLines)
			if len(lines) != 9 {
				t.Errorf("DOT has %d lines, want 9:\n%s", len(lines), d)
			}
			if n := countEdges(lines, " -> "); n != 2 {
				t.Errorf("DOT has %d edges, want 2:\n%s", n, d)
			}
			svg := renderDOT(t, d)
			if n := strings.Count(svg, `class="node"`); n != 3 {
				t.Errorf("the SVG has %d nodes, want 3 (session and two credentials):\n%s", n, svg)
			}
			if n := strings.Count(svg, `class="edge"`); n != 2 {
				t.Errorf("the SVG has %d edges, want 2:\n%s", n, svg)
			}
		})
	}
}

func TestMermaidEscapesHostileText(t *testing.T) {
	for i, text := range hostile {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			m := hostileGraph(text).Mermaid()
			if !utf8.ValidString(m) {
				t.Errorf("Mermaid is not valid UTF-8:\n%q", m)
			}
			lines := checkLines(t, "Mermaid", m, mermaidLines)
			if len(lines) != 12 {
				t.Errorf("Mermaid has %d lines, want 12:\n%s", len(lines), m)
			}
			if n := countEdges(lines, " --> "); n != 2 {
				t.Errorf("Mermaid has %d edge lines, want 2:\n%s", n, m)
			}
			for _, l := range lines[1:4] {
				label := l[strings.Index(l, `"`)+1 : strings.LastIndex(l, `"`)]
				// No raw character that Mermaid reads as markup: "
				// closes the label, < and > are HTML, %% starts a
				// directive, a leading backtick a Markdown string.
				if strings.ContainsAny(label, "\"<>%`\n\r") && !onlyBreaks(label) {
					t.Errorf("label keeps a raw special character: %q", label)
				}
			}
		})
	}
}

// onlyBreaks reports whether the only < and > in label belong to the
// <br/> line breaks mermaidQuote puts in, and no other special character
// is left.
func onlyBreaks(label string) bool {
	return !strings.ContainsAny(strings.ReplaceAll(label, "<br/>", ""), "\"<>%`\n\r")
}

func TestDOTRendersWithGraphviz(t *testing.T) {
	g := sampleGraph()
	svg := html.UnescapeString(renderDOT(t, g.DOT()))
	for _, n := range g.Nodes {
		if !strings.Contains(svg, n.Scopes[0]) {
			t.Errorf("the SVG does not show %s's first scope %q", n.Credential, n.Scopes[0])
		}
		if !strings.Contains(svg, shortID(n.Credential)) {
			t.Errorf("the SVG does not show %s's short id", n.Credential)
		}
	}
	if n := strings.Count(svg, `class="node"`); n != len(g.Nodes)+1 {
		t.Errorf("the SVG has %d nodes, want %d", n, len(g.Nodes)+1)
	}
	if n := strings.Count(svg, `class="edge"`); n != len(g.Nodes) {
		t.Errorf("the SVG has %d edges, want %d", n, len(g.Nodes))
	}
	if !strings.Contains(svg, "session sess-1") {
		t.Errorf("the SVG does not show the session")
	}
}

func TestEmptySession(t *testing.T) {
	for _, partial := range []bool{false, true} {
		g := Build("empty", nil, "active", t0, partial)
		d := g.DOT()
		lines := checkLines(t, "DOT", d, dotLines)
		if len(lines) != 5 {
			t.Errorf("empty DOT has %d lines, want 5:\n%s", len(lines), d)
		}
		svg := renderDOT(t, d)
		if n := strings.Count(svg, `class="node"`); n != 1 {
			t.Errorf("the empty SVG has %d nodes, want 1 (the session)", n)
		}
		if strings.Contains(svg, `class="edge"`) {
			t.Errorf("the empty SVG has edges")
		}
		m := g.Mermaid()
		lines = checkLines(t, "Mermaid", m, mermaidLines)
		if len(lines) != 8 || lines[0] != "flowchart LR" || !strings.HasPrefix(lines[1], `  session(["session empty`) {
			t.Errorf("empty Mermaid:\n%s", m)
		}
		if strings.Contains(m, "-->") {
			t.Errorf("empty Mermaid has edges:\n%s", m)
		}
	}
	const wantDOT = `digraph access_path {
  rankdir=LR;
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];
  session [label="session empty", shape=ellipse, fillcolor=white];
}
`
	if got := (Graph{Session: "empty"}).DOT(); got != wantDOT {
		t.Errorf("empty DOT =\n%s\nwant\n%s", got, wantDOT)
	}
}

// Edges come out in the same order every time, whatever the map order.
func TestOutputIsDeterministic(t *testing.T) {
	exp := t0.Add(time.Hour)
	var events []Event
	for i := 0; i < 30; i++ {
		parent := ""
		if i > 0 {
			parent = fmt.Sprintf("cred-%02d", (i*7)%i)
		}
		events = append(events, issued(uint64(i), fmt.Sprintf("cred-%02d", i), parent, 1, exp, "read:a"))
	}
	g := Build("s", events, "active", t0, false)
	d, m := g.DOT(), g.Mermaid()
	checkLines(t, "DOT", d, dotLines)
	checkLines(t, "Mermaid", m, mermaidLines)
	for i := 0; i < 20; i++ {
		if g.DOT() != d || g.Mermaid() != m {
			t.Fatal("output differs between calls")
		}
	}
	// Each credential has exactly one edge into it.
	for i := range g.Nodes {
		in := regexp.MustCompile(fmt.Sprintf(`(?m)^  (?:session|c[0-9]+) -> c%d;$`, i))
		if n := len(in.FindAllString(d, -1)); n != 1 {
			t.Errorf("c%d has %d edges into it, want 1", i, n)
		}
	}
	renderDOT(t, d)
}

// The engine never issues one credential id twice, but a repeated id must
// not draw an edge twice in one rendering and once in the other: both
// hang the children off its last issue.
func TestRepeatedCredentialID(t *testing.T) {
	exp := t0.Add(time.Hour)
	events := []Event{
		issued(1, "dup", "", 0, exp, "read:a"),
		issued(2, "kid", "dup", 1, exp, "read:a"),
		issued(3, "dup", "", 0, exp, "read:b"),
		{Kind: Report, Credential: "dup"},
	}
	g := Build("s", events, "active", t0, false)
	if g.Nodes[0].Reports != 0 || g.Nodes[2].Reports != 1 {
		t.Errorf("reports = %d, %d; want them against the last issue", g.Nodes[0].Reports, g.Nodes[2].Reports)
	}
	d, m := g.DOT(), g.Mermaid()
	dl := checkLines(t, "DOT", d, dotLines)
	ml := checkLines(t, "Mermaid", m, mermaidLines)
	if countEdges(dl, " -> ") != 3 || !strings.Contains(d, "  c2 -> c1;\n") {
		t.Errorf("DOT edges:\n%s", d)
	}
	if countEdges(ml, " --> ") != 3 || !strings.Contains(m, "  c2 --> c1\n") {
		t.Errorf("Mermaid edges:\n%s", m)
	}
	renderDOT(t, d)
}

// A refused step is drawn, as what the agent tried, under the credential
// it named (or the session), with the reported uses of credentials.
func TestRefusedStepsAndUsesAreDrawn(t *testing.T) {
	exp := t0.Add(time.Hour)
	events := []Event{
		issued(1, "a", "", 1, exp, "call:tools/search"),
		{Kind: Report, Credential: "a", Action: "call", Resource: "tools/search", Outcome: "allowed"},
		{Kind: Violation, Violation: "scope_outside_intent", Detail: `scope "call:tools/delete_doc" is not inside the intent`},
		{Kind: Violation, Violation: "bad_parent", Credential: "a", Detail: "parent_token expired"},
	}
	g := Build("s", events, "revoked", t0, false)
	d, m := g.DOT(), g.Mermaid()
	checkLines(t, "DOT", d, dotLines)
	checkLines(t, "Mermaid", m, mermaidLines)
	for _, want := range []string{
		`used: call tools/search (allowed)`,
		`refused: scope_outside_intent\nscope \"call:tools/delete_doc\" is not inside the intent", fillcolor=orangered];`,
		"session -> c1;", "c0 -> c2;",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("DOT lacks %q:\n%s", want, d)
		}
	}
	for _, want := range []string{"]:::refused\n", "session --> c1\n", "c0 --> c2\n", "used: call tools/search (allowed)"} {
		if !strings.Contains(m, want) {
			t.Errorf("Mermaid lacks %q:\n%s", want, m)
		}
	}
	svg := renderDOT(t, d)
	if n := strings.Count(svg, `class="node"`); n != 4 {
		t.Errorf("the SVG has %d nodes, want 4", n)
	}
}

// A step that waited for a person is drawn with its decision.
func TestApprovalsAreDrawn(t *testing.T) {
	events := []Event{
		{Kind: ApprovalRequested, Approval: "appr-123456789", Scopes: []string{"read:secrets/db/creds"}, Audience: "secrets-api", Description: "read the db creds"},
		{Kind: ApprovalApproved, Approval: "appr-123456789", Actor: "entity-admin", Detail: "for the migration"},
		{Kind: ApprovalRequested, Approval: "appr-2", Scopes: []string{"read:secrets/db/other"}, Audience: "secrets-api"},
		{Kind: ApprovalRequested, Approval: "appr-3", Scopes: []string{"read:secrets/x"}, Audience: "secrets-api"},
		{Kind: ApprovalDenied, Approval: "appr-3", Actor: "entity-admin", Detail: "no"},
	}
	g := Build("s", events, "active", t0, false)
	require := func(cond bool, msg string) {
		if !cond {
			t.Fatal(msg)
		}
	}
	require(len(g.Nodes) == 3, "three approvals")
	d, m := g.DOT(), g.Mermaid()
	checkLines(t, "DOT", d, dotLines)
	checkLines(t, "Mermaid", m, mermaidLines)
	for _, want := range []string{"approved by entity-admin: for the migration", "denied by entity-admin: no", "waiting", "approval: read:secrets/db/creds"} {
		if !strings.Contains(d, want) || !strings.Contains(m, want) {
			t.Errorf("the graph lacks %q:\n%s\n%s", want, d, m)
		}
	}
	if n := strings.Count(renderDOT(t, d), `class="node"`); n != 4 {
		t.Errorf("the SVG has %d nodes, want 4", n)
	}
}

// TestGraphShowsUnaccountedSteps: a steps_unaccounted event is drawn
// under the session, saying how many steps have no event.
func TestGraphShowsUnaccountedSteps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := Build("s", []Event{
		{Seq: 1, Time: t0, Kind: SessionStart},
		{Seq: 70, Time: t0.Add(time.Minute), Kind: StepsUnaccounted, Steps: 12},
	}, "active", t0.Add(time.Minute), false)
	if len(g.Nodes) != 1 || g.Nodes[0].Unaccounted != 12 || g.Nodes[0].State != "unaccounted" {
		t.Fatalf("nodes: %+v", g.Nodes)
	}
	if dot := g.DOT(); !strings.Contains(dot, "12 reserved steps without an event") || !strings.Contains(dot, "session -> c0") {
		t.Errorf("DOT:\n%s", dot)
	}
	if m := g.Mermaid(); !strings.Contains(m, ":::unaccounted") {
		t.Errorf("Mermaid:\n%s", m)
	}
}
