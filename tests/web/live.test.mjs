// Live updates in real headless Chromium against the running dev stack (issue 20): with the
// socket up, a new upload's thumbnail appears with no request asking about the file again; the
// export button learns its export is ready; news older than what a card shows (by the file's
// revision) leaves it as it is; a rename and a delete in a second tab show in the first; the migration dashboard's counters
// move during a run with no request reading the runs again; with the socket down the app
// polls, and when it is back the changes come pushed again and it stops.
//
// The socket is taken down by the test's own stand-in for a network failure: an init script
// wraps the page's WebSocket so that, while `__liveBlocked` is set, connects go to a path the
// gateway refuses (same origin, so the page's Content-Security-Policy is not what stops them).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SLOW, card, chromiumForTests, signIn, uploadComplete } from './session.mjs';

const CORPUS = process.env.MATBAKH_CORPUS;
const MIGRATE = process.env.MIGRATE_BIN;
const FILE_URL = /\/v1\/files\/[0-9a-f-]{36}$/;

const chromium = chromiumForTests();

/** Signed in as `user`, with the socket up. */
async function live(user, initScript = null) {
  const session = await signIn(chromium.browser, user, undefined, chromium.cspViolations, initScript);
  await session.page.waitForSelector('body[data-live="up"]', { timeout: SLOW });
  return session;
}

/** The test's network failure: while `__liveBlocked` is set, the page's sockets connect to a
 * path the gateway refuses; `__liveSockets` are the sockets made. */
function cuttableSockets() {
  const Native = window.WebSocket;
  window.__liveSockets = [];
  window.__liveBlocked = false;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(window.__liveBlocked ? url.replace(/\/live$/, '/live-unreachable') : url, protocols);
      window.__liveSockets.push(this);
    }
  };
}

/** Requests `page` makes from now on that match `test(method, url)`. */
function watch(page, test) {
  const seen = [];
  page.on('request', (r) => {
    if (test(r.method(), new URL(r.url()))) seen.push(`${r.method()} ${r.url()}`);
  });
  return seen;
}

async function upload(page, name, photo) {
  await page.locator('.uppy-Dashboard-input').first().setInputFiles({ name, mimeType: 'image/jpeg', buffer: photo });
  await page.locator('.uppy-StatusBar-actionBtn--upload').click();
  await uploadComplete(page);
}

const ready = (page, name) =>
  page.locator('li.card[data-status="READY"]', { has: page.locator('.name', { hasText: name }) }).locator('.thumb.loaded');

async function rename(page, from, to) {
  await card(page, from).getByRole('button', { name: `Edit ${from}` }).click();
  await page.getByLabel('Name', { exact: true }).fill(to);
  await page.getByRole('button', { name: 'Save' }).click();
}

test('with the socket up, a new upload shows its thumbnail without asking about it again', { timeout: 600_000 }, async () => {
  const { context, page } = await live('guest-user');
  const asked = watch(page, (method, url) => method === 'GET' && FILE_URL.test(url.pathname));
  const name = `live-${randomBytes(4).toString('hex')}.jpg`;
  await upload(page, name, readFileSync(join(CORPUS, 'photos', 'ladybird.jpg')));
  await ready(page, name).waitFor({ timeout: SLOW });
  // One read when Uppy reported the upload (the card appears at once); READY came pushed.
  assert.equal(asked.length, 1, `requests about the file: ${JSON.stringify(asked)}`);
  await page.screenshot({ path: join(process.env.WEB_ARTIFACTS, 'live-upload.png') });
  await context.close();
});

test('a listing answered after a message about its file does not undo what the message showed', { timeout: 600_000 }, async () => {
  const { context, page } = await live('guest-user');
  const name = `race-${randomBytes(4).toString('hex')}.jpg`;
  await upload(page, name, readFileSync(join(CORPUS, 'photos', 'dune.jpg')));
  // The next listing is read at once (the file still PENDING) but answered only once the
  // file's READY has come pushed: a listing sent as the socket came up, answered late, kept
  // the card PENDING for good (a cold CI run, session 23).
  let held;
  await page.route((url) => url.pathname === '/v1/files', async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    held = body.files.find((f) => f.name === name)?.status;
    await ready(page, name).waitFor({ timeout: SLOW });
    await route.fulfill({ response, json: body });
  }, { times: 1 });
  await page.locator('#filters').evaluate((form) => form.requestSubmit());
  await page.waitForFunction(() => document.getElementById('files-status').textContent !== 'Loading...', null, { timeout: SLOW });
  assert.equal(held, 'PENDING', 'the listing was read before the file was READY (else this proves nothing)');
  assert.equal(await card(page, name).getAttribute('data-status'), 'READY');
  await context.close();
});

