// The web app in real headless Chromium (Debian's), driven by playwright-core, against the
// running dev stack: sign in through the OIDC (PKCE) page -> upload a corpus photo through
// Uppy's Dashboard -> its thumbnail appears in the gallery -> search finds it by name -> a
// share link opened in a fresh browser context downloads the same bytes -> delete and
// restore; the detail view renders from transform URLs; made public, the signed-out public
// page /p/{user} shows it from files-CDN URLs only. Another user sees none of it and no migration dashboard. The page comes with its
// Content-Security-Policy and nothing the app does breaks it. Screenshots of the
// gallery (desktop and phone) and of the migration dashboard are saved to WEB_ARTIFACTS.
//
//   WEB_URL=http://127.0.0.1:3000 MATBAKH_CORPUS=../shared/corpus WEB_ARTIFACTS=out \
//   CHROMIUM_BIN=/usr/bin/chromium node --test tests/web/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SLOW, appReady, card, chromiumForTests, signIn, until, uploadComplete } from './session.mjs';
import { partSize } from '../../web/js/parts.js';

const WEB = process.env.WEB_URL;
const CORPUS = process.env.MATBAKH_CORPUS;
const ARTIFACTS = process.env.WEB_ARTIFACTS;
if (!WEB || !CORPUS || !ARTIFACTS) throw new Error('set WEB_URL, MATBAKH_CORPUS and WEB_ARTIFACTS (scripts/dev --smoke does)');
mkdirSync(ARTIFACTS, { recursive: true });

const PHOTO = readFileSync(join(CORPUS, 'photos', 'dune.jpg'));
const NAME = `dune-${randomBytes(4).toString('hex')}.jpg`;

const chromium = chromiumForTests();

/** A fresh context signed in as `user`; what breaks the CSP is collected. */
const signedIn = (user, viewport) => signIn(chromium.browser, user, viewport, chromium.cspViolations);

/** Types `text` into the search field; answers the names shown once the API has answered. */
async function search(page, text) {
  const answered = page.waitForResponse((r) => r.url().includes('/v1/files?') && new URL(r.url()).searchParams.get('q') === text.trim());
  await page.getByLabel('Search by name').fill(text);
  await answered;
  await page.waitForFunction(() => document.getElementById('files-status').textContent !== 'Loading...');
  return page.locator('#gallery .name').allTextContents();
}

/** Waits until every gallery image in the viewport has loaded (lazy ones below it need not). */
async function allVisibleImagesLoaded(page) {
  await page.waitForFunction(() =>
    [...document.querySelectorAll('#gallery img')]
      .filter((i) => i.getBoundingClientRect().top < innerHeight)
      .every((i) => i.complete && i.naturalWidth > 0), null, { timeout: SLOW });
}


