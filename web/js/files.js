// The file view: one gallery that is also the file list. Filters, search and sort go to
// GET /v1/files (DynamoDB indexes; the cursor pages). Images load responsively from their
// variants (AVIF, WebP, JPEG by width) with the ThumbHash placeholder painted until they
// arrive, and lazily below the fold. Each card renames and retags, shares, deletes and
// restores through the API; an image opens in a detail view drawn from signed transform URLs
// (POST /v1/files/{id}/image-urls), and a file can be made public (stable files-CDN URLs).
// With the live updates' socket up, cards change as messages arrive (a thumbnail appears when
// its file is READY, a rename or delete in another tab shows here); only while it is down is a
// file still being processed asked about again. An answer to a request sent before a message
// about a file arrived never replaces what the message showed: it is the older of the two (a
// listing sent as the socket came up, answered after the file's READY arrived, kept the card
// PENDING for good).

import { ApiError } from './api.js';
import { bytes, date, el, toast } from './format.js';
import { picture as pictureOf } from './picture.js';
import { placeholderUrl } from './thumbhash.js';

const PAGE = 24;
/** How often a file still being processed is asked about again, and for how long. */
const PENDING_POLL_MS = 1500;
const PENDING_FOLLOW_MS = 10 * 60 * 1000;
const SIZES = '(max-width: 520px) 50vw, (max-width: 900px) 33vw, 260px';