test('a message older than what the page shows, delivered late, does not undo it', { timeout: 600_000 }, async () => {
  const { context, page } = await live('guest-user', cuttableSockets);
  const name = `late-${randomBytes(4).toString('hex')}.jpg`;
  await upload(page, name, readFileSync(join(CORPUS, 'photos', 'ladybird.jpg')));
  await ready(page, name).waitFor({ timeout: SLOW });
  const listed = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/files', { timeout: SLOW });
  await page.locator('#filters').evaluate((form) => form.requestSubmit());
  const shown = (await (await listed).json()).files.find((f) => f.name === name);
  await page.waitForFunction(() => document.getElementById('files-status').textContent !== 'Loading...', null, { timeout: SLOW });
  assert.equal(shown.status, 'READY');
  assert.ok(Number.isInteger(shown.revision), `the file's revision: ${JSON.stringify(shown)}`);
  // Delivered on the page's socket as the notifier's would be: the upload's settling, retried
  // and arriving after the file was READY, then a rename (newer).
  const deliver = (type, data) =>
    page.evaluate(([type, data]) => {
      const message = { type, version: 1, id: `late:${type}:${data.revision}`, at: new Date().toISOString(), data };
      window.__liveSockets.at(-1).dispatchEvent(new MessageEvent('message', { data: JSON.stringify(message) }));
    }, [type, data]);
  await deliver('upload.settled', { ...shown, status: 'PENDING', variants: undefined, revision: shown.revision - 1 });
  assert.equal(await card(page, name).getAttribute('data-status'), 'READY', 'older news left the card as it was');
  await deliver('file.changed', { ...shown, name: `renamed-${name}`, revision: shown.revision + 1 });
  await card(page, `renamed-${name}`).waitFor({ timeout: 10_000 });
  await context.close();
});

test('a reload whose listing lags behind what the page saw shows the newest', { timeout: 600_000 }, async () => {
  const { context, page } = await live('guest-user');
  const name = `lag-${randomBytes(4).toString('hex')}.jpg`;
  await upload(page, name, readFileSync(join(CORPUS, 'photos', 'ladybird.jpg')));
  await ready(page, name).waitFor({ timeout: SLOW });
  // The list index answers from before the file was READY (it lags the table a moment): the
  // reload starts from an empty gallery, and the card must not vanish or go back to PENDING.
  let lagged;
  await page.route((url) => url.pathname === '/v1/files', async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    const f = body.files.find((x) => x.name === name);
    lagged = { ...f, status: 'PENDING', revision: f.revision - 1 };
    body.files = body.files.map((x) => (x.name === name ? lagged : x));
    await route.fulfill({ response, json: body });
  }, { times: 1 });
  await page.locator('#filters').evaluate((form) => form.requestSubmit());
  await page.waitForFunction(() => document.getElementById('files-status').textContent !== 'Loading...', null, { timeout: SLOW });
  assert.equal(lagged?.status, 'PENDING', 'the listing was made older (else this proves nothing)');
  assert.equal(await card(page, name).getAttribute('data-status'), 'READY');
  await context.close();
});

test('the export button says when the export is ready, pushed', { timeout: 300_000 }, async () => {
  const { context, page } = await live('guest-user');
  const asked = watch(page, (method, url) => method === 'GET' && url.pathname.startsWith('/v1/me/exports/'));
  await page.getByRole('button', { name: 'Export my data' }).click();
  await page.getByRole('link', { name: /^Download your export/ }).waitFor({ timeout: SLOW });
  // Not asked while it was being made: only once, for the link, when the message said READY.
  assert.equal(asked.length, 1, `requests about the export: ${JSON.stringify(asked)}`);
  await context.close();
});

test('a rename and a delete in a second tab show in the first', { timeout: 300_000 }, async () => {
  const first = await live('guest-user');
  const second = await live('guest-user');
  const name = `tabs-${randomBytes(4).toString('hex')}.jpg`;
  await upload(second.page, name, readFileSync(join(CORPUS, 'photos', 'dune.jpg')));
  await ready(first.page, name).waitFor({ timeout: SLOW });
  const listed = watch(first.page, (method, url) => method === 'GET' && url.pathname.startsWith('/v1/files'));

  const renamed = `renamed-${name}`;
  await rename(second.page, name, renamed);
  await card(first.page, renamed).waitFor({ timeout: 30_000 });

  await card(second.page, renamed).getByRole('button', { name: `Delete ${renamed}` }).click();
  await card(first.page, renamed).waitFor({ state: 'detached', timeout: 30_000 });
  assert.deepEqual(listed, [], 'the first tab read nothing: the changes were pushed');
  await first.context.close();
  await second.context.close();
});

