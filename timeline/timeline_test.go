package timeline

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestBuildNodesInIssueOrder(t *testing.T) {
	events := sampleEvents()
	g := Build("sess-1", events, "active", t0, false)
	if g.Session != "sess-1" || g.Partial {
		t.Fatalf("Session, Partial = %q, %v; want sess-1, false", g.Session, g.Partial)
	}
	var want []string
	for _, e := range events {
		if e.Kind == CredentialIssued {
			want = append(want, e.Credential)
		}
	}
	var got []string
	for _, n := range g.Nodes {
		got = append(got, n.Credential)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("nodes = %v, want issue order %v", got, want)
	}

	// Every field of the issue event is carried over.
	a := events[1]
	n := g.Nodes[0]
	if n.Parent != a.Parent || !reflect.DeepEqual(n.Scopes, a.Scopes) || n.Audience != a.Audience ||
		n.Depth != a.Depth || n.Description != a.Description || n.Actor != a.Actor {
		t.Errorf("node %+v does not carry the fields of %+v", n, a)
	}
	if !n.Issued.Equal(a.Time) {
		t.Errorf("Issued = %v, want the event time %v", n.Issued, a.Time)
	}
	if !n.Expires.Equal(time.Unix(a.Expires, 0)) {
		t.Errorf("Expires = %v, want %v", n.Expires, time.Unix(a.Expires, 0))
	}
	b := g.Nodes[1]
	if b.Parent != credA || b.Depth != 1 || b.Description != "read tls" || b.Actor != "" {
		t.Errorf("child node = %+v", b)
	}
}

func TestBuildParentChildLinks(t *testing.T) {
	g := sampleGraph()
	roots, kids := g.children()
	if want := []int{0, 3}; !reflect.DeepEqual(roots, want) {
		t.Errorf("roots = %v, want %v (credA and credD)", roots, want)
	}
	if want := map[string][]int{credA: {1, 2}}; !reflect.DeepEqual(kids, want) {
		t.Errorf("children = %v, want %v", kids, want)
	}
}

func TestBuildDeepChain(t *testing.T) {
	exp := t0.Add(time.Hour)
	events := []Event{
		issued(1, "r", "", 0, exp, "a:x"),
		issued(2, "r.1", "r", 1, exp, "a:x"),
		issued(3, "r.1.1", "r.1", 2, exp, "a:x"),
		issued(4, "r.2", "r", 1, exp, "a:x"),
		issued(5, "r.1.1.1", "r.1.1", 3, exp, "a:x"),
	}
	g := Build("s", events, "active", t0, false)
	roots, kids := g.children()
	if !reflect.DeepEqual(roots, []int{0}) {
		t.Errorf("roots = %v, want [0]", roots)
	}
	want := map[string][]int{"r": {1, 3}, "r.1": {2}, "r.1.1": {4}}
	if !reflect.DeepEqual(kids, want) {
		t.Errorf("children = %v, want %v", kids, want)
	}
}

func TestBuildUnknownParentIsRoot(t *testing.T) {
	exp := t0.Add(time.Hour)
	// The events issuing "gone" were dropped: its child comes first.
	events := []Event{
		issued(40, "orphan", "gone", 2, exp, "read:x"),
		issued(41, "grandchild", "orphan", 3, exp, "read:x"),
		issued(42, "fresh", "", 0, exp, "read:y"),
	}
	for _, partial := range []bool{true, false} {
		g := Build("s", events, "active", t0, partial)
		if g.Partial != partial {
			t.Errorf("Partial = %v, want %v", g.Partial, partial)
		}
		if g.Nodes[0].Parent != "gone" {
			t.Errorf("the orphan's Parent = %q; Build must keep the unknown parent", g.Nodes[0].Parent)
		}
		roots, kids := g.children()
		if !reflect.DeepEqual(roots, []int{0, 2}) {
			t.Errorf("roots = %v, want [0 2]: a credential whose parent is unknown hangs off the session", roots)
		}
		if want := map[string][]int{"orphan": {1}}; !reflect.DeepEqual(kids, want) {
			t.Errorf("children = %v, want %v", kids, want)
		}
	}
}

func TestBuildStates(t *testing.T) {
	exp := t0.Add(time.Hour)
	cases := []struct {
		name    string
		now     time.Time
		session string
		want    string
	}{
		{"live credential, active session", t0, "active", "active"},
		{"just before expiry", exp.Add(-time.Nanosecond), "active", "active"},
		{"at expiry", exp, "active", "expired"},
		{"after expiry", exp.Add(time.Second), "active", "expired"},
		{"session ended", t0, "ended", "ended"},
		{"session revoked", t0, "revoked", "revoked"},
		{"session expired", t0, "expired", "expired"},
		{"ended session, credential expired", exp, "ended", "expired"},
		{"revoked session, credential expired", exp.Add(time.Hour), "revoked", "expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := Build("s", []Event{issued(1, "c", "", 0, exp, "read:x")}, c.session, c.now, false)
			if len(g.Nodes) != 1 {
				t.Fatalf("%d nodes, want 1", len(g.Nodes))
			}
			if got := g.Nodes[0].State; got != c.want {
				t.Errorf("State = %q, want %q", got, c.want)
			}
		})
	}
}

