// Drives a real Converse.js in Debian's Chromium (playwright-core, never a downloaded
// browser) against a Parley server, for tests/browser.rs. It serves tests/browser/page and
// Converse's dist files on 127.0.0.1:--page-port, logs in over the given transport, sends a
// chat message to --peer, and waits for the peer's answer ("echo: " + the message).
// With --token-url, the page logs in the way a web site would: Converse's credentials_url
// points at this server's /credentials, which asks Parley's admin API (--token-url, bearer
// --admin-token) for a fresh token and answers {jid, password: token}; the page is then
// reloaded and must log in again the same way.
// With --site, the page is the server's own chat page instead (see useSite below).
// With --history, after the echo the browser starts afresh (a new profile: no local cache,
// as on a new device or after the site data is cleared), logs in again and opens the chat
// with --peer, which must show both messages, fetched from the server's archive (XEP-0313).
// With --resume, the XEP-0198 test: a dialogue with tests/browser.rs over stdin/stdout
// (see resumeDialogue below).
// With --room, the XEP-0045 test: --jid and --peer, each in their own page, join the room,
// chat in it, and --jid sends a file into it that --peer downloads (see mucRoom below).
// Prints what happened; exits 0 only if every step succeeded.
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const deadline = Date.now() + 1000 * Number(args.deadline || 60);
// The XMPP traffic of --site runs (BOSH bodies, WebSocket frames), shown when a step fails.
const traffic = [];
const fail = (msg) => {
  if (traffic.length) console.error(`last XMPP traffic:\n  ${traffic.slice(-40).join('\n  ')}`);
  console.error(`FAIL: ${msg}`);
  process.exit(1);
};

const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json', '.woff2': 'font/woff2', '.svg': 'image/svg+xml' };
const dist = path.join(here, 'node_modules', 'converse.js', 'dist');
async function credentials(res) {
  // What a site's backend does for its logged-in user: a short-lived token from Parley.
  const r = await fetch(args['token-url'], {
    method: 'POST',
    headers: { Authorization: `Bearer ${args['admin-token']}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ ttl_s: 300, purpose: 'converse-web' }),
  });
  if (r.status !== 201) { console.error(`token request: HTTP ${r.status}`); res.writeHead(502); res.end(); return; }
  const t = await r.json();
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ jid: args.jid.split('/')[0], password: t.token }));
}
async function prebind(res) {
  // What a site's backend does for its logged-in user: a bound BOSH session from Parley.
  const r = await fetch(args['prebind-api'], {
    method: 'POST',
    headers: { Authorization: `Bearer ${args['admin-token']}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ jid: args.jid.split('/')[0] }),
  });
  if (r.status !== 200) { console.error(`prebind request: HTTP ${r.status}`); res.writeHead(502); res.end(); return; }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(await r.json()));
}
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/prebind') { prebind(res).catch(() => { res.writeHead(500); res.end(); }); return; }
  if (url.pathname === '/credentials') { credentials(res).catch(() => { res.writeHead(500); res.end(); }); return; }
  const file = url.pathname.startsWith('/dist/')
    ? path.join(dist, path.normalize(url.pathname.slice(6)))
    : path.join(here, 'page', 'index.html');
  fs.readFile(file, (err, data) => {
    if (err) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream' });
    res.end(data);
  });
});
if (!args.site) await new Promise((ok) => server.listen(Number(args['page-port']), '127.0.0.1', ok));

