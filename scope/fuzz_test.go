package scope

import (
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"read:secrets/web/tls", "read,list:secrets/web/*", "deploy:k8s/+/deployments/web",
	"*:*", "read:*", "read:+", "read:a*", "read:a/*", "read:a/+", "read:a/+/*", "read:ab/c",
	"read:a/+/c", "read:+/b", "*:x", "read,write:x", "read:x", "read:a/.*", "read:a/..*",
	"write,read,*:a", "read:a//b", "read:+*", "read:a+", "Read:a", ":a", "read:", "read",
	"read:a/../b", "read:a*/b", "read,,list:a",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Add("read:" + strings.Repeat("a", MaxLength))
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := Parse(s)
		if (err == nil) != refValidScope(s) {
			t.Fatalf("Parse(%q) error = %v, reference says valid = %v", s, err, refValidScope(s))
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Input != s || pe.Offset < 0 || pe.Offset > len(s) || pe.Reason == "" {
				t.Fatalf("Parse(%q) error = %#v", s, err)
			}
			// %q turns a byte into at most 4 bytes, and longer inputs are cut.
			if msg := err.Error(); len(msg) > 4*MaxLength+200 {
				t.Fatalf("Parse(%q) error message is %d bytes", s, len(msg))
			}
			return
		}
		canonical := sc.String()
		again, err := Parse(canonical)
		if err != nil || again != sc || again.String() != canonical {
			t.Fatalf("Parse(%q).String() = %q re-parses to %q, %v", s, canonical, again, err)
		}
		actions := sc.Actions()
		if !slices.IsSorted(actions) || len(slices.Compact(slices.Clone(actions))) != len(actions) ||
			slices.Contains(actions, "*") && len(actions) != 1 {
			t.Fatalf("Parse(%q).Actions() = %q", s, actions)
		}
		if !strings.HasSuffix(s, ":"+sc.Resource()) {
			t.Fatalf("Parse(%q).Resource() = %q", s, sc.Resource())
		}
		if !Contains(sc, sc) {
			t.Fatalf("Contains(%v, %v) = false", sc, sc)
		}
	})
}

func FuzzContains(f *testing.F) {
	for _, a := range fuzzSeeds {
		for _, b := range fuzzSeeds[:20] {
			f.Add(a, b)
		}
	}
	f.Add("read:secrets/we*", "read:secrets/web/*")
	f.Add("read:a/b.*", "read:a/b.c*")
	f.Fuzz(func(t *testing.T, a, b string) {
		outer, err1 := Parse(a)
		inner, err2 := Parse(b)
		if err1 != nil || err2 != nil {
			return
		}
		for _, s := range []Scope{outer, inner} {
			if _, _, ok := Witness(s, s); !Contains(s, s) || ok {
				t.Fatalf("Contains(%v, %v) is false", s, s)
			}
		}
		// Instances use the words of both patterns, extended and fresh.
		var pool []string
		for _, r := range []string{outer.Resource(), inner.Resource()} {
			for _, seg := range strings.Split(r, "/") {
				seg = strings.TrimSuffix(seg, "*")
				for _, w := range []string{seg, seg + "x", seg + "y"} {
					if validSegment(w) {
						pool = append(pool, w)
					}
				}
			}
		}
		pool = append(pool, "x", "y")
		tail := strings.Map(func(r rune) rune {
			if r == '+' || r == '*' {
				return -1
			}
			return r
		}, outer.Resource()+inner.Resource()) + "xy/"
		h := fnv.New64a()
		h.Write([]byte(a + "\x00" + b))
		rng := rand.New(rand.NewPCG(h.Sum64(), 0))
		checkPair(t, rng, outer, inner, 10, pool, tail)
	})
}
