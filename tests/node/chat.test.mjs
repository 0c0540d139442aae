// Two users chat through a real chatd with the Node.js binding: messages both ways, delivered
// and read receipts, typing, presence, conversations and unread counts, history pages fetched
// from the server, groups.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Chatd, client, libchat, until } from './helpers.mjs';

const { ChatError } = libchat;

test('two clients chat: messages, receipts, typing, presence, unread', async () => {
  const srv = await Chatd.start();
  const alice = client(srv, 'alice');
  const bob = client(srv, 'bob');
  try {
    await Promise.all([alice.waitFor('synced'), bob.waitFor('synced')]);
    assert.equal(alice.user, 'alice');
    assert.equal(bob.user, 'bob');
    assert.equal(alice.state, 'online');

    // an EventEmitter listener and waitFor see the same events
    const bobMessages = [];
    bob.on('message', (ev) => bobMessages.push(ev));

    const gotMessage = bob.waitFor({ type: 'message', text: 'hi bob' });
    const cmid = alice.sendTextTo('bob', 'hi bob');
    assert.match(cmid, /^[0-9a-f]{27}$/);
    const sent = await alice.waitFor({ type: 'sent', cmid });
    const { conv, seq } = sent;
    assert.ok(conv > 0 && seq >= 1);
    // bob's engine sends delivered receipts by itself, as soon as the message is in: wait for
    // it from now on (waitFor sees only events emitted after it was called)
    const delivered = alice.waitFor((ev) => ev.type === 'receipt' && ev.user === 'bob' &&
                                            ev.delivered >= seq);
    const got = await gotMessage;
    assert.deepEqual([got.conv, got.seq, got.user, got.kind], [conv, seq, 'alice', 'text']);
    assert.equal(bobMessages.length, 1);
    await delivered;
    assert.deepEqual(alice.messageStatus(cmid), { status: 'delivered', conv, seq });

    // bob's conversation list: the direct conversation with one unread message
    const bc = await until(() => bob.convs().find((c) => c.id === conv && c.peer), { what: 'conv synced' });
    assert.equal(bc.kind, 'direct');
    assert.equal(bc.name, 'alice');
    assert.equal(bc.unread, 1);
    bob.markRead(conv, seq);
    assert.equal(bob.convs().find((c) => c.id === conv).unread, 0);
    await alice.waitFor((ev) => ev.type === 'receipt' && ev.user === 'bob' && ev.read >= seq);
    assert.equal(alice.messageStatus(cmid).status, 'read');
    assert.deepEqual(alice.messageReceipts(conv, seq), { delivered: 1, read: 1, others: 1 });

    // the other way, by conversation id, with text beyond ASCII
    const back = alice.waitFor({ type: 'message', user: 'bob' });
    const cmid2 = bob.sendText(conv, 'hello alice \u2713 \u{1F600}');
    await bob.waitFor({ type: 'sent', cmid: cmid2 });
    assert.equal((await back).text, 'hello alice \u2713 \u{1F600}');

    // typing reaches the peer, start and stop
    const typing = alice.waitFor({ type: 'typing', user: 'bob' });
    bob.typing(conv, true);
    const t = await typing;
    assert.equal(t.conv, conv);
    assert.equal(t.active, true);
    const stopped = alice.waitFor({ type: 'typing', user: 'bob', active: false });
    bob.typing(conv, false);
    await stopped;

    // presence: the query resolves with what it brought
    const presence = await alice.presenceQuery(['bob']);
    assert.equal(presence.length, 1);
    assert.equal(presence[0].user, 'bob');
    assert.equal(presence[0].active, true);

    const hist = await alice.history(conv);
    assert.equal(hist.complete, true);
    assert.deepEqual(hist.messages.map((m) => [m.from, m.text, m.status]),
      [['alice', 'hi bob', 'read'], ['bob', 'hello alice \u2713 \u{1F600}', 'none']]);

    // bob goes away: alice sees him offline
    const gone = alice.waitFor({ type: 'presence', user: 'bob', active: false });
    bob.close();
    await gone;
  } finally {
    alice.close();
    bob.close();
    await srv.close();
  }
});

