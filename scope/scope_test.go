package scope

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	long := "read:" + strings.Repeat("a", MaxLength)
	tests := []struct {
		in     string
		offset int
		reason string
	}{
		{"", 0, "empty scope"},
		{"read", 4, "missing ':' between actions and resource"},
		{"read/secrets/web", 16, "missing ':' between actions and resource"},
		{":a", 0, "empty action list before ':'"},
		{"read:", 5, "empty resource after ':'"},
		{",read:a", 0, "empty action in list"},
		{"read,:a", 5, "empty action in list"},
		{"read,,list:a", 5, "empty action in list"},
		{"Read:a", 0, "upper-case letter 'R' in action (actions are lower-case)"},
		{"read,lisT:a", 8, "upper-case letter 'T' in action (actions are lower-case)"},
		{"read write:a", 4, "invalid character ' ' in action (allowed: a-z 0-9 _ . -)"},
		{"re/ad:a", 2, "invalid character '/' in action (allowed: a-z 0-9 _ . -)"},
		{"ré:a", 1, "invalid character 'é' in action (allowed: a-z 0-9 _ . -)"},
		{"r\xffd:a", 1, "invalid character byte 0xff in action (allowed: a-z 0-9 _ . -)"},
		{"re*:a", 2, "'*' must be a whole action (it stands for all actions)"},
		{"*d:a", 0, "'*' must be a whole action (it stands for all actions)"},
		{"**:a", 0, "'*' must be a whole action (it stands for all actions)"},
		{"read:a//b", 7, "empty path segment"},
		{"read:/a", 5, "empty path segment"},
		{"read:a/", 7, "empty path segment"},
		{"read:/", 5, "empty path segment"},
		{"read:/*", 5, "empty path segment"},
		{"read:./a", 5, `path segment "." is not allowed`},
		{"read:a/..", 7, `path segment ".." is not allowed`},
		{"read:a/../b", 7, `path segment ".." is not allowed`},
		{"read:a*/b", 6, "'*' is only allowed as the last character of the resource"},
		{"read:*a", 5, "'*' is only allowed as the last character of the resource"},
		{"read:a/**", 7, "'*' is only allowed as the last character of the resource"},
		{"read:a+", 6, "'+' must be a whole path segment"},
		{"read:+a", 5, "'+' must be a whole path segment"},
		{"read:a/++", 7, "'+' must be a whole path segment"},
		{"read:+*", 5, `"+*" is not allowed: '+' must be a whole path segment (use "*" to match any suffix)`},
		{"read:a/+*", 7, `"+*" is not allowed: '+' must be a whole path segment (use "*" to match any suffix)`},
		{"read:a b", 6, "invalid character ' ' in resource (allowed: letters, digits, ._~@=- and / + *)"},
		{"read:a:b", 6, "invalid character ':' in resource (allowed: letters, digits, ._~@=- and / + *)"},
		{"read:a%2f", 6, "invalid character '%' in resource (allowed: letters, digits, ._~@=- and / + *)"},
		{"read:\x00", 5, "invalid character '\\x00' in resource (allowed: letters, digits, ._~@=- and / + *)"},
		{long, MaxLength, "longer than 256 bytes, the excess starts"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error = %v, want a *ParseError", tt.in, err)
			continue
		}
		if pe.Input != tt.in || pe.Offset != tt.offset || pe.Reason != tt.reason {
			t.Errorf("Parse(%q) = %+v, want offset %d reason %q", tt.in, *pe, tt.offset, tt.reason)
		}
	}
}

func TestParseErrorMessage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"read:a//b", `scope "read:a//b": empty path segment at offset 7`},
		{"read:a/", `scope "read:a/": empty path segment at offset 7 (end of input)`},
		{"Read:a", `scope "Read:a": upper-case letter 'R' in action (actions are lower-case) at offset 0`},
		{"read:+*", `scope "read:+*": "+*" is not allowed: '+' must be a whole path segment (use "*" to match any suffix) at offset 5`},
		{"read:" + strings.Repeat("a", 995), `scope "read:` + strings.Repeat("a", 43) + `"... (1000 bytes): longer than 256 bytes, the excess starts at offset 256`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%.20q) error =\n  %v\nwant\n  %s", tt.in, err, tt.want)
		}
	}
}

