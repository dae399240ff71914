// A user's public page, /p/{user}, signed out: their public files from
// GET /v1/public/{user}/files (no login), every image from its stable files-CDN URLs only
// (the listing hands out nothing else).

import { el } from './format.js';
import { picture } from './picture.js';
import { placeholderUrl } from './thumbhash.js';

const SIZES = '(max-width: 520px) 50vw, (max-width: 900px) 33vw, 260px';
const $ = (id) => document.getElementById(id);

// The name links to the original; an archived file's original may have no public copy yet
// (no `url` until its restore completes): then the name alone.
function name(f) {
  return f.url ? el('a', { class: 'name', href: f.url, title: f.name }, f.name) : el('span', { class: 'name', title: f.name }, f.name);
}

function card(f) {
  const ph = placeholderUrl(f.placeholder);
  const shown = picture(f, SIZES);
  const thumb = el('div', { class: `thumb${shown ? '' : ' empty'}`, style: ph ? { backgroundImage: `url("${ph}")` } : null },
    shown || el('span', { class: 'kind' }, f.contentType));
  return el(
    'li',
    { class: 'card', 'data-file-id': f.fileId },
    el('figure', {}, thumb, el('figcaption', {}, name(f))),
  );
}

async function main() {
  let user = '';
  try {
    user = decodeURIComponent(location.pathname.split('/')[2] || '');
  } catch {
    // not a user id: the API says so below
  }
  const config = await fetch('/config.json').then((r) => r.json());
  let cursor = null;
  const load = async () => {
    const q = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
    const resp = await fetch(`${config.api || ''}/v1/public/${encodeURIComponent(user)}/files${q}`);
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const page = await resp.json();
    // Named only once the API took the id (core's UserId): the path is anyone's text.
    $('public-heading').textContent = `Public files of ${user}`;
    document.title = `${user} - matbakh`;
    $('public-gallery').append(...page.files.map(card));
    cursor = page.nextCursor;
    $('public-more').hidden = !cursor;
    const n = $('public-gallery').children.length;
    $('public-status').textContent = n === 0 ? 'Nothing public yet.' : `${n} file${n === 1 ? '' : 's'}`;
  };
  $('public-more').addEventListener('click', () => load().catch((e) => ($('public-status').textContent = e.message)));
  await load();
  document.body.dataset.ready = 'true';
}

main().catch((e) => {
  $('public-status').textContent = `The page could not load: ${e.message}`;
  document.body.dataset.ready = 'error';
});
