package scope

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// checkWitness fails the test unless (action, resource) is a concrete
// request that inner allows and outer denies.
func checkWitness(t *testing.T, outer, inner Scope, action, resource string) {
	t.Helper()
	if !validAction(action) || !refValidResource(resource) {
		t.Fatalf("Witness(%v, %v) = %q %q: not a concrete request", outer, inner, action, resource)
	}
	if !inner.Match(action, resource) || !refMatch(inner, action, resource) {
		t.Fatalf("Witness(%v, %v) = %q %q: inner does not allow it", outer, inner, action, resource)
	}
	if outer.Match(action, resource) || refMatch(outer, action, resource) {
		t.Fatalf("Witness(%v, %v) = %q %q: outer allows it", outer, inner, action, resource)
	}
}

func TestContains(t *testing.T) {
	tests := []struct {
		outer, inner string
		want         bool
		witness      string // expected "action:resource" when not contained, if given
	}{
		{"read:a", "read:a", true, ""},
		{"read:a/*", "read:a/+", true, ""},
		{"read:a/*", "read:a/+/*", true, ""},
		{"read:a/*", "read:a/b/c", true, ""},
		{"read:a*", "read:a/b", true, ""},
		{"read:a*", "read:ab/c", true, ""},
		{"read:a*", "read:a", true, ""},
		{"read:a*", "read:ab*", true, ""},
		{"read:a*", "read:a/*", true, ""},
		{"read:a/*", "read:a*", false, "read:a"},
		{"read:a/*", "read:a", false, "read:a"},
		{"read:ab*", "read:a*", false, "read:a"},
		{"read:ab*", "read:a/*", false, "read:a/x"},
		{"read:a/+/*", "read:a/*", false, "read:a/x"},
		{"read:a/*", "read:a/+/c", true, ""},
		{"read:a/+", "read:a/+/c", false, "read:a/x/c"},
		{"read:a/*", "read:+/b", false, "read:x/b"},
		{"read:+/b", "read:a/b", true, ""},
		{"read:+/b", "read:+/b", true, ""},
		{"read:+/b", "read:+/*", false, "read:x/x/x"},
		{"read:+/*", "read:+/b", true, ""},
		{"read:a/+", "read:a/*", false, "read:a/x/x"},
		{"read:a/+", "read:a/b*", false, "read:a/b/x"},
		{"read:a/b", "read:a/+", false, "read:a/x"},
		{"read:a/x", "read:a/+", false, "read:a/y"},
		{"read:a/b*", "read:a/+", false, "read:a/x"},
		{"read:a/x*", "read:a/+", false, "read:a/y"},
		{"read:a/b*", "read:a/*", false, "read:a/x"},
		{"read:a/b", "read:a/b*", false, "read:a/b/x"},
		{"read:a/bx", "read:a/b*", false, "read:a/b/x"},
		{"read:a/bx*", "read:a/b*", false, "read:a/b"},
		{"read:a/.x", "read:a/.*", false, "read:a/.x/x"},
		{"read:a/..*", "read:a/.*", false, "read:a/.x"},
		{"read:a/.*", "read:a/..*", true, ""},
		{"read:a/*", "read:a/.*", true, ""},
		{"read:*", "read:+/+/+", true, ""},
		{"read:*", "read:*", true, ""},
		{"read:+", "read:*", false, "read:x/x"},
		{"read:+/*", "read:*", false, "read:x"},
		{"read:x*", "read:*", false, "read:y"},
		{"read:a/b", "read:a/c", false, "read:a/c"},
		{"read:a/b", "read:a/b/c", false, "read:a/b/c"},
		{"read:a/b/c", "read:a/b", false, "read:a/b"},
		// Actions.
		{"*:x", "read,write:x", true, ""},
		{"*:x", "*:x", true, ""},
		{"read:x", "read,write:x", false, "write:x"},
		{"read,write:x", "read:x", true, ""},
		{"list,read,write:x", "list,write:x", true, ""},
		{"list,write:x", "list,read,write:x", false, "read:x"},
		{"read:x", "*:x", false, "x:x"},
		{"x,x1,x2:a", "*:a", false, "x3:a"},
		{"read:a/b", "write:a/*", false, "write:a/x/x"},
		// The examples of the specification.
		{"read,list:secrets/web/*", "read:secrets/web/tls", true, ""},
		{"deploy:k8s/+/deployments/*", "deploy:k8s/+/deployments/web", true, ""},
		{"deploy:k8s/prod/deployments/web", "deploy:k8s/+/deployments/web", false, "deploy:k8s/x/deployments/web"},
	}
	for _, tt := range tests {
		outer, inner := MustParse(tt.outer), MustParse(tt.inner)
		if got := Contains(outer, inner); got != tt.want {
			t.Errorf("Contains(%s, %s) = %v, want %v", tt.outer, tt.inner, got, tt.want)
			continue
		}
		action, resource, ok := Witness(outer, inner)
		if ok == tt.want {
			t.Errorf("Witness(%s, %s) ok = %v", tt.outer, tt.inner, ok)
			continue
		}
		if !ok {
			continue
		}
		checkWitness(t, outer, inner, action, resource)
		if tt.witness != "" && action+":"+resource != tt.witness {
			t.Errorf("Witness(%s, %s) = %s:%s, want %s", tt.outer, tt.inner, action, resource, tt.witness)
		}
	}
}

