// Package scope parses, matches and compares the scopes that an agent
// session is granted.
//
// # Grammar
//
// A scope has the form ACTIONS:RESOURCE.
//
// ACTIONS is one action or a comma-separated list of actions. An action is a
// non-empty run of lower-case letters, digits, '_', '.' and '-', or the
// single character '*', which stands for every action. Upper-case letters,
// an empty list and an empty element (as in "read,,list") are errors.
//
// RESOURCE is a '/'-separated path written with Vault's ACL glob rules:
//
//   - A segment is a non-empty run of letters, digits and "._~@=-". The
//     segments "." and ".." are not allowed, and neither are empty segments,
//     so a resource cannot start or end with '/' or contain "//".
//   - The segment "+" matches exactly one whole segment. '+' cannot appear
//     inside a segment ("a+" is an error), and "+*" is an error too.
//   - A '*' may appear only as the very last character of the resource. It
//     matches any suffix, including further '/'-separated segments. It may
//     be a whole segment ("secrets/web/*") or end a partial one
//     ("secrets/we*" matches "secrets/we", "secrets/web" and
//     "secrets/wex/y"). A partial segment before '*' is a prefix, so ".*"
//     is allowed and matches "..x" or ".git", never "." or "..".
//   - The resource "*" alone matches every resource.
//
// Note that "secrets/web/*" does not match "secrets/web" itself: the '*'
// has to match at least one character because a concrete resource cannot
// end with '/'.
//
// A scope is at most MaxLength bytes long; a set holds at most MaxSetSize
// scopes.
//
// # Requests
//
// A request is a concrete action (not "*") and a concrete resource: a
// non-empty list of valid segments with no '+' and no '*'. Scope.Match
// reports whether a scope allows a request; it returns false, never panics,
// for a malformed request.
//
// # Containment
//
// Contains(outer, inner) reports whether every request that inner allows is
// also allowed by outer. The answer is exact: the resource part of a pattern
// is a product of per-segment sets (a literal, "any segment", or "any
// segment with prefix p") followed, when the pattern ends in '*', by any
// number of further segments, so containment is decided segment by segment
// together with a check of the possible numbers of segments. When inner is
// not contained, Witness returns a request that inner allows and outer
// denies.
//
// A Set is contained in another Set when each of its members is contained
// in some single member of the other. This is conservative: a scope that is
// covered only by the union of several outer scopes counts as not covered.
package scope

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxLength is the maximum length of a scope string, in bytes.
const MaxLength = 256

// MaxSetSize is the maximum number of scopes in a Set.
const MaxSetSize = 64

// Scope is a parsed ACTIONS:RESOURCE pattern.
//
// Scope values are immutable and safe to copy and to use from several
// goroutines. They are comparable with ==: two scopes parsed from valid
// strings are equal exactly when their canonical forms (String) are equal,
// and, since no two canonical patterns allow the same requests, exactly when
// each contains the other.
// The zero Scope allows nothing; Parse never returns it without an error.
type Scope struct {
	str   string // canonical form, ACTIONS:RESOURCE
	colon int    // index of ':' in str
	nseg  int    // number of '/'-separated segments in the resource
	star  bool   // the resource ends with '*'
}

// ParseError describes why a string is not a valid scope.
type ParseError struct {
	Input  string // the string that was parsed
	Offset int    // byte offset in Input of the offending character; len(Input) for "end of input"
	Reason string // what is wrong, e.g. "empty path segment"
}

// inputEchoLimit is how much of an over-long input an error message quotes.
const inputEchoLimit = 48

// Error returns a message such as
//
//	scope "read:a//b": empty path segment at offset 7
//
// Inputs longer than MaxLength are truncated in the message.
func (e *ParseError) Error() string {
	in := fmt.Sprintf("%q", e.Input)
	if len(e.Input) > MaxLength {
		in = fmt.Sprintf("%q... (%d bytes)", e.Input[:inputEchoLimit], len(e.Input))
	}
	where := fmt.Sprintf("at offset %d", e.Offset)
	if e.Offset >= len(e.Input) {
		where += " (end of input)"
	}
	return fmt.Sprintf("scope %s: %s %s", in, e.Reason, where)
}

func parseErr(input string, offset int, format string, args ...any) error {
	return &ParseError{Input: input, Offset: offset, Reason: fmt.Sprintf(format, args...)}
}

