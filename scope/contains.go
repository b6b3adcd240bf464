package scope

import (
	"strconv"
	"strings"
)

// Contains reports whether outer allows every request that inner allows.
// The answer is exact (see the package documentation). Every scope contains
// itself and the zero Scope; the zero Scope contains only the zero Scope.
// Contains does not allocate.
func Contains(outer, inner Scope) bool {
	if inner.str == "" {
		return true
	}
	if !actionsContain(outer.actions(), inner.actions()) {
		return false
	}
	ok, _, _ := resourceCheck(outer, inner)
	return ok
}

// Witness explains a negative answer of Contains. When inner is not
// contained in outer it returns a concrete request, (action, resource), that
// inner allows and outer does not, and ok=true. When inner is contained in
// outer it returns ok=false. Witness is deterministic.
func Witness(outer, inner Scope) (action, resource string, ok bool) {
	if inner.str == "" {
		return "", "", false
	}
	actionsOK := actionsContain(outer.actions(), inner.actions())
	resourceOK, length, bad := resourceCheck(outer, inner)
	if actionsOK && resourceOK {
		return "", "", false
	}
	if actionsOK {
		action = firstAction(inner.actions())
	} else {
		action = actionOutside(outer.actions(), inner.actions())
	}
	if resourceOK {
		length, bad = inner.nseg, -1
	}
	return action, instance(outer, inner, length, bad), true
}

// actionsContain reports whether the canonical action list outer includes
// every action of the canonical action list inner.
func actionsContain(outer, inner string) bool {
	if outer == "*" {
		return true
	}
	if inner == "*" {
		return false
	}
	// Both lists are sorted: walk them together.
	for inner != "" {
		var a string
		a, inner, _ = strings.Cut(inner, ",")
		for {
			if outer == "" {
				return false
			}
			var b string
			b, outer, _ = strings.Cut(outer, ",")
			if b == a {
				break
			}
			if b > a {
				return false
			}
		}
	}
	return true
}

// hasAction reports whether the canonical action list includes a.
func hasAction(list, a string) bool {
	for list != "" {
		var b string
		b, list, _ = strings.Cut(list, ",")
		if b == a || b == "*" {
			return true
		}
	}
	return false
}

// firstAction returns a concrete action from a canonical action list.
func firstAction(list string) string {
	if list == "*" {
		return "x"
	}
	a, _, _ := strings.Cut(list, ",")
	return a
}

// actionOutside returns a concrete action in inner but not in outer; it
// requires !actionsContain(outer, inner).
func actionOutside(outer, inner string) string {
	if inner != "*" {
		for list := inner; list != ""; {
			var a string
			a, list, _ = strings.Cut(list, ",")
			if !hasAction(outer, a) {
				return a
			}
		}
	}
	// inner allows all actions and outer lists finitely many: invent one.
	for i := 0; ; i++ {
		a := "x"
		if i > 0 {
			a += strconv.Itoa(i)
		}
		if !hasAction(outer, a) {
			return a
		}
	}
}

// resourceCheck decides whether the resources matched by inner are all
// matched by outer.
//
// A resource pattern with n segments matches the concrete resources whose
// segment i (for i < n) lies in the set of pattern segment i, and that have
// exactly n segments, or, when the pattern ends in '*', n or more. The
// segment sets are a single literal, all segments ("+"), or all segments
// with a prefix p (the last segment "p*"; "*" alone is the prefix "").
// Because these sets are never empty, inner ⊆ outer exactly when every
// segment count of inner is one of outer and, position by position, inner's
// segment set is a subset of outer's.
//
// When inner is not contained, resourceCheck returns the segment count of a
// counterexample and the position whose segment must be chosen outside
// outer's set there, or -1 if the segment count alone is the reason.
func resourceCheck(outer, inner Scope) (ok bool, length, bad int) {
	nI, nO := inner.nseg, outer.nseg
	switch {
	case inner.star && !outer.star:
		return false, max(nI, nO+1), -1
	case nI < nO:
		return false, nI, -1
	case !inner.star && !outer.star && nI != nO:
		return false, nI, -1
	}
	// Now nO <= nI, and the positions beyond nO are unconstrained by outer.
	in, out := inner.Resource(), outer.Resource()
	for i := 0; i < nO; i++ {
		var iseg, oseg string
		iseg, in, _ = strings.Cut(in, "/")
		oseg, out, _ = strings.Cut(out, "/")
		if !segmentSubset(iseg, oseg) {
			return false, nI, i
		}
	}
	return true, 0, -1
}

// segmentSet returns the set of concrete segments that the pattern segment
// seg matches: the literal seg (lit=true), or all segments with prefix v.
func segmentSet(seg string) (lit bool, v string) {
	if seg == "+" {
		return false, ""
	}
	if prefix, ok := strings.CutSuffix(seg, "*"); ok {
		return false, prefix
	}
	return true, seg
}

// segmentSubset reports whether every segment matched by the pattern
// segment in is matched by the pattern segment out.
func segmentSubset(in, out string) bool {
	inLit, iv := segmentSet(in)
	outLit, ov := segmentSet(out)
	if outLit {
		// A prefix set is infinite, so only the same literal fits in a literal.
		return inLit && iv == ov
	}
	// {iv} ⊆ prefix(ov) iff iv has prefix ov. prefix(iv) ⊆ prefix(ov) iff iv
	// has prefix ov: otherwise iv+"x" or iv+"y" escapes.
	return strings.HasPrefix(iv, ov)
}

// sampleSegment returns a concrete segment matched by the pattern segment.
func sampleSegment(seg string) string {
	lit, v := segmentSet(seg)
	if lit || validSegment(v) {
		return v
	}
	return v + "x"
}

// segmentOutside returns a concrete segment matched by the pattern segment
// in but not by out; it requires !segmentSubset(in, out).
func segmentOutside(in, out string) string {
	inLit, iv := segmentSet(in)
	if inLit {
		return iv
	}
	outLit, ov := segmentSet(out)
	// iv itself does not have prefix ov (or the sets would be nested), and
	// at most one of iv+"x", iv+"y" can equal ov or have prefix ov.
	for _, c := range []string{iv, iv + "x", iv + "y"} {
		if validSegment(c) && (outLit && c != ov || !outLit && !strings.HasPrefix(c, ov)) {
			return c
		}
	}
	panic("scope: segmentOutside called on nested segments")
}

// instance builds a concrete resource matched by inner with length
// segments; if bad >= 0, segment bad is chosen outside outer's set there.
func instance(outer, inner Scope, length, bad int) string {
	innerSegs := strings.Split(inner.Resource(), "/")
	var outerSegs []string
	if bad >= 0 {
		outerSegs = strings.Split(outer.Resource(), "/")
	}
	parts := make([]string, length)
	for j := range parts {
		switch {
		case j == bad:
			parts[j] = segmentOutside(innerSegs[j], outerSegs[j])
		case j < len(innerSegs):
			parts[j] = sampleSegment(innerSegs[j])
		default:
			parts[j] = "x"
		}
	}
	return strings.Join(parts, "/")
}
