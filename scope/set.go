package scope

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Set is a list of distinct scopes. A request is allowed by a Set when it is
// allowed by at least one member. The zero Set (nil) is empty and allows
// nothing.
type Set []Scope

// ErrTooManyScopes is returned (wrapped) by ParseSet and
// ParseSpaceSeparated for more than MaxSetSize scopes.
var ErrTooManyScopes = errors.New("too many scopes")

// SetError reports which element of a set failed to parse.
type SetError struct {
	Index int   // index of the element in the input, counting from 0
	Err   error // the element's error, a *ParseError
}

// Error returns a message such as
//
//	scopes[2]: scope "read:a//b": empty path segment at offset 7
func (e *SetError) Error() string { return fmt.Sprintf("scopes[%d]: %v", e.Index, e.Err) }

// Unwrap returns the element's error, so that errors.As finds the
// *ParseError.
func (e *SetError) Unwrap() error { return e.Err }

// ParseSet parses each element of scopes. Elements whose canonical forms are
// equal are kept once, at the position of their first occurrence; the order
// is otherwise preserved. An empty or nil input gives an empty Set. More than
// MaxSetSize elements is an error wrapping ErrTooManyScopes; an invalid (or
// empty) element gives a *SetError.
func ParseSet(scopes []string) (Set, error) {
	if len(scopes) > MaxSetSize {
		return nil, fmt.Errorf("%w: %d given, the maximum is %d", ErrTooManyScopes, len(scopes), MaxSetSize)
	}
	set := make(Set, 0, len(scopes))
	for i, s := range scopes {
		sc, err := Parse(s)
		if err != nil {
			return nil, &SetError{Index: i, Err: err}
		}
		if !slices.Contains(set, sc) {
			set = append(set, sc)
		}
	}
	return set, nil
}

// ParseSpaceSeparated parses a space-separated list of scopes, the form of
// a token's "scope" claim, and is the inverse of Set.String. The scopes must
// be separated by exactly one space; the empty string gives an empty Set.
// Errors are as for ParseSet, with indexes counting the space-separated
// elements.
func ParseSpaceSeparated(claim string) (Set, error) {
	if claim == "" {
		return Set{}, nil
	}
	if n := strings.Count(claim, " ") + 1; n > MaxSetSize {
		return nil, fmt.Errorf("%w: %d given, the maximum is %d", ErrTooManyScopes, n, MaxSetSize)
	}
	return ParseSet(strings.Split(claim, " "))
}

// Strings returns the canonical forms of the members of s.
func (s Set) Strings() []string {
	out := make([]string, len(s))
	for i, sc := range s {
		out[i] = sc.String()
	}
	return out
}

// String returns the canonical forms of the members of s separated by
// single spaces, the form of a token's "scope" claim.
func (s Set) String() string { return strings.Join(s.Strings(), " ") }

// Match reports whether some member of s allows the concrete request
// (action, resource).
func (s Set) Match(action, resource string) bool {
	for _, sc := range s {
		if sc.Match(action, resource) {
			return true
		}
	}
	return false
}

// Uncovered returns the first member of inner that is not contained in any
// single member of outer, and true; it returns false when every member of
// inner is covered.
func (outer Set) Uncovered(inner Set) (Scope, bool) {
	for _, in := range inner {
		if !slices.ContainsFunc(outer, func(out Scope) bool { return Contains(out, in) }) {
			return in, true
		}
	}
	return Scope{}, false
}

// SetContains reports whether each member of inner is contained in some
// member of outer. This never grants too much, but it is conservative: a
// member covered only by the union of several members of outer counts as
// not contained.
func SetContains(outer, inner Set) bool {
	_, uncovered := outer.Uncovered(inner)
	return !uncovered
}

// Rejoin repairs a list of scopes that was split on every comma, as Vault
// does with a comma-separated string such as
// "read,list:secrets/web/*,write:tmp/*". An action list's commas split a
// scope apart ("read", "list:secrets/web/*"); since a resource never holds
// a comma and an action never holds a colon, every piece without a colon is
// the head of the next piece's action list, and is joined back onto it.
// Pieces are trimmed of surrounding spaces; a trailing piece without a
// colon is kept as it is, for Parse to refuse.
func Rejoin(pieces []string) []string {
	out := make([]string, 0, len(pieces))
	pending := ""
	for _, p := range pieces {
		p = strings.TrimSpace(p)
		if pending != "" {
			p = pending + "," + p
			pending = ""
		}
		if p != "" && !strings.Contains(p, ":") {
			pending = p
			continue
		}
		out = append(out, p)
	}
	if pending != "" {
		out = append(out, pending)
	}
	return out
}