test('sign in, upload, see the thumbnail, search, share, delete and restore', { timeout: 600_000 }, async () => {
  const { context, page } = await signedIn('demo-user');
  // The tokens stay out of the address bar and history.
  assert.equal(new URL(page.url()).search, '');

  // Upload through Uppy's Dashboard.
  await page.locator('.uppy-Dashboard-input').first().setInputFiles({ name: NAME, mimeType: 'image/jpeg', buffer: PHOTO });
  await page.locator('.uppy-StatusBar-actionBtn--upload').click();
  await uploadComplete(page);

  // The gallery shows it at once, then its thumbnail once the thumbnailer made the variants:
  // a responsive, lazy image over the ThumbHash placeholder.
  const mine = card(page, NAME);
  await mine.waitFor({ timeout: SLOW });
  await page.locator(`li.card[data-status="READY"]`, { has: page.locator('.name', { hasText: NAME }) }).waitFor({ timeout: SLOW });
  const img = mine.locator('img');
  await mine.locator('.thumb.loaded').waitFor({ timeout: SLOW });
  assert.ok((await img.evaluate((i) => i.naturalWidth)) > 0, 'the thumbnail decoded');
  assert.equal(await img.getAttribute('loading'), 'lazy');
  assert.equal(await img.getAttribute('alt'), NAME);
  const srcset = await img.getAttribute('srcset');
  assert.match(srcset, /\d+w,/, `srcset lists widths: ${srcset}`);
  assert.ok((await mine.locator('source[type="image/webp"]').count()) === 1, 'a WebP source');
  assert.equal(await mine.locator('.thumb').getAttribute('data-placeholder'), 'thumbhash');
  assert.match(await mine.locator('.thumb').evaluate((t) => t.style.backgroundImage), /^url\("data:image\/png;base64,/);
  assert.match(await page.locator('#usage-text').textContent(), /of 10\.0 GiB/);

  // Search by a word of its name: only it. The name's words are indexed by the indexer,
  // which may come after the thumbnailer, so the search is asked again (as a person would
  // retype it) until the index has them.
  const query = NAME.split('.')[0].toUpperCase();
  let shown = [];
  let attempt = 0;
  await until(async () => {
    shown = await search(page, `${query}${' '.repeat(attempt++ % 2)}`);
    return shown.length === 1 && shown[0] === NAME;
  }, () => `a search for ${query} to show ${NAME} (it shows ${JSON.stringify(shown)})`, SLOW);
  await page.getByLabel('Search by name').fill('');
  await page.waitForFunction(() => document.querySelectorAll('#gallery li.card').length > 1, null, { timeout: 30_000 });
  await page.locator('#gallery').scrollIntoViewIfNeeded();
  await allVisibleImagesLoaded(page);
  await page.screenshot({ path: join(ARTIFACTS, 'gallery.png') });

  // Share it: the link, opened in a fresh context (no session), downloads the same bytes.
  await mine.getByRole('button', { name: `Share ${NAME}` }).click();
  await page.getByRole('button', { name: 'Create link' }).click();
  const link = await page.locator('#share-list li.fresh input.link').inputValue({ timeout: 30_000 });
  assert.match(link, /\/v1\/shares\//);
  const stranger = await chromium.browser.newContext({ acceptDownloads: true });
  const strangerPage = await stranger.newPage();
  // The link is a download (Content-Disposition: attachment): the browser saves the file.
  const [download] = await Promise.all([
    strangerPage.waitForEvent('download', { timeout: 30_000 }),
    strangerPage.goto(link).catch((e) => assert.match(e.message, /Download is starting/)),
  ]);
  assert.equal(download.suggestedFilename(), NAME);
  assert.ok(readFileSync(await download.path()).equals(PHOTO), 'the shared download is byte-identical');
  await stranger.close();
  // Revoke it: the link stops working at once.
  await page.locator('#share-list li.fresh').getByRole('button', { name: 'Revoke' }).click();
  await page.locator('#share-list li[data-state="revoked"]').waitFor();
  const late = await chromium.browser.newContext();
  const refused = await (await late.newPage()).goto(link);
  assert.ok([403, 410].includes(refused.status()), `a revoked link answers ${refused.status()}`);
  await late.close();
  await page.getByRole('button', { name: 'Close' }).click();

  // Delete, find it among the deleted files, restore it.
  await mine.getByRole('button', { name: `Delete ${NAME}` }).click();
  await mine.waitFor({ state: 'detached' });
  await page.getByText('More filters').click();
  await page.getByLabel('Deleted files').check();
  await card(page, NAME).getByRole('button', { name: `Restore ${NAME}` }).click();
  await card(page, NAME).waitFor({ state: 'detached' });
  await page.getByLabel('Deleted files').uncheck();
  await page.locator(`li.card[data-status="READY"]`, { has: page.locator('.name', { hasText: NAME }) }).waitFor({ timeout: 30_000 });

  // Rename and tag it: the card shows both, and the tag filter finds it alone.
  const RENAMED = `renamed-${NAME}`;
  await card(page, NAME).getByRole('button', { name: `Edit ${NAME}` }).click();
  await page.getByLabel('Name', { exact: true }).fill(RENAMED);
  await page.getByLabel('Tags, separated by commas').fill('Été, holiday');
  await page.getByRole('button', { name: 'Save' }).click();
  const renamed = card(page, RENAMED);
  await renamed.waitFor({ timeout: 30_000 });
  assert.deepEqual((await renamed.locator('.tags li').allTextContents()).sort(), ['ete', 'holiday']);
  const tag = `t${randomBytes(3).toString('hex')}`;
  await renamed.getByRole('button', { name: `Edit ${RENAMED}` }).click();
  await page.getByLabel('Tags, separated by commas').fill(`ete, holiday, ${tag}`);
  await page.getByRole('button', { name: 'Save' }).click();
  await renamed.locator('.tags li', { hasText: tag }).waitFor({ timeout: 30_000 });
  await page.getByLabel('Tag', { exact: true }).fill(tag);
  await page.waitForFunction((n) => {
    const names = [...document.querySelectorAll('#gallery .name')].map((e) => e.textContent);
    return names.length === 1 && names[0] === n;
  }, RENAMED, { timeout: 30_000 });
  await page.getByLabel('Tag', { exact: true }).fill('');

  // The detail view draws the image from signed transform URLs (the image CDN's path).
  await renamed.getByRole('button', { name: `Show ${RENAMED}` }).click();
  await page.waitForFunction(() => {
    const i = document.querySelector('#detail-image img');
    return i && i.complete && i.naturalWidth > 0;
  }, null, { timeout: SLOW });
  const large = await page.locator('#detail-image img').evaluate((i) => i.currentSrc);
  assert.match(large, new RegExp(`^${WEB}/t/[^/]+/`), `the detail view loads a transform URL: ${large}`);
  await page.locator('#detail-close').click();

  // Made public, it shows on the signed-out public page, every image from the files CDN's
  // stable URLs; private again, it is gone from there.
  await renamed.getByRole('button', { name: `Edit ${RENAMED}` }).click();
  await page.getByLabel(/^Public/).check();
  await page.getByRole('button', { name: 'Save' }).click();
  await renamed.locator('.badge.public').waitFor({ timeout: 30_000 });
  const visitor = await chromium.browser.newContext();
  const publicPage = await visitor.newPage();
  publicPage.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) chromium.cspViolations.push(m.text());
  });
  const images = [];
  publicPage.on('requestfinished', (r) => {
    if (r.resourceType() === 'image' && r.url().startsWith('http')) images.push(r.url());
  });
  await publicPage.goto(`${WEB}/p/demo-user`);
  const pub = publicPage.locator('#public-gallery li.card', { has: publicPage.locator('.name', { hasText: RENAMED }) });
  await pub.locator('.thumb.loaded').waitFor({ timeout: SLOW });
  assert.ok(images.length > 0 && images.every((u) => u.startsWith(`${WEB}/cdn/p/`)), `images only from the CDN: ${images}`);
  await publicPage.screenshot({ path: join(ARTIFACTS, 'public-page.png') });
  await renamed.getByRole('button', { name: `Edit ${RENAMED}` }).click();
  await page.getByLabel(/^Public/).uncheck();
  await page.getByRole('button', { name: 'Save' }).click();
  await renamed.locator('.badge.public').waitFor({ state: 'detached', timeout: 30_000 });
  await publicPage.reload();
  await publicPage.locator('body[data-ready="true"]').waitFor({ timeout: 30_000 });
  assert.equal(await publicPage.locator('#public-gallery .name', { hasText: RENAMED }).count(), 0, 'gone when private');
  await visitor.close();

  // Another user sees none of it, and no migration dashboard.
  const guest = await signedIn('guest-user');
  await guest.page.getByLabel('Search by name').fill('renamed');
  await guest.page.waitForFunction(() => document.getElementById('files-status').textContent === 'No files match.', null, { timeout: 30_000 });
  assert.equal(await guest.page.locator('#tab-migrations').isVisible(), false);
  // The app asked only what this user may have (whether they are an administrator by GET
  // /v1/me, not by trying an admin route).
  assert.deepEqual(guest.refused, [], 'no request refused');
  await guest.context.close();

  // The migration dashboard (demo-user is the dev stack's administrator): the demo run that
  // went through SQS is done; the second one waits, planned. Pause it, then resume it: the
  // workers copy it to the end.
  await page.getByRole('link', { name: 'Migrations' }).click();
  const done = page.locator('article.run[data-state="DONE"]').first();
  await done.waitFor({ timeout: 30_000 });
  assert.match(await done.locator('label').textContent(), /100% copied/);
  assert.equal(await done.getByRole('button', { name: /^Pause/ }).isDisabled(), true);
  const waiting = page.locator('article.run[data-state="PLANNED"]');
  const id = await waiting.getAttribute('data-run', { timeout: 30_000 });
  const run = page.locator(`article.run[data-run="${id}"]`);
  await run.getByRole('button', { name: /^Pause/ }).click();
  await page.locator(`article.run[data-run="${id}"][data-state="PAUSED"]`).waitFor({ timeout: 30_000 });
  assert.equal(await run.getByRole('button', { name: /^Pause/ }).isDisabled(), true);
  await page.screenshot({ path: join(ARTIFACTS, 'migrations-paused.png') });
  await run.getByRole('button', { name: /^Resume/ }).click();
  await page.locator(`article.run[data-run="${id}"][data-state="DONE"]`).waitFor({ timeout: SLOW });
  assert.match(await run.locator('label').textContent(), /100% copied/);
  await page.screenshot({ path: join(ARTIFACTS, 'migrations.png'), fullPage: true });
  await context.close();
});

