// Push through the Node.js binding end to end: bob's phone registers an APNs token, goes away,
// and alice's message reaches a local APNs stand-in for that token; after bob mutes the
// conversation (his tablet sees the mute), and after he unregisters, it does not (a later push
// to carol is the barrier).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { Chatd, client, libchat, tmpdir, until } from './helpers.mjs';

const { ChatError } = libchat;
const BOB_PHONE = 'b0'.repeat(32);
const CAROL_PHONE = 'c3'.repeat(32);

// APNs over cleartext HTTP/1.1 (chatd's client speaks HTTP/2 only over TLS): records
// POST /3/device/<token> and answers 200. What APNs itself checks (the provider token, the
// headers) is tested against tests/wire/pushfakes.py; this checks who got what.
class ApnsStandIn {
  constructor() {
    this.pushes = [];
    this.waiters = new Set();
    this.server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk) => { body += chunk; });
      req.on('end', () => {
        const m = /^\/3\/device\/([0-9a-f]+)$/.exec(req.url);
        const data = JSON.parse(body).libchat;
        this.pushes.push({ token: m ? m[1] : req.url, conv: data.conv, seq: data.seq, sender: data.sender });
        res.writeHead(200).end();
        for (const w of this.waiters) w();
      });
    });
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  find(token, seq) { return this.pushes.find((p) => p.token === token && p.seq >= seq) ?? null; }

  // The first push for token with seq >= seq, within ms; null when none came.
  wait(token, seq, ms) {
    return new Promise((resolve) => {
      const check = () => {
        const p = this.find(token, seq);
        if (!p) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(p);
      };
      const timer = setTimeout(() => { this.waiters.delete(check); resolve(null); }, ms);
      this.waiters.add(check);
      check();
    });
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

async function sendTo(c, user, text) {
  const cmid = c.sendTextTo(user, text);
  return c.waitFor({ type: 'sent', cmid });
}

test('a registered device is pushed until it mutes or unregisters', async () => {
  const apns = new ApnsStandIn();
  const keyDir = tmpdir('libchat-node-apns-');
  const key = path.join(keyDir, 'AuthKey.p8');
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  fs.writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const url = await apns.listen();
  const srv = await Chatd.start({
    args: ['--apns-key-file', key, '--apns-key-id', 'KEY1234567', '--apns-team-id', 'TEAM123456',
      '--apns-topic', 'com.example.chat', '--apns-endpoint', url,
      '--push-limit', 'coalesce_ms=0', '--push-limit', 'backoff_ms=50'],
  });
  const open = [];
  const device = async (user, dev) => {
    const c = client(srv, user, { device: dev });
    open.push(c);
    await c.waitFor('synced');
    return c;
  };
  // alice writes to user until a push for token answers (the server learns of a closed
  // connection on its own schedule); that push
  const sendUntilPushed = async (alice, user, token) => {
    const end = Date.now() + 15000;
    for (;;) {
      const s = await sendTo(alice, user, 'are you there?');
      const p = await apns.wait(token, s.seq, 500);
      if (p) return p;
      assert.ok(Date.now() < end, `no push for ${user}\n${srv.stderrTail()}`);
    }
  };
  // alice writes to bob, then to carol: once carol's push came, bob's would have come first
  const assertNoPushToBob = async (alice, why) => {
    const toBob = await sendTo(alice, 'bob', `quiet, ${why}`);
    const barrier = await sendTo(alice, 'carol', `barrier after ${why}`);
    assert.ok(await apns.wait(CAROL_PHONE, barrier.seq, 15000), `no barrier push\n${srv.stderrTail()}`);
    assert.equal(apns.find(BOB_PHONE, toBob.seq), null, `bob's phone was pushed ${why}`);
  };
  try {
    const bob = await device('bob', 'phone');
    // malformed registrations reject with the library's status
    await assert.rejects(bob.pushRegister('webos', BOB_PHONE),
      (err) => err instanceof ChatError && err.code === 'EINVAL' && /platform/.test(err.reason));
    await assert.rejects(bob.pushRegister('apns', 'not hex'), { code: 'EINVAL' });
    await assert.rejects(bob.pushRegister('apns', BOB_PHONE, { sandbox: 'yes' }), { code: 'EINVAL' });
    await bob.pushRegister('apns', BOB_PHONE, { topic: 'com.example.chat' });
    bob.close();
    const carol = await device('carol', 'phone');
    await carol.pushRegister('apns', CAROL_PHONE);
    carol.close();

    const alice = await device('alice', 'laptop');
    const first = await sendUntilPushed(alice, 'bob', BOB_PHONE);
    assert.equal(first.sender, 'alice');
    const conv = first.conv;
    await sendUntilPushed(alice, 'carol', CAROL_PHONE);

    // muted on the phone: the tablet's cache shows it, and the phone hears nothing
    let phone = await device('bob', 'phone');
    const tablet = await device('bob', 'tablet');
    assert.equal(tablet.convs().find((c) => c.id === conv).mutedUntil, 0);
    await phone.mute(conv);
    await until(() => tablet.convs().find((c) => c.id === conv).mutedUntil === -1, { what: 'the tablet sees the mute' });
    await assert.rejects(phone.mute(conv, -5), { code: 'EINVAL' });
    phone.close();
    tablet.close();
    await assertNoPushToBob(alice, 'while muted');

    // unmuted: pushed again; unregistered: not
    phone = await device('bob', 'phone');
    await phone.unmute(conv);
    await until(() => phone.convs().find((c) => c.id === conv).mutedUntil === 0, { what: 'unmuted' });
    phone.close();
    await sendUntilPushed(alice, 'bob', BOB_PHONE);
    phone = await device('bob', 'phone');
    await phone.pushUnregister();
    phone.close();
    await sendUntilPushed(alice, 'carol', CAROL_PHONE);
    await assertNoPushToBob(alice, 'after unregistering');
  } finally {
    for (const c of open) c.close();
    await srv.close();
    await apns.close();
    fs.rmSync(keyDir, { recursive: true, force: true });
  }
});