export class FilesView {
  constructor(api, live) {
    this.api = api;
    this.live = live;
    this.gallery = document.getElementById('gallery');
    this.status = document.getElementById('files-status');
    this.more = document.getElementById('more');
    this.form = document.getElementById('filters');
    this.cursor = null;
    this.generation = 0;
    this.polling = new Map();
    /** The newest view of each file seen, in an answer or a message (`revision` rises with
     * every change of a file: an answer or a message that arrives later but tells less is older). */
    this.latest = new Map();
    let typing;
    this.form.addEventListener('input', (e) => {
      clearTimeout(typing);
      typing = setTimeout(() => this.reload(), e.target.type === 'search' || e.target.type === 'text' ? 250 : 0);
    });
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.reload();
    });
    this.more.addEventListener('click', () => this.load());
    this.editDialog = new EditDialog(api, (f) => this.newest(f) && this.replace(f));
    this.shareDialog = new ShareDialog(api);
    this.detailDialog = new DetailDialog(api);
    live
      ?.onState((up) => {
        if (up) {
          this.stopFollowing();
          this.reload();
        } else {
          for (const card of this.gallery.querySelectorAll('[data-status="PENDING"]')) this.follow(card.dataset.fileId);
        }
      })
      .on('upload.settled', this.noted((f) => this.replace(f)))
      .on('file.ready', this.noted((f) => this.upsert(f)))
      .on('file.failed', this.noted((f) => this.upsert(f)))
      .on('file.quarantined', this.noted((f) => this.upsert(f)))
      .on('file.changed', this.noted((f) => this.replace(f)))
      .on('file.archived', this.noted((f) => this.replace(f)))
      .on('file.restoring', this.noted((f) => this.replace(f)))
      .on('file.deleted', this.noted((f) => (this.showsDeleted() && f.status !== 'ERASED' ? this.upsert(f) : this.drop(f))))
      .on('file.restored', this.noted((f) => (this.showsDeleted() ? this.drop(f) : this.upsert(f))));
  }

  /** `show`, for a message that is not older than what the page knows of its file. */
  noted(show) {
    return (f) => this.newest(f) && show(f);
  }

  /** Whether `f` (an answer's or a message's) is at least as new as anything seen of its file;
   * if so it is what the page knows of it now. */
  newest(f) {
    if ((this.latest.get(f.fileId)?.revision ?? -Infinity) > f.revision) return false;
    this.latest.set(f.fileId, f);
    return true;
  }

  showsDeleted() {
    return Boolean(new FormData(this.form).get('deleted'));
  }

  /** A file a message brought: its card replaced, or added on top of the unfiltered newest-first list. */
  upsert(f) {
    if (this.find(f.fileId)) this.replace(f);
    else if (this.unfiltered()) this.gallery.prepend(this.card(f));
    this.onChange?.();
  }

  drop(f) {
    this.find(f.fileId)?.remove();
    this.onChange?.();
  }

  unfiltered() {
    const q = this.query();
    return q.get('sort') === 'date' && q.get('order') === 'desc' && !['q', 'tag', 'contentType', 'from', 'to'].some((k) => q.has(k));
  }

  stopFollowing() {
    for (const timer of this.polling.values()) clearTimeout(timer);
    this.polling.clear();
  }

  /** Opens file `fileId` (a link to `#file/{fileId}`, e.g. an old URL's redirect): its detail view. */
  async show(fileId) {
    try {
      this.detailDialog.open(await this.api.get(`/v1/files/${encodeURIComponent(fileId)}`));
    } catch (e) {
      this.detailDialog.failed(e.status === 404 ? 'This file does not exist, or it is not yours.' : e.message);
    }
  }

  query() {
    const f = new FormData(this.form);
    const p = new URLSearchParams({ limit: String(PAGE) });
    const [sort, order] = String(f.get('sort')).split(':');
    p.set('sort', sort);
    p.set('order', order);
    for (const name of ['q', 'tag', 'contentType', 'from', 'to']) {
      const v = String(f.get(name) || '').trim();
      if (v) p.set(name, name === 'tag' ? v.toLowerCase() : v);
    }
    if (f.get('deleted')) p.set('status', 'deleted');
    if (this.cursor) p.set('cursor', this.cursor);
    return p;
  }

  async reload() {
    this.cursor = null;
    this.generation++;
    this.gallery.replaceChildren();
    await this.load();
  }

  async load() {
    const generation = this.generation;
    this.status.textContent = 'Loading...';
    try {
      const page = await this.api.get(`/v1/files?${this.query()}`);
      if (generation !== this.generation) return;
      // A card a message added meanwhile is replaced, not shown twice. The listing's index
      // can lag behind a message or an answer: the newest the page saw of a file shows (after
      // a reload too, which starts from an empty gallery), unless it left this list (deleted,
      // or restored while deleted files are shown).
      for (const f of page.files) {
        const seen = this.newest(f) ? f : this.latest.get(f.fileId);
        if (seen.status === 'ERASED' || (seen.status === 'DELETED') !== this.showsDeleted()) continue;
        const shown = this.find(f.fileId);
        if (shown) shown.replaceWith(this.card(seen));
        else this.gallery.append(this.card(seen));
      }
      this.cursor = page.nextCursor;
      this.more.hidden = !this.cursor;
      const n = this.gallery.children.length;
      this.status.textContent = n === 0 ? 'No files match.' : `${n} file${n === 1 ? '' : 's'}${this.cursor ? ' (more below)' : ''}`;
    } catch (e) {
      if (generation === this.generation) this.status.textContent = `Could not list files: ${e.message}`;
    }
  }

  /** A new upload: shown at once, and followed until the thumbnailer is done with it. */
  async added(fileId) {
    try {
      const f = await this.api.get(`/v1/files/${fileId}`);
      if (!this.newest(f)) return;
      const old = this.find(fileId);
      if (old) old.replaceWith(this.card(f));
      else this.gallery.prepend(this.card(f));
    } catch (e) {
      toast(`Uploaded, but not listed yet: ${e.message}`);
    }
  }

  find(fileId) {
    return this.gallery.querySelector(`[data-file-id="${CSS.escape(fileId)}"]`);
  }

  replace(f) {
    this.find(f.fileId)?.replaceWith(this.card(f));
  }

  /** Asks about a file still being processed until it is not, while no socket tells. */
  follow(fileId) {
    if (this.live?.connected || this.polling.has(fileId)) return;
    const until = Date.now() + PENDING_FOLLOW_MS;
    const tick = async () => {
      try {
        const f = await this.api.get(`/v1/files/${fileId}`);
        if (!this.newest(f)) {
          this.polling.delete(fileId);
          return;
        }
        if (f.status === 'PENDING' && Date.now() < until) {
          this.polling.set(fileId, setTimeout(tick, PENDING_POLL_MS));
          return;
        }
        this.polling.delete(fileId);
        this.replace(f);
      } catch {
        this.polling.delete(fileId);
      }
    };
    this.polling.set(fileId, setTimeout(tick, PENDING_POLL_MS));
  }

  card(f) {
    const deleted = f.status === 'DELETED';
    const ph = placeholderUrl(f.placeholder);
    // An archived file's variants stay readable: its picture shows, only its bytes need a restore.
    const archived = f.status === 'ARCHIVED' || f.status === 'RESTORING';
    const picture = f.status === 'READY' || archived ? pictureOf(f, SIZES) : null;
    const thumb = el(
      'div',
      {
        class: `thumb${picture ? '' : ' empty'}`,
        style: ph ? { backgroundImage: `url("${ph}")` } : null,
        'data-placeholder': ph ? 'thumbhash' : null,
      },
      picture
        ? el('button', { type: 'button', class: 'open', 'aria-label': `Show ${f.name}`, onclick: () => this.detailDialog.open(f) }, picture)
        : el('span', { class: 'kind' }, f.status === 'PENDING' ? 'Processing...' : f.contentType),
    );
    if (f.status === 'PENDING') this.follow(f.fileId);
    const badge = f.status !== 'READY'
      ? el('span', { class: `badge ${f.status.toLowerCase()}` }, f.status.toLowerCase())
      : f.visibility === 'public' ? el('span', { class: 'badge public' }, 'public') : null;
    const tags = (f.tags || []).map((t) => el('li', {}, t));
    const action = (label, onclick, extra = {}) =>
      el('button', { type: 'button', onclick, 'aria-label': `${label} ${f.name}`, ...extra }, label);
    const actions = deleted
      ? [action('Restore', () => this.restore(f))]
      : [
          f.status === 'ARCHIVED'
            ? action('Unarchive', () => this.unarchive(f))
            : action('Download', () => this.download(f), { disabled: f.status === 'RESTORING' }),
          f.status === 'READY' && !f.archive?.requestedAt ? action('Archive', () => this.archive(f)) : null,
          action('Edit', () => this.editDialog.open(f)),
          action('Share', () => this.shareDialog.open(f)),
          action('Delete', () => this.remove(f), { class: 'danger' }),
        ];
    const meta = deleted && f.restorableUntil
      ? `deleted; restorable until ${date(f.restorableUntil)}`
      : f.status === 'RESTORING' && f.archive?.restoreExpectedBy
        ? `restoring; expected by ${date(f.archive.restoreExpectedBy)}`
        : `${bytes(f.size)} - ${date(f.createdAt)}`;
    return el(
      'li',
      { class: 'card', 'data-file-id': f.fileId, 'data-status': f.status },
      el('figure', {}, thumb, el('figcaption', {}, el('span', { class: 'name', title: f.name }, f.name), badge, el('span', { class: 'meta' }, meta))),
      tags.length ? el('ul', { class: 'tags', 'aria-label': 'Tags' }, tags) : null,
      el('div', { class: 'actions' }, actions),
    );
  }

  async download(f) {
    try {
      const grant = await this.api.get(`/v1/files/${f.fileId}/download`);
      location.assign(grant.url);
    } catch (e) {
      toast(`Download failed: ${e.message}`);
    }
  }

  /** Asks for the archive tier now: the bucket's lifecycle moves the file within a day. */
  async archive(f) {
    try {
      const asked = await this.api.post(`/v1/files/${f.fileId}/archive`);
      if (this.newest(asked)) this.replace(asked);
      toast(`${f.name} goes to the archive within a day; its pictures stay.`);
    } catch (e) {
      toast(`Archive failed: ${e.message}`);
    }
  }

  /** A restore of an archived file (Standard tier: within 5 hours). */
  async unarchive(f) {
    try {
      const back = await this.api.post(`/v1/files/${f.fileId}/unarchive`, { tier: 'Standard' });
      if (this.newest(back)) this.replace(back);
      toast(`${f.name} is being restored; expected by ${date(back.archive.restoreExpectedBy)}.`);
    } catch (e) {
      toast(`Unarchive failed: ${e.message}`);
    }
  }

  async remove(f) {
    try {
      // Noted: a listing the index answers from before the delete does not bring it back.
      this.newest(await this.api.delete(`/v1/files/${f.fileId}`));
      this.find(f.fileId)?.remove();
      toast(`${f.name} deleted. Tick "Deleted files" to restore it.`);
      this.onChange?.();
    } catch (e) {
      toast(`Delete failed: ${e.message}`);
    }
  }

  async restore(f) {
    try {
      this.newest(await this.api.post(`/v1/files/${f.fileId}/restore`));
      this.find(f.fileId)?.remove();
      toast(`${f.name} restored.`);
      this.onChange?.();
    } catch (e) {
      toast(`Restore failed: ${e instanceof ApiError && e.status === 410 ? 'the restore window has passed' : e.message}`);
    }
  }
}

