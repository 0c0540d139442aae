// index.d.ts declares what index.js exports: every export, every public Client member, every
// ChatEvent field. (tsc type-checks a sample program against it where tsc is installed:
// tests/node/types/sample.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { libchat } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = process.env.LIBCHAT_NODE || path.join(here, '..', '..', 'bindings', 'node');
const dts = fs.readFileSync(path.join(dir, 'index.d.ts'), 'utf8');

function classBody(name) {
  const start = dts.search(new RegExp(`^export class ${name}\\b`, 'm'));
  assert.ok(start >= 0, `index.d.ts declares class ${name}`);
  const end = dts.indexOf('\n}', start);
  return dts.slice(start, end);
}

function members(body) {
  const names = new Set();
  for (const m of body.matchAll(/^ {2}(?:readonly |private |static )*(\[Symbol\.\w+\]|\w+)\??\s*[(:<]/gm)) names.add(m[1]);
  return names;
}

test('every export of index.js is declared', () => {
  for (const name of Object.keys(libchat)) {
    assert.match(dts, new RegExp(`^export (?:declare )?(?:class|const|function|type|interface) ${name}\\b`, 'm'),
      `index.d.ts lacks the export ${name}`);
  }
});

test('every public Client member is declared', () => {
  const declared = members(classBody('Client'));
  const proto = libchat.Client.prototype;
  const own = [...Object.getOwnPropertyNames(proto), ...Object.getOwnPropertySymbols(proto).map((s) => `[${s.description}]`)];
  for (const name of own) {
    if (name === 'constructor' || name.startsWith('_') || name.startsWith('[nodejs.')) continue;
    assert.ok(declared.has(name), `index.d.ts lacks Client.${name}`);
  }
  // and nothing declared that does not exist (EventEmitter's own methods aside)
  for (const name of declared) {
    if (['constructor', 'on', 'once', 'off'].includes(name)) continue;
    assert.ok(own.includes(name), `index.d.ts declares Client.${name}, index.js has none`);
  }
});

test('every ChatEvent field is declared', () => {
  const declared = members(classBody('ChatEvent'));
  const ev = new libchat.ChatEvent('message', 1, 2, 3, 'u', 'd', 'c', 1, 't', '', 0, '', 0, 0, 0, false, 0, 0, 0, false);
  for (const name of [...Object.keys(ev), 'error']) assert.ok(declared.has(name), `index.d.ts lacks ChatEvent.${name}`);
  for (const name of declared) if (name !== 'constructor') assert.ok(name in ev, `ChatEvent has no ${name}`);
});

test('ChatError is declared with code, errno and reason', () => {
  const declared = members(classBody('ChatError'));
  const err = new libchat.ChatError('EAUTH', 'bad token');
  assert.equal(err.code, 'EAUTH');
  assert.equal(err.errno, libchat.codes.EAUTH);
  assert.equal(err.reason, 'bad token');
  for (const name of ['code', 'errno', 'reason']) assert.ok(declared.has(name));
  for (const name of Object.keys(libchat.codes)) assert.match(dts, new RegExp(`'${name}'`), `StatusName lacks ${name}`);
});
