'use strict';
/*
 * libchat for Node.js and Electron: the client engine (include/chat/client.h) over Node-API.
 *
 *   const { Client } = require('libchat');
 *   const c = new Client({ server: 'ws://127.0.0.1:7700/', token, cache: 'alice.db' });
 *   c.on('message', (ev) => console.log(ev.user, ev.text));
 *   await c.waitFor('synced');
 *   const cmid = c.sendTextTo('bob', 'hi');
 *
 * The native half (libchat.node) owns the chat_client and a thread that pulls its events;
 * this file turns them into EventEmitter events, Promises and async iterators on the JS
 * thread. See README.md.
 */

const { EventEmitter } = require('node:events');
const path = require('node:path');
const fs = require('node:fs');

function loadAddon() {
  const tried = [];
  const candidates = [];
  if (process.env.LIBCHAT_NODE_ADDON) candidates.push(process.env.LIBCHAT_NODE_ADDON);
  candidates.push(path.join(__dirname, 'libchat.node'));
  // the source tree, built with meson into build/
  candidates.push(path.join(__dirname, '..', '..', 'build', 'bindings', 'node', 'libchat.node'));
  for (const file of candidates) {
    tried.push(file);
    if (!fs.existsSync(file)) continue;
    return require(file);
  }
  throw new Error(`libchat: the native addon libchat.node was not found (tried ${tried.join(', ')}); ` +
                  'build it with meson (-Dnode=enabled) or set LIBCHAT_NODE_ADDON');
}

const native = loadAddon();

/** chat_status names to their numbers, read from the library: { OK: 0, ERROR: -1, EINVAL: -2, ... } */
const codes = Object.freeze(native.codes());
const codeNames = new Map(Object.entries(codes).map(([k, v]) => [v, k]));

/** Every libchat failure: `code` is the chat_status name ('EAUTH'), `errno` its number (-9),
 *  `reason` the library's detail. */
class ChatError extends Error {
  constructor(code, reason, what) {
    const errno = typeof code === 'number' ? code : (codes[code] ?? codes.ERROR);
    const name = codeNames.get(errno) ?? 'ERROR';
    const why = reason === undefined || reason === null || reason === '' ? native.strerror(errno) : String(reason);
    super(what ? `${what}: ${why}` : why);
    this.code = name;
    this.errno = errno;
    this.reason = why;
  }

  get name() { return 'ChatError'; }
}

const EVENT_TYPES = Object.freeze(['connecting', 'online', 'offline', 'auth_failed', 'synced', 'message', 'sent',
  'send_failed', 'receipt', 'conv', 'typing', 'presence', 'history', 'result', 'updated', 'expired']);
const CONN_STATES = ['stopped', 'offline', 'connecting', 'online', 'auth_failed'];
const MSG_STATUS = ['none', 'sending', 'sent', 'delivered', 'read', 'failed'];
const MSG_KINDS = [null, 'text', 'media', 'event', 'edit', 'delete', 'react'];
const CONV_KINDS = [null, 'direct', 'group'];
const ROLES = ['none', 'member', 'admin', 'owner'];

const enumName = (table, v) => table[v] ?? v;

/** One engine event, copied out of the C event. Fields that do not apply are 0, '' or false. */
class ChatEvent {
  constructor(type, conv, seq, ts, user, device, cmid, kind, text, json, errno, message, request,
    delivered, read, active, lastSeen, retryMs, count, more) {
    this.type = type;
    this.conv = conv;
    this.seq = seq;
    this.ts = ts;
    this.user = user;
    this.device = device;
    this.cmid = cmid;
    this.kind = enumName(MSG_KINDS, kind);
    this.text = text;
    this.json = json;
    this.errno = errno;
    this.code = codeNames.get(errno) ?? 'ERROR';
    this.message = message;
    this.request = request;
    this.delivered = delivered;
    this.read = read;
    this.active = active;
    this.lastSeen = lastSeen;
    this.retryMs = retryMs;
    this.count = count;
    this.more = more;
  }

  /** A ChatError for a failed event (offline, auth_failed, send_failed, result, history), else null. */
  get error() {
    return this.errno < 0 ? new ChatError(this.errno, this.message || undefined, this.type) : null;
  }
}

native.init(ChatError, (...args) => new ChatEvent(...args));