/** Rename and retag. */
class EditDialog {
  constructor(api, onSaved) {
    this.api = api;
    this.dialog = document.getElementById('edit-dialog');
    this.form = document.getElementById('edit-form');
    this.error = document.getElementById('edit-error');
    document.getElementById('edit-cancel').addEventListener('click', () => this.dialog.close());
    this.form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const name = this.form.elements.name.value.trim();
      const want = new Set(this.form.elements.tags.value.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean));
      const had = new Set(this.file.tags || []);
      const body = {
        addTags: [...want].filter((t) => !had.has(t)),
        removeTags: [...had].filter((t) => !want.has(t)),
      };
      if (name !== this.file.name) body.name = name;
      const visibility = this.form.elements.public.checked ? 'public' : 'private';
      if (visibility !== this.file.visibility) body.visibility = visibility;
      if (!body.name && !body.visibility && !body.addTags.length && !body.removeTags.length) return this.dialog.close();
      try {
        onSaved(await this.api.patch(`/v1/files/${this.file.fileId}`, body));
        this.dialog.close();
        toast('Saved.');
      } catch (err) {
        this.error.textContent = err.message;
      }
    });
  }

  open(f) {
    this.file = f;
    this.error.textContent = '';
    this.form.elements.name.value = f.name;
    this.form.elements.tags.value = (f.tags || []).join(', ');
    this.form.elements.public.checked = f.visibility === 'public';
    this.dialog.showModal();
    this.form.elements.name.focus();
  }
}

