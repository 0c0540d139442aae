// Bad input through the Node.js binding gives a clear JS error, never a crash: closed handles,
// wrong argument types, a native method on a foreign object, listeners that throw or block,
// a Client dropped without close(), a Worker or the process ending with a Client open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { Chatd, client, libchat } from './helpers.mjs';

const { ChatError, Client } = libchat;
const here = path.dirname(fileURLToPath(import.meta.url));

const isChatError = (code) => (err) => {
  assert.ok(err instanceof ChatError, `expected a ChatError, got ${err && err.stack}`);
  assert.equal(err.code, code, err.message);
  assert.equal(err.errno, libchat.codes[code]);
  return true;
};

test('a closed Client throws ECLOSED from every call', async () => {
  const c = new Client({ server: 'ws://127.0.0.1:9/', token: 'x', start: false });
  const waiting = c.waitFor('synced', { timeoutMs: 0 });
  const it = c.events();
  c.close();
  c.close(); // idempotent
  assert.equal(c.closed, true);
  assert.equal(c.state, 'stopped');
  await assert.rejects(waiting, isChatError('ECLOSED'));
  assert.deepEqual(await it.next(), { value: undefined, done: true });
  const sync = [
    () => c.start(), () => c.stop(), () => c.reconnectNow(), () => c.disconnect(),
    () => c.setToken('t'), () => c.user, () => c.token,
    () => c.sendText(1, 'x'), () => c.sendTextTo('bob', 'x'),
    () => c.sendMedia(1, { id: 'x' }), () => c.sendMediaTo('bob', { id: 'x' }),
    () => c.outboxCount(), () => c.outbox(), () => c.markRead(1, 1), () => c.typing(1),
    () => c.convs(), () => c.messageStatus('abc'), () => c.messageReceipts(1, 1),
  ];
  for (const call of sync) assert.throws(call, isChatError('ECLOSED'), String(call));
  const async = [
    () => c.presenceQuery(['bob']), () => c.mediaUrl('x'), () => c.groupCreate('t', []),
    () => c.groupAdd(1, ['bob']), () => c.groupRemove(1, ['bob']), () => c.groupLeave(1),
    () => c.groupRename(1, 't'), () => c.groupSetRole(1, 'bob', 'admin'), () => c.history(1),
    () => c.uploadFile('/nonexistent'), () => c.download('x', '/tmp/x', { url: '/media/x' }),
    () => c.waitFor('message'),
    () => c.pushRegister('fcm', 't'), () => c.pushUnregister(), () => c.mute(1), () => c.unmute(1),
  ];
  for (const call of async) await assert.rejects(call(), isChatError('ECLOSED'), String(call));
  c.ref();
  c.unref(); // no-ops once closed
});