func TestSetParse(t *testing.T) {
	set, err := ParseSet([]string{"read:b", "list,read:a/*", "read,list:a/*", "read:b", "*:c"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"read:b", "list,read:a/*", "*:c"}
	if !slices.Equal(set.Strings(), want) {
		t.Errorf("ParseSet = %q, want %q", set.Strings(), want)
	}
	if got := set.String(); got != "read:b list,read:a/* *:c" {
		t.Errorf("Set.String() = %q", got)
	}
	again, err := ParseSpaceSeparated(set.String())
	if err != nil || !slices.Equal(again, set) {
		t.Errorf("ParseSpaceSeparated(%q) = %v, %v", set.String(), again, err)
	}

	for _, in := range [][]string{nil, {}} {
		if s, err := ParseSet(in); err != nil || len(s) != 0 || s.String() != "" {
			t.Errorf("ParseSet(%q) = %v, %v", in, s, err)
		}
	}
	if s, err := ParseSpaceSeparated(""); err != nil || len(s) != 0 {
		t.Errorf(`ParseSpaceSeparated("") = %v, %v`, s, err)
	}
}

func TestSetParseErrors(t *testing.T) {
	tests := []struct {
		in     []string
		index  int
		offset int
	}{
		{[]string{"read:a", "read:b", "read:a//b"}, 2, 7},
		{[]string{"read:a", ""}, 1, 0},
		{[]string{"Read:a"}, 0, 0},
	}
	for _, tt := range tests {
		_, err := ParseSet(tt.in)
		var se *SetError
		var pe *ParseError
		if !errors.As(err, &se) || !errors.As(err, &pe) || se.Index != tt.index || pe.Offset != tt.offset {
			t.Errorf("ParseSet(%q) error = %v, want index %d offset %d", tt.in, err, tt.index, tt.offset)
		}
	}
	_, err := ParseSet([]string{"read:a", "read:b", "read:a//b"})
	if want := `scopes[2]: scope "read:a//b": empty path segment at offset 7`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}

	for _, claim := range []string{"read:a  read:b", " read:a", "read:a ", " "} {
		var se *SetError
		if _, err := ParseSpaceSeparated(claim); !errors.As(err, &se) {
			t.Errorf("ParseSpaceSeparated(%q) error = %v, want a *SetError", claim, err)
		}
	}

	many := make([]string, MaxSetSize+1)
	for i := range many {
		many[i] = fmt.Sprintf("read:a%d", i)
	}
	if _, err := ParseSet(many[:MaxSetSize]); err != nil {
		t.Errorf("ParseSet of %d scopes: %v", MaxSetSize, err)
	}
	if _, err := ParseSet(many); !errors.Is(err, ErrTooManyScopes) {
		t.Errorf("ParseSet of %d scopes: error = %v", len(many), err)
	}
	if _, err := ParseSpaceSeparated(strings.Join(many, " ")); !errors.Is(err, ErrTooManyScopes) {
		t.Errorf("ParseSpaceSeparated of %d scopes: error = %v", len(many), err)
	}
	// Duplicates count towards the limit of the input.
	dups := slices.Repeat([]string{"read:a"}, MaxSetSize+1)
	if _, err := ParseSet(dups); !errors.Is(err, ErrTooManyScopes) {
		t.Errorf("ParseSet of %d duplicates: error = %v", len(dups), err)
	}
}

func TestSetMatchAndContains(t *testing.T) {
	mustSet := func(claim string) Set {
		t.Helper()
		s, err := ParseSpaceSeparated(claim)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	outer := mustSet("read,list:secrets/web/* deploy:k8s/+/deployments/web")
	if !outer.Match("read", "secrets/web/tls") || !outer.Match("deploy", "k8s/prod/deployments/web") ||
		outer.Match("deploy", "secrets/web/tls") || outer.Match("read", "secrets/db") {
		t.Error("Set.Match")
	}
	if (Set{}).Match("read", "a") {
		t.Error("empty Set matches")
	}

	tests := []struct {
		inner     string
		uncovered string // "" when covered
	}{
		{"", ""},
		{"read:secrets/web/tls", ""},
		{"read:secrets/web/tls deploy:k8s/eu/deployments/web list:secrets/web/+/*", ""},
		{"read:secrets/web/tls write:secrets/web/tls read:secrets/db", "write:secrets/web/tls"},
		{"deploy:k8s/+/deployments/*", "deploy:k8s/+/deployments/*"},
	}
	for _, tt := range tests {
		inner := mustSet(tt.inner)
		got, ok := outer.Uncovered(inner)
		if ok != (tt.uncovered != "") || ok && got.String() != tt.uncovered {
			t.Errorf("Uncovered(%q) = %v, %v, want %q", tt.inner, got, ok, tt.uncovered)
		}
		if SetContains(outer, inner) != (tt.uncovered == "") {
			t.Errorf("SetContains(%q) = %v", tt.inner, !ok)
		}
	}
	// Conservative for unions: read,write:x is covered by read:x and write:x
	// together, but by neither alone.
	split := mustSet("read:x write:x")
	if SetContains(split, mustSet("read,write:x")) {
		t.Error("SetContains covers with a union")
	}
	if !SetContains(split, mustSet("write:x read:x")) || SetContains(Set{}, mustSet("read:a")) || !SetContains(nil, nil) {
		t.Error("SetContains")
	}
}
