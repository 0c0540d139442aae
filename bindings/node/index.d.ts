// TypeScript declarations of libchat's Node.js binding (index.js). Kept in step with index.js
// by tests/node/types.test.mjs (every export and Client method is declared here) and by a tsc
// type-check of tests/node/types-sample.ts where tsc is installed.

import { EventEmitter } from 'node:events';

/** A chat_status name: 'OK', 'ERROR', 'EINVAL', 'EAUTH', ... (see `codes`). */
export type StatusName =
  | 'OK' | 'ERROR' | 'EINVAL' | 'ENOMEM' | 'ENOTFOUND' | 'EEXISTS' | 'EBUSY' | 'EAGAIN'
  | 'ECLOSED' | 'EAUTH' | 'EPERM' | 'ELIMIT' | 'EPROTO' | 'EIO' | 'ETIMEDOUT' | 'ENOTSUP'
  | 'EVERSION' | 'EMISUSE' | 'EUSER';

/**
 * Conversation ids, sequence numbers and request ids. Numbers, exact up to
 * Number.MAX_SAFE_INTEGER; a larger value (which a server reaches only after 2^53 of them)
 * arrives as a bigint rather than a rounded number. Arguments accept both.
 */
export type Id = number;
export type IdArg = number | bigint;

export type EventType =
  | 'connecting' | 'online' | 'offline' | 'auth_failed' | 'synced' | 'message' | 'sent'
  | 'send_failed' | 'receipt' | 'conv' | 'typing' | 'presence' | 'history' | 'result'
  | 'updated' | 'expired';
export type ConnState = 'stopped' | 'offline' | 'connecting' | 'online' | 'auth_failed';
/** edit, delete and react: the kind of an 'updated' event. */
export type MsgKind = 'text' | 'media' | 'event' | 'edit' | 'delete' | 'react';
export type MsgStatus = 'none' | 'sending' | 'sent' | 'delivered' | 'read' | 'failed';
export type ConvKind = 'direct' | 'group';
export type Role = 'none' | 'member' | 'admin' | 'owner';

/** Every libchat failure, and every misuse of the binding (wrong argument types: EINVAL; a
 *  closed Client: ECLOSED). */
export class ChatError extends Error {
  /** code: a status name or its number; reason: the detail (default: the status's text). */
  constructor(code: StatusName | number, reason?: string, what?: string);
  /** The chat_status name, e.g. 'EAUTH'. */
  readonly code: StatusName;
  /** The chat_status number, e.g. -9 (0 never: that is success). */
  readonly errno: number;
  /** libchat's reason, without the name of the call that failed. */
  readonly reason: string;
}

/** One event of the engine. Fields that do not apply to its type are 0, '' or false. */
export class ChatEvent {
  private constructor();
  readonly type: EventType;
  readonly conv: Id;
  readonly seq: Id;
  /** Server time in ms since the epoch (message, sent). */
  readonly ts: number;
  /** Sender (message), receipt owner, typist, presence user, or me (online). */
  readonly user: string;
  readonly device: string;
  readonly cmid: string;
  /** message, updated: the kind; null for other events. */
  readonly kind: MsgKind | null;
  readonly text: string;
  /** The wire frame as JSON (media and event payloads; the answer of a media URL request). */
  readonly json: string;
  /** 'OK', or the failure of offline, auth_failed, send_failed, result and history events. */
  readonly code: StatusName;
  readonly errno: number;
  readonly message: string;
  /** The request a result or history event completes. */
  readonly request: Id;
  readonly delivered: Id;
  readonly read: Id;
  /** typing: started; presence: online. */
  readonly active: boolean;
  readonly lastSeen: number;
  /** offline: ms until the next attempt. */
  readonly retryMs: number;
  /** history: messages stored by the fetch. */
  readonly count: number;
  /** history: the server has more. */
  readonly more: boolean;
  /** A ChatError for a failed event, else null. */
  readonly error: ChatError | null;
}