test("the migration dashboard's counters move during a run, pushed", { timeout: 600_000 }, async () => {
  const tree = mkdtempSync(join(tmpdir(), 'live-run-'));
  const photos = ['dune.jpg', 'ladybird.jpg', 'sony-18mp-progressive.jpg', 'olympus-4mp-icc.jpg', 'panasonic-orientation6.jpg'];
  const dir = join(tree, 'users', 'demo-user', 'live');
  mkdirSync(dir, { recursive: true });
  photos.forEach((p, i) => copyFileSync(join(CORPUS, 'photos', p), join(dir, `${i}-${p}`)));
  const plan = JSON.parse(execFileSync(MIGRATE, ['--json', 'plan', '--source', `file://${tree}`, '--target', 's3://dev-filesbucket'], { encoding: 'utf8' }));

  const { context, page } = await live('demo-user');
  await page.getByRole('link', { name: 'Migrations' }).click();
  await page.locator(`article.run[data-run="${plan.run}"]`).waitFor({ timeout: 30_000 });
  // Every "Files" value the card shows, as the page draws it.
  await page.evaluate((id) => {
    const files = () => document.querySelector(`article.run[data-run="${id}"] dl dd`)?.textContent;
    window.__files = [files()];
    new MutationObserver(() => {
      const now = files();
      if (now && window.__files.at(-1) !== now) window.__files.push(now);
    }).observe(document.getElementById('runs'), { childList: true, subtree: true, characterData: true });
  }, plan.run);
  const read = watch(page, (method, url) => method === 'GET' && url.pathname.startsWith('/v1/admin/migrations'));
  execFileSync(MIGRATE, ['enqueue', plan.run]);
  await page.locator(`article.run[data-run="${plan.run}"][data-state="DONE"]`).waitFor({ timeout: SLOW });
  const seen = await page.evaluate(() => window.__files);
  assert.equal(seen[0], `0 of ${photos.length}`);
  assert.equal(seen.at(-1), `${photos.length} of ${photos.length}`, `the counters moved: ${JSON.stringify(seen)}`);
  assert.deepEqual(read, [], 'the dashboard read no run: the progress was pushed');
  await page.screenshot({ path: join(process.env.WEB_ARTIFACTS, 'live-migration.png'), fullPage: true });
  await context.close();
});

test('the socket down: the app polls; back: changes come pushed and it stops', { timeout: 600_000 }, async () => {
  const { context, page } = await live('guest-user', cuttableSockets);
  await page.evaluate(() => {
    window.__liveBlocked = true;
    for (const s of window.__liveSockets) s.close();
  });
  await page.waitForSelector('body[data-live="down"]', { timeout: 30_000 });

  const down = `down-${randomBytes(4).toString('hex')}.jpg`;
  const askedWhileDown = watch(page, (method, url) => method === 'GET' && FILE_URL.test(url.pathname));
  await upload(page, down, readFileSync(join(CORPUS, 'photos', 'olympus-4mp-icc.jpg')));
  await ready(page, down).waitFor({ timeout: SLOW });
  assert.ok(askedWhileDown.length >= 2, `polled while the socket was down: ${JSON.stringify(askedWhileDown)}`);

  // Back up, the page reloads its list once (nothing was replayed); then it only listens.
  const reloaded = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/files', { timeout: 60_000 });
  await page.evaluate(() => {
    window.__liveBlocked = false;
  });
  await page.waitForSelector('body[data-live="up"]', { timeout: 60_000 });
  await reloaded;
  // Back: a rename in another tab arrives pushed, and nothing asks about the files any more.
  const askedWhileUp = watch(page, (method, url) => method === 'GET' && url.pathname.startsWith('/v1/files'));
  const other = await live('guest-user');
  const renamed = `back-${down}`;
  await rename(other.page, down, renamed);
  await card(page, renamed).waitFor({ timeout: 30_000 });
  assert.deepEqual(askedWhileUp, [], 'no polling with the socket back');
  await other.context.close();
  await context.close();
});

test('an idle socket says ping every 5 minutes and stays open', { timeout: 300_000 }, async () => {
  const { KEEPALIVE_MS, BACKOFF_MIN_MS } = await import('../../web/js/live.js');
  const { context, page } = await live('guest-user', cuttableSockets);
  const pings = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => f.payload === '{"action":"ping"}' && pings.push(f.payload)));
  // From here the page's timers are the test's clock: five minutes pass in no time. The socket
  // is closed once (a network blip) so that the new one's keepalive runs on that clock.
  await page.clock.install();
  await page.evaluate(() => window.__liveSockets.at(-1).close());
  await page.waitForSelector('body[data-live="down"]', { timeout: 30_000 });
  await page.clock.runFor(BACKOFF_MIN_MS);
  await page.waitForSelector('body[data-live="up"]', { timeout: 30_000 });
  const pinged = async (n) => {
    for (const deadline = Date.now() + 10_000; pings.length < n; ) {
      assert.ok(Date.now() < deadline, `${n} ping(s) sent, not ${pings.length}`);
      await new Promise((r) => setTimeout(r, 50)); // the frame event comes from the browser
    }
  };
  await page.clock.runFor(KEEPALIVE_MS - 1000);
  assert.equal(pings.length, 0, 'no ping before 5 minutes');
  await page.clock.runFor(1000);
  await pinged(1);
  await page.clock.runFor(KEEPALIVE_MS);
  await pinged(2);
  // The gateway routed the pings to $default, which answered; the socket is still open.
  assert.equal(await page.evaluate(() => [document.body.dataset.live, window.__liveSockets.at(-1).readyState]).then(JSON.stringify), JSON.stringify(['up', 1]));
  await context.close();
});