func TestBuildStatesPerNode(t *testing.T) {
	g := sampleGraph()
	want := []string{"active", "active", "expired", "active"}
	for i, n := range g.Nodes {
		if n.State != want[i] {
			t.Errorf("node %d (%s) State = %q, want %q", i, n.Credential, n.State, want[i])
		}
	}
	g = Build("s", sampleEvents(), "revoked", t0, false)
	want = []string{"revoked", "revoked", "expired", "revoked"}
	for i, n := range g.Nodes {
		if n.State != want[i] {
			t.Errorf("revoked session: node %d State = %q, want %q", i, n.State, want[i])
		}
	}
}

func TestBuildReportsAndMisuses(t *testing.T) {
	exp := t0.Add(time.Hour)
	events := []Event{
		// A report of a credential not (yet) seen counts against nothing.
		{Kind: Report, Credential: "x"},
		issued(1, "x", "", 0, exp, "read:a"),
		issued(2, "y", "x", 1, exp, "read:a"),
		issued(3, "z", "x", 1, exp, "read:a"),
		{Kind: Report, Credential: "x"},
		{Kind: Report, Credential: "x"},
		{Kind: Report, Credential: "y"},
		{Kind: Violation, Violation: "reported_misuse", Credential: "y"},
		{Kind: Violation, Violation: "reported_misuse", Credential: "y"},
		// Violations of other kinds are not reports: they are refused
		// steps, drawn under the credential they name.
		{Kind: Violation, Violation: "scope_exceeded", Credential: "z"},
		{Kind: Violation, Violation: "bad_parent", Credential: "x"},
		{Kind: Violation, Credential: "z"},
		// Reports of unknown credentials, and misuse with no credential.
		{Kind: Report, Credential: "unknown"},
		{Kind: Report},
		{Kind: Violation, Violation: "reported_misuse", Credential: "unknown"},
		{Kind: Violation, Violation: "reported_misuse"},
	}
	g := Build("s", events, "active", t0, false)
	want := map[string][2]int{"x": {2, 0}, "y": {3, 2}, "z": {0, 0}}
	if len(g.Nodes) != 5 {
		t.Fatalf("%d nodes, want 3 credentials and 2 refused steps", len(g.Nodes))
	}
	for _, n := range g.Nodes[3:] {
		if n.State != "refused" || n.Credential != "" || n.Reports != 0 {
			t.Errorf("refused step %+v", n)
		}
	}
	if g.Nodes[3].Violation != "scope_exceeded" || g.Nodes[3].Parent != "z" || g.Nodes[4].Violation != "bad_parent" || g.Nodes[4].Parent != "x" {
		t.Errorf("refused steps %+v", g.Nodes[3:])
	}
	for _, n := range g.Nodes[:3] {
		got := [2]int{n.Reports, n.Misuses}
		if got != want[n.Credential] {
			t.Errorf("%s: Reports, Misuses = %v, want %v", n.Credential, got, want[n.Credential])
		}
	}
}

func TestBuildIgnoresOtherKinds(t *testing.T) {
	exp := t0.Add(time.Hour)
	base := []Event{issued(1, "c", "", 0, exp, "read:a")}
	want := Build("s", base, "active", t0, false)
	for _, k := range []EventKind{SessionStart, RequestRefused, SessionRenew, SessionEnd, SessionRevoke, SessionExpire, EventKind("something_new"), EventKind("")} {
		// The other kinds, even naming the credential, change nothing.
		e := Event{
			Kind: k, Credential: "c", Parent: "c", Scopes: []string{"write:b"}, Expires: exp.Unix(),
			Violation: "reported_misuse", Action: "read", Resource: "a",
		}
		got := Build("s", append(append([]Event{}, base...), e), "active", t0, false)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("a %q event changed the graph:\n got %+v\nwant %+v", k, got, want)
		}
	}
}

func TestBuildEmpty(t *testing.T) {
	for _, events := range [][]Event{nil, {}, {{Kind: SessionStart}, {Kind: SessionEnd}}} {
		g := Build("s", events, "ended", t0, true)
		if len(g.Nodes) != 0 || g.Session != "s" || !g.Partial {
			t.Errorf("Build of %d events without credentials = %+v", len(events), g)
		}
	}
}

// The JSON names of events are what the engine stores: changing them
// loses old timelines.
func TestEventJSON(t *testing.T) {
	e := Event{
		Seq: 3, Time: t0, Kind: CredentialIssued, Detail: "d", Source: "10.0.0.1:1234",
		Credential: "c", Parent: "p", Scopes: []string{"read:a"}, Audience: "aud", Depth: 2,
		Description: "s", Actor: "act", Expires: 99, Violation: "v", Action: "read", Resource: "a", Outcome: "ok",
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"seq":3,"time":"2025-03-14T15:09:26Z","kind":"credential_issued","detail":"d","source":"10.0.0.1:1234",` +
		`"credential":"c","parent":"p","scopes":["read:a"],"audience":"aud","depth":2,"description":"s","actor":"act",` +
		`"expires":99,"violation":"v","action":"read","resource":"a","outcome":"ok"}`
	if string(b) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", b, want)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Errorf("round trip = %+v, want %+v", back, e)
	}
	b, _ = json.Marshal(Event{Seq: 1, Time: t0, Kind: SessionStart})
	if want := `{"seq":1,"time":"2025-03-14T15:09:26Z","kind":"session_start"}`; string(b) != want {
		t.Errorf("empty fields are not left out: %s", b)
	}
}