// --site URL: the server's own chat page ([http] web_client), used the way a person does:
// the login form, "Add a contact", a click on the contact, typing into the chat box. With
// --transport bosh the page is opened with ?transport=bosh; with --open new-chat the chat is
// started from "Start a new chat" instead of adding a contact. Needs no page server here.
async function useSite(page) {
  const transport = args.transport || 'websocket';
  let boshRequests = 0;
  let websockets = 0;
  page.on('request', (r) => {
    if (r.url().endsWith('/http-bind')) {
      boshRequests += 1;
      traffic.push(`-> (${new Date().toISOString()}) ${(r.postData() || '').slice(0, 1500)}`);
    }
  });
  page.on('response', async (r) => {
    if (r.url().endsWith('/http-bind')) {
      const rid = ((r.request().postData() || '').match(/rid="(\d+)"/) || [])[1];
      traffic.push(`<- (rid ${rid}, ${new Date().toISOString()}) ${(await r.text().catch(() => '')).slice(0, 1500)}`);
    }
  });
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => traffic.push(`-> ${String(f.payload).slice(0, 600)}`));
    ws.on('framereceived', (f) => traffic.push(`<- ${String(f.payload).slice(0, 600)}`));
  });
  page.on('websocket', () => { websockets += 1; });
  page.on('response', (r) => { if (r.status() >= 400) console.error(`HTTP ${r.status()} ${r.url()}`); });
  const left = () => Math.max(1, deadline - Date.now());
  await page.goto(args.site + (transport === 'bosh' ? '?transport=bosh' : ''));
  await page.fill('#converse-login-jid', args.jid.split('@')[0], { timeout: left() });
  await page.fill('#converse-login-password', args.password);
  await page.click('#converse-login button[type=submit]');
  await page.waitForSelector('converse-roster', { timeout: left() })
    .catch(() => fail('no roster after logging in through the form'));
  console.log(`logged in as ${args.jid} through the page's form`);
  const modalGone = () => page.waitForSelector('.modal.show', { state: 'detached', timeout: left() })
    .catch(() => page.waitForSelector('.modal.show', { state: 'hidden', timeout: left() }))
    .catch(() => fail('the dialog did not close'));
  if (args.open === 'new-chat') {
    // "Start a new chat" with someone not in the roster: Converse 12 waits for the
    // server's XEP-0191 blocklist before it opens the chat.
    await page.locator('converse-roster converse-dropdown:has(a.new-chat) button.dropdown-toggle').first().click({ timeout: left() });
    await page.click('converse-roster a.new-chat', { timeout: left() });
    await page.fill('.modal.show input[name=jid]', args.peer, { timeout: left() });
    await page.click('.modal.show button[type=submit]');
    await modalGone();
    console.log(`started a new chat with ${args.peer}`);
  } else {
    const contact = page.locator(`converse-roster a.open-chat[data-jid="${args.peer}"]`);
    await page.locator('converse-roster converse-dropdown:has(a.add-contact) button.dropdown-toggle').first().click({ timeout: left() });
    await page.click('converse-roster a.add-contact', { timeout: left() });
    await page.fill('.modal.show input[name=jid]', args.peer, { timeout: left() });
    await page.fill('.modal.show input[name=name]', 'Echo');
    await page.click('.modal.show button[type=submit]');
    await modalGone();
    await contact.click({ timeout: left() });
    console.log(`added ${args.peer} and opened a chat`);
  }
  const box = await page.waitForSelector('textarea.chat-textarea', { timeout: left() });
  const text = `typed into Converse.js ${Date.now()}`;
  await box.fill(text);
  await box.press('Enter');
  await page.waitForFunction(
    (expected) => [...document.querySelectorAll('.chat-msg__text')].some((e) => e.textContent.includes(expected)),
    `echo: ${text}`, { timeout: left() },
  ).catch(() => fail(`no echo from ${args.peer} in the chat window`));
  console.log(`${args.peer} answered in the chat window`);
  if (transport === 'bosh' && (boshRequests < 2 || websockets > 0)) fail(`not BOSH: ${boshRequests} /http-bind requests, ${websockets} WebSockets`);
  if (transport !== 'bosh' && websockets < 1) fail('no WebSocket was opened');
  console.log(`transport ${transport}: ${boshRequests} BOSH requests, ${websockets} WebSockets`);
}