function message(m) {
  m.kind = enumName(MSG_KINDS, m.kind);
  m.status = enumName(MSG_STATUS, m.status);
  // the C API's [{emoji, users}] ('' when none) as { emoji: [users] }
  m.reactions = m.reactions ? Object.fromEntries(JSON.parse(m.reactions).map((g) => [g.emoji, g.users])) : {};
  return m;
}

function conv(c) {
  c.kind = enumName(CONV_KINDS, c.kind);
  c.role = enumName(ROLES, c.role);
  c.name = c.kind === 'direct' ? c.peer : c.title;
  return c;
}

function roleNumber(role) {
  if (typeof role === 'number') return role;
  const i = ROLES.indexOf(role);
  if (i < 0) throw new ChatError('EINVAL', `role must be one of ${ROLES.slice(1).join(', ')}`, 'groupSetRole');
  return i;
}

function checkOptions(what, opts) {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object') throw new ChatError('EINVAL', `options must be an object, got ${typeof opts}`, what);
  return opts;
}

function matcher(filter) {
  if (filter === undefined || filter === null) return () => true;
  if (typeof filter === 'string') {
    if (!EVENT_TYPES.includes(filter)) throw new ChatError('EINVAL', `unknown event type '${filter}'`, 'waitFor');
    return (ev) => ev.type === filter;
  }
  if (typeof filter === 'function') return filter;
  if (typeof filter === 'object') {
    const entries = Object.entries(filter);
    return (ev) => entries.every(([k, v]) => (typeof v === 'function' ? v(ev[k]) : ev[k] === v));
  }
  throw new ChatError('EINVAL', 'filter must be an event type, a predicate or an object of fields', 'waitFor');
}

function describe(filter) {
  if (typeof filter === 'string') return `'${filter}'`;
  if (filter && typeof filter === 'object') {
    const fields = Object.entries(filter).map(([k, v]) => `${k}=${typeof v === 'function' ? '(predicate)' : typeof v === 'bigint' ? `${v}n` : JSON.stringify(v)}`);
    return `{${fields.join(' ')}}`;
  }
  return 'matching';
}

let transferIds = 0;

class Client extends EventEmitter {
  /**
   * new Client({ server, token } | { server, login: { user, password, device } }, ...)
   * Options: cache (file path; default in memory), caFile, backoff { baseMs, maxMs },
   * heartbeat { intervalMs, timeoutMs }, autoDelivered (default true), start (default true).
   */
  constructor(options) {
    super();
    const opts = checkOptions('Client', options);
    this._pending = new Map(); // request id -> { resolve, reject, presence? }
    this._iterators = new Set();
    this._waiters = new Set(); // waitFor(): { onEvent, onClose }
    this._closed = false;
    this._native = new native.NativeClient(opts, (events) => this._dispatch(events));
    if (opts.start !== false) this.start();
  }

  // ---- events ----

  _dispatch(events) {
    for (const ev of events) {
      if (this._closed) return; // a listener closed the Client
      this._settle(ev);
      for (const w of [...this._waiters]) w.onEvent(ev);
      for (const it of this._iterators) it._push(ev);
      this._emitSafely(ev.type, ev);
      this._emitSafely('event', ev);
    }
  }

  // A listener that throws (or an async one that rejects) does not stop the others, nor
  // later events, nor the process: its error goes to the 'error' listeners, or becomes a
  // process warning when there are none. (EventEmitter.emit would stop at the first throw.)
  _emitSafely(name, ev) {
    const listeners = this.rawListeners(name); // a copy; once() wrappers remove themselves
    for (const fn of listeners) {
      try {
        const r = Reflect.apply(fn, this, [ev]);
        if (r && typeof r.then === 'function') r.then(undefined, (err) => this._listenerError(err, name));
      } catch (err) {
        this._listenerError(err, name);
      }
    }
  }

  _listenerError(err, name) {
    if (this.listenerCount('error') > 0) {
      try {
        this.emit('error', err);
        return;
      } catch (err2) {
        err = err2;
      }
    }
    process.emitWarning(`libchat: a '${name}' listener threw: ${err && err.stack ? err.stack : err}`,
      { code: 'LIBCHAT_LISTENER_ERROR' });
  }

  _settle(ev) {
    if (ev.type === 'presence') {
      for (const p of this._pending.values()) if (p.presence && p.users.has(ev.user)) p.presence.set(ev.user, ev);
      return;
    }
    if (ev.type !== 'result' && ev.type !== 'history') return;
    const p = this._pending.get(ev.request);
    if (!p) return;
    this._pending.delete(ev.request);
    if (ev.errno < 0) p.reject(new ChatError(ev.errno, ev.message || undefined, p.what));
    else p.resolve(p.presence ? [...p.presence.values()] : ev);
  }

