"""The verifier against a stand-in for the engine, and the WSGI and ASGI
middleware."""

import asyncio
import base64
import hashlib
import json
import threading
import time
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from agent_verifier import ASGIMiddleware, Verifier, VerifierError, WSGIMiddleware, access_token_hash

ISSUER = "http://engine.test/v1/agent"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def thumb(members):
    return b64(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


class Engine:
    """jwks, revocations (with blocking queries) and report."""

    def __init__(self):
        self.key = ed25519.Ed25519PrivateKey.generate()
        x = b64(self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        self.kid = thumb({"crv": "Ed25519", "kty": "OKP", "x": x})
        self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}
        self.version, self.sessions, self.reports = 1, [], []
        self.changed = threading.Condition()
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, body):
                b = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_GET(self):
                u = urlsplit(self.path)
                if u.path == "/v1/agent/jwks":
                    return self.answer({"keys": [engine.jwk]})
                if u.path == "/v1/agent/revocations":
                    q = parse_qs(u.query)
                    if "after" in q and int(q["after"][0]) >= engine.version and "wait" in q:
                        with engine.changed:
                            engine.changed.wait_for(lambda: engine.version > int(q["after"][0]), timeout=int(q["wait"][0]))
                    return self.answer({"data": {"version": engine.version, "sessions": engine.sessions, "complete": "after" not in q}})
                self.send_response(404)
                self.end_headers()

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                engine.reports.append({**json.loads(self.rfile.read(n)), "vault_token": self.headers.get("X-Vault-Token")})
                self.answer({"data": {"recorded": True}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.addr = f"http://127.0.0.1:{self.server.server_port}"

    def kill(self, sid):
        with self.changed:
            self.version += 1
            self.sessions.append({"id": sid, "exp": int(time.time()) + 300})
            self.changed.notify_all()

    def mint(self, typ="txntoken+jwt", **claims):
        now = int(time.time())
        c = {"iss": ISSUER, "sub": "entity-1", "aud": "docs-api", "iat": now - 1, "nbf": now - 1, "exp": now + 60,
             "jti": str(uuid.uuid4()), "txn": "sess-1", "scope": "read:docs/*", "dep": 1, **claims}
        return jwt.encode(c, self.key, algorithm="EdDSA", headers={"kid": self.kid, "typ": typ})


ENGINE = Engine()


def verifier(**kw):
    args = dict(vault_addr=ENGINE.addr, issuer=ISSUER, audience="docs-api", revocation_wait=5)
    args.update(kw)
    return Verifier(**args)


class VerifierTests(unittest.TestCase):
    def test_verify_authorize_and_a_kill_within_a_second(self):
        v = verifier()
        try:
            tok = ENGINE.mint(txn="sess-kill")
            self.assertEqual(v.verify(tok)["txn"], "sess-kill")
            v.authorize(tok, "read", "docs/plan")
            with self.assertRaises(VerifierError) as e:
                v.authorize(tok, "write", "docs/plan")
            self.assertEqual(e.exception.code, "scope")
            with self.assertRaises(VerifierError) as e:
                v.verify(ENGINE.mint(aud="billing"))
            self.assertEqual(e.exception.code, "audience")
            time.sleep(0.1)  # the blocking query is held
            killed = time.monotonic()
            ENGINE.kill("sess-kill")
            while True:
                try:
                    v.verify(tok)
                except VerifierError as e:
                    self.assertEqual(e.code, "session_closed")
                    break
                self.assertLess(time.monotonic() - killed, 1.0, "the kill took more than a second")
                time.sleep(0.01)
        finally:
            v.close()

    def test_fails_closed_when_stale(self):
        now = [int(time.time())]
        v = verifier(revocation_wait=-1, revocation_poll=3600, max_staleness=20, now=lambda: now[0], start=False)
        tok = ENGINE.mint()
        v.verify(tok)
        now[0] += 25
        with self.assertRaises(VerifierError) as e:
            v.verify(tok)
        self.assertEqual(e.exception.code, "stale")
        v2 = verifier(revocation_wait=-1, revocation_poll=3600, max_staleness=20, now=lambda: now[0], start=False, fail_open=True)
        v2.verify(tok)


def wsgi_call(app, method="GET", path="/docs/plan", headers=None):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_HOST": "docs.example", "wsgi.url_scheme": "https"}
    for k, val in (headers or {}).items():
        environ["HTTP_" + k.upper().replace("-", "_")] = val
    out = {}

    def start_response(status, hdrs):
        out["status"], out["headers"] = int(status.split()[0]), dict(hdrs)

    body = b"".join(app(environ, start_response))
    return out["status"], out["headers"], body


class MiddlewareTests(unittest.TestCase):
    def setUp(self):
        self.v = verifier(revocation_wait=-1, vault_token="rs-token")
        ok = lambda environ, start_response: (start_response("200 OK", []), [b"ok " + environ["agent.claims"]["sub"].encode()])[1]
        self.app = WSGIMiddleware(ok, self.v, report=True)

    def tearDown(self):
        self.v.close()

    def test_challenges_scope_and_reports(self):
        status, h, _ = wsgi_call(self.app)
        self.assertEqual((status, h.get("WWW-Authenticate")), (401, 'Bearer, DPoP algs="EdDSA ES256"'))
        tok = ENGINE.mint()
        status, _, body = wsgi_call(self.app, headers={"Authorization": f"Bearer {tok}"})
        self.assertEqual((status, body), (200, b"ok entity-1"))
        status, h, _ = wsgi_call(self.app, method="DELETE", headers={"Authorization": f"Bearer {tok}"})
        self.assertEqual((status, h.get("WWW-Authenticate")), (403, 'Bearer error="insufficient_scope"'))
        status, h, _ = wsgi_call(self.app, headers={"Authorization": "Bearer abc.def.ghi"})
        self.assertEqual((status, h.get("WWW-Authenticate")), (401, 'Bearer error="invalid_token"'))
        deadline = time.monotonic() + 5
        while len(ENGINE.reports) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        got = sorted((r["action"], r["outcome"], r["vault_token"], r["token"] == tok) for r in ENGINE.reports[-2:])
        self.assertEqual(got, [("delete", "denied", "rs-token", True), ("read", "allowed", "rs-token", True)])

    def test_dpop(self):
        priv = ec.generate_private_key(ec.SECP256R1())
        nums = priv.public_key().public_numbers()
        pub = {"kty": "EC", "crv": "P-256", "x": b64(nums.x.to_bytes(32, "big")), "y": b64(nums.y.to_bytes(32, "big"))}
        jkt = thumb(pub)
        bound = ENGINE.mint(cnf={"jkt": jkt})
        url = "https://docs.example/docs/plan"

        def proof(method=url and "GET", u=url, tok=bound, iat=None):
            c = {"jti": str(uuid.uuid4()), "htm": method, "htu": u, "iat": iat or int(time.time()), "ath": access_token_hash(tok)}
            return jwt.encode(c, priv, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": pub})

        good = proof()
        for name, hdrs in [
            ("as a bearer token", {"Authorization": f"Bearer {bound}"}),
            ("no proof", {"Authorization": f"DPoP {bound}"}),
            ("another URL", {"Authorization": f"DPoP {bound}", "DPoP": proof(u="https://docs.example/docs/other")}),
            ("another method", {"Authorization": f"DPoP {bound}", "DPoP": proof(method="PUT")}),
            ("an old proof", {"Authorization": f"DPoP {bound}", "DPoP": proof(iat=int(time.time()) - 300)}),
        ]:
            status, h, _ = wsgi_call(self.app, headers=hdrs)
            self.assertEqual((status, h.get("WWW-Authenticate")), (401, 'DPoP error="invalid_dpop_proof", algs="EdDSA ES256"'), name)
        self.assertEqual(wsgi_call(self.app, headers={"Authorization": f"DPoP {bound}", "DPoP": good})[0], 200)
        self.assertEqual(wsgi_call(self.app, headers={"Authorization": f"DPoP {bound}", "DPoP": good})[0], 401, "a replay")
        with self.assertRaises(VerifierError) as e:
            self.v.verify(bound)
        self.assertEqual(e.exception.code, "proof_required")

    def test_asgi(self):
        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": scope["agent.claims"]["txn"].encode()})

        mw = ASGIMiddleware(app, self.v)

        async def call(headers):
            sent = []

            async def send(m):
                sent.append(m)

            scope = {"type": "http", "method": "GET", "path": "/docs/plan", "scheme": "https",
                     "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
            await mw(scope, None, send)
            return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

        self.assertEqual(asyncio.run(call({"Authorization": f"Bearer {ENGINE.mint()}"}))[::2], (200, b"sess-1"))
        status, h, _ = asyncio.run(call({}))
        self.assertEqual((status, h[b"www-authenticate"]), (401, b'Bearer, DPoP algs="EdDSA ES256"'))


if __name__ == "__main__":
    unittest.main()


class ShapeTests(unittest.TestCase):
    def test_wrong_shapes_and_deep_nesting(self):
        v = verifier(revocation_wait=-1, start=False)
        for claims, code in [
            ({"cnf": "x"}, "malformed"), ({"cnf": []}, "malformed"), ({"cnf": {}}, "claims"),
            ({"cnf": {"JKT": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}}, "malformed"),
            ({"tctx": "x"}, "malformed"), ({"act": {"sub": 5}}, "malformed"), ({"exp": 2**63}, "malformed"),
        ]:
            with self.assertRaises(VerifierError) as e:
                v.verify(ENGINE.mint(**claims))
            self.assertEqual(e.exception.code, code, claims)
        deep = base64.urlsafe_b64encode(b"[" * 5000).rstrip(b"=").decode()
        with self.assertRaises(VerifierError) as e:
            v.verify(deep + ".e30.c2ln")
        self.assertEqual(e.exception.code, "malformed")
