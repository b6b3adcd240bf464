package token

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	jjson "github.com/go-jose/go-jose/v4/json"
)

// The one way this package reads JSON from outside
//
// The protected header and the claims of a credential, and the members of
// a JWK Set, are all read by strictDecode, with go-jose's JSON package
// (github.com/go-jose/go-jose/v4/json), the package go-jose itself reads
// them with. Unlike encoding/json, it matches member names to struct
// fields case-sensitively and refuses a duplicate member name. On top of
// that, strictDecode refuses what would let two readers disagree on a
// name:
//
//   - two members of one object, at any depth, whose names are equal or
//     differ only in case ("aud" and "AUD"; case is Unicode simple case
//     folding, the folding encoding/json matches names with, so "sub"
//     and "ſub" or "kid" and "\u212aid" differ only in case too);
//   - a member whose name differs only in case from a member of the Go
//     type it is decoded into ("Aud" where "aud" is read).
//
// These rules only refuse: whatever strictDecode accepts, jjson.Unmarshal
// reads the same way, and so does encoding/json for the members of the Go
// type. They take a second, untyped reading of the text (go-jose's decoder
// into an interface{}), every time: there is no shortcut for texts that
// look like what Mint writes.

// errStrictJSON is the one error of strictDecode. Callers wrap it in their
// own sentinel; it never quotes the input.
var errStrictJSON = errors.New("not a JSON object read by the strict rules")

// strictDecode decodes the JSON object b into v, a pointer to a struct,
// with go-jose's JSON package and the rules above, and returns the
// object's members as go-jose's JSON package reads them into an
// interface{} (numbers as jjson.Number). b must be exactly one JSON object
// (null, arrays and scalars are refused), with only whitespace around it.
func strictDecode(b []byte, v any) (map[string]any, error) {
	// UTF-8 only: encoding/json would replace each invalid byte with
	// U+FFFD, which decoders in other languages do not copy exactly (one
	// U+FFFD per broken sequence), and the engine never writes such bytes.
	if !utf8.Valid(b) {
		return nil, errStrictJSON
	}
	// The typed reading: the whole input must be one valid JSON value, and
	// every member that v has is read by its exact name.
	if err := jjson.Unmarshal(b, v); err != nil {
		return nil, errStrictJSON
	}
	return untypedStrict(b, v)
}

// untypedStrict is the second half of strictDecode, for a b that
// jjson.Unmarshal has read into v.
func untypedStrict(b []byte, v any) (map[string]any, error) {
	// The untyped reading: go-jose's decoder refuses a duplicate name in
	// every object, at any depth; numbers are kept as written, so that
	// this second reading never refuses a number the first one skipped.
	dec := jjson.NewDecoder(bytes.NewReader(b))
	dec.SetNumberType(jjson.UnmarshalJSONNumber)
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, errStrictJSON
	}
	obj, ok := tree.(map[string]any)
	if !ok {
		return nil, errStrictJSON
	}
	if !namesStrict(obj, reflect.TypeOf(v)) {
		return nil, errStrictJSON
	}
	return obj, nil
}

// namesStrict reports whether no object in the JSON value v (as decoded
// into an interface{}) has two member names equal under strings.EqualFold,
// and whether no member of an object decoded into a struct of type t
// (followed through pointers, slices and struct fields) is equal under
// strings.EqualFold to one of that struct's member names but spelled
// differently.
func namesStrict(v any, t reflect.Type) bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch x := v.(type) {
	case map[string]any:
		var known *structMembers
		if t != nil && t.Kind() == reflect.Struct {
			known = membersOf(t)
		}
		if !foldDistinct(x) {
			return false
		}
		for name, val := range x {
			var ft reflect.Type
			if known != nil {
				m, exact := known.byName[name]
				if !exact {
					for _, k := range known.names {
						if strings.EqualFold(k, name) {
							return false // a case variant of a member of t
						}
					}
				}
				ft = m
			}
			if !namesStrict(val, ft) {
				return false
			}
		}
	case []any:
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for _, e := range x {
			if !namesStrict(e, et) {
				return false
			}
		}
	}
	return true
}

// foldDistinct reports whether no two names of obj are equal under
// strings.EqualFold.
func foldDistinct(obj map[string]any) bool {
	if len(obj) <= 16 {
		// Few names (the claims Mint writes have 15): compare each pair,
		// without allocating.
		var names [16]string
		n := 0
		for name := range obj {
			for _, seen := range names[:n] {
				if strings.EqualFold(seen, name) {
					return false
				}
			}
			names[n] = name
			n++
		}
		return true
	}
	folded := make(map[string]struct{}, len(obj))
	for name := range obj {
		key := foldName(name)
		if _, dup := folded[key]; dup {
			return false
		}
		folded[key] = struct{}{}
	}
	return true
}

// structMembers are the JSON members of a struct type.
type structMembers struct {
	byName map[string]reflect.Type // exact name -> field type
	names  []string
}

// members caches membersOf.
var members sync.Map // reflect.Type -> *structMembers

// membersOf returns the JSON members of struct type t, as go-jose's JSON
// package names them: the json tag's name, or the field name.
func membersOf(t reflect.Type) *structMembers {
	if m, ok := members.Load(t); ok {
		return m.(*structMembers)
	}
	m := &structMembers{byName: make(map[string]reflect.Type, t.NumField())}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		m.byName[name] = f.Type
		m.names = append(m.names, name)
	}
	members.Store(t, m)
	return m
}

// foldName maps s to a key that two names share if and only if
// strings.EqualFold says they are equal: each rune is replaced by the
// smallest rune of its Unicode simple case folding orbit (so 'k', 'K' and
// the Kelvin sign all become 'K').
func foldName(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// The smallest rune of an ASCII letter's orbit is its upper case.
		for i := 0; i < len(s); i++ {
			if 'a' <= s[i] && s[i] <= 'z' {
				return strings.ToUpper(s)
			}
		}
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}
