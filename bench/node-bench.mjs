// The Node.js binding against the C engine alone, in one run (by hand; figures in
// bindings/node/README.md):
//   events/s  a chatd on 127.0.0.1; bob's C client (client-events recv) and bob's Node client
//             (in this process, another device) both receive the same N messages, sent by
//             alice's C client while neither consumes its events (the JS thread is blocked in
//             spawnSync, the C one waits on stdin), so that they pile up in each engine's
//             queue. Then both drain: each counts from its first to its Nth message event,
//             with the CPU time of its whole process (the engine's threads included). This is
//             what each can deliver, independent of how fast the server stores messages.
//   send cost sendTextTo() against chat_client_send_text_to() on clients that are not
//             started (in-memory outbox): the time of one call
//
//   CHATD=build/examples/chatd/chatd CLIENT_EVENTS=build/bench/client-events \
//   LIBCHAT_NODE_ADDON=$PWD/build/bindings/node/libchat.node node bench/node-bench.mjs [N] [CALLS]
//   (the addon's path absolute: require() takes a bare relative one for a package name)
//
// Prints one RESULT line.
import { spawn, spawnSync } from 'node:child_process';
import readline from 'node:readline';

import { Chatd, client, libchat } from '../tests/node/helpers.mjs';

const N = Number(process.argv[2] || 20000);
const CALLS = Number(process.argv[3] || 20000);
const exe = process.env.CLIENT_EVENTS;
if (!exe) throw new Error('CLIENT_EVENTS is not set to the client-events binary');

function result(line) {
  return Object.fromEntries(line.trim().split(/\s+/).slice(1).map((kv) => kv.split('=')));
}

function sendCostNode(calls) {
  const c = new libchat.Client({ server: 'ws://127.0.0.1:9/', token: 'unused', start: false });
  try {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) c.sendTextTo('bob', 'hello');
    return Number(process.hrtime.bigint() - t0) / 1000 / calls;
  } finally {
    c.close();
  }
}

const srv = await Chatd.start();
try {
  // send cost first, on an idle machine
  const cSend = result(spawnSync(exe, ['sendcost', String(CALLS)], { encoding: 'utf8' }).stdout);
  const nodeSendUs = sendCostNode(CALLS);

  // receivers: C (a child process) and Node (this process)
  const crecv = spawn(exe, ['recv', srv.url, srv.token('bob', 'bench-c'), String(N)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: crecv.stdout })[Symbol.asyncIterator]();
  const ready = (await lines.next()).value;
  if (ready !== 'ready') throw new Error(`client-events recv: ${ready}`);

  const bob = client(srv, 'bob', { device: 'bench-node' });
  await bob.waitFor('synced');
  let n = 0;
  let t0 = 0n;
  let cpu0 = null;
  const done = new Promise((resolve) => {
    bob.on('message', () => {
      if (n++ === 0) {
        t0 = process.hrtime.bigint();
        cpu0 = process.cpuUsage();
      }
      if (n === N) {
        const secs = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpu = process.cpuUsage(cpu0);
        resolve({ secs, cpuUs: cpu.user + cpu.system });
      }
    });
  });

  const sender = spawnSync(exe, ['send', srv.url, srv.token('alice', 'bench-send'), 'bob', String(N)],
    { encoding: 'utf8', timeout: 1800000 });
  if (sender.status !== 0) throw new Error(`client-events send: ${sender.stderr}`);
  crecv.stdin.end('go\n');
  const node = await done;
  const c = result((await lines.next()).value);
  bob.close();

  const nodeRate = (N - 1) / node.secs;
  console.log(`RESULT label=node-bench events=${N} send=${result(sender.stdout).secs}s ` +
    `c_events_per_s=${c.events_per_s} node_events_per_s=${nodeRate.toFixed(0)} ` +
    `c_cpu_us_per_event=${c.cpu_us_per_event} node_cpu_us_per_event=${(node.cpuUs / (N - 1)).toFixed(2)} ` +
    `c_send_us_per_call=${cSend.us_per_call} node_send_us_per_call=${nodeSendUs.toFixed(2)}`);
} finally {
  await srv.close();
}
