// The offline outbox through the Node.js binding: messages queued while offline survive
// closing the Client, and go out exactly once when it is opened again on the same cache file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';

import { Chatd, client, tmpdir } from './helpers.mjs';

test('the outbox survives closing and reopening the client', { timeout: 90000 }, async () => {
  const srv = await Chatd.start();
  const dir = tmpdir();
  const cache = path.join(dir, 'alice.db');
  const bob = client(srv, 'bob');
  let alice = null;
  try {
    await bob.waitFor('synced');

    // never started: nothing leaves, everything is in the cache file
    alice = client(srv, 'alice', { cache, start: false });
    const cmids = ['one', 'two', 'three'].map((t) => alice.sendTextTo('bob', t));
    assert.equal(alice.outboxCount(), 3);
    assert.deepEqual(alice.outbox().map((m) => [m.text, m.status]),
      [['one', 'sending'], ['two', 'sending'], ['three', 'sending']]);
    alice.close();
    assert.throws(() => alice.outboxCount(), { name: 'ChatError', code: 'ECLOSED' });

    // a server that goes away while a message is queued
    alice = client(srv, 'alice', { cache });
    await alice.waitFor({ type: 'sent', cmid: cmids[2] }, { timeoutMs: 20000 });
    assert.equal(alice.outboxCount(), 0);
    await srv.stop();
    await alice.waitFor('offline');
    const late = alice.sendTextTo('bob', 'four');
    assert.equal(alice.messageStatus(late).status, 'sending');
    alice.close();

    await srv.run(); // a new port: the client follows the URL it is given
    bob.close();
    const bob2 = client(srv, 'bob', { device: 'node2' });
    const bob2Synced = bob2.waitFor('synced');
    const four = bob2.waitFor({ type: 'message', text: 'four' }, { timeoutMs: 20000 });
    try {
      alice = client(srv, 'alice', { cache });
      assert.equal(alice.outboxCount(), 1);
      const sent = await alice.waitFor({ type: 'sent', cmid: late }, { timeoutMs: 20000 });
      assert.notEqual(alice.messageStatus(late).status, 'sending');
      await bob2Synced;
      await four;
      const hist = await bob2.history(sent.conv);
      assert.deepEqual(hist.messages.map((m) => m.text), ['one', 'two', 'three', 'four']);
      assert.equal(alice.outboxCount(), 0);
    } finally {
      bob2.close();
    }
  } finally {
    if (alice) alice.close();
    bob.close();
    await srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
