// The storage report page in real headless Chromium against the running dev stack: the
// reporter is run (through cargo lambda watch's invoke API, as the daily schedule would), an
// administrator opens "Storage report", and the charts draw exactly the report the API
// answers: one bar per storage class, content type, age band and listed user, each as long as
// its bytes say, the summary and recommendations, and the CDN transfer read from the access logs
// the local files CDN writes as CloudFront does (requests made here show up in it). Someone who is not an administrator sees no
// tab and is refused the report. A screenshot is saved to WEB_ARTIFACTS/reports.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SLOW, chromiumForTests, signIn } from './session.mjs';

const LAMBDA = process.env.LAMBDA_URL;
const ARTIFACTS = process.env.WEB_ARTIFACTS;
const { AWS_ENDPOINT_URL: MOTO, FILES_BUCKET } = process.env;
if (!process.env.WEB_URL || !LAMBDA || !ARTIFACTS || !MOTO || !FILES_BUCKET) throw new Error('set WEB_URL, LAMBDA_URL, WEB_ARTIFACTS, AWS_ENDPOINT_URL and FILES_BUCKET (scripts/dev --smoke does)');
mkdirSync(ARTIFACTS, { recursive: true });

const chromium = chromiumForTests();

/** The bars a chart draws: label -> the widths and values of its parts. */
const bars = (page, id) =>
  page.locator(`#${id} g.bar`).evaluateAll((gs) =>
    Object.fromEntries(gs.map((g) => [g.dataset.label, [...g.querySelectorAll('rect')].map((r) => ({ width: Number(r.getAttribute('width')), value: Number(r.dataset.value) }))])));

const runReporter = async () => {
  const made = await fetch(`${LAMBDA}/2015-03-31/functions/reporter/invocations`, { method: 'POST', body: '{}' });
  assert.equal(made.status, 200, 'the reporter ran');
  return made.json();
};

test('the storage report draws the latest report for administrators only', { timeout: 300_000 }, async () => {
  // Three requests to the files CDN (refused: no such public copy) are logged, written to the
  // logs bucket within the gateway's flush period, and counted by the next report.
  const before = (await runReporter()).cdnRequests;
  assert.equal(typeof before, 'number', 'the reporter reads the CDN logs (CDN_LOGS)');
  for (let i = 0; i < 3; i++) assert.equal((await fetch(`${process.env.WEB_URL}/cdn/p/report-probe/${i}.webp`)).status, 403);
  // A variant whose file is gone, as a removal that did not finish would leave it (put straight
  // into moto's bucket): the report counts it as no one's and names where it is.
  const uuid = crypto.randomUUID();
  const orphan = `derived/${uuid.slice(0, 14)}7${uuid.slice(15)}/`;
  assert.equal((await fetch(`${MOTO}/${FILES_BUCKET}/${orphan}320.webp`, { method: 'PUT', body: 'not a file of anyone' })).status, 200);
  let made;
  for (const deadline = Date.now() + SLOW; ; ) {
    made = await runReporter();
    if (made.cdnRequests >= before + 3) break;
    assert.ok(Date.now() < deadline, `the CDN's requests reached the report (${made.cdnRequests} of ${before + 3})`);
    await new Promise((r) => setTimeout(r, 1000)); // the gateway writes its log every 5 s
  }
  const { objects, generatedAt } = made;
  assert.ok(objects > 0, 'the demo data is in the bucket');

  const { context, page } = await signIn(chromium.browser, 'demo-user', { width: 1440, height: 1000 }, chromium.cspViolations);
  const answered = page.waitForResponse((r) => r.url().endsWith('/v1/admin/reports/latest'));
  await page.getByRole('link', { name: 'Storage report' }).click();
  const report = await (await answered).json();
  assert.equal(report.generatedAt, generatedAt, 'the page shows the report just made');
  assert.equal(report.total.objects, objects);
  await page.locator('#chart-users g.bar').first().waitFor({ timeout: SLOW });

  // One bar per entry, as long as its bytes: the largest fills the room, the others in proportion.
  for (const [id, entries] of [
    ['chart-class', Object.entries(report.byStorageClass)],
    ['chart-type', Object.entries(report.byContentType)],
    ['chart-age', report.byAge],
  ]) {
    const drawn = await bars(page, id);
    assert.deepEqual(Object.keys(drawn).sort(), entries.map(([k]) => k).sort(), `${id}: a bar for each entry`);
    const max = Math.max(...entries.map(([, c]) => c.bytes));
    for (const [label, c] of entries) {
      assert.equal(drawn[label][0].value, c.bytes, `${id} ${label}`);
      const widest = Math.max(...Object.values(drawn).map((p) => p[0].width));
      assert.ok(Math.abs(drawn[label][0].width - Math.round((c.bytes / max) * widest)) <= 1, `${id} ${label}: in proportion`);
    }
  }
  const users = await bars(page, 'chart-users');
  assert.deepEqual(Object.keys(users), report.users.map((u) => u.user), 'the largest users, in order');
  const demo = report.users.find((u) => u.user === 'demo-user');
  assert.ok(demo, 'demo-user has files');
  assert.deepEqual(users['demo-user'].map((p) => p.value), [demo.files.bytes, demo.deletedKept.bytes, demo.derived.bytes]);
  // The demo photos' variants (the thumbnailer made them before the stack said it was up) are demo-user's.
  assert.ok(demo.derived.objects > 0, JSON.stringify(demo));
  assert.ok(report.orphanVariantPrefixes.includes(orphan), JSON.stringify(report.orphanVariantPrefixes));
  const named = await page.locator('#recommendations li[data-kind="orphan-variants"] .prefixes code').allTextContents();
  assert.deepEqual(named, report.orphanVariantPrefixes, 'the page names where the orphans are');
  assert.match(await page.locator('#report-total').textContent(), new RegExp(`in ${report.total.objects} objects`));
  assert.equal(await page.locator('#report-cost').textContent(), `$${report.monthlyCostUsd.toFixed(2)}`);
  assert.equal(await page.locator('#recommendations > li').count().catch(() => 0), report.recommendations.length);
  // The CDN transfer: the summary and a bar per kind of what was sent.
  const t = report.transfer;
  assert.ok(t.total.objects >= before + 3 && t.errors >= 3 && t.byKind.publicCopy.objects >= 3, JSON.stringify(t));
  assert.match(await page.locator('#report-transfer').textContent(), new RegExp(`in ${t.total.objects} requests, ${Math.round(t.hitRate * 100)}% from the edge cache, ${t.errors} errors`));
  const sent = await bars(page, 'chart-transfer');
  assert.deepEqual(Object.keys(sent).sort(), Object.keys(t.byKind).sort());
  for (const [kind, c] of Object.entries(t.byKind)) assert.equal(sent[kind][0].value, c.bytes, `transfer ${kind}`);
  await page.screenshot({ path: join(ARTIFACTS, 'reports.png'), fullPage: true });
  await context.close();

  const guest = await signIn(chromium.browser, 'guest-user', undefined, chromium.cspViolations);
  assert.equal(await guest.page.getByRole('link', { name: 'Storage report' }).isVisible(), false);
  const refused = await guest.page.evaluate(async () => {
    const token = sessionStorage.getItem('matbakh.token');
    return (await fetch('/v1/admin/reports/latest', { headers: { authorization: `Bearer ${token}` } })).status;
  });
  assert.equal(refused, 403);
  await guest.context.close();
});
