// Media through the Node.js binding: an upload with progress, stopped by a throwing progress
// callback and resumed; a media message; a download stopped by an AbortSignal and resumed from
// its .part; a download refused to a user who may not see the media.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { Chatd, client, libchat, tmpdir } from './helpers.mjs';

const { ChatError } = libchat;

test('a media file goes up and down, with progress, aborts and resumes', { timeout: 120000 }, async () => {
  const srv = await Chatd.start();
  const dir = tmpdir();
  const data = crypto.randomBytes(2 * 1024 * 1024 + 5);
  const src = path.join(dir, 'photo.jpg');
  fs.writeFileSync(src, data);
  const alice = client(srv, 'alice', { cache: path.join(dir, 'a.db') });
  const bob = client(srv, 'bob');
  const carol = client(srv, 'carol');
  try {
    await Promise.all([alice, bob, carol].map((c) => c.waitFor('synced')));

    // a progress callback that throws stops the upload; the Promise rejects with its error
    class Stop extends Error {}
    const seen = [];
    await assert.rejects(alice.uploadFile(src, {
      mime: 'image/jpeg',
      onProgress: (done, total) => {
        seen.push([done, total]);
        if (done >= 700000 && done < total) {
          // the transfer waits for this callback: give the server time to take in what was sent
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
          throw new Stop('enough');
        }
      },
    }), Stop);
    assert.ok(seen.length > 0 && seen.at(-1)[1] === data.length && seen.at(-1)[0] < data.length);
    // progress is reported on the JS thread only, in order
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i][0] >= seen[i - 1][0]);

    // calling again resumes where the server stands
    const seen2 = [];
    const mediaId = await alice.uploadFile(src, { mime: 'image/jpeg', onProgress: (d, t) => seen2.push([d, t]) });
    assert.match(mediaId, /^[0-9a-f]{64}$/);
    // (no progress at all when the server had taken in the whole file before the abort)
    if (seen2.length > 0) {
      assert.ok(seen2[0][0] > 0, `resumed at ${seen2[0][0]}, not from the start`);
      assert.deepEqual(seen2.at(-1), [data.length, data.length]);
    }

    const media = { id: mediaId, mime: 'image/jpeg', size: data.length, name: 'photo.jpg', width: 640, height: 480 };
    const arrives = bob.waitFor({ type: 'message', user: 'alice', kind: 'media' });
    const cmid = alice.sendMediaTo('bob', media);
    await alice.waitFor({ type: 'sent', cmid });
    const m = await arrives;
    assert.deepEqual(JSON.parse(m.json).media, media);

    const u = await bob.mediaUrl(mediaId);
    assert.equal(u.size, data.length);
    assert.equal(u.mime, 'image/jpeg');
    assert.ok(u.url.startsWith('/media/'));

    // an AbortSignal stops a download: the Promise rejects with the signal's reason, the
    // file does not appear, and the next call continues the .part
    const dst = path.join(dir, 'got.jpg');
    const ac = new AbortController();
    await assert.rejects(bob.download(mediaId, dst, {
      url: u.url,
      signal: ac.signal,
      onProgress: (done) => { if (done >= 900000) ac.abort(); },
    }), { name: 'AbortError' });
    assert.equal(fs.existsSync(dst), false);
    const seen3 = [];
    assert.equal(await bob.download(mediaId, dst, { onProgress: (d) => seen3.push(d) }), dst);
    assert.ok(seen3[0] >= 900000, `continued at ${seen3[0]}`);
    assert.ok(fs.readFileSync(dst).equals(data));

    // an aborted signal stops a transfer before it starts
    await assert.rejects(bob.download(mediaId, dst, { signal: AbortSignal.abort() }), { name: 'AbortError' });

    // carol is not in the conversation
    await assert.rejects(carol.mediaUrl(mediaId), (err) => err instanceof ChatError && err.code === 'EPERM');
    // a file that is not there
    await assert.rejects(alice.uploadFile(path.join(dir, 'missing.bin')),
      (err) => err instanceof ChatError && err.code === 'EIO' && /missing\.bin/.test(err.message));
  } finally {
    for (const c of [alice, bob, carol]) c.close();
    await srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('closing the client ends a running transfer with ECLOSED', { timeout: 60000 }, async () => {
  const srv = await Chatd.start();
  const dir = tmpdir();
  const src = path.join(dir, 'big.bin');
  fs.writeFileSync(src, crypto.randomBytes(8 * 1024 * 1024));
  const alice = client(srv, 'alice');
  try {
    await alice.waitFor('synced');
    let closed = false;
    const up = alice.uploadFile(src, {
      onProgress: () => { if (!closed) { closed = true; alice.close(); } },
    });
    await assert.rejects(up, (err) => err instanceof ChatError && err.code === 'ECLOSED');
    assert.throws(() => alice.sendTextTo('bob', 'x'), { code: 'ECLOSED' });
  } finally {
    alice.close();
    await srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
