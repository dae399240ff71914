// What the browser tests share: signing in through the dev identity provider's page, waiting
// for an upload and for conditions, finding a card.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { launchChromium } from './chromium.mjs';

// Generous: the first requests may compile a function under `cargo lambda watch`, and the
// thumbnailer encodes AVIF. These bound waits on conditions; nothing sleeps.
export const SLOW = 180_000;

/** Chromium for a test file: launched before its tests, closed after them, when nothing the app
 * did may have broken its Content-Security-Policy (pages push what the console reports to
 * `cspViolations`). */
export function chromiumForTests() {
  const chromium = { browser: null, cspViolations: [] };
  before(async () => {
    chromium.browser = await launchChromium();
  });
  after(async () => {
    await chromium.browser?.close();
    assert.deepEqual(chromium.cspViolations, [], 'the app broke its Content-Security-Policy');
  });
  return chromium;
}

// The requests each page sent and has no answer for yet, and what its scripts threw (a wait
// that times out names them).
const inFlight = new WeakMap();
const thrown = new WeakMap();

function trackRequests(page) {
  const open = new Map();
  page.on('request', (r) => open.set(r, Date.now()));
  page.on('requestfinished', (r) => open.delete(r));
  page.on('requestfailed', (r) => open.delete(r));
  inFlight.set(page, open);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // What the page shown now threw (a reload starts again).
  page.on('framenavigated', (frame) => frame === page.mainFrame() && errors.splice(0));
  thrown.set(page, errors);
}

/** Waits until the app says it started (`data-ready`); fails naming how far it got (its
 * `data-ready` and the message it shows), what its scripts threw, and the requests of the page
 * still unanswered then, with how long each has waited. */
export async function appReady(page) {
  try {
    await page.waitForSelector('body[data-ready="true"]', { timeout: SLOW });
  } catch (e) {
    const now = Date.now();
    const open = [...(inFlight.get(page) || new Map())].map(
      ([r, since]) => `${r.method()} ${r.url().split('?')[0]} (${Math.round((now - since) / 1000)} s)`,
    );
    // A page stuck in a script answers no evaluate: given 5 s.
    const state = await Promise.race([
      page
        .evaluate(() => `data-ready=${document.body?.dataset.ready ?? '(none)'}, shown: "${document.getElementById('signin-error')?.textContent ?? ''}"`)
        .catch((err) => `not readable: ${err.message}`),
      delay(5000).then(() => 'not readable: the page did not answer within 5 s'),
    ]);
    const errors = (thrown.get(page) || []).join(' | ') || 'none';
    throw new Error(`the app did not get ready (${e.message}); ${state}; thrown: ${errors}; unanswered requests: ${open.join(', ') || 'none'}`);
  }
}

/** A fresh context of `browser` signed in as `user` through the identity provider's page; the
 * page's Content-Security-Policy violations are pushed to `cspViolations`; `initScript` runs in
 * every page before the app. `refused` collects the page's requests answered 4xx or 5xx. */
export async function signIn(browser, user, viewport = { width: 1280, height: 900 }, cspViolations = [], initScript = null) {
  const context = await browser.newContext({ viewport });
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  trackRequests(page);
  const refused = [];
  page.on('response', (r) => r.status() >= 400 && refused.push(`${r.status()} ${r.request().method()} ${r.url().split('?')[0]}`));
  page.on('pageerror', (e) => console.error(`[${user}] page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') console.error(`[${user}] console: ${m.text()}`);
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  const first = await page.goto(`${process.env.WEB_URL}/`);
  assert.match(first.headers()['content-security-policy'] || '', /script-src 'self'/, 'the app is served with its CSP');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('User').selectOption(user);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await appReady(page);
  assert.equal(await page.locator('#who-name').textContent(), user);
  return { context, page, refused };
}

/** Waits for Uppy's status bar to say the upload is complete; fails with what it says if not. */
export async function uploadComplete(page) {
  const bar = page.locator('.uppy-StatusBar');
  await page.locator('.uppy-StatusBar.is-complete, .uppy-StatusBar.is-error').first().waitFor({ timeout: SLOW }).catch(() => {});
  if (!(await bar.evaluate((b) => b.classList.contains('is-complete')).catch(() => false))) {
    await page.screenshot({ path: join(process.env.WEB_ARTIFACTS, 'upload-failed.png') });
    throw new Error(`the upload did not complete; Uppy says: ${(await bar.textContent().catch(() => '')).trim()} (${await bar.getAttribute('class')})`);
  }
}

/** Polls `check` (async) every 100 ms until it is true; fails after `ms`, saying `what` (text or a function giving it). */
export async function until(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await delay(100);
  }
}

/** The gallery card of the file named `name`. */
export const card = (page, name) => page.locator('li.card', { has: page.locator('.name', { hasText: name }) });
