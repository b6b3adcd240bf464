"""The conformance vectors of testdata/conformance/, which the Go, TypeScript
and Python verifiers all pass."""

import json
import pathlib
import unittest

from agent_verifier.dpop import normalize_url
from agent_verifier.revocations import RevocationList
from agent_verifier.scope import ScopeError, contains, parse, parse_space_separated
from agent_verifier.token import VerifierError, import_jwks, verify_token

VECTORS = pathlib.Path(__file__).resolve().parents[3] / "testdata" / "conformance"


def load(name):
    return json.loads((VECTORS / name).read_text())


class ScopeVectors(unittest.TestCase):
    f = load("scope.json")

    def test_parse(self):
        for c in self.f["parse"]:
            with self.subTest(c["input"]):
                if c["valid"]:
                    self.assertEqual(str(parse(c["input"])), c["canonical"])
                else:
                    with self.assertRaises(ScopeError) as e:
                        parse(c["input"])
                    self.assertEqual(e.exception.offset, c["offset"])

    def test_match(self):
        for c in self.f["match"]:
            self.assertEqual(parse(c["scope"]).match(c["action"], c["resource"]), c["allowed"], c)

    def test_contains(self):
        for c in self.f["contains"]:
            self.assertEqual(contains(parse(c["outer"]), parse(c["inner"])), c["contained"], c)

    def test_sets(self):
        for c in self.f["sets"]:
            try:
                s = parse_space_separated(c["claim"])
            except ScopeError:
                self.assertFalse(c["valid"], c["claim"])
                continue
            self.assertTrue(c["valid"], c["claim"])
            for m in c["matches"]:
                self.assertEqual(s.match(m["action"], m["resource"]), m["allowed"], m)


class TokenVectors(unittest.TestCase):
    def test_cases(self):
        f = load("tokens.json")
        keys = import_jwks(f["jwks"])
        valid = 0
        for c in f["cases"]:
            with self.subTest(c["name"]):
                got, claims = "", None
                try:
                    claims = verify_token(
                        c["token"], keys=keys, issuer=f["issuer"], audience=c["audience"], formats=c["formats"],
                        now=f["now"], leeway=f["leeway_seconds"], max_lifetime=f["max_lifetime_seconds"],
                    )
                    if claims["txn"] in f["revoked_sessions"]:
                        got = "session_closed"
                    elif claims.get("cnf"):
                        got = "proof_required"
                except VerifierError as e:
                    got = e.code
                    self.assertNotIn(c["token"], str(e))
                self.assertEqual(got, c.get("error", ""))
                if c["valid"]:
                    valid += 1
                    for k, v in c["claims"].items():
                        self.assertEqual(claims[k], v, k)
        self.assertGreaterEqual(valid, 4)
        self.assertGreaterEqual(len(f["cases"]), 30)


class RevocationVectors(unittest.TestCase):
    def test_sequences(self):
        for s in load("revocations.json")["sequences"]:
            lst = RevocationList()
            for i, st in enumerate(s["steps"]):
                with self.subTest(f"{s['name']}, step {i}"):
                    accepted, changed = True, False
                    try:
                        changed = lst.apply(json.dumps(st["answer"]), st["now"])
                    except ValueError:
                        accepted = False
                    self.assertEqual(accepted, st["accepted"])
                    self.assertEqual(changed, st["changed"])
                    self.assertEqual(lst.version, st["version"])
                    self.assertEqual(sorted(lst.sessions()), st["closed"])


class HTUVectors(unittest.TestCase):
    def test_cases(self):
        f = load("htu.json")
        for c in f["cases"]:
            with self.subTest(c["url"]):
                try:
                    got = normalize_url(c["url"])
                except ValueError:
                    got = ""
                if c.get("plain"):
                    self.assertEqual(got, c["normalized"])
                elif not c["normalized"]:
                    self.assertEqual(got, "", "Go refuses it")
                else:
                    self.assertIn(got, ("", c["normalized"]), "Go's value or a refusal")


if __name__ == "__main__":
    unittest.main()