  _request(what, id, extra) {
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject, what, ...extra });
    });
  }

  /**
   * The next event matching filter (an event type, a predicate, or an object of fields to
   * compare), within timeoutMs (default 10000; 0: no limit). Rejects with ChatError ETIMEDOUT,
   * or ECLOSED when the Client closes first.
   */
  waitFor(filter, { timeoutMs = 10000 } = {}) {
    if (this._closed) return Promise.reject(new ChatError('ECLOSED', 'the Client is closed', 'waitFor'));
    let match;
    try {
      match = matcher(filter);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      let timer = null;
      const done = () => {
        this._waiters.delete(waiter);
        if (timer) clearTimeout(timer);
      };
      const onEvent = (ev) => {
        let ok;
        try {
          ok = match(ev);
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (ok) {
          done();
          resolve(ev);
        }
      };
      const onClose = () => {
        done();
        reject(new ChatError('ECLOSED', 'the Client was closed', 'waitFor'));
      };
      const waiter = { onEvent, onClose };
      this._waiters.add(waiter);
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          done();
          reject(new ChatError('ETIMEDOUT', `no ${describe(filter)} event within ${timeoutMs} ms`, 'waitFor'));
        }, timeoutMs);
      }
    });
  }

  /** Every event from now on, as an async iterator (ends when the Client closes, or on break). */
  events() {
    const client = this;
    const queue = [];
    let wake = null;
    let finished = this._closed;
    const it = {
      _push(ev) {
        queue.push(ev);
        if (wake) { const w = wake; wake = null; w(); }
      },
      _end() {
        finished = true;
        client._iterators.delete(it);
        if (wake) { const w = wake; wake = null; w(); }
      },
      async next() {
        while (queue.length === 0 && !finished) await new Promise((r) => { wake = r; });
        if (queue.length > 0) return { value: queue.shift(), done: false };
        return { value: undefined, done: true };
      },
      async return() {
        it._end();
        queue.length = 0;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() { return it; },
    };
    if (!finished) this._iterators.add(it);
    return it;
  }

  [Symbol.asyncIterator]() {
    return this.events();
  }

  // ---- lifecycle ----

  /** Start the engine's thread: it connects, syncs and flushes the outbox. */
  start() { this._native.start(); }

  /** Disconnect and stop the engine's thread; pending requests fail with ECLOSED. */
  stop() { this._native.stop(); }

  /**
   * Stop and free the engine. Pending requests reject with ECLOSED, iterators end, running
   * transfers end with ECLOSED; every later call throws ChatError ECLOSED. Idempotent.
   */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._native.close();
    for (const p of this._pending.values()) p.reject(new ChatError('ECLOSED', 'the Client was closed', p.what));
    this._pending.clear();
    for (const it of [...this._iterators]) it._end();
    for (const w of [...this._waiters]) w.onClose();
  }

  get closed() { return this._closed; }

  /** Keep the process alive while the Client is open (the default), like a socket. */
  ref() { if (!this._closed) this._native.ref(true); return this; }

  /** Let the process exit with the Client open; an unreferenced Client that becomes
   *  unreachable is closed by the garbage collector. */
  unref() { if (!this._closed) this._native.ref(false); return this; }

  /** 'stopped', 'offline', 'connecting', 'online' or 'auth_failed'. */
  get state() { return enumName(CONN_STATES, this._native.state()); }

  reconnectNow() { this._native.reconnectNow(); }
  disconnect() { this._native.disconnect(); }
  setToken(token) { this._native.setToken(token); }

  /** My user id, or null before the first authentication. */
  get user() { return this._native.user(); }
  /** The token in use, or null. */
  get token() { return this._native.token(); }

  // ---- sending (the outbox: written before the call returns, sent exactly once) ----

  /** Queue text for conversation conv; returns the cmid. */
  sendText(conv, text) { return this._native.send(this._conv('sendText', conv), text, false); }

  /** Queue text to the direct conversation with user; returns the cmid. */
  sendTextTo(user, text) { return this._native.send(this._user('sendTextTo', user), text, false); }

  /** Queue a media message (media: {id, mime, size, name, width?, height?, duration_ms?}). */
  sendMedia(conv, media) { return this._native.send(this._conv('sendMedia', conv), this._media('sendMedia', media), true); }

  sendMediaTo(user, media) { return this._native.send(this._user('sendMediaTo', user), this._media('sendMediaTo', media), true); }

  _conv(what, conv) {
    if (typeof conv === 'string') throw new ChatError('EINVAL', `conv must be a number, got a string`, what);
    return conv;
  }

  _user(what, user) {
    if (typeof user !== 'string') throw new ChatError('EINVAL', `user must be a string, got ${user === null ? 'null' : typeof user}`, what);
    return user;
  }

  _media(what, media) {
    if (media === null || typeof media !== 'object') throw new ChatError('EINVAL', 'media must be an object', what);
    return JSON.stringify(media);
  }

  /** Queue text for conv as a reply quoting message replyTo and/or in the thread of root
   *  message thread (0: none); returns the cmid. */
  sendReply(conv, text, { replyTo = 0, thread = 0 } = {}) {
    return this._native.sendReply(this._conv('sendReply', conv), replyTo, thread, text);
  }

  outboxCount() { return this._native.outboxCount(); }

  /** Messages still in the outbox (status 'sending' or 'failed'), oldest first. */
  outbox() { return this._native.outbox().map(message); }

  // ---- media ----

  /**
   * Upload a file (streamed, resumable: a second call for the same file continues where the
   * server stands). Resolves with the media id. onProgress(done, total) runs on the JS thread;
   * if it throws, the upload stops and the Promise rejects with what it threw. signal: an
   * AbortSignal that stops it (the Promise rejects with signal.reason).
   */
  uploadFile(file, { mime = null, onProgress = null, signal = null } = {}) {
    return this._transfer(signal, (id) => this._native.upload(id, file, mime, onProgress));
  }

  /**
   * Download media into file, checking its hash against mediaId. url defaults to a fresh
   * mediaUrl(). A file + '.part' left by an interrupted download is continued. Resolves with file.
   */
  async download(mediaId, file, { url = null, onProgress = null, signal = null } = {}) {
    if (url === null || url === undefined) url = (await this.mediaUrl(mediaId)).url;
    await this._transfer(signal, (id) => this._native.download(id, url, mediaId, file, onProgress));
    return file;
  }

  async _transfer(signal, start) {
    if (signal && signal.aborted) throw signal.reason;
    const id = (transferIds = (transferIds + 1) >>> 0);
    const promise = start(id);
    const onAbort = () => { try { this._native.abortTransfer(id); } catch { /* closed */ } };
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await promise;
    } catch (err) {
      if (signal && signal.aborted && err instanceof ChatError && err.code === 'EUSER') throw signal.reason;
      throw err;
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort);
    }
  }

  /** A signed download URL: {url, expires, mime, size, name}. */
  async mediaUrl(mediaId) {
    const ev = await this._request('mediaUrl', this._native.mediaUrl(mediaId));
    return JSON.parse(ev.json);
  }

  // ---- receipts, typing, presence ----

  /** Mark conv read up to seq (works offline; sent on the next connect). */
  markRead(conv, seq) { this._native.markRead(conv, seq); }

  /** Typing indicator; dropped when offline. */
  typing(conv, active = true) { this._native.typing(conv, active); }

  /** The presence of users: resolves with the 'presence' events the query brought. */
  async presenceQuery(users) {
    const id = this._native.presenceQuery(users);
    return this._request('presenceQuery', id, { presence: new Map(), users: new Set(users) });
  }

  // ---- groups (not queued: ECLOSED when offline; see doc/client.md) ----

  /** Create a group; resolves with its conversation id. With cmid (kept by the app) a
   *  repeated call answers the group the first one created. */
  async groupCreate(title, members, { cmid = null } = {}) {
    const ev = await this._request('groupCreate', this._native.groupCreate(title, members, cmid));
    return ev.conv;
  }

  async groupAdd(conv, users) { await this._request('groupAdd', this._native.groupAdd(conv, users)); }
  async groupRemove(conv, users) { await this._request('groupRemove', this._native.groupRemove(conv, users)); }
  async groupLeave(conv) { await this._request('groupLeave', this._native.groupLeave(conv)); }
  async groupRename(conv, title) { await this._request('groupRename', this._native.groupRename(conv, title)); }

  /** role: 'member', 'admin' or 'owner'. */
  async groupSetRole(conv, user, role) {
    await this._request('groupSetRole', this._native.groupSetRole(conv, user, roleNumber(role)));
  }

  // ---- push notifications (doc/push.md) ----

  /**
   * Register this device for push while it is offline: platform 'apns' (token: the device
   * token in hex; topic: the app's bundle id, default the server's; sandbox: a development
   * build) or 'fcm' (the registration token). Kept and sent again at every connect; resolves
   * when the server stored it. A malformed platform, token or topic rejects with EINVAL.
   */
  async pushRegister(platform, token, { topic = null, sandbox = false } = {}) {
    await this._request('pushRegister', this._native.pushRegister(platform, token, topic, sandbox));
  }

  /** Stop push to this device (before logging out). */
  async pushUnregister() { await this._request('pushUnregister', this._native.pushUnregister()); }

  /** Mute conv (every device of mine: no pushes) until untilMs, ms since the epoch; omitted,
   *  null or -1: until unmuted. */
  async mute(conv, untilMs = null) {
    await this._request('mute', this._native.mute(conv, untilMs === null ? -1 : untilMs));
  }

  async unmute(conv) { await this.mute(conv, 0); }

  // ---- changes to sent messages, timers, threads, search (not queued: ECLOSED when offline) ----

  /** Edit my text message seq of conv; every member's cache then shows the new text ('updated'). */
  async edit(conv, seq, text) { await this._request('edit', this._native.edit(conv, seq, text)); }

  /** Delete message seq of conv for everyone (mine within the server's window; any as admin). */
  async delete(conv, seq) { await this._request('delete', this._native.delete(conv, seq)); }

  /** Put my reaction emoji on message seq of conv (on: true) or take it off. */
  async react(conv, seq, emoji, on = true) { await this._request('react', this._native.react(conv, seq, emoji, on)); }

  /** Disappearing messages: those sent to conv from now on expire after ttlMs (0: never). */
  async setTimer(conv, ttlMs) { await this._request('setTimer', this._native.setTimer(conv, ttlMs)); }

  /** Mark the thread of root message root of conv read up to seq. */
  async markThreadRead(conv, root, seq) {
    await this._request('markThreadRead', this._native.markThreadRead(conv, root, seq));
  }

  /** A page of the thread of root message root of conv from the server (replies after
   *  `after`; they are cached too): the server's answer {thread, root, unread, messages, more}. */
  async thread(conv, root, { after = 0, limit = 50 } = {}) {
    const ev = await this._request('thread', this._native.thread(conv, root, after, limit));
    return JSON.parse(ev.json);
  }

  /** Search the server for messages holding every word of query in my conversations (or in
   *  conv), newest first, older than cursor `before`: {messages, more, cursor}. */
  async search(query, { conv = 0, before = 0, limit = 20 } = {}) {
    const ev = await this._request('search', this._native.search(query, conv, before, limit));
    return JSON.parse(ev.json);
  }

  /** Search the cache, offline: the cached messages holding every word of query as they are
   *  now, most recently cached first. */
  searchLocal(query, { conv = 0, limit = 50 } = {}) {
    return this._native.searchLocal(query, conv, limit).map(message);
  }

  // ---- the cache ----

  /** Cached conversations, most recent first. */
  convs() { return this._native.convs().map(conv); }

  /**
   * Up to limit messages of conv below seq `before` (0: the newest), ascending. What the
   * cache lacks is fetched from the server first (fetch: false answers from the cache alone).
   * Resolves with {messages, complete}.
   */
  async history(conv, { before = 0, limit = 50, fetch = true } = {}) {
    let r = this._native.history(conv, before, limit);
    if (!r.complete && r.request && fetch) {
      await this._request('history', r.request);
      r = this._native.history(conv, before, limit);
    }
    return { messages: r.messages.map(message), complete: r.complete };
  }

  /** {status, conv, seq} of my message cmid; status: 'sending', 'sent', 'delivered', 'read', 'failed'. */
  messageStatus(cmid) {
    const s = this._native.messageStatus(cmid);
    s.status = enumName(MSG_STATUS, s.status);
    return s;
  }

  /** {delivered, read, others}: how many other members have message (conv, seq). */
  messageReceipts(conv, seq) { return this._native.messageReceipts(conv, seq); }
}

module.exports = {
  Client,
  ChatError,
  ChatEvent,
  codes,
  EVENT_TYPES,
  version: native.version(),
  strerror: native.strerror,
};
