// The Node.js binding against the C engine alone, in one run (bench/bindings-bench.sh runs it;
// figures in bindings/node/README.md). A chatd on 127.0.0.1 (send limits lifted); bob has two
// devices, a Node client in this process and a C one (client-events); alice's C client sends.
// Each round:
//   send cost  sendTextTo() against chat_client_send_text_to() on clients that are not started
//              (in-memory outbox): the time of one call.
//   live       alice sends N messages and both of bob's devices take them as they come: the
//              CPU time per message of each whole process (the engine's threads included), at
//              the sender's pace (one message in flight: a few thousand a second).
//   backlog    alice sends N more while neither device takes any (the JS thread is blocked in
//              spawnSync, the C one waits on stdin): the engines store them and queue their
//              events. Then the Node client takes its backlog, and after it the C one (one at
//              a time, not competing for the cores): events per second from the first to the
//              Nth message event, and CPU time per event. How fast each hands events to the
//              application.
// The RESULT line has the medians of the rounds.
//
//   CHATD=build/examples/chatd/chatd CLIENT_EVENTS=build/bench/client-events \
//   LIBCHAT_NODE_ADDON=$PWD/build/bindings/node/libchat.node \
//   node bench/node-bench.mjs [N (5000)] [CALLS (20000)] [ROUNDS (3)]
//   (the addon's path absolute: require() takes a bare relative one for a package name)
import { spawn, spawnSync } from 'node:child_process';
import readline from 'node:readline';

import { Chatd, client, libchat } from '../tests/node/helpers.mjs';

const N = Number(process.argv[2] || 5000);
const CALLS = Number(process.argv[3] || 20000);
const ROUNDS = Number(process.argv[4] || 3);
const exe = process.env.CLIENT_EVENTS;
if (!exe) throw new Error('CLIENT_EVENTS is not set to the client-events binary');
if (!(N > 1 && CALLS > 0 && ROUNDS > 0)) throw new Error('usage: node-bench.mjs [N>1] [CALLS] [ROUNDS]');
const LIMITS = ['send_rate', 'send_burst', 'user_send_rate', 'user_send_burst']
  .flatMap((l) => ['--limit', `${l}=1000000`]);
// bounds, so that a stuck run fails instead of hanging: generous next to seconds per round
const SEND_MS = 60000 + N * 20;
const DRAIN_MS = 60000 + N;

function result(line) {
  if (!line || !line.startsWith('RESULT ')) throw new Error(`client-events said ${JSON.stringify(line)}`);
  return Object.fromEntries(line.trim().split(/\s+/).slice(1).map((kv) => kv.split('=')));
}

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function within(ms, what, promise) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function sendCostC() {
  const r = spawnSync(exe, ['sendcost', String(CALLS)], { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) throw new Error(`client-events sendcost: ${r.stderr}`);
  return Number(result(r.stdout).us_per_call);
}

function sendCostNode() {
  const c = new libchat.Client({ server: 'ws://127.0.0.1:9/', token: 'unused', start: false });
  try {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) c.sendTextTo('bob', 'hello');
    return Number(process.hrtime.bigint() - t0) / 1000 / CALLS;
  } finally {
    c.close();
  }
}

