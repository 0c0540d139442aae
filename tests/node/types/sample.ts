// Type-checked with tsc against bindings/node/index.d.ts (tests/node/meson.build); never run.
import { ChatError, ChatEvent, Client, Conv, History, Message, codes, version } from '../../../bindings/node/index';

async function main(server: string, token: string): Promise<void> {
  const c = new Client({ server, token, cache: 'app.db', backoff: { baseMs: 100, maxMs: 1000 } });
  c.on('message', (ev: ChatEvent) => {
    const text: string = ev.text;
    const conv: number = ev.conv;
    c.markRead(conv, ev.seq);
    if (ev.kind === 'media') console.log(JSON.parse(ev.json), text);
  });
  c.on('error', (err) => console.error(err));
  await c.waitFor('synced', { timeoutMs: 5000 });
  const cmid: string = c.sendTextTo('bob', 'hi');
  const sent = await c.waitFor({ type: 'sent', cmid });
  const status: 'none' | 'sending' | 'sent' | 'delivered' | 'read' | 'failed' = c.messageStatus(cmid).status;
  const convs: Conv[] = c.convs();
  const page: History = await c.history(sent.conv, { before: 0, limit: 20 });
  const reply: string = c.sendReply(sent.conv, 'ok', { replyTo: sent.seq });
  await c.edit(sent.conv, sent.seq, 'hi!');
  await c.react(sent.conv, sent.seq, '\u{1F44D}', false);
  const found = await c.search('hi', { limit: 10 });
  const local: Message[] = c.searchLocal('hi');
  console.log(reply, found.more, found.cursor, local.map((m) => [m.edited, m.deleted, m.reactions]));
  const group: number = await c.groupCreate('team', ['bob', 'carol'], { cmid: 'team-1' });
  await c.groupSetRole(group, 'bob', 'admin');
  const presence: ChatEvent[] = await c.presenceQuery(['bob']);
  await c.pushRegister('apns', 'ab'.repeat(32), { topic: 'com.example.chat', sandbox: true });
  await c.mute(sent.conv);
  const mutedUntil: number = convs[0].mutedUntil;
  await c.unmute(sent.conv);
  await c.pushUnregister();
  const id: string = await c.uploadFile('photo.jpg', { mime: 'image/jpeg', onProgress: (done, total) => console.log(done / total) });
  c.sendMedia(group, { id, mime: 'image/jpeg', size: 1, name: 'photo.jpg' });
  const file: string = await c.download(id, 'copy.jpg', { signal: new AbortController().signal });
  for await (const ev of c) {
    if (ev.type === 'offline') console.log(ev.retryMs, ev.error?.code);
    break;
  }
  try {
    c.sendText(1n, 'x');
  } catch (err) {
    if (err instanceof ChatError) console.log(err.code, err.errno, err.reason);
  }
  console.log(status, convs.length, mutedUntil, page.complete, presence.length, file, codes.EAUTH, version, c.state);
  c.close();
}

void main;