test('an upload in parts resumes after a page reload, without sending its parts again', { timeout: 600_000 }, async () => {
  const { context, page } = await signedIn('demo-user');
  // 21 MB of real photos end to end: over the 10 MiB threshold, so it goes in parts of the
  // server's plan (8 MiB: three parts).
  const big = Buffer.concat(['sony-18mp-progressive.jpg', 'phone-13mp.jpg', 'dune.jpg'].map((f) => readFileSync(join(CORPUS, 'photos', f))));
  const name = `parts-${randomBytes(4).toString('hex')}.jpg`;
  const parts = Math.ceil(big.length / partSize(big.length));
  assert.ok(parts >= 3, 'the test needs a part after the two it lets through');
  const partNumber = (url) => Number(new URL(url).searchParams.get('partNumber'));
  const stored = new Set(); // parts S3 answered (before the reload: 1 and 2; the rest are held)
  const resent = []; // part PUTs after it: [number, bytes]
  let reloaded = false;
  let listParts = 0;
  page.on('request', (r) => {
    if (reloaded && r.method() === 'PUT' && partNumber(r.url()) > 0) resent.push([partNumber(r.url()), r.postDataBuffer()?.length]);
    if (reloaded && r.method() === 'GET' && /[?&]uploadId=/.test(r.url())) listParts++;
  });
  page.on('response', (r) => {
    if (r.request().method() === 'PUT' && partNumber(r.url()) > 0 && r.ok()) stored.add(partNumber(r.url()));
  });
  // On loopback the whole upload takes a moment, so parts from 3 on are held back (never
  // answered): the reload then surely comes with parts 1 and 2 in S3 and the rest not.
  await page.route((url) => partNumber(url.toString()) >= 3, () => {});
  await page.locator('.uppy-Dashboard-input').first().setInputFiles({ name, mimeType: 'image/jpeg', buffer: big });
  await page.locator('.uppy-StatusBar-actionBtn--upload').click();
  await until(async () => stored.size === 2, 'parts 1 and 2 in S3', SLOW);
  // Golden Retriever writes Uppy's state to IndexedDB at most every 500 ms: wait until the
  // upload's id is there (a person reloading a second later gets the same).
  await until(() => page.evaluate(() => new Promise((resolve) => {
    const open = indexedDB.open('uppy-blobs');
    open.onerror = () => resolve(false);
    open.onsuccess = () => {
      try {
        const all = open.result.transaction(['metadata']).objectStore('metadata').getAll();
        all.onsuccess = () => resolve(all.result.some((r) => String(r.metadata).includes('"s3Multipart":{"uploadId"')));
        all.onerror = () => resolve(false);
      } catch {
        resolve(false);
      }
    };
  })), 'the upload id in Golden Retriever\'s store');

  // Reload mid-upload: Golden Retriever brings the file back; S3 (ListParts) says which parts
  // arrived; only the others are sent.
  // The held parts die with the page (unrouted only after the reload: an unrouted request that
  // is still pending would be let through).
  const storedBefore = [...stored].sort();
  await page.reload();
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  reloaded = true; // the old page's requests are all reported by now
  await appReady(page);
  await page.locator('.uppy-Dashboard-Item', { hasText: name }).waitFor({ timeout: 30_000 });
  await page.locator('.uppy-StatusBar-actionBtn--upload').click();
  await uploadComplete(page);
  assert.ok(listParts > 0, 'the resumed upload asked S3 which parts it has (ListParts)');
  assert.deepEqual(storedBefore, [1, 2]);
  assert.deepEqual(resent.map(([n]) => n).sort(), Array.from({ length: parts - 2 }, (_, i) => i + 3),
    `after the reload only the missing parts were sent (sent: ${JSON.stringify(resent)})`);

  // The stored file is the whole file, byte for byte.
  const mine = page.locator(`li.card[data-status="READY"]`, { has: page.locator('.name', { hasText: name }) });
  await mine.waitFor({ timeout: SLOW });
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 30_000 }),
    mine.getByRole('button', { name: `Download ${name}` }).click(),
  ]);
  assert.ok(readFileSync(await download.path()).equals(big), 'the resumed upload is byte-identical');
  await context.close();
});

