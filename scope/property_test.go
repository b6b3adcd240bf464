package scope

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// This file holds an independent reference implementation of the grammar
// and of Match, built on regular expressions, and property tests that check
// Contains and Witness against it.

const (
	refSeg       = `[A-Za-z0-9._~@=-]+`
	refPrefixSeg = `[A-Za-z0-9._~@=-]*`
	refAction    = `[a-z0-9_.-]+`
)

var (
	refActionRE   = regexp.MustCompile(`^` + refAction + `$`)
	refResourceRE = regexp.MustCompile(`^` + refSeg + `(/` + refSeg + `)*$`)
	refScopeRE    = regexp.MustCompile(`^(\*|` + refAction + `)(,(\*|` + refAction + `))*:` +
		`((` + refSeg + `|\+)/)*(` + refSeg + `|\+|` + refPrefixSeg + `\*)$`)
	refPatterns sync.Map // resource pattern -> *regexp.Regexp
)

// refValidResource reports whether r is a concrete resource.
func refValidResource(r string) bool {
	return refResourceRE.MatchString(r) && !refHasDotSegment(r)
}

func refHasDotSegment(r string) bool {
	return slices.ContainsFunc(strings.Split(r, "/"), func(seg string) bool { return seg == "." || seg == ".." })
}

// refValidScope reports whether s is a valid scope string.
func refValidScope(s string) bool {
	_, resource, _ := strings.Cut(s, ":")
	return len(s) <= MaxLength && refScopeRE.MatchString(s) && !refHasDotSegment(resource)
}