// --resume: Converse.js with XEP-0198 over WebSocket, its connection dropped by the network.
// The page reaches the server (--ws) through a TCP relay here, the test's "network": "drop"
// resets both TCP connections of every WebSocket (RST, no close frame, no </stream>) and
// refuses new ones until "back". (Chromium's own offline mode, playwright's
// context.setOffline, fails new requests but leaves an open WebSocket alone: Converse would
// never notice.) A dialogue with tests/browser.rs, one line each way per step, so that the
// test can act on the server between steps (the peer's message while the connection is
// down) and check its side (the admin API, /metrics):
//   -> READY <full JID> <SM id>       logged in, SM enabled with resume, chat with --peer open
//   <- drop
//   -> DROPPED                        the WebSocket was reset and Converse noticed (it is
//                                     retrying, refused)
//   <- back
//   -> RESUMED <full JID> <SM id>     the relay accepts again; Converse reconnected and
//                                     resumed (it did not bind)
//   <- expect <text>                  (any number of times)
//   -> SHOWN <count> <text>           <text> is in the chat with --peer, <count> times
//   <- done
// Every wait is bounded by --deadline; the WebSocket frames are shown if a step fails.
function relay(target) {
  const pairs = new Set();
  let up = true;
  const server = net.createServer((page) => {
    if (!up) { page.resetAndDestroy(); return; }
    const xmpp = net.connect(target.port, target.hostname);
    const pair = [page, xmpp];
    pairs.add(pair);
    page.pipe(xmpp);
    xmpp.pipe(page);
    const end = () => { pairs.delete(pair); page.destroy(); xmpp.destroy(); };
    page.on('error', end).on('close', end);
    xmpp.on('error', end).on('close', end);
  });
  return {
    listen: () => new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server.address().port))),
    // The network goes away: both ends see a reset, as after a cable pull noticed late.
    cut: () => {
      up = false;
      for (const [page, xmpp] of pairs) { page.resetAndDestroy(); xmpp.resetAndDestroy(); }
      pairs.clear();
    },
    restore: () => { up = true; },
    close: () => server.close(),
  };
}

async function resumeDialogue(page) {
  const commands = readline.createInterface({ input: process.stdin });
  const lines = commands[Symbol.asyncIterator]();
  const left = () => Math.max(1, deadline - Date.now());
  const next = async (expected) => {
    const timer = new Promise((_, no) => setTimeout(() => no(new Error('timeout')), left()));
    const { value, done } = await Promise.race([lines.next(), timer])
      .catch(() => fail(`no "${expected}" from the test`));
    if (done) fail(`the test closed stdin before "${expected}"`);
    if (!value.startsWith(expected)) fail(`expected "${expected}" from the test, got "${value}"`);
    return value.slice(expected.length).trim();
  };
  const state = () => page.evaluate(() => window.parleyTest.state());
  let sockets = 0;
  let open = 0;
  let binds = 0;
  page.on('websocket', (ws) => {
    sockets += 1;
    open += 1;
    const n = sockets;
    ws.on('framesent', (f) => { if (String(f.payload).includes('urn:ietf:params:xml:ns:xmpp-bind')) binds += 1; });
    ws.on('framesent', (f) => traffic.push(`ws${n} -> ${String(f.payload).slice(0, 600)}`));
    ws.on('framereceived', (f) => traffic.push(`ws${n} <- ${String(f.payload).slice(0, 600)}`));
    ws.on('close', () => { open -= 1; traffic.push(`ws${n} closed`); });
    if (process.env.PARLEY_TRACE) {
      ws.on('framesent', (f) => console.error(`ws${n} -> ${f.payload}`));
      ws.on('framereceived', (f) => console.error(`ws${n} <- ${f.payload}`));
    }
  });
  const network = relay(new URL(args.ws));
  const port = await network.listen();
  const ws = new URL(args.ws);
  ws.host = `127.0.0.1:${port}`;
  const q = new URLSearchParams({ jid: args.jid, password: args.password, ws: ws.href, smacks: '1' });
  if (process.env.PARLEY_TRACE) q.set('loglevel', 'debug');
  await page.goto(`http://127.0.0.1:${args['page-port']}/?${q}`);
  await page.waitForFunction(() => {
    const s = window.parleyTest.state && window.parleyTest.state();
    return s && s.connected && s.smacks_enabled && s.smacks_stream_id;
  }, null, { timeout: left() })
    .catch(async () => fail(`Converse.js did not connect with XEP-0198 resumption: ${JSON.stringify(await state().catch(() => null))}`));
  // The chat with the peer is open before the drop, so that its messages are shown in it.
  await page.evaluate((peer) => window.parleyTest.api.chats.open(peer), args.peer);
  await page.waitForSelector(`converse-chats [data-jid="${args.peer}"], converse-chats converse-chat`, { timeout: left() })
    .catch(() => fail(`the chat with ${args.peer} did not open`));
  const before = await state();
  console.log(`READY ${before.jid} ${before.smacks_stream_id}`);

  await next('drop');
  const attempts = await page.evaluate(() => window.parleyTest.attempts);
  network.cut();
  await page.waitForFunction((n) => window.parleyTest.attempts > n, attempts, { timeout: left() })
    .catch(async () => fail(`Converse did not notice its connection dropped: ${JSON.stringify(await state())}`));
  console.log(`DROPPED`);
  console.error(`dropped: Converse's state ${JSON.stringify(await state())}, ${open} WebSocket(s) open`);

  await next('back');
  network.restore();
  await page.waitForFunction(() => window.parleyTest.reconnected > 0 || window.parleyTest.resumeFailed > 0, null, { timeout: left() })
    .catch(async () => fail(`Converse did not reconnect: ${JSON.stringify(await state())}`));
  const after = await state();
  const failed = await page.evaluate(() => window.parleyTest.resumeFailed);
  if (failed) fail(`Converse's <resume/> failed and it bound a new session: ${JSON.stringify(after)}`);
  if (!after.resumed) fail(`Converse reconnected but bound anew instead of resuming: ${JSON.stringify(after)}`);
  if (binds !== 1) fail(`${binds} resource binding requests over ${sockets} WebSockets: the reconnection bound again`);
  console.log(`RESUMED ${after.jid} ${after.smacks_stream_id}`);

  for (;;) {
    const line = await next('');
    if (line === 'done') break;
    if (!line.startsWith('expect ')) fail(`unknown command "${line}"`);
    const text = line.slice('expect '.length);
    const shown = () => page.evaluate((t) => [...document.querySelectorAll('converse-chats .chat-msg__text')]
      .filter((e) => e.textContent.trim() === t).length, text);
    await page.waitForFunction(
      (t) => [...document.querySelectorAll('converse-chats .chat-msg__text')].some((e) => e.textContent.trim() === t),
      text, { timeout: left() },
    ).catch(async () => fail(`"${text}" is not shown; the chat shows ${JSON.stringify(await page.evaluate(() => [...document.querySelectorAll('converse-chats .chat-msg__text')].map((e) => e.textContent.trim())))}`));
    console.log(`SHOWN ${await shown()} ${text}`);
  }
  commands.close();
  network.close();
}

