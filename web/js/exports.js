// "Export my data" (GDPR): POST /v1/me/export queues a ZIP of every file and its metadata; the
// button's status follows the job. With the live updates' socket up the `export.ready` (or
// `export.failed`) message says when; only while it is down is the job asked about again.

import { bytes, el } from './format.js';

const POLL_MS = 3000;

export class ExportButton {
  constructor(api, live) {
    this.api = api;
    this.live = live;
    this.button = document.getElementById('export');
    this.status = document.getElementById('export-status');
    this.job = null;
    this.timer = null;
    this.button.addEventListener('click', () => this.start());
    live
      ?.on('export.ready', (job) => this.settled(job))
      .on('export.failed', (job) => this.settled(job))
      .onState((up) => {
        if (!up && this.job) this.poll();
      });
  }

  async start() {
    this.button.disabled = true;
    try {
      this.show(await this.api.post('/v1/me/export'));
    } catch (e) {
      this.status.textContent = `The export could not start: ${e.message}`;
      this.button.disabled = false;
    }
  }

  /** A job as the API or a message shows it. */
  show(job) {
    this.job = job.status === 'READY' || job.status === 'FAILED' ? null : job;
    if (job.status === 'READY' && job.url) {
      this.status.replaceChildren(el('a', { href: job.url, download: '' }, `Download your export (${bytes(job.size || 0)}, ${job.files} files)`));
      this.button.disabled = false;
    } else if (job.status === 'FAILED') {
      this.status.textContent = 'The export failed; try again.';
      this.button.disabled = false;
    } else {
      this.status.textContent = 'Preparing your export...';
      this.poll();
    }
  }

  /** An `export.*` message: the job's link comes from its status URL. */
  async settled(job) {
    if (this.job && job.exportId !== this.job.exportId) return;
    clearTimeout(this.timer);
    this.show(job.status === 'READY' ? await this.api.get(job.statusUrl) : job);
  }

  poll() {
    clearTimeout(this.timer);
    if (this.live?.connected || !this.job) return;
    this.timer = setTimeout(async () => {
      try {
        this.show(await this.api.get(this.job.statusUrl));
      } catch {
        this.poll();
      }
    }, POLL_MS);
  }
}