// Parse parses a scope of the form ACTIONS:RESOURCE. The error, if any, is a
// *ParseError.
func Parse(s string) (Scope, error) {
	switch {
	case len(s) > MaxLength:
		return Scope{}, parseErr(s, MaxLength, "longer than %d bytes, the excess starts", MaxLength)
	case s == "":
		return Scope{}, parseErr(s, 0, "empty scope")
	}
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return Scope{}, parseErr(s, len(s), "missing ':' between actions and resource")
	}
	actions, err := parseActions(s, colon)
	if err != nil {
		return Scope{}, err
	}
	nseg, star, err := parseResource(s, colon+1)
	if err != nil {
		return Scope{}, err
	}
	str := s
	if actions != s[:colon] {
		str = actions + s[colon:]
	}
	return Scope{str: str, colon: len(actions), nseg: nseg, star: star}, nil
}

// MustParse is like Parse but panics if s is not a valid scope. It is meant
// for tests and examples.
func MustParse(s string) Scope {
	sc, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sc
}

// parseActions checks s[:end] and returns its canonical form: the actions
// sorted and deduplicated, or "*" when any of them is "*".
func parseActions(s string, end int) (string, error) {
	if end == 0 {
		return "", parseErr(s, 0, "empty action list before ':'")
	}
	all, sorted := false, true
	prev, start := "", 0
	for i := 0; i <= end; i++ {
		if i == end || s[i] == ',' {
			a := s[start:i]
			if a == "" {
				return "", parseErr(s, i, "empty action in list")
			}
			all = all || a == "*"
			sorted = sorted && (start == 0 || a > prev)
			prev, start = a, i+1
			continue
		}
		switch c := s[i]; {
		case isActionByte(c):
		case c == '*':
			if i != start || (i+1 != end && s[i+1] != ',') {
				return "", parseErr(s, i, "'*' must be a whole action (it stands for all actions)")
			}
		case 'A' <= c && c <= 'Z':
			return "", parseErr(s, i, "upper-case letter %q in action (actions are lower-case)", rune(c))
		default:
			return "", parseErr(s, i, "invalid character %s in action (allowed: a-z 0-9 _ . -)", describeChar(s, i))
		}
	}
	switch {
	case all:
		return "*", nil
	case sorted:
		return s[:end], nil
	}
	list := strings.Split(s[:end], ",")
	slices.Sort(list)
	return strings.Join(slices.Compact(list), ","), nil
}

// parseResource checks the resource s[start:] and returns its number of
// segments and whether it ends with '*'.
func parseResource(s string, start int) (nseg int, star bool, err error) {
	if start == len(s) {
		return 0, false, parseErr(s, start, "empty resource after ':'")
	}
	nseg, segStart := 1, start
	for i := start; i < len(s); i++ {
		switch c := s[i]; {
		case c == '/':
			if err := checkSegment(s, segStart, i); err != nil {
				return 0, false, err
			}
			nseg, segStart = nseg+1, i+1
		case c == '*':
			if i != len(s)-1 {
				return 0, false, parseErr(s, i, "'*' is only allowed as the last character of the resource")
			}
			star = true
		case c == '+':
			next := byte('/')
			if i+1 < len(s) {
				next = s[i+1]
			}
			if i == segStart && next == '*' {
				return 0, false, parseErr(s, i, `"+*" is not allowed: '+' must be a whole path segment (use "*" to match any suffix)`)
			}
			if i != segStart || next != '/' {
				return 0, false, parseErr(s, i, "'+' must be a whole path segment")
			}
		case isSegmentByte(c):
		default:
			return 0, false, parseErr(s, i, "invalid character %s in resource (allowed: letters, digits, ._~@=- and / + *)", describeChar(s, i))
		}
	}
	if !star {
		if err := checkSegment(s, segStart, len(s)); err != nil {
			return 0, false, err
		}
	}
	return nseg, star, nil
}

// checkSegment reports an error for an empty, "." or ".." segment s[from:to]
// that is not followed by '*'.
func checkSegment(s string, from, to int) error {
	switch seg := s[from:to]; seg {
	case "":
		return parseErr(s, to, "empty path segment")
	case ".", "..":
		return parseErr(s, from, "path segment %q is not allowed", seg)
	}
	return nil
}