export interface Message {
  conv: Id;
  seq: Id;
  ts: number;
  from: string;
  cmid: string;
  kind: MsgKind;
  text: string;
  json: string;
  /** My messages' status; 'none' for others'. */
  status: MsgStatus;
  deliveredCount: number;
  readCount: number;
  others: number;
  /** When it was last edited (ms since the epoch), 0 never: text is the latest text. */
  edited: number;
  /** Deleted for everyone: a tombstone keeping its seq, without text or media. */
  deleted: boolean;
  /** When it expires (disappearing messages), 0 never. */
  expires: number;
  /** The seq of the message it replies to, 0 none. */
  replyTo: Id;
  /** The seq of its thread's root, 0 the main conversation. */
  thread: Id;
  /** emoji -> the users who put it. */
  reactions: Record<string, string[]>;
}

/** A message of a server answer (search, thread), as on the wire (doc/protocol.md). */
export interface WireMessage {
  conv: Id;
  seq: Id;
  from: string;
  ts: number;
  kind: string;
  text?: string;
  [field: string]: unknown;
}

export interface SearchPage {
  messages: WireMessage[];
  more: boolean;
  /** Pass as `before` for the next page (absent when no message was found). */
  cursor?: Id;
}

export interface ThreadPage {
  conv: Id;
  /** The root's seq. */
  thread: Id;
  /** The root message. */
  root: WireMessage;
  /** Replies after my thread watermark. */
  unread: number;
  messages: WireMessage[];
  more: boolean;
}

export interface Conv {
  id: Id;
  kind: ConvKind;
  title: string;
  /** Direct conversations: the other user; groups: ''. */
  peer: string;
  /** peer for direct conversations, title for groups. */
  name: string;
  role: Role;
  head: Id;
  read: Id;
  unread: Id;
  memberCount: number;
  /** My mute: 0 not muted, -1 until unmuted, else when it ends (ms since the epoch). */
  mutedUntil: number;
}

export interface History {
  messages: Message[];
  /** true when the list covers the whole range asked for. */
  complete: boolean;
}

export interface MediaRef {
  id: string;
  mime: string;
  size: number;
  name: string;
  width?: number;
  height?: number;
  duration_ms?: number;
}

export interface MediaUrl {
  url: string;
  expires: number;
  mime: string;
  size: number;
  name: string;
}

export interface ClientOptions {
  /** "ws://host:port/" or "wss://host:port/". */
  server: string;
  token?: string;
  login?: { user: string; password: string; device?: string };
  /** SQLite cache file; without it the cache (and the outbox) lives in memory. */
  cache?: string | null;
  /** PEM file of the CAs to trust for wss:// and https:// media instead of the system's. */
  caFile?: string | null;
  backoff?: { baseMs: number; maxMs: number };
  heartbeat?: { intervalMs: number; timeoutMs: number };
  /** Send delivered receipts by itself (default true). */
  autoDelivered?: boolean;
  /** Start at once (default true). */
  start?: boolean;
}

export type EventFilter =
  | EventType
  | ((ev: ChatEvent) => boolean)
  | { [K in keyof ChatEvent]?: ChatEvent[K] | ((v: ChatEvent[K]) => boolean) };

export interface TransferOptions {
  /** Called on the JS thread as bytes move; throwing stops the transfer. */
  onProgress?: ((done: number, total: number) => void) | null;
  signal?: AbortSignal | null;
}

export class Client extends EventEmitter implements AsyncIterable<ChatEvent> {
  constructor(options: ClientOptions);

  // events: one per type, 'event' for every event, 'error' for what a listener threw
  on(event: EventType | 'event', listener: (ev: ChatEvent) => void): this;
  on(event: 'error', listener: (err: unknown) => void): this;
  once(event: EventType | 'event', listener: (ev: ChatEvent) => void): this;
  once(event: 'error', listener: (err: unknown) => void): this;
  off(event: EventType | 'event', listener: (ev: ChatEvent) => void): this;
  off(event: 'error', listener: (err: unknown) => void): this;