test('history pages: the cache first, then what the server still has', async () => {
  const srv = await Chatd.start();
  const alice = client(srv, 'alice');
  let bob = null;
  try {
    await alice.waitFor('synced');
    const N = 70;
    let conv = 0;
    let last = null;
    for (let i = 1; i <= N; i++) {
      const cmid = alice.sendTextTo('bob', `m${i}`);
      if (i === N) last = cmid;
    }
    // acks come in outbox order: the last one means all were stored
    conv = (await alice.waitFor({ type: 'sent', cmid: last }, { timeoutMs: 20000 })).conv;
    assert.equal(alice.outboxCount(), 0);

    // bob's first sync keeps only the newest messages of the conversation
    bob = client(srv, 'bob');
    await bob.waitFor('synced');
    const unread = await until(() => bob.convs().find((c) => c.id === conv && c.unread === N),
      { what: 'unread count' });
    assert.equal(unread.head, N);

    const cached = await bob.history(conv, { limit: 30, fetch: false });
    assert.equal(cached.complete, true);
    assert.deepEqual(cached.messages.map((m) => m.text), Array.from({ length: 30 }, (_, i) => `m${41 + i}`));

    // page down: the oldest part has to come from the server
    const texts = [];
    let before = 0;
    let pages = 0;
    let fetched = false;
    for (;;) {
      const peek = await bob.history(conv, { before, limit: 30, fetch: false });
      if (!peek.complete) fetched = true;
      const page = await bob.history(conv, { before, limit: 30 });
      assert.equal(page.complete, true);
      if (page.messages.length === 0) break;
      texts.unshift(...page.messages.map((m) => m.text));
      before = page.messages[0].seq;
      pages++;
      assert.ok(pages < 10, 'history must end');
      if (before === 1) break;
    }
    assert.ok(fetched, 'some page was not in the cache');
    assert.deepEqual(texts, Array.from({ length: N }, (_, i) => `m${i + 1}`));
  } finally {
    alice.close();
    if (bob) bob.close();
    await srv.close();
  }
});

test('groups: create, add, rename, roles, remove, leave', async () => {
  const srv = await Chatd.start();
  const alice = client(srv, 'alice');
  const bob = client(srv, 'bob');
  const carol = client(srv, 'carol');
  try {
    await Promise.all([alice, bob, carol].map((c) => c.waitFor('synced')));
    const conv = await alice.groupCreate('plans', ['bob'], { cmid: 'plans-1' });
    assert.ok(conv > 0);
    // the same client id answers the same group
    assert.equal(await alice.groupCreate('plans', ['bob'], { cmid: 'plans-1' }), conv);

    await alice.groupAdd(conv, ['carol']);
    await alice.groupRename(conv, 'weekend plans');
    await alice.groupSetRole(conv, 'bob', 'admin');

    const toCarol = carol.waitFor({ type: 'message', text: 'welcome' });
    const cmid = bob.sendText(conv, 'welcome');
    await bob.waitFor({ type: 'sent', cmid });
    assert.equal((await toCarol).conv, conv);

    const g = await until(() => carol.convs().find((c) => c.id === conv && c.title === 'weekend plans'),
      { what: 'group synced' });
    assert.equal(g.kind, 'group');
    assert.equal(g.role, 'member');
    assert.equal(g.memberCount, 3);
    assert.equal((await until(() => bob.convs().find((c) => c.id === conv && c.role === 'admin'),
      { what: 'admin role' })).role, 'admin');

    // carol is not allowed to remove anybody: the Promise rejects with the server's reason
    await assert.rejects(carol.groupRemove(conv, ['bob']), (err) => err instanceof ChatError && err.code === 'EPERM');
    await alice.groupRemove(conv, ['carol']);
    await bob.groupLeave(conv);
    const mine = await until(() => bob.convs().find((c) => c.id === conv && c.role === 'none'),
      { what: 'left' });
    assert.equal(mine.role, 'none');
  } finally {
    for (const c of [alice, bob, carol]) c.close();
    await srv.close();
  }
});