test('wrong argument types and values are ChatError EINVAL', () => {
  const bad = [
    () => new Client(),
    () => new Client('ws://x/'),
    () => new Client({ server: 5 }),
    () => new Client({ server: 'ws://127.0.0.1:9/' }), // no credentials
    () => new Client({ server: 'ws://127.0.0.1:9/', token: 't', backoff: { baseMs: 'a', maxMs: 1 } }),
    () => new Client({ server: 'ws://127.0.0.1:9/', token: 't', backoff: { baseMs: 10, maxMs: 1 } }),
    () => new Client({ server: 'ws://127.0.0.1:9/', login: { user: 'a' } }),
    () => new Client({ server: 'ws://127.0.0.1:9/', token: 't', autoDelivered: 'yes' }),
    () => new Client({ server: 'ws://127.0.0.1:9/', token: 't\0u' }),
  ];
  for (const call of bad) assert.throws(call, isChatError('EINVAL'), String(call));

  const c = new Client({ server: 'ws://127.0.0.1:9/', token: 'x', start: false });
  try {
    const calls = [
      () => c.sendText('1', 'x'), () => c.sendText(-1, 'x'), () => c.sendText(1.5, 'x'),
      () => c.sendText(2 ** 64, 'x'), () => c.sendText(2n ** 64n, 'x'), () => c.sendText(1, 5),
      () => c.sendText(1, null), () => c.sendText(null, 'x'), () => c.sendText(1, ''),
      () => c.sendTextTo(1, 'x'), () => c.sendTextTo('bo\0b', 'x'), () => c.sendTextTo({}, 'x'),
      () => c.sendMediaTo('bob', 'not an object'), () => c.markRead(1, 'x'),
      () => c.typing(1, 'yes'), () => c.messageStatus(7), () => c.messageReceipts(1, {}),
      () => c.setToken(undefined),
    ];
    for (const call of calls) assert.throws(call, isChatError('EINVAL'), String(call));
    // the text's length is checked by libchat, its type here
    assert.throws(() => c.sendText(1, 'x'.repeat(17 * 1024)), isChatError('EINVAL'));
    // ids may be bigints, and lone surrogates become U+FFFD instead of invalid UTF-8
    assert.match(c.sendText(7n, '\ud800 ok'), /^[0-9a-f]{27}$/);
    assert.equal(c.outbox()[0].text, '\ufffd ok');
  } finally {
    c.close();
  }
});

test('async calls reject with EINVAL for wrong arguments', async () => {
  const c = new Client({ server: 'ws://127.0.0.1:9/', token: 'x', start: false });
  try {
    const calls = [
      () => c.presenceQuery('bob'), () => c.presenceQuery([1]), () => c.groupCreate(5, []),
      () => c.groupCreate('t', 'bob'), () => c.groupCreate('t', [], { cmid: 3 }),
      () => c.groupAdd('1', ['x']), () => c.groupSetRole(1, 'bob', 'king'),
      () => c.history('x'), () => c.history(1, { limit: 0 }), () => c.history(1, { before: -1 }),
      () => c.uploadFile(5), () => c.uploadFile('/x', { onProgress: 'no' }),
      () => c.download('id', null, { url: '/x' }), () => c.mediaUrl(null),
      () => c.waitFor('no-such-event'), () => c.waitFor(42),
    ];
    for (const call of calls) await assert.rejects(async () => call(), isChatError('EINVAL'), String(call));
  } finally {
    c.close();
  }
});

test('native methods check their receiver', () => {
  const c = new Client({ server: 'ws://127.0.0.1:9/', token: 'x', start: false });
  try {
    // V8 refuses a receiver of another class ('Illegal invocation'); the addon checks its
    // type tag behind that
    const Native = c._native.constructor;
    const refused = (err) => (err instanceof TypeError && /Illegal invocation/.test(err.message)) ||
      isChatError('EINVAL')(err);
    assert.throws(() => Native.prototype.send.call({}, 1, 'x', false), refused);
    assert.throws(() => Native.prototype.convs.call(Object.create(Native.prototype)), refused);
    assert.throws(() => Native.prototype.close.call(null), refused);
    assert.throws(() => Native(), refused); // without new
    assert.throws(() => new Native({ server: 'ws://127.0.0.1:9/', token: 'x' }), isChatError('EINVAL')); // no dispatch
  } finally {
    c.close();
  }
});

