"""The scope grammar of the agent secrets engine, ported from its Go package
scope and checked against the same conformance vectors.

A scope is ACTIONS:RESOURCE: actions a comma-separated list of [a-z0-9_.-]+ or
"*"; the resource '/'-separated segments of letters, digits and "._~@=-",
where "+" is one whole segment and a final "*" any suffix. Offsets in errors
are byte offsets in the UTF-8 encoding of the input, as in Go.
"""

from __future__ import annotations

MAX_LENGTH = 256
MAX_SET_SIZE = 64

_ACTION = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_.-")
_SEGMENT = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~@=-")


class ScopeError(ValueError):
    """A string that is not a valid scope; offset is the first offending byte."""

    code = "scope"

    def __init__(self, text: str, offset: int, reason: str):
        shown = text if len(text) <= MAX_LENGTH else text[:48] + "..."
        super().__init__(f"scope {shown!r}: {reason} at offset {offset}")
        self.offset = offset


class Scope:
    """A parsed scope: canonical actions and a resource pattern."""

    __slots__ = ("actions", "resource", "nseg", "star")

    def __init__(self, actions: str, resource: str, nseg: int, star: bool):
        self.actions, self.resource, self.nseg, self.star = actions, resource, nseg, star

    def __str__(self) -> str:
        return f"{self.actions}:{self.resource}"

    def __repr__(self) -> str:
        return f"Scope({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scope) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def match(self, action: str, resource: str) -> bool:
        """Whether the scope allows the concrete request (action, resource)."""
        return (
            valid_action(action)
            and valid_resource(resource)
            and (self.actions == "*" or action in self.actions.split(","))
            and self._match_resource(resource)
        )

    def _match_resource(self, r: str) -> bool:
        p = self.resource
        while True:
            pseg, _, prest = p.partition("/")
            rseg, _, rrest = r.partition("/")
            pmore, rmore = "/" in p, "/" in r
            if pseg.endswith("*"):
                return rseg.startswith(pseg[:-1])
            if pseg != "+" and pseg != rseg:
                return False
            if not pmore or not rmore:
                return pmore == rmore
            p, r = prest, rrest


def parse(text: str) -> Scope:
    """Parses ACTIONS:RESOURCE; raises ScopeError."""
    s = text.encode("utf-8", "surrogatepass")
    if len(s) > MAX_LENGTH:
        raise ScopeError(text, MAX_LENGTH, f"longer than {MAX_LENGTH} bytes")
    if not s:
        raise ScopeError(text, 0, "empty scope")
    colon = s.find(b":")
    if colon < 0:
        raise ScopeError(text, len(s), "missing ':' between actions and resource")
    actions = _parse_actions(text, s, colon)
    nseg, star = _parse_resource(text, s, colon + 1)
    return Scope(actions, s[colon + 1 :].decode(), nseg, star)


def _parse_actions(text: str, s: bytes, end: int) -> str:
    if end == 0:
        raise ScopeError(text, 0, "empty action list before ':'")
    every, ordered, prev, start = False, True, b"", 0
    for i in range(end + 1):
        if i == end or s[i] == 0x2C:  # ','
            a = s[start:i]
            if not a:
                raise ScopeError(text, i, "empty action in list")
            every = every or a == b"*"
            ordered = ordered and (start == 0 or a > prev)
            prev, start = a, i + 1
            continue
        c = s[i]
        if c in _ACTION:
            continue
        if c == 0x2A:  # '*'
            if i != start or (i + 1 != end and s[i + 1] != 0x2C):
                raise ScopeError(text, i, "'*' must be a whole action")
            continue
        if 0x41 <= c <= 0x5A:
            raise ScopeError(text, i, "upper-case letter in action")
        raise ScopeError(text, i, "invalid character in action")
    if every:
        return "*"
    listed = s[:end].decode()
    if ordered:
        return listed
    return ",".join(sorted(set(listed.split(","))))