// refMatch is Match written with Vault's glob rules as a regular expression:
// '+' is [^/]+ and a final '*' is .*.
func refMatch(s Scope, action, resource string) bool {
	if !refActionRE.MatchString(action) || !refValidResource(resource) {
		return false
	}
	if actions := s.Actions(); !slices.Contains(actions, "*") && !slices.Contains(actions, action) {
		return false
	}
	pattern := s.Resource()
	re, ok := refPatterns.Load(pattern)
	if !ok {
		var expr strings.Builder
		expr.WriteString("^")
		for _, c := range pattern {
			switch c {
			case '+':
				expr.WriteString(`[^/]+`)
			case '*':
				expr.WriteString(`.*`)
			default:
				expr.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		expr.WriteString("$")
		re, _ = refPatterns.LoadOrStore(pattern, regexp.MustCompile(expr.String()))
	}
	return re.(*regexp.Regexp).MatchString(resource)
}

// Generators over a small alphabet, so that random pairs of scopes often
// overlap or nest.
var (
	genSegments = []string{"a", "b", "ab", "x", "+"}
	genPrefixes = []string{"", "", "a", "b", "ab", "x", "."}
	genActions  = []string{"read", "write", "list"}
	// instPool replaces '+' in instances: the literals, words that extend
	// them, and fresh words.
	instPool = []string{"a", "b", "ab", "x", "y", "aa", "aba", "abx", "ba", "xa", "xy", "ya", ".a", "..b", "a.", "x~y"}
	// tailChars expand a final '*'.
	tailChars = "aabxy./"
)

func pick[T any](rng *rand.Rand, list []T) T { return list[rng.IntN(len(list))] }

func genActionList(rng *rand.Rand) string {
	if rng.IntN(6) == 0 {
		return pick(rng, []string{"*", "*", "read,*"})
	}
	list := make([]string, 1+rng.IntN(3))
	for i := range list {
		list[i] = pick(rng, genActions)
	}
	return strings.Join(list, ",")
}

func genScope(rng *rand.Rand) Scope {
	segs := make([]string, 1+rng.IntN(3))
	for i := range segs {
		segs[i] = pick(rng, genSegments)
	}
	if rng.IntN(2) == 0 {
		segs[len(segs)-1] = pick(rng, genPrefixes) + "*"
	}
	return MustParse(genActionList(rng) + ":" + strings.Join(segs, "/"))
}

// genNear returns a scope obtained from s by widening (and sometimes
// narrowing) it a little, so that containment is often, but not always, true.
func genNear(rng *rand.Rand, s Scope) Scope {
	actions := s.Actions()
	switch rng.IntN(6) {
	case 0:
		actions = []string{"*"}
	case 1:
		actions = append(actions, pick(rng, genActions))
	case 2:
		if len(actions) > 1 {
			actions = actions[1:]
		} else {
			actions = []string{pick(rng, genActions)}
		}
	}
	segs := strings.Split(s.Resource(), "/")
	for n := 1 + rng.IntN(2); n > 0; n-- {
		i := rng.IntN(len(segs))
		switch rng.IntN(5) {
		case 0, 1: // widen one segment
			if !strings.HasSuffix(segs[i], "*") {
				segs[i] = "+"
			}
		case 2, 3: // cut the resource into a prefix pattern
			seg := strings.TrimSuffix(segs[i], "*")
			if seg == "+" {
				seg = ""
			}
			segs = append(segs[:i], seg[:rng.IntN(len(seg)+1)]+"*")
		case 4: // narrow one segment
			if !strings.HasSuffix(segs[i], "*") {
				segs[i] = pick(rng, genSegments[:4])
			} else if len(segs) < 4 {
				segs = append(segs[:i], pick(rng, genSegments), "*")
			}
		}
	}
	return MustParse(strings.Join(actions, ",") + ":" + strings.Join(segs, "/"))
}

// genPair returns a random (outer, inner) pair.
func genPair(rng *rand.Rand) (outer, inner Scope) {
	inner = genScope(rng)
	switch rng.IntN(4) {
	case 0:
		outer = genScope(rng)
	case 1:
		outer = inner
		inner = genNear(rng, inner)
	default:
		outer = genNear(rng, inner)
	}
	return outer, inner
}

// instantiate returns a random concrete request allowed by s; ok is false
// if it failed to find one (a '*' expansion can be invalid and is retried).
func instantiate(rng *rand.Rand, s Scope, pool []string, tail string) (action, resource string, ok bool) {
	action = pick(rng, s.Actions())
	if action == "*" {
		action = pick(rng, []string{"read", "write", "list", "x", "delete"})
	}
	segs := strings.Split(s.Resource(), "/")
	for range 50 {
		var b strings.Builder
		for i, seg := range segs {
			if i > 0 {
				b.WriteByte('/')
			}
			switch {
			case seg == "+":
				b.WriteString(pick(rng, pool))
			case strings.HasSuffix(seg, "*"):
				b.WriteString(seg[:len(seg)-1])
				for k := rng.IntN(5); k > 0; k-- {
					b.WriteByte(tail[rng.IntN(len(tail))])
				}
			default:
				b.WriteString(seg)
			}
		}
		if r := b.String(); refValidResource(r) {
			return action, r, true
		}
	}
	return "", "", false
}

// checkPair checks Contains and Witness on one pair against sampled
// instances of inner; it reports whether the pair is contained.
func checkPair(t *testing.T, rng *rand.Rand, outer, inner Scope, samples int, pool []string, tail string) bool {
	t.Helper()
	contained := Contains(outer, inner)
	action, resource, ok := Witness(outer, inner)
	if ok == contained {
		t.Fatalf("Contains(%v, %v) = %v but Witness ok = %v", outer, inner, contained, ok)
	}
	if !contained {
		checkWitness(t, outer, inner, action, resource)
		return false
	}
	if !Contains(outer, outer) || !Contains(inner, inner) {
		t.Fatalf("Contains is not reflexive on %v or %v", outer, inner)
	}
	if Contains(inner, outer) && inner != outer {
		t.Fatalf("%v and %v contain each other but differ", outer, inner)
	}
	for range samples {
		a, r, ok := instantiate(rng, inner, pool, tail)
		if !ok {
			continue
		}
		if !inner.Match(a, r) || !refMatch(inner, a, r) {
			t.Fatalf("instance %q %q of %v does not match it", a, r, inner)
		}
		if !outer.Match(a, r) || !refMatch(outer, a, r) {
			t.Fatalf("Contains(%v, %v) = true, but %q %q matches only inner", outer, inner, a, r)
		}
	}
	return true
}

func TestPropertyContainsSampled(t *testing.T) {
	rng := rand.New(rand.NewPCG(20240611, 1))
	const pairs = 6000
	yes := 0
	for range pairs {
		outer, inner := genPair(rng)
		if checkPair(t, rng, outer, inner, 20, instPool, tailChars) {
			yes++
		}
	}
	t.Logf("%d of %d pairs contained", yes, pairs)
	if yes < pairs/5 || yes > pairs*4/5 {
		t.Errorf("unbalanced generator: %d of %d pairs contained", yes, pairs)
	}
}

// Bounded universe of the brute-force oracle: segments over {a, b, x, y}
// (the letters of the literals and a fresh one) of up to two letters, and
// the three-letter extensions of "ab"; a final '*' adds up to two letters
// and up to two further segments (the second one "x" or "y").
var (
	oracleSegments = append(words("abxy", 1, 2), "aba", "abb", "abx", "aby")
	oracleSuffixes = words("abxy", 0, 2)
	oracleTails    = []string{"a", "b", "ab", "x", "y"}
)

// words returns all words over letters with lengths in [min, max].
func words(letters string, min, max int) []string {
	out := []string{""}
	all := []string{}
	for n := 0; n <= max; n++ {
		if n >= min {
			all = append(all, out...)
		}
		var next []string
		for _, w := range out {
			for _, c := range letters {
				next = append(next, w+string(c))
			}
		}
		out = next
	}
	return all
}

// forEachInstance calls visit with every concrete resource of the bounded
// universe that the pattern matches, until visit returns false.
func forEachInstance(pattern string, visit func(string) bool) {
	segs := strings.Split(pattern, "/")
	choices := make([][]string, len(segs))
	star := false
	for i, seg := range segs {
		switch {
		case seg == "+":
			choices[i] = oracleSegments
		case strings.HasSuffix(seg, "*"):
			star = true
			for _, s := range oracleSuffixes {
				if w := seg[:len(seg)-1] + s; validSegment(w) {
					choices[i] = append(choices[i], w)
				}
			}
		default:
			choices[i] = []string{seg}
		}
	}
	var rec func(i int, acc string) bool
	rec = func(i int, acc string) bool {
		if i == len(choices) {
			if !visit(acc) {
				return false
			}
			if !star {
				return true
			}
			for _, t1 := range oracleTails {
				if !visit(acc + "/" + t1) {
					return false
				}
				for _, t2 := range oracleTails[3:] {
					if !visit(acc + "/" + t1 + "/" + t2) {
						return false
					}
				}
			}
			return true
		}
		for _, c := range choices[i] {
			next := c
			if i > 0 {
				next = acc + "/" + c
			}
			if !rec(i+1, next) {
				return false
			}
		}
		return true
	}
	rec(0, "")
}

// TestContainsOracle checks every positive answer of Contains against an
// exhaustive enumeration of inner's requests in a bounded universe, and
// every negative answer by its Witness. (A bounded universe can refute
// containment but not prove it, hence the witness for the negative case.)
func TestContainsOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const pairs = 3000
	yes, checked := 0, 0
	for range pairs {
		outer, inner := genPair(rng)
		if !Contains(outer, inner) {
			action, resource, ok := Witness(outer, inner)
			if !ok {
				t.Fatalf("Contains(%v, %v) = false without a witness", outer, inner)
			}
			checkWitness(t, outer, inner, action, resource)
			continue
		}
		yes++
		actions := inner.Actions()
		if actions[0] == "*" {
			actions = []string{"read", "write", "list", "x"}
		}
		first := true
		forEachInstance(inner.Resource(), func(r string) bool {
			checked++
			if !inner.Match(actions[0], r) {
				t.Fatalf("oracle instance %q does not match %v", r, inner)
			}
			// The language is a product of actions and resources: all
			// actions with one resource and one action with all resources
			// cover every failure.
			if first {
				first = false
				for _, a := range actions {
					if !outer.Match(a, r) {
						t.Fatalf("Contains(%v, %v) = true, but %q %q matches only inner", outer, inner, a, r)
					}
				}
			}
			if !outer.Match(actions[0], r) {
				t.Fatalf("Contains(%v, %v) = true, but %q %q matches only inner", outer, inner, actions[0], r)
			}
			return true
		})
	}
	t.Logf("%d of %d pairs contained, %d requests enumerated", yes, pairs, checked)
	if yes < pairs/5 {
		t.Errorf("only %d of %d pairs contained", yes, pairs)
	}
}

// TestMatchAgainstReference compares Match with the regular-expression
// reference on instances and on arbitrary strings.
func TestMatchAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for range 3000 {
		s := genScope(rng)
		for range 10 {
			var action, resource string
			if rng.IntN(2) == 0 {
				var ok bool
				if action, resource, ok = instantiate(rng, s, instPool, tailChars); !ok {
					continue
				}
			} else {
				action = pick(rng, []string{"read", "write", "list", "*", "", "Read"})
				b := make([]byte, rng.IntN(8))
				for i := range b {
					b[i] = "abxy./+*"[rng.IntN(8)]
				}
				resource = string(b)
			}
			if got, want := s.Match(action, resource), refMatch(s, action, resource); got != want {
				t.Fatalf("%v.Match(%q, %q) = %v, reference says %v", s, action, resource, got, want)
			}
		}
	}
}

