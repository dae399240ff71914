// Old URLs after the cutover (issue 19), in real headless Chromium against the running dev
// stack: an old page served by the legacy origin whose <img> tags use old URLs (the old domain's
// /uploads/..., here the local gateway, which sends them to the legacy-redirect function).
//
// The demo migration's 2019 files are migrated and verified (dune.jpg made public by its owner,
// ladybird.jpg private); 2021's too, but never switched; 2022's alpha.png was never migrated.
// Cut 2019 over -> every image of the page renders, dune.jpg from the platform (301 to its files
// CDN copy), the others from the legacy origin (read through, or a 302 to it for the 16 MB
// photo, too large for a Lambda answer) -> the private file's old URL
// leads its owner to the file's page in the app -> roll 2019 back -> a new visitor's images all
// come from the legacy origin again -> decommission-check lists what still blocks.
//
//   WEB_URL=... LEGACY_PAGE_URL=... LEGACY_SOURCE=file://... MIGRATE_BIN=target/debug/migrate \
//   WEB_ARTIFACTS=out node --test tests/web/legacy.test.mjs     (scripts/dev --smoke sets them)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const WEB = process.env.WEB_URL;
const PAGE = process.env.LEGACY_PAGE_URL;
const SOURCE = process.env.LEGACY_SOURCE;
const MIGRATE = process.env.MIGRATE_BIN;
const ARTIFACTS = process.env.WEB_ARTIFACTS;
if (!WEB || !PAGE || !SOURCE || !MIGRATE || !ARTIFACTS) {
  throw new Error('set WEB_URL, LEGACY_PAGE_URL, LEGACY_SOURCE, MIGRATE_BIN and WEB_ARTIFACTS (scripts/dev --smoke does)');
}
const SLOW = 180_000;
const PREFIX = 'users/demo-user/2019';
const OLD = (path) => `${WEB}/uploads/users/demo-user/${path}`;
// Where the legacy origin serves the same file (the redirector's 302 for one too large to pass on:
// the 18 MP photo is 16 MB, above FALLBACK_MAX_BYTES).
const LEGACY_URL = (path) => new URL(`uploads/users/demo-user/${path}`, PAGE).toString();

/** The redirector's answers that are the legacy store's: path -> [status, x-legacy-answer, location]. */
function legacyAnswers(visit) {
  const out = {};
  for (const [url, a] of visit.answers) {
    if (a.answer?.startsWith('legacy')) out[url.slice(OLD('').length)] = [a.status, a.answer, a.location];
  }
  return out;
}

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

function migrate(...args) {
  return execFileSync(MIGRATE, args, { encoding: 'utf8' });
}

/**
 * Opens the old page in a new context (a new visitor: nothing cached) and waits until every
 * image has loaded. Answers, per old URL, the status the redirector answered, its
 * `x-legacy-answer`, and where the image finally came from.
 */
async function visit(shot) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  const answers = new Map();
  const cdn = new Map();
  page.on('response', async (r) => {
    const url = r.url();
    if (url.startsWith(`${WEB}/uploads/`)) {
      answers.set(url, { status: r.status(), answer: r.headers()['x-legacy-answer'], location: r.headers().location });
    } else if (url.startsWith(`${WEB}/cdn/`)) {
      cdn.set(url, { status: r.status(), type: r.headers()['content-type'] });
    }
  });
  await page.goto(PAGE);
  await page.waitForFunction(() => [...document.images].every((i) => i.complete), null, { timeout: SLOW });
  const images = await page.$$eval('img', (all) => all.map((i) => ({ src: i.getAttribute('src'), width: i.naturalWidth })));
  await page.screenshot({ path: join(ARTIFACTS, shot), fullPage: true });
  await context.close();
  return { images, answers, cdn };
}

test('an old page renders every image: cut-over files from the platform, the rest from the legacy origin, and back', { timeout: 600_000 }, async () => {
  // Refused without change: a prefix that lists no file.
  const unknown = spawnSync(MIGRATE, ['cutover', '--source', SOURCE, '--prefix', 'users/nobody'], { encoding: 'utf8' });
  assert.notEqual(unknown.status, 0);
  assert.match(unknown.stderr, /has no file under users\/nobody\//);

  migrate('cutover', '--source', SOURCE, '--prefix', PREFIX);
  const after = await visit('legacy-page-cut-over.png');
  assert.equal(after.images.length, 3);
  for (const img of after.images) assert.ok(img.width > 0, `${img.src} did not render`);
  const dune = after.answers.get(OLD('2019/07/dune.jpg'));
  assert.equal(dune?.status, 301, `dune.jpg: ${JSON.stringify(dune)}`);
  assert.match(dune.location, new RegExp(`^${WEB}/cdn/p/[0-9a-f-]{36}/original/dune\\.jpg$`));
  assert.deepEqual(after.cdn.get(dune.location), { status: 200, type: 'image/jpeg' }, 'drawn from the files CDN');
  assert.deepEqual(legacyAnswers(after), {
    '2021/02/sony-18mp-progressive.jpg': [302, 'legacy; not_switched', LEGACY_URL('2021/02/sony-18mp-progressive.jpg')],
    '2022/01/alpha.png': [200, 'legacy; not_switched', undefined],
  });

  // The private file's old URL: 301 to its page in the app, where its owner sees it.
  const priv = await fetch(OLD('2019/07/ladybird.jpg'), { redirect: 'manual' });
  assert.equal(priv.status, 301);
  const target = priv.headers.get('location');
  assert.match(target, new RegExp(`^${WEB}/#file/[0-9a-f-]{36}$`));
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(target);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('User').selectOption('demo-user');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForFunction(() => {
    const i = document.querySelector('#detail-dialog[open] #detail-image img');
    return i && i.complete && i.naturalWidth > 0;
  }, null, { timeout: SLOW });
  assert.match(await page.locator('#detail-heading').textContent(), /ladybird/);
  await page.screenshot({ path: join(ARTIFACTS, 'legacy-private-file-page.png') });
  await context.close();

  // Rolled back: a new visitor's images all come from the legacy origin again.
  migrate('cutover', '--source', SOURCE, '--prefix', PREFIX, '--to', 'legacy');
  const back = await visit('legacy-page-rolled-back.png');
  for (const img of back.images) assert.ok(img.width > 0, `${img.src} did not render after the rollback`);
  assert.deepEqual(legacyAnswers(back), {
    '2019/07/dune.jpg': [200, 'legacy; not_switched', undefined],
    '2021/02/sony-18mp-progressive.jpg': [302, 'legacy; not_switched', LEGACY_URL('2021/02/sony-18mp-progressive.jpg')],
    '2022/01/alpha.png': [200, 'legacy; not_switched', undefined],
  });
  assert.equal(back.cdn.size, 0, 'nothing from the platform');

  // What still keeps the legacy store: the unmigrated file, and no prefix switched.
  const check = spawnSync(MIGRATE, ['decommission-check', '--source', SOURCE], { encoding: 'utf8' });
  assert.equal(check.status, 1, check.stdout + check.stderr);
  assert.match(check.stdout, /users\/demo-user\/2022\/01\/alpha\.png: not migrated/);
  assert.match(check.stdout, /served by the legacy store/);
  assert.match(check.stdout, /the legacy store must stay/);
});
