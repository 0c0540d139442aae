// The relay a user would write in Node.js with the ws package instead of running chatd: the
// protocol subset of bench/relay_proto.h (auth with the user name as token, send to a user or
// to the one group, group_create), each frame parsed with JSON.parse and forwarded as it came.
// Run by chat-bench with --relay-tokens.
//
//   node bench/relay.mjs [--port 0] [--ack] [--check]
//
// prints "node-relay listening on 127.0.0.1:PORT"; --ack answers every send as chatd does;
// --check only loads ws and exits (0 when it is installed).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const load = (name) => { try { return require(name); } catch { return null; } };
// Debian's node-ws lives outside Node's own search path.
const ws = load('ws') ?? load('/usr/share/nodejs/ws');
const arg = (name) => process.argv.includes(name);
if (arg('--check')) process.exit(ws ? 0 : 1);
if (!ws) throw new Error('the ws package is not installed (Debian: node-ws)');
const at = process.argv.indexOf('--port');
const port = at > 0 ? Number(process.argv[at + 1]) : 0;
const ack = arg('--ack');

const users = new Map(); // user name -> socket
let group = [];
const wss = new ws.WebSocketServer({ host: '127.0.0.1', port });
wss.on('listening', () =>
  console.log(`node-relay listening on 127.0.0.1:${wss.address().port}`));
wss.on('connection', (sock) => {
  let user = null;
  sock.on('message', (data) => {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (!user) {
      if (m.type !== 'auth' || typeof m.token !== 'string') return;
      user = m.token;
      users.set(user, sock);
      sock.send(JSON.stringify({ type: 'auth_ok', re: m.id, v: 1, user, device: 'd', ts: 0, cursor: 0 }));
    } else if (m.type === 'send') {
      const to = m.to !== undefined ? [m.to] : group.filter((u) => u !== user);
      for (const u of to) users.get(u)?.send(data, { binary: false });
      if (ack) sock.send(JSON.stringify({ type: 'ack', re: m.id }));
    } else if (m.type === 'group_create') {
      group = [user, ...m.members];
      sock.send(JSON.stringify({ type: 'conv', re: m.id, conv: { conv: 1, kind: 'group' } }));
    }
  });
  sock.on('close', () => { if (users.get(user) === sock) users.delete(user); });
});
