// The migration dashboard (administrators): every run the `migrate` CLI planned, with
// progress, rate, ETA and failures by reason, and pause / resume / abort. It reads the same
// run items as `migrate status`, through GET /v1/admin/migrations. With the live updates'
// socket up, a run's card moves with each `migration.progress` message (at most one a second a
// run); only while it is down is the list read again every REFRESH_MS.

import { bytes, duration, el, toast } from './format.js';

const REFRESH_MS = 3000;

export class MigrationsView {
  constructor(api, live) {
    this.api = api;
    this.live = live;
    this.root = document.getElementById('runs');
    this.status = document.getElementById('migrations-status');
    this.timer = null;
    this.visible = false;
    live
      ?.onState(() => {
        if (this.visible) this.refresh();
      })
      .on('migration.progress', (r) => {
        if (!this.visible) return;
        const card = this.root.querySelector(`[data-run="${CSS.escape(r.run)}"]`);
        if (card) card.replaceWith(this.card(r));
        else this.refresh();
        this.status.textContent = `updated ${new Date().toLocaleTimeString()} (live)`;
      });
  }

  /** True when the caller may see migrations (an administrator: GET /v1/me says). */
  async allowed() {
    try {
      return (await this.api.get('/v1/me')).admin === true;
    } catch {
      return false;
    }
  }

  show() {
    this.visible = true;
    this.refresh();
  }

  hide() {
    this.visible = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const { runs } = await this.api.get('/v1/admin/migrations');
      this.render(runs);
      this.status.textContent = `${runs.length} run${runs.length === 1 ? '' : 's'}; updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      this.status.textContent = `Could not read the runs: ${e.message}`;
    }
    if (this.visible && !this.live?.connected) this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  render(runs) {
    if (runs.length === 0) {
      this.root.replaceChildren(el('p', { class: 'muted' }, 'No runs yet. Plan one with `migrate plan`.'));
      return;
    }
    this.root.replaceChildren(...runs.map((r) => this.card(r)));
  }

  card(r) {
    const done = r.totalBytes > 0 ? r.copiedBytes / r.totalBytes : r.copiedFiles / Math.max(1, r.totalFiles);
    const pct = Math.round(done * 100);
    const failures = Object.entries(r.failures || {}).filter(([, n]) => n > 0);
    const button = (label, action, enabled, cls) =>
      el('button', { type: 'button', class: cls, disabled: !enabled, 'aria-label': `${label} run ${r.run}`, onclick: () => this.control(r, action) }, label);
    const progressId = `progress-${r.run}`;
    return el(
      'article',
      { class: 'run', 'data-run': r.run, 'data-state': r.state, 'aria-labelledby': `run-${r.run}` },
      el('header', {}, el('h3', { id: `run-${r.run}` }, r.run), el('span', { class: `badge ${r.state.toLowerCase()}` }, r.state.toLowerCase())),
      el('p', { class: 'meta' }, `${r.source} -> ${r.target}`),
      el('label', { for: progressId }, `${pct}% copied`),
      el('progress', { id: progressId, max: 100, value: pct }),
      el(
        'dl',
        {},
        el('dt', {}, 'Files'), el('dd', {}, `${r.copiedFiles} of ${r.totalFiles}`),
        el('dt', {}, 'Bytes'), el('dd', {}, `${bytes(r.copiedBytes)} of ${bytes(r.totalBytes)}`),
        el('dt', {}, 'Rate'), el('dd', {}, `${bytes(r.bytesPerSecond)}/s, ${r.filesPerSecond.toFixed(1)} files/s`),
        el('dt', {}, 'ETA'), el('dd', {}, r.state === 'DONE' ? 'done' : duration(r.etaSeconds)),
        el('dt', {}, 'Failed'),
        el('dd', {}, failures.length ? failures.map(([why, n]) => `${why.replace(/_/g, ' ')}: ${n}`).join(', ') : 'none'),
        el('dt', {}, 'Retries'), el('dd', {}, String(r.retries)),
      ),
      el(
        'div',
        { class: 'actions' },
        button('Pause', 'pause', ['RUNNING', 'PLANNED'].includes(r.state)),
        button('Resume', 'resume', r.state === 'PAUSED'),
        button('Abort', 'abort', ['RUNNING', 'PLANNED', 'PAUSED'].includes(r.state), 'danger'),
      ),
    );
  }

  async control(r, action) {
    if (action === 'abort' && !confirm(`Abort run ${r.run}? An aborted run cannot continue.`)) return;
    try {
      const out = await this.api.post(`/v1/admin/migrations/${r.run}/${action}`);
      toast(`Run ${r.run} is ${out.state.toLowerCase()}${out.enqueued ? '; its pending files were handed to the workers' : ''}.`);
    } catch (e) {
      toast(`${action} failed: ${e.message}`);
    }
    await this.refresh();
  }
}
