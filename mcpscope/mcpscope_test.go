package mcpscope

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestNeed(t *testing.T) {
	for _, c := range []struct {
		body string
		want Need
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}`, Need{"call", "tools/search"}},
		{`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"github.issues-list"}}`, Need{"call", "tools/github.issues-list"}},
		{`{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"summarise"}}`, Need{"get", "prompts/summarise"}},
		{`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"docs://plans/q3"}}`, Need{"read", "resources/docs/plans/q3"}},
		{`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///srv/docs/a.md"}}`, Need{"read", "resources/file/srv/docs/a.md"}},
		{`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"https://example.com/x"}}`, Need{"read", "resources/https/example.com/x"}},
		{`{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"summarise"},"argument":{"name":"a","value":"b"}}}`, Need{"get", "prompts/summarise"}},
		{`{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"docs://plans/q3"},"argument":{"name":"a","value":"b"}}}`, Need{"read", "resources/docs/plans/q3"}},
		{`{"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"info"}}`, Need{}},
		{`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`, Need{}},
		{`{"jsonrpc":"2.0","id":4,"method":"resources/subscribe","params":{"uri":"docs://plans"}}`, Need{"read", "resources/docs/plans"}},
		{`{"jsonrpc":"2.0","id":5,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`, Need{}},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, Need{}},
		{`{"jsonrpc":"2.0","id":6,"method":"tools/list"}`, Need{}},
		{`{"jsonrpc":"2.0","id":7,"result":{}}`, Need{}},
	} {
		msgs, err := Messages([]byte(c.body))
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s: %v", c.body, err)
		}
		needs, err := Default.Needs(msgs[0])
		got := Need{}
		if len(needs) == 1 {
			got = needs[0]
		}
		if err != nil || len(needs) > 1 || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.body, needs, err, c.want)
		}
	}
}

func TestNeedRefusals(t *testing.T) {
	for body, want := range map[string]error{
		`not json`: ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`:                                      ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`:                          ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}`:                  ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"../admin"}}`:         ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a b"}}`:              ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"*"}}`:                ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"+"}}`:                ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a//b"}}`:             ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"docs://a%2Fb"}}`:  ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"docs://a?b=1"}}`:  ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"docs://a#b"}}`:    ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"docs://u@a/b"}}`:  ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"docs://a/../b"}}`: ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"plans/q3"}}`:      ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"urn:isbn:123"}}`:  ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":""}}`:                ErrMalformed,
		// The same URI must not have two names, nor two URIs one name.
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"DOCS://plans/q3"}}`:  ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"docs:/plans/q3"}}`:   ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"docs:///plans/q3"}}`: ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file://host/a.md"}}`: ErrUnmappable,
		// A method the mapping does not know is refused.
		`{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}`:  ErrUnmappable,
		`{"jsonrpc":"2.0","id":1,"method":"tools/execute","params":{"name":"x"}}`: ErrUnmappable,
		// What an SDK would read differently from encoding/json is refused:
		// members differing only in case, duplicates, Unicode case folds.
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_doc","Name":"search","arguments":{}}}`: ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","METHOD":"ping","params":{"name":"delete_doc","arguments":{}}}`: ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_doc"},"Params":{"name":"search"}}`:     ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"search"}}`:                                    ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"delete_doc"}}`:                ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"delete_doc"}}`:                ErrMalformed,
		`{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"delete_doc"}}`:                                ErrMalformed,
	} {
		msgs, err := Messages([]byte(body))
		if err == nil {
			_, err = Default.Needs(msgs[0])
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", body, err, want)
		}
	}
	if _, err := Messages([]byte(`"` + strings.Repeat("x", MaxMessageSize) + `"`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversize body: %v", err)
	}
}

func TestListenNeedsEveryURI(t *testing.T) {
	msgs, err := Messages([]byte(`{"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["docs://plans/q3","docs://secret/plan"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	needs, err := Default.Needs(msgs[0])
	want := []Need{{"read", "resources/docs/plans/q3"}, {"read", "resources/docs/secret/plan"}}
	if err != nil || !reflect.DeepEqual(needs, want) {
		t.Fatalf("%+v, %v", needs, err)
	}
}

func TestBatch(t *testing.T) {
	msgs, err := Messages([]byte(` [{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}]`))
	if err != nil || len(msgs) != 2 || !msgs[0].IsRequest || msgs[1].IsRequest || msgs[0].Name != "a" {
		t.Fatalf("%+v, %v", msgs, err)
	}
}

func TestCustomPrefixes(t *testing.T) {
	m := Mapping{Tools: "mcp/docs/tools"}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	n, err := m.Tool("search")
	if err != nil || n != (Need{"call", "mcp/docs/tools/search"}) || n.Scope() != "call:mcp/docs/tools/search" {
		t.Fatalf("%+v, %v", n, err)
	}
	if n, _ := m.Prompt("p"); n.Resource != "prompts/p" {
		t.Fatalf("default prompt prefix: %+v", n)
	}
	if err := (Mapping{Tools: "tools/"}).Check(); err == nil {
		t.Fatal("a prefix with a trailing slash was accepted")
	}
}

func TestAllowed(t *testing.T) {
	search, _ := Default.Tool("search")
	del, _ := Default.Tool("delete_doc")
	for _, c := range []struct {
		granted string
		need    Need
		want    bool
	}{
		{"call:tools/search", search, true},
		{"call:tools/search", del, false},
		{"call:tools/*", del, true},
		{"read:tools/*", search, false},
		{"call,read:tools/search read:resources/*", search, true},
		{"call:tools/search", Need{}, true},
		{"not a scope", search, false},
	} {
		if got := Allowed(c.granted, c.need); got != c.want {
			t.Errorf("Allowed(%q, %+v) = %v", c.granted, c.need, got)
		}
	}
}

func TestUnder(t *testing.T) {
	for _, c := range []struct {
		in, want []string
	}{
		{[]string{"call:tools/search", "call:tools/read_doc", "read:secrets/web/*"}, []string{"call:tools/search", "call:tools/read_doc"}},
		{[]string{"*:*"}, []string{"*:tools/*", "*:resources/*", "*:prompts/*"}},
		{[]string{"call:*", "call:tools/x"}, []string{"call:tools/*", "call:resources/*", "call:prompts/*", "call:tools/x"}},
		{[]string{"read:resources/docs/*", "read:resources/docs/*"}, []string{"read:resources/docs/*"}},
		{[]string{"read:secrets/*"}, nil},
	} {
		if got := Default.Under(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Under(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