/** An image large: the `hero` preset's signed transform URLs, AVIF and WebP where the browser takes them. */
class DetailDialog {
  constructor(api) {
    this.api = api;
    this.dialog = document.getElementById('detail-dialog');
    this.image = document.getElementById('detail-image');
    this.error = document.getElementById('detail-error');
  }

  /** The dialog with only an error (the file could not be read). */
  failed(message) {
    document.getElementById('detail-heading').textContent = 'File';
    document.getElementById('detail-public').replaceChildren();
    this.image.replaceChildren();
    this.error.textContent = message;
    this.dialog.showModal();
  }

  async open(f) {
    document.getElementById('detail-heading').textContent = f.name;
    const link = document.getElementById('detail-public');
    link.replaceChildren(...(f.publicUrl ? ['Public link: ', el('a', { href: f.publicUrl, target: '_blank', rel: 'noopener' }, f.publicUrl)] : []));
    this.error.textContent = '';
    this.image.replaceChildren();
    this.dialog.showModal();
    try {
      const { images } = await this.api.post(`/v1/files/${f.fileId}/image-urls`, { presets: ['hero'] });
      const sizes = '(max-width: 900px) 100vw, 860px';
      const of = (format) => images.find((i) => i.format === format);
      const fallback = of('jpg') || images[0];
      const widest = fallback.urls[fallback.urls.length - 1];
      const img = el('img', { src: widest.url, srcset: fallback.srcset, sizes, alt: f.name, decoding: 'async' });
      const sources = [['avif', 'image/avif'], ['webp', 'image/webp']]
        .filter(([format]) => of(format))
        .map(([format, type]) => el('source', { type, srcset: of(format).srcset, sizes }));
      this.image.replaceChildren(el('picture', {}, sources, img));
    } catch (e) {
      this.error.textContent = `The image could not be shown: ${e.message}`;
    }
  }
}

/** Share links: create (expiry, download limit), copy, list, revoke. */
class ShareDialog {
  constructor(api) {
    this.api = api;
    this.dialog = document.getElementById('share-dialog');
    this.form = document.getElementById('share-form');
    this.list = document.getElementById('share-list');
    this.error = document.getElementById('share-error');
    document.getElementById('share-close').addEventListener('click', () => this.dialog.close());
    this.form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { expiresIn: Number(this.form.elements.expiresIn.value) };
      const max = this.form.elements.maxDownloads.value;
      if (max) body.maxDownloads = Number(max);
      try {
        const share = await this.api.post(`/v1/files/${this.file.fileId}/shares`, body);
        this.error.textContent = '';
        await this.refresh(share.token);
      } catch (err) {
        this.error.textContent = err.message;
      }
    });
  }

  async open(f) {
    this.file = f;
    this.error.textContent = '';
    document.getElementById('share-file').textContent = f.name;
    this.list.replaceChildren();
    this.dialog.showModal();
    await this.refresh();
  }

  async refresh(fresh) {
    const { shares } = await this.api.get('/v1/shares');
    const mine = shares.filter((s) => s.fileId === this.file.fileId);
    this.list.replaceChildren(
      ...mine.map((s) => {
        const live = s.state === 'active';
        const link = el('input', { type: 'text', readonly: true, value: s.url, 'aria-label': 'Share link', class: 'link' });
        return el(
          'li',
          { class: s.token === fresh ? 'fresh' : null, 'data-state': s.state },
          link,
          el('span', { class: 'meta' }, `${s.state}; ${s.downloads}${s.maxDownloads ? ` of ${s.maxDownloads}` : ''} downloads; until ${date(s.expiresAt)}`),
          live
            ? el('button', { type: 'button', onclick: () => navigator.clipboard?.writeText(s.url).then(() => toast('Link copied.')) }, 'Copy')
            : null,
          live
            ? el('button', { type: 'button', class: 'danger', onclick: () => this.revoke(s) }, 'Revoke')
            : null,
        );
      }),
    );
    if (mine.length === 0) this.list.append(el('li', { class: 'muted' }, 'No links yet.'));
  }

  async revoke(s) {
    try {
      await this.api.delete(`/v1/shares/${s.token}`);
      toast('Link revoked.');
      await this.refresh();
    } catch (e) {
      this.error.textContent = e.message;
    }
  }
}
