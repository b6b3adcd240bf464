// Verifies a live credential with the TypeScript verifier, then, once told
// the session was killed (a line on stdin), reports how long until the
// verifier refuses it. Used by TestEveryLanguageRefusesAKilledSession.
import { createInterface } from 'node:readline';
import { createVerifier } from '../../sdks/typescript/src/index.js';

const [vaultAddr, issuer, audience, token] = process.argv.slice(2);
const v = await createVerifier({ vaultAddr, issuer, audience, revocationWait: 30 });
const claims = await v.verify(token);
console.log(`accepted ${claims.txn}`);
const lines = createInterface({ input: process.stdin });
for await (const _ of lines) break;
const start = performance.now();
for (;;) {
  try {
    await v.verify(token);
  } catch (e) {
    console.log(`refused ${e.code} after ${Math.round(performance.now() - start)} ms`);
    break;
  }
  if (performance.now() - start > 5000) {
    console.log('still accepted after 5 s');
    process.exitCode = 1;
    break;
  }
  await new Promise((r) => setTimeout(r, 5));
}
v.close();
