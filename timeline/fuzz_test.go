package timeline

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzGraph feeds arbitrary text into every string a graph shows and checks
// that neither rendering can be broken out of: each DOT line is one
// statement whose quoted strings are closed on that line, and each Mermaid
// label is one quoted string with no raw quote, newline, % or backtick.
//
//	go test -run '^$' -fuzz FuzzGraph -fuzztime 30s ./timeline/
func FuzzGraph(f *testing.F) {
	f.Add("sess-1", "fetch cert", "agent-a", "read:secrets/web/tls", "secrets-api", credA, "active")
	f.Add("", "", "", "", "", "", "")
	f.Add("s", "say \"hi\" \\ back\nslash\ttab }", "a\\", `\"`, "}", "\"];", "revoked")
	f.Add("s\n}", `"]; evil [label="x"]; c0 -> evil; //`, "\"]\n  evil --> c0", "%%{init: {'theme':'dark'}}%%", "<b>", "`x`", "x\n  evil --> c0")
	f.Add("\x00\r\x7f", "\xff\xfe", "\u2028\u0085", "#quot; #lt;", "`", "12345678\xe6\x97\xa5", "ended")
	f.Fuzz(func(t *testing.T, session, description, actor, scope, audience, cred, state string) {
		exp := t0.Add(time.Hour)
		root := issued(1, cred, "", 0, exp, scope, description)
		root.Description, root.Actor, root.Audience = description, actor, audience
		kid := issued(2, cred+"/1", cred, 1, t0, actor)
		kid.Description, kid.Actor = actor, description
		orphan := issued(3, scope, "missing "+cred, 2, exp, audience)
		events := []Event{
			root, kid, orphan,
			{Kind: Report, Credential: cred},
			{Kind: Violation, Violation: "reported_misuse", Credential: scope},
		}
		g := Build(session, events, state, t0, description != "")
		if len(g.Nodes) != 3 {
			t.Fatalf("%d nodes, want 3", len(g.Nodes))
		}

		d := g.DOT()
		if !utf8.ValidString(d) {
			t.Errorf("DOT is not valid UTF-8: %q", d)
		}
		lines := checkLines(t, "DOT", d, dotLines)
		// Header, session, three nodes, three edges (each credential has
		// one way in), closing brace.
		if len(lines) != 3+1+3+3+1 {
			t.Errorf("DOT has %d lines, want 11: a label spilled onto a line of its own:\n%s", len(lines), d)
		}
		if n := countEdges(lines, " -> "); n != 3 {
			t.Errorf("DOT has %d edges, want 3:\n%s", n, d)
		}
		for i, l := range lines {
			if q := unescapedQuotes(l); q%2 != 0 {
				t.Errorf("DOT line %d has %d unescaped quotes: %q", i+1, q, l)
			}
			if strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Errorf("DOT line %d has a raw control character: %q", i+1, l)
			}
		}

		m := g.Mermaid()
		if !utf8.ValidString(m) {
			t.Errorf("Mermaid is not valid UTF-8: %q", m)
		}
		lines = checkLines(t, "Mermaid", m, mermaidLines)
		if len(lines) != 1+1+3+3+6 {
			t.Errorf("Mermaid has %d lines, want 14:\n%s", len(lines), m)
		}
		if n := countEdges(lines, " --> "); n != 3 {
			t.Errorf("Mermaid has %d edges, want 3:\n%s", n, m)
		}
		for _, l := range lines[1:5] {
			open, end := strings.Index(l, `"`), strings.LastIndex(l, `"`)
			if open < 0 || end <= open {
				t.Errorf("Mermaid node without a quoted label: %q", l)
				continue
			}
			label := strings.ReplaceAll(l[open+1:end], "<br/>", "")
			if strings.ContainsAny(label, "\"\n\r%`<>") {
				t.Errorf("Mermaid label keeps a raw special character: %q", l)
			}
		}
	})
}

// unescapedQuotes counts the double quotes of a DOT line that are not
// escaped by a backslash.
func unescapedQuotes(l string) int {
	n := 0
	for i := 0; i < len(l); i++ {
		switch l[i] {
		case '\\':
			i++
		case '"':
			n++
		}
	}
	return n
}
