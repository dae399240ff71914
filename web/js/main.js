// The app's entry: reads /config.json, signs in (OIDC, PKCE), then shows the file view
// (uploader, gallery, list) or, for administrators, the migration dashboard and the storage
// report; every view
// follows the live updates' socket (config.live) and polls only while it is down.

import { Api } from './api.js';
import { completeSignIn, currentSession, signIn, signOut } from './auth.js';
import { bytes } from './format.js';
import { ExportButton } from './exports.js';
import { FilesView } from './files.js';
import { Live } from './live.js';
import { MigrationsView } from './migrations.js';
import { ReportsView } from './reports.js';
import { forgetUploads, mountUploader } from './upload.js';

const $ = (id) => document.getElementById(id);

function showView(name) {
  for (const v of ['signin', 'files', 'migrations', 'reports']) $(`${v}-view`).hidden = v !== name;
  for (const t of ['files', 'migrations', 'reports']) {
    const tab = $(`tab-${t}`);
    if (t === name) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
}

async function refreshUsage(api) {
  try {
    const u = await api.get('/v1/me/usage');
    const bar = $('usage-bar');
    bar.max = u.quotaBytes;
    bar.value = u.bytesUsed + u.bytesReserved;
    $('usage-text').textContent = `${bytes(u.bytesUsed)} of ${bytes(u.quotaBytes)}, ${u.files} file${u.files === 1 ? '' : 's'}`;
    $('usage').hidden = false;
  } catch {
    $('usage').hidden = true;
  }
}

async function start(config, session) {
  const api = new Api(config.api || '', session.token, () => {
    sessionStorage.removeItem('matbakh.token');
    location.reload();
  });
  $('who-name').textContent = session.sub;
  $('public-page').href = `/p/${encodeURIComponent(session.sub)}`;
  $('who').hidden = false;
  $('tabs').hidden = false;
  $('sign-out').addEventListener('click', async () => {
    await forgetUploads();
    signOut(config.auth);
  });

  const live = new Live(config.live, session.token);
  const files = new FilesView(api, live);
  files.onChange = () => refreshUsage(api);
  mountUploader('#uppy', api, session.sub, async (fileId) => {
    await files.added(fileId);
    refreshUsage(api);
  });
  new ExportButton(api, live);
  const migrations = new MigrationsView(api, live);
  const admin = await migrations.allowed();
  $('tab-migrations').hidden = !admin;
  $('tab-reports').hidden = !admin;
  const reports = new ReportsView(api);

  const route = () => {
    const asked = location.hash.slice(1);
    const view = admin && (asked === 'migrations' || asked === 'reports') ? asked : 'files';
    showView(view);
    if (view === 'migrations') migrations.show();
    else migrations.hide();
    if (view === 'reports') reports.show();
    // A file's page: what an old URL of a private file redirects to (legacy-redirect).
    const file = /^#file\/([0-9a-f-]{36})$/.exec(location.hash);
    if (file) files.show(file[1]);
  };
  window.addEventListener('hashchange', route);
  route();
  live.start();
  await Promise.all([files.reload(), refreshUsage(api)]);
  document.body.dataset.ready = 'true';
}

async function main() {
  const config = await fetch('/config.json').then((r) => r.json());
  let session = currentSession();
  try {
    session = (await completeSignIn(config.auth)) || session;
  } catch (e) {
    $('signin-error').textContent = e.message;
  }
  if (!session) {
    showView('signin');
    $('sign-in').addEventListener('click', () => signIn(config.auth));
    document.body.dataset.ready = 'true';
    return;
  }
  await start(config, session);
}

main().catch((e) => {
  document.body.dataset.ready = 'error';
  $('signin-error').textContent = `The app could not start: ${e.message}`;
  showView('signin');
});