def _parse_resource(text: str, s: bytes, start: int) -> tuple[int, bool]:
    if start == len(s):
        raise ScopeError(text, start, "empty resource after ':'")
    nseg, seg_start, star = 1, start, False
    for i in range(start, len(s)):
        c = s[i]
        if c == 0x2F:  # '/'
            _check_segment(text, s, seg_start, i)
            nseg, seg_start = nseg + 1, i + 1
        elif c == 0x2A:  # '*'
            if i != len(s) - 1:
                raise ScopeError(text, i, "'*' is only allowed as the last character of the resource")
            star = True
        elif c == 0x2B:  # '+'
            nxt = s[i + 1] if i + 1 < len(s) else 0x2F
            if i == seg_start and nxt == 0x2A:
                raise ScopeError(text, i, '"+*" is not allowed')
            if i != seg_start or nxt != 0x2F:
                raise ScopeError(text, i, "'+' must be a whole path segment")
        elif c not in _SEGMENT:
            raise ScopeError(text, i, "invalid character in resource")
    if not star:
        _check_segment(text, s, seg_start, len(s))
    return nseg, star


def _check_segment(text: str, s: bytes, start: int, end: int) -> None:
    seg = s[start:end]
    if not seg:
        raise ScopeError(text, end, "empty path segment")
    if seg in (b".", b".."):
        raise ScopeError(text, start, f"path segment {seg.decode()!r} is not allowed")


def _all(text: str, allowed: frozenset) -> bool:
    return all(ord(ch) < 128 and ord(ch) in allowed for ch in text)


def valid_action(a: object) -> bool:
    """Whether a is a concrete action."""
    return isinstance(a, str) and a != "" and _all(a, _ACTION)


def valid_resource(r: object) -> bool:
    """Whether r is a concrete resource."""
    if not isinstance(r, str):
        return False
    return all(seg not in ("", ".", "..") and _all(seg, _SEGMENT) for seg in r.split("/"))


def contains(outer: Scope, inner: Scope) -> bool:
    """Whether every request inner allows, outer allows (exact)."""
    return _actions_contain(outer.actions, inner.actions) and _resource_contains(outer, inner)


def _actions_contain(outer: str, inner: str) -> bool:
    if outer == "*":
        return True
    if inner == "*":
        return False
    o = outer.split(",")
    return all(a in o for a in inner.split(","))


def _resource_contains(outer: Scope, inner: Scope) -> bool:
    n_i, n_o = inner.nseg, outer.nseg
    if inner.star and not outer.star:
        return False
    if n_i < n_o:
        return False
    if not inner.star and not outer.star and n_i != n_o:
        return False
    isegs, osegs = inner.resource.split("/"), outer.resource.split("/")
    return all(_segment_subset(isegs[i], osegs[i]) for i in range(n_o))


def _segment_set(seg: str) -> tuple[bool, str]:
    if seg == "+":
        return False, ""
    if seg.endswith("*"):
        return False, seg[:-1]
    return True, seg


def _segment_subset(inner: str, outer: str) -> bool:
    i_lit, iv = _segment_set(inner)
    o_lit, ov = _segment_set(outer)
    if o_lit:
        return i_lit and iv == ov
    return iv.startswith(ov)


class ScopeSet:
    """A set of scopes: what a credential's "scope" claim grants."""

    def __init__(self, scopes: list[Scope]):
        self.scopes = scopes

    def match(self, action: str, resource: str) -> bool:
        return any(s.match(action, resource) for s in self.scopes)

    def contains_set(self, inner: "ScopeSet") -> bool:
        return all(any(contains(o, i) for o in self.scopes) for i in inner.scopes)

    def __str__(self) -> str:
        return " ".join(map(str, self.scopes))


def parse_set(items: list[str]) -> ScopeSet:
    if len(items) > MAX_SET_SIZE:
        raise ScopeError("", 0, f"too many scopes: {len(items)} given, the maximum is {MAX_SET_SIZE}")
    out: list[Scope] = []
    for item in items:
        sc = parse(item)
        if sc not in out:
            out.append(sc)
    return ScopeSet(out)


def parse_space_separated(claim: str) -> ScopeSet:
    """Parses a "scope" claim: scopes separated by single spaces."""
    if claim == "":
        return ScopeSet([])
    parts = claim.split(" ")
    if len(parts) > MAX_SET_SIZE:
        raise ScopeError("", 0, f"too many scopes: {len(parts)} given, the maximum is {MAX_SET_SIZE}")
    return parse_set(parts)