// Security review 20 (web 1): Golden Retriever kept a dropped file's bytes and name in the
// browser under one name for every user, for a day: on a shared browser the next user saw them
// restored and, clicking Upload, stored them in their own account. Now each user's queue is
// their own, and sign-out forgets them all.
test('files one user dropped on the uploader are never shown to the next user of the browser', { timeout: 300_000 }, async () => {
  const { context, page } = await signedIn('demo-user');
  const secret = `secret-${randomBytes(4).toString('hex')}.jpg`;
  await page.locator('.uppy-Dashboard-input').first().setInputFiles({ name: secret, mimeType: 'image/jpeg', buffer: PHOTO });
  await page.locator('.uppy-Dashboard-Item', { hasText: secret }).waitFor();
  const kept = () => page.evaluate((name) => new Promise((resolve) => {
    const open = indexedDB.open('uppy-blobs');
    open.onerror = () => resolve(false);
    open.onsuccess = () => {
      try {
        const all = open.result.transaction(['metadata']).objectStore('metadata').getAll();
        all.onsuccess = () => { resolve(all.result.some((r) => JSON.stringify(r).includes(name))); open.result.close(); };
        all.onerror = () => resolve(false);
      } catch {
        resolve(false);
      }
    };
  }), secret);
  await until(kept, 'the dropped file in Golden Retriever\'s store');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('User').selectOption('guest-user');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await appReady(page);
  assert.equal(await page.locator('#who-name').textContent(), 'guest-user');
  await page.locator('.uppy-Dashboard').first().waitFor();
  assert.equal(await page.locator('.uppy-Dashboard-Item', { hasText: secret }).count(), 0, 'the next user sees nothing of it');
  assert.equal(await kept(), false, 'sign-out forgot it');
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('uppyState:'))), []);
  await context.close();
});

