// The storage and cost report (administrators): what the bucket holds by storage class,
// content type, age and user, what it costs a month, and what would cost less. The `reporter`
// function writes it daily from the bucket's S3 Inventory and the CDNs' access logs
// (GET /v1/admin/reports/latest); the charts are SVG drawn here (no chart library: a few bar
// charts do not need one).

import { bytes, el } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
const BAR_HEIGHT = 22;
const LABEL_WIDTH = 170;
const CHART_WIDTH = 640;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** A horizontal bar chart of `rows` ({label, parts: [{value, kind}], text}), bars scaled to the largest. */
export function barChart(id, title, rows) {
  const max = Math.max(1, ...rows.map((r) => r.parts.reduce((s, p) => s + p.value, 0)));
  const room = CHART_WIDTH - LABEL_WIDTH - 150;
  const height = rows.length * (BAR_HEIGHT + 6) + 6;
  const chart = svg('svg', { viewBox: `0 0 ${CHART_WIDTH} ${height}`, width: CHART_WIDTH, height, role: 'img', 'aria-labelledby': `${id}-title` });
  rows.forEach((r, i) => {
    const y = 6 + i * (BAR_HEIGHT + 6);
    const row = svg('g', { class: 'bar', 'data-label': r.label });
    row.append(svg('text', { x: LABEL_WIDTH - 8, y: y + 15, 'text-anchor': 'end', class: 'label' }, r.label));
    let x = LABEL_WIDTH;
    for (const p of r.parts) {
      const w = Math.max(p.value > 0 ? 1 : 0, Math.round((p.value / max) * room));
      row.append(svg('rect', { x, y, width: w, height: BAR_HEIGHT, class: `part ${p.kind}`, 'data-value': p.value }, svg('title', {}, `${r.label}: ${bytes(p.value)} ${p.kind}`)));
      x += w;
    }
    row.append(svg('text', { x: x + 6, y: y + 15, class: 'value' }, r.text));
    chart.append(row);
  });
  return el('figure', { class: 'chart', id }, el('figcaption', { id: `${id}-title` }, title), chart);
}

const plain = (entries) => entries.map(([label, c]) => ({ label, parts: [{ value: c.bytes, kind: 'stored' }], text: `${bytes(c.bytes)}, ${c.objects} obj.` }));

const sent = (entries) => entries
  .sort((a, b) => b[1].bytes - a[1].bytes)
  .map(([label, c]) => ({ label, parts: [{ value: c.bytes, kind: 'sent' }], text: `${bytes(c.bytes)}, ${c.objects} req.` }));

/** The summary's lines for the CDN transfer (none where the report has no logs configured). */
function transferSummary(t, usd) {
  if (!t) return [];
  return [
    el('dt', {}, `CDN transfer (${t.days} days)`),
    el('dd', { id: 'report-transfer' }, `${bytes(t.total.bytes)} in ${t.total.objects} requests, ${Math.round(t.hitRate * 100)}% from the edge cache, ${t.errors} errors; ${t.monthlyCostUsd < 0.01 ? 'less than $0.01' : `about ${usd(t.monthlyCostUsd)}`}/month`),
  ];
}

export class ReportsView {
  constructor(api) {
    this.api = api;
    this.root = document.getElementById('report');
    this.status = document.getElementById('reports-status');
  }

  async show() {
    try {
      this.render(await this.api.get('/v1/admin/reports/latest'));
    } catch (e) {
      this.root.replaceChildren();
      this.status.textContent = /404|not found/i.test(e.message) ? 'No report yet: the reporter writes one a day.' : `Could not read the report: ${e.message}`;
    }
  }

  render(r) {
    const usd = (n) => `$${n.toFixed(2)}`;
    this.status.textContent = `Report of ${new Date(r.generatedAt).toLocaleString()} from the bucket's ${r.source}; prices of ${r.prices.region} as of ${r.prices.asOf}.`;
    const byClass = Object.entries(r.byStorageClass).sort((a, b) => b[1].bytes - a[1].bytes);
    const byType = Object.entries(r.byContentType).sort((a, b) => b[1].bytes - a[1].bytes);
    const users = r.users.map((u) => ({
      label: u.user,
      parts: [
        { value: u.files.bytes, kind: 'stored' },
        { value: u.deletedKept.bytes, kind: 'deleted' },
        { value: u.derived.bytes, kind: 'derived' },
      ],
      text: `${bytes(u.files.bytes + u.deletedKept.bytes + u.derived.bytes)}`,
    }));
    this.root.replaceChildren(
      el(
        'dl',
        { class: 'summary' },
        el('dt', {}, 'Stored'), el('dd', { id: 'report-total' }, `${bytes(r.total.bytes)} in ${r.total.objects} objects`),
        el('dt', {}, 'Monthly cost'), el('dd', { id: 'report-cost' }, usd(r.monthlyCostUsd)),
        el('dt', {}, 'Users'), el('dd', {}, String(r.userCount)),
        el('dt', {}, 'Deleted, kept for restores'), el('dd', {}, `${bytes(r.deletedKept.bytes)} (${r.noncurrentVersions} old version${r.noncurrentVersions === 1 ? '' : 's'})`),
        el('dt', {}, 'Variants'), el('dd', { id: 'report-variants' }, `${Math.round(r.variantsShare * 100)}% of the bytes${r.orphanVariants.objects ? `; ${r.orphanVariants.objects} of no file (${bytes(r.orphanVariants.bytes)})` : ''}`),
        ...transferSummary(r.transfer, usd),
      ),
      el('section', { class: 'advice', 'aria-label': 'Recommendations' },
        el('h3', {}, 'Recommendations'),
        r.recommendations.length
          ? el('ul', { id: 'recommendations' }, r.recommendations.map((x) => el('li', { 'data-kind': x.kind }, x.message,
            x.kind === 'orphan-variants' ? el('ul', { class: 'prefixes' }, r.orphanVariantPrefixes.map((p) => el('li', {}, el('code', {}, p)))) : null)))
          : el('p', { class: 'muted' }, 'Nothing to recommend.')),
      el('div', { class: 'charts' },
        barChart('chart-class', 'Bytes by storage class', plain(byClass)),
        barChart('chart-type', 'Originals by content type', plain(byType)),
        barChart('chart-age', 'Bytes by age', plain(r.byAge)),
        barChart('chart-users', 'Largest users: stored (dark), deleted but kept for restores (light), variants and transforms made of their files (purple)', users),
        ...(r.transfer && r.transfer.total.objects > 0
          ? [
              barChart('chart-transfer', `CDN transfer by what was sent, ${r.transfer.from} to ${r.transfer.to}`, sent(Object.entries(r.transfer.byKind))),
              barChart('chart-cdns', 'CDN transfer by CDN', sent(Object.entries(r.transfer.byDistribution))),
            ]
          : [])),
    );
  }
}