// --room ROOM: two users, --jid and --peer (both with --password), each in their own
// Converse.js page (separate browser contexts: no shared storage), over WebSocket (--ws):
//  1. --jid opens ROOM, which does not exist: Parley creates it and answers with status 201
//     (XEP-0045 §10.1); Converse must submit the instant-room form itself (muc_instant_rooms,
//     an empty <x type="submit"/>, §10.1.2) and get a result, which unlocks the room.
//  2. --peer opens ROOM and enters it (§7.2; no 201 this time); each page lists the other as
//     an occupant.
//  3. Each types a message into the room's text box; the other page shows it, from the
//     sender's nick (§7.4); the sender's Converse recognises the room's reflection of it
//     (same id, with the room's XEP-0359 stanza-id) and shows it once.
//  4. --jid picks a file with the room's own file input (binary, every byte value): Converse
//     asks upload.DOMAIN for a slot, PUTs the file and sends its URL to the room (XEP-0363
//     §4, §6). --peer's page shows the link; a click on it downloads the file (Chromium's
//     download, Content-Disposition: attachment), whose bytes and SHA-256 must be the ones
//     sent, under the name they were sent with.
// Each step waits on the pages (their DOM, Converse's models, the stanzas they saw); a step
// that does not happen before --deadline fails, showing the last of both pages' WebSocket
// traffic.
async function mucRoom(browser) {
  const left = () => Math.max(1, deadline - Date.now());
  const within = (promise, what) => {
    let timer;
    const late = new Promise((_, no) => { timer = setTimeout(() => no(new Error(`timeout: ${what}`)), left()); });
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  };
  const room = args.room;
  const user = async (jid) => {
    const nick = jid.split('@')[0];
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error(`${nick}: page error: ${e.stack || e}`));
    page.on('console', (m) => { if (process.env.PARLEY_TRACE || m.type() === 'error') console.error(`${nick}: console ${m.type()}: ${m.text()}`); });
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => traffic.push(`${nick} -> ${String(f.payload).slice(0, 1200)}`));
      ws.on('framereceived', (f) => traffic.push(`${nick} <- ${String(f.payload).slice(0, 1200)}`));
      if (process.env.PARLEY_TRACE) {
        ws.on('framesent', (f) => console.error(`${nick} -> ${f.payload}`));
        ws.on('framereceived', (f) => console.error(`${nick} <- ${f.payload}`));
      }
    });
    const q = new URLSearchParams({ jid, password: args.password, ws: args.ws, muc: '1' });
    if (process.env.PARLEY_TRACE) q.set('loglevel', 'debug');
    await page.goto(`http://127.0.0.1:${args['page-port']}/?${q}`);
    return { jid, nick, context, page, view: `converse-muc[jid="${room}"]` };
  };
  const [alice, bob] = await Promise.all([user(args.jid), user(args.peer)]);
  for (const u of [alice, bob]) {
    await u.page.waitForFunction(() => window.parleyTest && window.parleyTest.connected, null, { timeout: left() })
      .catch(async () => fail(`${u.nick}: Converse.js did not connect: ${JSON.stringify(await u.page.evaluate(() => window.parleyTest.errors))}`));
  }
  console.log(`${alice.jid} and ${bob.jid} connected, each in their own page`);
  const muc = (u) => u.page.evaluate((r) => window.parleyTest.muc(r), room);
  const entered = async (u) => {
    // Converse's ROOMSTATUS.ENTERED, then the room's text box to type into.
    await u.page.waitForFunction((r) => window.parleyTest.muc(r).status === converse.ROOMSTATUS.ENTERED, room, { timeout: left() })
      .catch(async () => fail(`${u.nick} did not enter ${room}: ${JSON.stringify(await muc(u))}`));
    await u.page.waitForSelector(`${u.view} textarea.chat-textarea`, { timeout: left() })
      .catch(() => fail(`${u.nick}: no text box in the room's view`));
  };

  // 1. The room is created, and Converse configures it as an instant room.
  await alice.page.evaluate(({ r, nick }) => window.parleyTest.api.rooms.open(r, { nick }).then(() => null), { r: room, nick: alice.nick });
  await entered(alice);
  await alice.page.waitForFunction((r) => window.parleyTest.muc(r).answer !== null, room, { timeout: left() })
    .catch(async () => fail(`${alice.nick}: Converse sent no owner form for the new room, or got no answer: ${JSON.stringify(await muc(alice))}`));
  const created = await muc(alice);
  if (!created.self_codes.some((c) => c.includes('201'))) fail(`no status 201 when ${alice.nick} created ${room}: ${JSON.stringify(created)}`);
  if (created.form.type !== 'submit' || created.form.fields !== 0) fail(`not an instant-room form: ${JSON.stringify(created)}`);
  if (created.answer !== 'result') fail(`the room refused Converse's instant-room form: ${JSON.stringify(created)}`);
  console.log(`${alice.nick} created ${room} (status 201) and Converse submitted the instant-room form (result)`);

  // 2. The other user enters the existing room; each page lists the other.
  await bob.page.evaluate(({ r, nick }) => window.parleyTest.api.rooms.open(r, { nick }).then(() => null), { r: room, nick: bob.nick });
  await entered(bob);
  const joined = await muc(bob);
  if (joined.self_codes.some((c) => c.includes('201'))) fail(`${bob.nick} was told the room is new: ${JSON.stringify(joined)}`);
  if (joined.form) fail(`${bob.nick}'s Converse configured a room it did not create: ${JSON.stringify(joined)}`);
  for (const [u, other] of [[alice, bob], [bob, alice]]) {
    await u.page.waitForFunction(({ r, nick }) => window.parleyTest.muc(r).occupants.includes(nick), { r: room, nick: other.nick }, { timeout: left() })
      .catch(async () => fail(`${u.nick} does not list ${other.nick} in ${room}: ${JSON.stringify(await muc(u))}`));
  }
  console.log(`${bob.nick} entered ${room}; both pages list both occupants`);

  // 3. Groupchat both ways, typed into the room's text box.
  const say = async (from, to) => {
    const text = `${from.nick} in the room ${Date.now()}`;
    const box = await from.page.waitForSelector(`${from.view} textarea.chat-textarea`, { timeout: left() });
    await box.fill(text);
    await box.press('Enter');
    await to.page.waitForFunction(({ view, text }) => [...document.querySelectorAll(`${view} .chat-msg__text`)]
      .some((e) => e.textContent.trim() === text), { view: to.view, text }, { timeout: left() })
      .catch(async () => fail(`${to.nick}'s page does not show "${text}"; it shows ${JSON.stringify(await to.page.evaluate((v) => [...document.querySelectorAll(`${v} .chat-msg__text`)].map((e) => e.textContent.trim()), to.view))}`));
    const seen = await to.page.evaluate(({ r, text }) => {
      const m = window.parleyTest.room(r).messages.findWhere({ body: text });
      return m && { type: m.get('type'), nick: m.get('nick'), sender: m.get('sender') };
    }, { r: room, text });
    if (!seen || seen.type !== 'groupchat' || seen.nick !== from.nick || seen.sender !== 'them') fail(`"${text}" is shown on ${to.nick}'s page as ${JSON.stringify(seen)}`);
    console.log(`${to.nick} sees ${from.nick}'s groupchat message`);
    // The room reflects the message to its sender too (§7.4), with the room's XEP-0359
    // stanza-id: Converse takes it for the message it sent, which it shows once.
    const reflected = () => from.page.evaluate(({ r, t }) => {
      const m = window.parleyTest.room(r).messages.findWhere({ body: t });
      return m && { received: m.get('received') || null, stanza_id: m.get(`stanza_id ${r}`) || null };
    }, { r: room, t: text });
    await from.page.waitForFunction(({ r, t }) => window.parleyTest.room(r).messages.findWhere({ body: t })?.get(`stanza_id ${r}`),
      { r: room, t: text }, { timeout: left() })
      .catch(async () => fail(`${from.nick}'s Converse saw no reflection of "${text}" with the room's stanza-id: ${JSON.stringify(await reflected())}`));
    const shown = await from.page.evaluate(({ view, text }) => [...document.querySelectorAll(`${view} .chat-msg__text`)]
      .filter((e) => e.textContent.trim() === text).length, { view: from.view, text });
    if (shown !== 1) fail(`${from.nick}'s own message is shown ${shown} times on their page`);
    console.log(`${from.nick}'s Converse took the room's reflection for its message (shown once)`);
  };
  await say(alice, bob);
  await say(bob, alice);

  // 4. A file into the room, through the room's own file input; the other user downloads it.
  const bytes = Buffer.alloc(70000);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = (i * 7 + (i >> 8)) & 0xff;
  const name = `room file ${Date.now()}.bin`;
  const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
  await alice.page.waitForSelector(`${alice.view} input.fileupload`, { state: 'attached', timeout: left() })
    .catch(() => fail(`${alice.nick}: the room has no file button (Converse found no upload service)`));
  await alice.page.setInputFiles(`${alice.view} input.fileupload`, { name, mimeType: 'application/octet-stream', buffer: bytes });
  const link = `${bob.view} .chat-msg__text a[href*="/upload/"]`;
  await bob.page.waitForSelector(link, { timeout: left() })
    .catch(async () => fail(`no file link on ${bob.nick}'s page; ${alice.nick}'s page shows ${JSON.stringify(await alice.page.evaluate((v) => [...document.querySelectorAll(`${v} .chat-msg__body, ${v} .message`)].map((e) => e.textContent.trim()), alice.view))}`));
  const url = await bob.page.getAttribute(link, 'href');
  const got = await bob.page.evaluate(({ r, url }) => {
    const m = window.parleyTest.room(r).messages.findWhere({ body: url });
    return m && { type: m.get('type'), nick: m.get('nick'), oob_url: m.get('oob_url') };
  }, { r: room, url });
  if (!got || got.type !== 'groupchat' || got.nick !== alice.nick || got.oob_url !== url) fail(`the file's message on ${bob.nick}'s page: ${JSON.stringify(got)} (${url})`);
  console.log(`${alice.nick}'s Converse uploaded the file into the room: ${url}`);
  // The link opens in a new tab (target=_blank), where the attachment becomes a download.
  const download = new Promise((ok) => {
    const watch = (p) => p.on('download', ok);
    bob.page.on('download', ok);
    bob.context.on('page', watch);
  });
  await bob.page.click(link);
  const file = await within(download, 'no download started').catch((e) => fail(`${bob.nick}'s click on the link: ${e.message}`));
  const saved = await within(file.path(), 'the download did not finish').catch((e) => fail(`${bob.nick}'s download: ${e.message}`));
  const failure = await file.failure();
  if (failure) fail(`${bob.nick}'s download failed: ${failure}`);
  const received = fs.readFileSync(saved);
  if (file.suggestedFilename() !== name) fail(`downloaded as "${file.suggestedFilename()}", sent as "${name}"`);
  if (!received.equals(bytes)) fail(`the download differs: ${received.length} bytes (SHA-256 ${sha256(received)}), sent ${bytes.length} (${sha256(bytes)})`);
  console.log(`${bob.nick} downloaded the file intact from the room (${received.length} bytes, SHA-256 ${sha256(received)}, "${name}")`);
  await Promise.all([alice.context.close(), bob.context.close()]);
}