const srv = await Chatd.start({ args: LIMITS });
const rounds = [];
let bob = null;
try {
  // bob's Node device, for every round: counts the messages of the round's tag
  bob = client(srv, 'bob', { device: 'bench-node' });
  await within(30000, 'the Node client\'s first sync', bob.waitFor('synced'));
  let want = null; // { tag, n, t0, cpu0, resolve }
  bob.on('message', (ev) => {
    if (!want || !ev.text.startsWith(want.tag)) return;
    if (want.n++ === 0) {
      want.t0 = process.hrtime.bigint();
      want.cpu0 = process.cpuUsage();
    }
    if (want.n === N) {
      const secs = Number(process.hrtime.bigint() - want.t0) / 1e9;
      const cpu = process.cpuUsage(want.cpu0);
      want.resolve({ eps: (N - 1) / secs, cpuUs: (cpu.user + cpu.system) / (N - 1) });
      want = null;
    }
  });

  // Node's count of the messages tagged tag: { eps, cpuUs } once N arrived
  const count = (tag) => new Promise((resolve) => { want = { tag, n: 0, resolve }; });

  // client-events recv|live as bob's C device; its RESULT line comes through next()
  async function cReceiver(mode, tag) {
    const proc = spawn(exe, [mode, srv.url, srv.token('bob', 'bench-c'), String(N), tag],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    const lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    const stop = async () => {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
    };
    try {
      const ready = (await within(30000, `client-events ${mode}: ready`, lines.next())).value;
      if (ready !== 'ready') throw new Error(`client-events ${mode}: ${ready}`);
    } catch (e) {
      await stop();
      throw e;
    }
    const next = async () => result((await within(DRAIN_MS, `the C client's ${N} messages`, lines.next())).value);
    return { proc, next, stop };
  }
  const sendArgs = (tag) => ['send', srv.url, srv.token('alice', 'bench-send'), 'bob', String(N), tag];

  for (let r = 0; r < ROUNDS; r++) {
    const round = { cSendUs: sendCostC(), nodeSendUs: sendCostNode() };

    // live: both devices take the messages as they come, at the sender's pace
    let c = await cReceiver('live', `r${r}l`);
    try {
      const nodeDone = count(`r${r}l`);
      const sender = spawn(exe, sendArgs(`r${r}l`), { stdio: ['ignore', 'pipe', 'inherit'] });
      const sent = new Promise((resolve, reject) => {
        let out = '';
        sender.stdout.on('data', (d) => { out += d; });
        sender.once('close', (code) => {
          if (code === 0) resolve(result(out));
          else reject(new Error(`client-events send: exit ${code}`));
        });
      });
      const [node, cr, snd] = await within(SEND_MS, 'the live round',
        Promise.all([nodeDone, c.next(), sent]));
      Object.assign(round, {
        liveEps: node.eps, liveCCpuUs: Number(cr.cpu_us_per_event), liveNodeCpuUs: node.cpuUs,
        liveSendSecs: Number(snd.secs),
      });
    } finally {
      want = null;
      await c.stop();
    }

    // backlog: neither takes any while the sender runs, then Node drains, then C
    c = await cReceiver('recv', `r${r}b`);
    try {
      const nodeDone = count(`r${r}b`);
      const sender = spawnSync(exe, sendArgs(`r${r}b`), { encoding: 'utf8', timeout: SEND_MS });
      if (sender.status !== 0) throw new Error(`client-events send: ${sender.error || sender.stderr}`);
      const node = await within(DRAIN_MS, `the Node client's ${N} messages`, nodeDone);
      c.proc.stdin.end('go\n');
      const cr = await c.next();
      Object.assign(round, {
        cEps: Number(cr.events_per_s), nodeEps: node.eps,
        cCpuUs: Number(cr.cpu_us_per_event), nodeCpuUs: node.cpuUs,
      });
    } finally {
      want = null;
      await c.stop();
    }
    rounds.push(round);
    console.log(`ROUND ${r} ${Object.entries(round).map(([k, v]) => `${k}=${v.toFixed(2)}`).join(' ')}`);
  }
  const m = (k) => median(rounds.map((x) => x[k]));
  const f = (v, d = 2) => v.toFixed(d);
  console.log(`RESULT label=node-bench events=${N} calls=${CALLS} rounds=${ROUNDS} ` +
    `live_events_per_s=${f(m('liveEps'), 0)} live_c_cpu_us_per_event=${f(m('liveCCpuUs'))} ` +
    `live_node_cpu_us_per_event=${f(m('liveNodeCpuUs'))} ` +
    `c_events_per_s=${f(m('cEps'), 0)} node_events_per_s=${f(m('nodeEps'), 0)} ` +
    `ratio=${f(median(rounds.map((x) => x.nodeEps / x.cEps)))} ` +
    `c_cpu_us_per_event=${f(m('cCpuUs'))} node_cpu_us_per_event=${f(m('nodeCpuUs'))} ` +
    `c_send_us_per_call=${f(m('cSendUs'))} node_send_us_per_call=${f(m('nodeSendUs'))}`);
} finally {
  if (bob) bob.close();
  await srv.close();
}