func TestParseLengthLimit(t *testing.T) {
	ok := "read:" + strings.Repeat("a", MaxLength-5)
	if _, err := Parse(ok); err != nil {
		t.Errorf("Parse of a %d-byte scope: %v", len(ok), err)
	}
	if _, err := Parse(ok + "b"); err == nil {
		t.Errorf("Parse of a %d-byte scope succeeded", len(ok)+1)
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		in, canonical string
		actions       []string
		resource      string
	}{
		{"read:secrets/web/tls", "read:secrets/web/tls", []string{"read"}, "secrets/web/tls"},
		{"read,list:secrets/web/*", "list,read:secrets/web/*", []string{"list", "read"}, "secrets/web/*"},
		{"list,read:secrets/web/*", "list,read:secrets/web/*", []string{"list", "read"}, "secrets/web/*"},
		{"write,read,write,read:a", "read,write:a", []string{"read", "write"}, "a"},
		{"deploy:k8s/+/deployments/web", "deploy:k8s/+/deployments/web", []string{"deploy"}, "k8s/+/deployments/web"},
		{"*:x", "*:x", []string{"*"}, "x"},
		{"read,*,write:x", "*:x", []string{"*"}, "x"},
		{"*,*:x", "*:x", []string{"*"}, "x"},
		{"read:*", "read:*", []string{"read"}, "*"},
		{"read:+", "read:+", []string{"read"}, "+"},
		{"read:+/+/*", "read:+/+/*", []string{"read"}, "+/+/*"},
		{"read:secrets/we*", "read:secrets/we*", []string{"read"}, "secrets/we*"},
		{"read:a/.*", "read:a/.*", []string{"read"}, "a/.*"},
		{"read:a/..*", "read:a/..*", []string{"read"}, "a/..*"},
		{"read:a/.../.b/b.", "read:a/.../.b/b.", []string{"read"}, "a/.../.b/b."},
		{"a.b_c-9:A~b@c=d-e.f_", "a.b_c-9:A~b@c=d-e.f_", []string{"a.b_c-9"}, "A~b@c=d-e.f_"},
	}
	for _, tt := range tests {
		s, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if s.String() != tt.canonical || !slices.Equal(s.Actions(), tt.actions) || s.Resource() != tt.resource {
			t.Errorf("Parse(%q) = %q actions %q resource %q, want %q %q %q",
				tt.in, s, s.Actions(), s.Resource(), tt.canonical, tt.actions, tt.resource)
		}
		if got, want := s.AllowsAllActions(), tt.actions[0] == "*"; got != want {
			t.Errorf("Parse(%q).AllowsAllActions() = %v", tt.in, got)
		}
		if s != MustParse(tt.canonical) {
			t.Errorf("Parse(%q) != Parse(%q)", tt.in, tt.canonical)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	inputs := []string{
		"read:a", "read,list:secrets/web/*", "list,read,list:secrets/web/*", "*:*",
		"write,*:+", "b,a,c,a:x/+/y*", "read:a*", "read:a/+/*", "x.y,x-y,x_y,x:p/q",
		"read:.*", "0,9,a:~/@/=", "read,write:secrets/web/tls",
	}
	for _, in := range inputs {
		s := MustParse(in)
		again, err := Parse(s.String())
		if err != nil || again != s || again.String() != s.String() {
			t.Errorf("Parse(%q).String() = %q does not round-trip: %v %v", in, s, again, err)
		}
	}
}

func TestActionsIsCopy(t *testing.T) {
	s := MustParse("list,read:a")
	s.Actions()[0] = "write"
	if got := s.Actions(); got[0] != "list" {
		t.Errorf("Actions() shares storage: %q", got)
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse did not panic")
		}
	}()
	MustParse("read:a//b")
}

func TestZeroScope(t *testing.T) {
	var z Scope
	if z.String() != "" || z.Resource() != "" || z.Actions() != nil || z.AllowsAllActions() {
		t.Errorf("zero Scope accessors: %q %q %q %v", z, z.Resource(), z.Actions(), z.AllowsAllActions())
	}
	if z.Match("read", "a") {
		t.Error("zero Scope matches")
	}
	s := MustParse("*:*")
	if !Contains(s, z) || !Contains(z, z) || Contains(z, s) {
		t.Error("Contains with the zero Scope")
	}
	if a, r, ok := Witness(z, s); !ok || !s.Match(a, r) {
		t.Errorf("Witness(zero, %v) = %q %q %v", s, a, r, ok)
	}
	if _, _, ok := Witness(s, z); ok {
		t.Error("Witness(s, zero) found a witness")
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		scope, action, resource string
		want                    bool
	}{
		{"read:secrets/web/tls", "read", "secrets/web/tls", true},
		{"read:secrets/web/tls", "write", "secrets/web/tls", false},
		{"read:secrets/web/tls", "read", "secrets/web/tl", false},
		{"read:secrets/web/tls", "read", "secrets/web/tls/x", false},
		{"read:secrets/web/tls", "read", "Secrets/web/tls", false},
		{"read,list:secrets/web/*", "list", "secrets/web/tls", true},
		{"read,list:secrets/web/*", "read", "secrets/web/a/b/c", true},
		{"read,list:secrets/web/*", "read", "secrets/web", false},
		{"read,list:secrets/web/*", "read", "secrets/webx", false},
		{"read:secrets/we*", "read", "secrets/we", true},
		{"read:secrets/we*", "read", "secrets/web", true},
		{"read:secrets/we*", "read", "secrets/wex/y", true},
		{"read:secrets/we*", "read", "secrets/w", false},
		{"read:secrets/we*", "read", "secrets", false},
		{"deploy:k8s/+/deployments/web", "deploy", "k8s/prod/deployments/web", true},
		{"deploy:k8s/+/deployments/web", "deploy", "k8s/prod/eu/deployments/web", false},
		{"deploy:k8s/+/deployments/web", "deploy", "k8s/deployments/web", false},
		{"read:+", "read", "a", true},
		{"read:+", "read", "a/b", false},
		{"read:+/*", "read", "a", false},
		{"read:+/*", "read", "a/b", true},
		{"read:*", "read", "a", true},
		{"read:*", "read", "a/b/c", true},
		{"*:x", "anything", "x", true},
		{"read:a/.*", "read", "a/.git", true},
		{"read:a/.*", "read", "a/b", false},
		// Malformed requests never match.
		{"*:*", "*", "a", false},
		{"*:*", "Read", "a", false},
		{"*:*", "", "a", false},
		{"*:*", "read", "", false},
		{"*:*", "read", "/a", false},
		{"*:*", "read", "a/", false},
		{"*:*", "read", "a//b", false},
		{"*:*", "read", "a/../b", false},
		{"*:*", "read", ".", false},
		{"*:*", "read", "a/+", false},
		{"*:*", "read", "a/*", false},
		{"*:*", "read", "a b", false},
		{"read:+", "read", "+", false},
		{"read:a*", "read", "a*", false},
	}
	for _, tt := range tests {
		if got := MustParse(tt.scope).Match(tt.action, tt.resource); got != tt.want {
			t.Errorf("%s.Match(%q, %q) = %v, want %v", tt.scope, tt.action, tt.resource, got, tt.want)
		}
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), strings.Repeat("a", 64) + "..."},
		// 63 ASCII bytes then a 2-byte rune that straddles the cut.
		{strings.Repeat("a", 63) + "é" + "zzz", strings.Repeat("a", 63) + "..."},
	} {
		if got := Clip(tc.in); got != tc.want {
			t.Errorf("Clip(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