if (args.room) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    await mucRoom(browser);
  } finally {
    await browser.close();
    server.close();
  }
  console.log('OK');
  process.exit(0);
}

if (args.resume) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.stack || e}`));
    page.on('console', (m) => { if (process.env.PARLEY_TRACE || m.type() === 'error' || m.type() === 'warning') console.error(`console ${m.type()}: ${m.text()}`); });
    await resumeDialogue(page);
  } finally {
    await browser.close();
    server.close();
  }
  console.log('OK');
  process.exit(0);
}

if (args.site) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.stack || e}`));
    if (args['expect-error']) {
      // --expect-error TEXT: the page's Converse.js is broken or missing; the page must say
      // so (the #parley-error box) instead of staying blank.
      await page.goto(args.site);
      const box = page.locator('#parley-error');
      await box.waitFor({ state: 'visible', timeout: Math.max(1, deadline - Date.now()) });
      const text = await box.textContent();
      if (!text.includes(args['expect-error'])) fail(`the error box says: ${text}`);
      console.log(`the page says: ${text}`);
      console.log('OK');
      process.exit(0);
    }
    await useSite(page);
  } finally {
    await browser.close();
  }
  console.log('OK');
  process.exit(0);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e}`));
  if (process.env.PARLEY_TRACE) page.on('request', (r) => console.error(`request ${r.url()}`));
  page.on('console', (m) => { if (process.env.PARLEY_TRACE || m.type() === 'error' || m.type() === 'warning') console.error(`console ${m.type()}: ${m.text()}`); });
  const q = args['token-url']
    ? new URLSearchParams({ jid: args.jid, credentials_url: `http://127.0.0.1:${args['page-port']}/credentials` })
    : args['prebind-api']
      ? new URLSearchParams({ jid: args.jid, prebind_url: `http://127.0.0.1:${args['page-port']}/prebind` })
      : new URLSearchParams({ jid: args.jid, password: args.password });
  if (args.ws) q.set('ws', args.ws);
  if (process.env.PARLEY_TRACE) q.set('loglevel', 'debug');
  if (args.bosh) q.set('bosh', args.bosh);
  await page.goto(`http://127.0.0.1:${args['page-port']}/?${q}`);
  const left = () => Math.max(1, deadline - Date.now());
  await page.waitForFunction(() => window.parleyTest && window.parleyTest.connected, null, { timeout: left() })
    .catch(async () => fail(`Converse.js did not connect: ${JSON.stringify(await page.evaluate(() => window.parleyTest.errors))}`));
  console.log(`connected as ${args.jid} over ${args.ws ? 'WebSocket' : 'BOSH'}`);
  const text = `hello from Converse.js ${Date.now()}`;
  await page.evaluate(({ peer, text }) => {
    const { $msg } = converse.env;
    window.parleyTest.api.send($msg({ to: peer, type: 'chat', id: 'c1' }).c('body').t(text).tree());
  }, { peer: args.peer, text });
  await page.waitForFunction(
    (expected) => window.parleyTest.received.some((m) => m.body === expected),
    `echo: ${text}`, { timeout: left() },
  ).catch(async () => fail(`no echo from ${args.peer}: got ${JSON.stringify(await page.evaluate(() => window.parleyTest.received))}`));
  console.log(`${args.peer} answered`);
  if (args.upload) {
    // XEP-0363 through Converse's own code: it finds upload.DOMAIN in the server's
    // disco#items, asks for a slot, PUTs the file from the page's origin (CORS), and sends
    // the download URL, which the peer echoes back; then the file is fetched as the peer
    // would and compared byte for byte.
    const content = `Parley upload test ${Date.now()}\n${'0123456789abcdef'.repeat(256)}`;
    await page.evaluate(async ({ peer, content }) => {
      const chat = await window.parleyTest.api.chats.open(peer);
      await chat.sendFiles([new File([content], 'parley test.txt', { type: 'text/plain' })]);
    }, { peer: args.peer, content });
    const isUrl = (m) => m.body && m.body.startsWith('echo: http') && m.body.includes('/upload/');
    await page.waitForFunction((src) => window.parleyTest.received.some(new Function(`return (${src})`)()), isUrl.toString(), { timeout: left() })
      .catch(async () => fail(`no file URL came back: ${JSON.stringify(await page.evaluate(() => window.parleyTest))}`));
    const url = (await page.evaluate((src) => window.parleyTest.received.find(new Function(`return (${src})`)()).body, isUrl.toString())).slice('echo: '.length);
    console.log(`Converse.js uploaded the file: ${url}`);
    const res = await fetch(url);
    const got = await res.text();
    if (res.status !== 200 || got !== content) fail(`the download differs: status ${res.status}, ${got.length} of ${content.length} characters`);
    console.log(`the peer's download is intact (${got.length} bytes, ${res.headers.get('content-type')})`);
  }
  if (args.history) {
    const fresh = await browser.newContext();
    const again = await fresh.newPage();
    again.on('pageerror', (e) => console.error(`page error: ${e}`));
    await again.goto(`http://127.0.0.1:${args['page-port']}/?${q}`);
    await again.waitForFunction(() => window.parleyTest && window.parleyTest.connected, null, { timeout: left() })
      .catch(() => fail('no login in the fresh browser profile'));
    await again.evaluate((peer) => window.parleyTest.api.chats.open(peer), args.peer);
    const shown = () => again.evaluate(() => [...document.querySelectorAll('converse-chats .chat-msg__text')].map((e) => e.textContent.trim()));
    await again.waitForFunction(
      (texts) => texts.every((t) => [...document.querySelectorAll('converse-chats .chat-msg__text')].some((e) => e.textContent.trim() === t)),
      [text, `echo: ${text}`], { timeout: left() },
    ).catch(async () => fail(`the archived conversation is not shown after the reload: ${JSON.stringify(await shown())}`));
    const live = await again.evaluate(() => window.parleyTest.received.length);
    console.log(`history shown from the archive after a reload with no local cache (${live} live messages)`);
    await fresh.close();
  }
  if (args['token-url'] || args['prebind-api']) {
    // A page reload: the site logs the user in again without any password.
    await page.reload();
    await page.waitForFunction(() => window.parleyTest && window.parleyTest.connected, null, { timeout: left() })
      .catch(async () => fail(`no login after the reload: ${JSON.stringify(await page.evaluate(() => window.parleyTest.errors))}`));
    console.log(`logged in again after a reload (${args['token-url'] ? 'credentials_url token' : 'prebind_url'})`);
  }
} finally {
  await browser.close();
  server.close();
}
console.log('OK');
