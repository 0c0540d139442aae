// Fixtures for the Node.js binding's tests: a real chatd on 127.0.0.1 (an ephemeral port, a
// temporary data directory) with users alice, bob and carol (password "pw"), and the binding.
//
// CHATD: the chatd binary. LIBCHAT_NODE_ADDON: the built libchat.node (index.js finds it).
// LIBCHAT_NODE: the binding's directory (default: bindings/node of this source tree).
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
export const libchat = require(process.env.LIBCHAT_NODE || path.join(here, '..', '..', 'bindings', 'node'));

export const USERS = ['alice', 'bob', 'carol'];

function chatdExe() {
  const exe = process.env.CHATD;
  if (!exe) throw new Error('CHATD is not set to the chatd binary');
  return exe;
}

// chatd without an LD_PRELOAD meant for node itself (the sanitizer runtime preloaded for the
// addon would clash with the one linked into chatd).
function chatdEnv() {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  return env;
}

export function tmpdir(prefix = 'libchat-node-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export class Chatd {
  constructor(dir) {
    this.dir = dir;
    this.dataDir = path.join(dir, 'data');
    this.proc = null;
    this.port = 0;
    this.tokens = new Map();
    this.stderrPath = path.join(dir, 'chatd.stderr');
    this.args = [];
  }

  /** args: more `chatd run` options. */
  static async start({ args = [] } = {}) {
    const srv = new Chatd(tmpdir());
    srv.args = args;
    for (const u of USERS) {
      const r = spawnSync(chatdExe(), ['user', 'add', '--data-dir', srv.dataDir, u],
        { input: 'pw\n', encoding: 'utf8', timeout: 30000, env: chatdEnv() });
      if (r.status !== 0) throw new Error(`chatd user add ${u}: ${r.stderr}`);
    }
    await srv.run();
    return srv;
  }

  run() {
    const err = fs.openSync(this.stderrPath, 'a');
    this.proc = spawn(chatdExe(), ['run', '--data-dir', this.dataDir, '--port', '0', '--listen', '127.0.0.1',
      ...this.args],
      { stdio: ['ignore', 'pipe', err], env: chatdEnv() });
    fs.closeSync(err);
    return new Promise((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => fail(new Error('chatd did not start within 20 s')), 20000);
      const fail = (e) => { clearTimeout(timer); this.proc.kill('SIGKILL'); reject(e); };
      this.proc.once('exit', (code) => fail(new Error(`chatd exited (${code}): ${this.stderrTail()}`)));
      this.proc.stdout.on('data', (chunk) => {
        buf += chunk;
        const nl = buf.indexOf('\n');
        if (nl < 0 || this.port) return;
        const m = /^chatd listening on 127\.0\.0\.1:(\d+)$/.exec(buf.slice(0, nl));
        if (!m) return fail(new Error(`chatd said ${JSON.stringify(buf.slice(0, nl))}`));
        this.port = Number(m[1]);
        clearTimeout(timer);
        this.proc.removeAllListeners('exit');
        this.proc.stdout.resume();
        resolve(this);
      });
    });
  }

  get url() { return `ws://127.0.0.1:${this.port}/`; }

  token(user, device = 'node') {
    const key = `${user}/${device}`;
    if (!this.tokens.has(key)) {
      const r = spawnSync(chatdExe(), ['token', '--data-dir', this.dataDir, user, device],
        { encoding: 'utf8', timeout: 30000, env: chatdEnv() });
      if (r.status !== 0) throw new Error(`chatd token: ${r.stderr}`);
      this.tokens.set(key, r.stdout.trim().split(/\s+/).pop());
    }
    return this.tokens.get(key);
  }

  stderrTail(n = 3000) {
    try {
      return fs.readFileSync(this.stderrPath, 'utf8').slice(-n);
    } catch {
      return '(no stderr)';
    }
  }

  /** Stop chatd (SIGTERM, then SIGKILL after 15 s); resolves with its exit code. */
  async stop() {
    const p = this.proc;
    this.proc = null;
    this.port = 0;
    if (!p || p.exitCode !== null) return p ? p.exitCode : null;
    const exited = new Promise((resolve) => p.once('exit', (code) => resolve(code)));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 15000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  async close() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Client of user on srv with quick reconnects; options as for new Client. */
export function client(srv, user, options = {}) {
  const { device = 'node', ...rest } = options;
  return new libchat.Client({
    server: srv.url,
    token: srv.token(user, device),
    backoff: { baseMs: 100, maxMs: 1000 },
    ...rest,
  });
}

/** Poll fn() until it returns a truthy value (bounded); returns that value. */
export async function until(fn, { timeoutMs = 10000, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