// TestParseAgainstReference compares Parse with the regular-expression
// grammar on random strings built from the interesting tokens.
func TestParseAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	actionTokens := []string{"read", "read", "list", "r", "*", "", "-", "R", "/", ":"}
	segmentTokens := []string{"a", "a", "b", "X~", "+", "+", "*", "ab*", ".*", ".", "..", "", "a+", "+*", "a*b", " ", ":"}
	valid := 0
	for range 20000 {
		var b strings.Builder
		for i := rng.IntN(3); i >= 0; i-- {
			b.WriteString(pick(rng, actionTokens))
			if i > 0 {
				b.WriteByte(',')
			}
		}
		if rng.IntN(10) > 0 {
			b.WriteByte(':')
		}
		for i := rng.IntN(4); i >= 0; i-- {
			b.WriteString(pick(rng, segmentTokens))
			if i > 0 {
				b.WriteByte('/')
			}
		}
		s := b.String()
		_, err := Parse(s)
		if got, want := err == nil, refValidScope(s); got != want {
			t.Fatalf("Parse(%q) error = %v, reference says valid = %v", s, err, want)
		}
		if err == nil {
			valid++
		}
	}
	t.Logf("%d of 20000 strings valid", valid)
	if valid < 1000 {
		t.Errorf("only %d valid strings", valid)
	}
}
