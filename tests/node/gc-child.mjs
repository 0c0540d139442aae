// Child process of errors.test.mjs: a Client of alice that is unreferenced, dropped and
// garbage collected while this process stays alive. Prints "sent" once alice is known to bob,
// "collected" once the Client object is gone, then waits for "exit" on stdin.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { Client } = createRequire(import.meta.url)(process.env.LIBCHAT_NODE || path.join(here, '..', '..', 'bindings', 'node'));

let collected = false;
const registry = new FinalizationRegistry(() => { collected = true; });

async function connect() {
  const c = new Client({ server: process.env.LIBCHAT_TEST_URL, token: process.env.LIBCHAT_TEST_TOKEN });
  await c.waitFor('synced');
  const cmid = c.sendTextTo('bob', 'collect me');
  await c.waitFor({ type: 'sent', cmid });
  c.unref();
  registry.register(c, 'alice');
}

await connect();
console.log('sent');
for (let i = 0; i < 500 && !collected; i++) {
  globalThis.gc();
  await new Promise((r) => setTimeout(r, 20));
}
console.log(collected ? 'collected' : 'not collected');
process.stdin.on('data', (d) => { if (String(d).includes('exit')) process.exit(0); });