// Security review 20 (web 2): a link put its own words on the real origin's pages (a sign-in
// "error" nobody asked for, a public page's heading), with a clean address bar after.
test('a link cannot put its own words on the sign-in page or a public page', { timeout: 120_000 }, async () => {
  const context = await chromium.browser.newContext();
  const page = await context.newPage();
  const words = 'Your account is locked. Call 555 0100';
  await page.goto(`${WEB}/?error=access_denied&state=x&error_description=${encodeURIComponent(words)}`);
  await page.waitForSelector('body[data-ready]');
  const shown = await page.locator('#signin-error').textContent();
  assert.ok(shown.startsWith('sign-in failed') && !shown.includes('locked'), shown);
  await page.goto(`${WEB}/p/${encodeURIComponent(words)}`);
  await page.waitForSelector('body[data-ready]');
  const heading = await page.locator('#public-heading').textContent();
  assert.ok(!heading.includes('locked') && !(await page.title()).includes('locked'), heading);
  await context.close();
});

test('the gallery works on a phone-sized viewport', { timeout: 300_000 }, async () => {
  const { context, page } = await signedIn('demo-user', { width: 390, height: 844 });
  await page.locator('#gallery li.card .thumb.loaded').first().waitFor({ timeout: SLOW });
  await page.locator('#gallery').scrollIntoViewIfNeeded();
  await allVisibleImagesLoaded(page);
  // Nothing wider than the screen: no sideways scrolling.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  await page.screenshot({ path: join(ARTIFACTS, 'gallery-phone.png') });
  // Keyboard: from the top of the page, Tab reaches the search field, and typing searches.
  await page.evaluate(() => document.activeElement?.blur());
  for (let i = 0; i < 40 && (await page.evaluate(() => document.activeElement?.id)) !== 'q'; i++) await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'q', 'the search field is reachable by Tab');
  await page.keyboard.type('ladybird');
  // Every file whose name has the word: the uploads and, indexed like them, the migrated
  // "Garden ladybird.jpg" (review 25: a migrated file was never indexed, so never found).
  await page.waitForFunction(() => {
    const names = [...document.querySelectorAll('#gallery .name')].map((e) => e.textContent);
    return names.length > 0 && names.every((n) => /\bladybird/i.test(n)) && names.includes('Garden ladybird.jpg');
  }, null, { timeout: 30_000 });
  await context.close();
});
