"""Verifies a live credential with the Python verifier, then, once told the
session was killed (a line on stdin), reports how long until the verifier
refuses it. Used by TestEveryLanguageRefusesAKilledSession."""

import sys
import time

from agent_verifier import Verifier, VerifierError

vault_addr, issuer, audience, token = sys.argv[1:5]
v = Verifier(vault_addr=vault_addr, issuer=issuer, audience=audience, revocation_wait=30)
print("accepted", v.verify(token)["txn"], flush=True)
sys.stdin.readline()
start = time.monotonic()
while True:
    try:
        v.verify(token)
    except VerifierError as e:
        print(f"refused {e.code} after {round((time.monotonic() - start) * 1000)} ms", flush=True)
        break
    if time.monotonic() - start > 5:
        print("still accepted after 5 s", flush=True)
        sys.exit(1)
    time.sleep(0.005)
v.close()