test('listeners that throw, reject or block do not stop the others nor crash', { timeout: 60000 }, async () => {
  const srv = await Chatd.start();
  const alice = client(srv, 'alice');
  const bob = client(srv, 'bob');
  try {
    await Promise.all([alice.waitFor('synced'), bob.waitFor('synced')]);
    const errors = [];
    const texts = [];
    bob.on('error', (err) => errors.push(err.message));
    bob.on('message', () => { throw new Error('sync boom'); });
    bob.on('message', async () => { throw new Error('async boom'); });
    let blocked = false;
    bob.on('message', (ev) => {
      texts.push(ev.text);
      if (!blocked) { // a listener that blocks the JS thread: events wait in the queue
        blocked = true;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      }
    });
    const N = 20;
    const all = bob.waitFor({ type: 'message', text: `t${N - 1}` });
    for (let i = 0; i < N; i++) alice.sendTextTo('bob', `t${i}`);
    await all;
    await new Promise((r) => setImmediate(r)); // the async listeners' rejections
    assert.deepEqual(texts, Array.from({ length: N }, (_, i) => `t${i}`));
    assert.equal(errors.filter((m) => m === 'sync boom').length, N);
    assert.equal(errors.filter((m) => m === 'async boom').length, N);

    // without an 'error' listener: a process warning, not an uncaught exception
    bob.removeAllListeners();
    const warnings = [];
    const onWarning = (w) => warnings.push(w);
    process.on('warning', onWarning);
    bob.on('typing', () => { throw new Error('typing boom'); });
    const conv = bob.convs()[0].id;
    alice.typing(conv, true);
    await bob.waitFor('typing');
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    assert.ok(warnings.some((w) => w.code === 'LIBCHAT_LISTENER_ERROR' && /typing boom/.test(w.message)));
  } finally {
    alice.close();
    bob.close();
    await srv.close();
  }
});

function runNode(args, env, onLine) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
      let nl;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (onLine) onLine(line, p);
      }
    });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve({ code, signal, stderr: err }));
  });
}

test('an unreferenced Client that is garbage collected is closed by its finalizer', { timeout: 60000 }, async () => {
  const srv = await Chatd.start();
  const bob = client(srv, 'bob');
  try {
    await bob.waitFor('synced');
    const child = spawn(process.execPath, ['--expose-gc', path.join(here, 'gc-child.mjs')], {
      env: { ...process.env, LIBCHAT_TEST_URL: srv.url, LIBCHAT_TEST_TOKEN: srv.token('alice', 'gc') },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve([code, signal])));
    let offline = null;
    for await (const line of readline.createInterface({ input: child.stdout })) {
      if (line === 'sent') {
        // alice's process stays alive: only the finalizer can make the server see her leave
        offline = bob.waitFor({ type: 'presence', user: 'alice', active: false }, { timeoutMs: 20000 });
      } else {
        assert.equal(line, 'collected');
        assert.ok(offline);
        await offline.finally(() => child.stdin.end('exit\n'));
        break;
      }
    }
    assert.deepEqual(await exited, [0, null]);
  } finally {
    bob.close();
    await srv.close();
  }
});

test('a Worker or the process may end with a Client open', { timeout: 60000 }, async () => {
  const srv = await Chatd.start();
  try {
    // a Worker that is terminated: its environment's cleanup closes the Client
    const w = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      const { Client } = require(workerData.lib);
      const c = new Client({ server: workerData.url, token: workerData.token });
      c.on('synced', () => parentPort.postMessage('synced'));
    `, { eval: true, workerData: { lib: process.env.LIBCHAT_NODE || path.join(here, '..', '..', 'bindings', 'node'), url: srv.url, token: srv.token('carol', 'worker') } });
    await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    assert.equal(await w.terminate(), 1);

    // process.exit() with a Client open, and a process that ends with an unreferenced one
    for (const how of ['exit', 'unref']) {
      const r = await runNode(['--input-type=module', '-e', `
        import { createRequire } from 'node:module';
        const { Client } = createRequire(import.meta.url)(process.env.LIB);
        const c = new Client({ server: process.env.URL, token: process.env.TOKEN });
        await c.waitFor('synced');
        c.sendTextTo('bob', 'bye');
        if (process.env.HOW === 'exit') process.exit(0);
        c.unref();
      `], { LIB: process.env.LIBCHAT_NODE || path.join(here, '..', '..', 'bindings', 'node'), URL: srv.url, TOKEN: srv.token('carol', how), HOW: how });
      assert.deepEqual([r.code, r.signal], [0, null], r.stderr);
    }
  } finally {
    await srv.close();
  }
});
