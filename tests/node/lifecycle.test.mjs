// Replies, edits, deletes for everyone, reactions and search between two users through a real
// chatd with the Node.js binding: the other user's cache shows the messages as they are now.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Chatd, client, libchat, until } from './helpers.mjs';

const { ChatError } = libchat;
const THUMBS = '\u{1F44D}';

test('edits, deletes, reactions and replies reach the other cache; search finds them as they are', async () => {
  const srv = await Chatd.start();
  const alice = client(srv, 'alice');
  const bob = client(srv, 'bob');
  try {
    await Promise.all([alice.waitFor('synced'), bob.waitFor('synced')]);
    const c1 = alice.sendTextTo('bob', 'see you at noon');
    const { conv, seq: s1 } = await alice.waitFor({ type: 'sent', cmid: c1 });
    // bob's delivery may come before alice's ack: wait for it from before the send
    const toBob = bob.waitFor({ type: 'message', text: 'secret plans' });
    const c2 = alice.sendText(conv, 'secret plans');
    const { seq: s2 } = await alice.waitFor({ type: 'sent', cmid: c2 });
    assert.equal((await toBob).seq, s2);

    const gotReply = alice.waitFor({ type: 'message', user: 'bob' });
    const c3 = bob.sendReply(conv, 'noon works', { replyTo: s1 });
    const { seq: s3 } = await bob.waitFor({ type: 'sent', cmid: c3 });
    await gotReply;

    const edited = bob.waitFor({ type: 'updated', kind: 'edit', seq: s1 });
    await alice.edit(conv, s1, 'see you at one');
    assert.equal((await edited).text, 'see you at one');
    const reacted = alice.waitFor({ type: 'updated', kind: 'react', seq: s1 });
    await bob.react(conv, s1, THUMBS);
    assert.equal((await reacted).text, THUMBS);
    const deleted = bob.waitFor({ type: 'updated', kind: 'delete', seq: s2 });
    await alice.delete(conv, s2);
    await deleted;

    const bobs = await until(async () => {
      const { messages } = await bob.history(conv, { fetch: false });
      const m = messages.find((x) => x.seq === s1);
      return m && m.edited > 0 && m.reactions[THUMBS] ? messages : null;
    }, { what: "bob's cache shows the edit and the reaction" });
    const bySeq = new Map(bobs.map((m) => [m.seq, m]));
    assert.equal(bySeq.get(s1).text, 'see you at one');
    assert.deepEqual(bySeq.get(s1).reactions, { [THUMBS]: ['bob'] });
    assert.equal(bySeq.get(s2).deleted, true);
    assert.equal(bySeq.get(s2).text, '');
    const { messages: alices } = await alice.history(conv);
    assert.equal(alices.find((m) => m.seq === s3).replyTo, s1);

    // found as they are now, never as they were
    assert.deepEqual(bob.searchLocal('ONE').map((m) => m.seq), [s1]);
    assert.deepEqual(bob.searchLocal('noon see'), []);
    assert.deepEqual(bob.searchLocal('secret', { conv }), []);
    const found = await alice.search('one');
    assert.deepEqual(found.messages.map((m) => m.seq), [s1]);
    assert.equal(found.cursor > 0, true);
    assert.deepEqual((await alice.search('secret')).messages, []);

    // refusals reject with the server's reason
    await assert.rejects(bob.edit(conv, s1, 'not mine'), (e) => e instanceof ChatError && e.code === 'EPERM');
    await assert.rejects(bob.react(conv, s1, 'not-an-emoji'), (e) => e instanceof ChatError && e.code === 'EINVAL');
    await assert.rejects(bob.edit(conv, -1, 'x'), (e) => e instanceof ChatError && e.code === 'EINVAL');
  } finally {
    alice.close();
    bob.close();
    await srv.close();
  }
});