  waitFor(filter?: EventFilter | null, options?: { timeoutMs?: number }): Promise<ChatEvent>;
  events(): AsyncIterableIterator<ChatEvent>;
  [Symbol.asyncIterator](): AsyncIterableIterator<ChatEvent>;

  start(): void;
  stop(): void;
  close(): void;
  readonly closed: boolean;
  ref(): this;
  unref(): this;
  readonly state: ConnState;
  reconnectNow(): void;
  disconnect(): void;
  setToken(token: string): void;
  readonly user: string | null;
  readonly token: string | null;

  sendText(conv: IdArg, text: string): string;
  sendTextTo(user: string, text: string): string;
  sendMedia(conv: IdArg, media: MediaRef): string;
  sendMediaTo(user: string, media: MediaRef): string;
  sendReply(conv: IdArg, text: string, options?: { replyTo?: IdArg; thread?: IdArg }): string;
  outboxCount(): number;
  outbox(): Message[];

  edit(conv: IdArg, seq: IdArg, text: string): Promise<void>;
  delete(conv: IdArg, seq: IdArg): Promise<void>;
  react(conv: IdArg, seq: IdArg, emoji: string, on?: boolean): Promise<void>;
  setTimer(conv: IdArg, ttlMs: number): Promise<void>;
  markThreadRead(conv: IdArg, root: IdArg, seq: IdArg): Promise<void>;
  thread(conv: IdArg, root: IdArg, options?: { after?: IdArg; limit?: number }): Promise<ThreadPage>;
  search(query: string, options?: { conv?: IdArg; before?: IdArg; limit?: number }): Promise<SearchPage>;
  searchLocal(query: string, options?: { conv?: IdArg; limit?: number }): Message[];

  uploadFile(file: string, options?: TransferOptions & { mime?: string | null }): Promise<string>;
  download(mediaId: string, file: string, options?: TransferOptions & { url?: string | null }): Promise<string>;
  mediaUrl(mediaId: string): Promise<MediaUrl>;

  markRead(conv: IdArg, seq: IdArg): void;
  typing(conv: IdArg, active?: boolean): void;
  presenceQuery(users: string[]): Promise<ChatEvent[]>;

  groupCreate(title: string, members: string[], options?: { cmid?: string | null }): Promise<Id>;
  groupAdd(conv: IdArg, users: string[]): Promise<void>;
  groupRemove(conv: IdArg, users: string[]): Promise<void>;
  groupLeave(conv: IdArg): Promise<void>;
  groupRename(conv: IdArg, title: string): Promise<void>;
  groupSetRole(conv: IdArg, user: string, role: Exclude<Role, 'none'>): Promise<void>;

  pushRegister(platform: 'apns' | 'fcm', token: string,
               options?: { topic?: string | null; sandbox?: boolean }): Promise<void>;
  pushUnregister(): Promise<void>;
  /** untilMs: ms since the epoch; omitted, null or -1: until unmuted; 0 unmutes. */
  mute(conv: IdArg, untilMs?: number | null): Promise<void>;
  unmute(conv: IdArg): Promise<void>;

  convs(): Conv[];
  history(conv: IdArg, options?: { before?: IdArg; limit?: number; fetch?: boolean }): Promise<History>;
  messageStatus(cmid: string): { status: MsgStatus; conv: Id; seq: Id };
  messageReceipts(conv: IdArg, seq: IdArg): { delivered: number; read: number; others: number };
}

/** chat_status names to numbers, from the library. */
export const codes: Readonly<Record<StatusName, number>>;
export const EVENT_TYPES: readonly EventType[];
/** The loaded libchat's version string. */
export const version: string;
export function strerror(code: number): string;