// describeChar quotes the character at s[i] for an error message.
func describeChar(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return fmt.Sprintf("%q", r)
}

func isActionByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

func isSegmentByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("._~@=-", c) >= 0
}

// String returns the canonical form of s: its actions sorted and
// deduplicated ("*" alone if any action was "*"), a ':' and the resource.
// Parse(s.String()) returns a Scope equal to s.
func (s Scope) String() string { return s.str }

// actions returns the canonical, comma-separated action list.
func (s Scope) actions() string { return s.str[:s.colon] }

// Resource returns the resource pattern of s.
func (s Scope) Resource() string {
	if s.str == "" {
		return ""
	}
	return s.str[s.colon+1:]
}

// Actions returns a new, sorted slice of the actions of s, or ["*"] when s
// allows all actions.
func (s Scope) Actions() []string {
	if s.str == "" {
		return nil
	}
	return strings.Split(s.actions(), ",")
}

// AllowsAllActions reports whether the action list of s is "*".
func (s Scope) AllowsAllActions() bool { return s.actions() == "*" }

// Match reports whether s allows the concrete request (action, resource).
// It returns false when action is not a concrete action (for instance "*"
// or "Read") or resource is not a concrete resource (for instance one that
// contains '+', '*', an empty segment or a ".." segment).
func (s Scope) Match(action, resource string) bool {
	return validAction(action) && validResource(resource) &&
		s.allowsAction(action) && s.matchResource(resource)
}

func (s Scope) allowsAction(action string) bool {
	list := s.actions()
	if list == "*" {
		return true
	}
	for list != "" {
		var a string
		a, list, _ = strings.Cut(list, ",")
		if a == action {
			return true
		}
	}
	return false
}

// matchResource matches a valid concrete resource r against the pattern.
func (s Scope) matchResource(r string) bool {
	p := s.Resource()
	for {
		pseg, prest, pmore := strings.Cut(p, "/")
		rseg, rrest, rmore := strings.Cut(r, "/")
		if prefix, ok := strings.CutSuffix(pseg, "*"); ok {
			return strings.HasPrefix(rseg, prefix)
		}
		if pseg != "+" && pseg != rseg {
			return false
		}
		if !pmore || !rmore {
			return pmore == rmore
		}
		p, r = prest, rrest
	}
}

// validAction reports whether a is a concrete action.
func validAction(a string) bool {
	if a == "" {
		return false
	}
	for i := 0; i < len(a); i++ {
		if !isActionByte(a[i]) {
			return false
		}
	}
	return true
}

// validResource reports whether r is a concrete resource.
func validResource(r string) bool {
	for {
		seg, rest, more := strings.Cut(r, "/")
		if !validSegment(seg) {
			return false
		}
		if !more {
			return true
		}
		r = rest
	}
}

// validSegment reports whether seg is a segment of a concrete resource.
func validSegment(seg string) bool {
	if seg == "" || seg == "." || seg == ".." {
		return false
	}
	for i := 0; i < len(seg); i++ {
		if !isSegmentByte(seg[i]) {
			return false
		}
	}
	return true
}

// ValidRequest checks that (action, resource) is a concrete request: an
// action of [a-z0-9_.-] (not "*"), and a resource of non-empty segments
// of letters, digits and "._~@=-", none "." or "..", with no "+" or "*".
// Its error names the field ("action: ..." or "resource: ...").
func ValidRequest(action, resource string) error {
	if len(action) > MaxLength || !validAction(action) {
		return &RequestError{Field: "action", Reason: fmt.Sprintf("%q is not a concrete action: use lower-case letters, digits, '_', '.' or '-'", Clip(action))}
	}
	if len(resource) > MaxLength || !validResource(resource) {
		return &RequestError{Field: "resource", Reason: fmt.Sprintf("%q is not a concrete resource: use '/'-separated segments of letters, digits and '._~@=-', no empty, '.' or '..' segments, no '+' or '*'", Clip(resource))}
	}
	return nil
}

// RequestError says which part of a request (Field: "action" or
// "resource") is not concrete, and why.
type RequestError struct {
	Field  string
	Reason string
}

func (e *RequestError) Error() string { return e.Field + ": " + e.Reason }

// Clip shortens input quoted back in an error message to at most 64
// bytes, cut at a character boundary and marked "...".
func Clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return "..."
}
