// The uploader: Uppy's Dashboard with @uppy/aws-s3 in signRequest mode. Every S3 request
// (a single PUT, or CreateMultipartUpload, UploadPart, ListParts, Complete, Abort) is presigned
// by POST /v1/uploads/sign; the server chooses the key and checks type and quota. Files above
// MULTIPART_THRESHOLD go in parts. Golden Retriever keeps the queue (and the parts already
// sent) across a page reload, so an interrupted upload resumes where it stopped: in the
// browser's storage, under the signed-in user's own name, and forgotten at sign-out (a browser
// two people share never shows one the other's files, nor uploads them into their account).

import { AwsS3, Dashboard, GoldenRetriever, Uppy } from '/vendor/uppy.mjs';
import { partSize, withSize } from './parts.js';

const MiB = 1024 * 1024;
export const MULTIPART_THRESHOLD = 10 * MiB;
/**
 * Files up to this size are kept in IndexedDB while they upload, so a reload resumes them
 * on its own; a larger one comes back as a "ghost" that resumes once it is picked again.
 */
export const RESUME_STORE_MAX_FILE = 512 * MiB;
export const RESUME_STORE_MAX_TOTAL = 2048 * MiB;
/** What the platform accepts (core's allow-list); the server checks the bytes again. */
const ALLOWED = [
  'image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/avif', 'image/heic',
  'application/pdf', 'video/mp4', 'video/quicktime', 'video/webm', 'application/zip',
];

/** Where Golden Retriever keeps `owner`'s queue (its stores are named after Uppy's id). */
const uploaderId = (owner) => `matbakh:${owner}`;

/**
 * Forgets every queue Golden Retriever kept in this browser (file names and multipart state in
 * localStorage, bytes in IndexedDB), whoever's: at sign-out.
 */
export async function forgetUploads() {
  for (const key of Object.keys(localStorage)) {
    if (key.startsWith('uppyState:')) localStorage.removeItem(key);
  }
  await new Promise((resolve) => {
    const deleting = indexedDB.deleteDatabase('uppy-blobs');
    // Blocked while this page's Uppy holds it open: it goes once the page does.
    deleting.onsuccess = deleting.onerror = deleting.onblocked = () => resolve();
  });
}

/**
 * Mounts `owner`'s uploader in `target`; `onUploaded(fileId, name)` runs for each stored file.
 */
export function mountUploader(target, api, owner, onUploaded) {
  // The server reserves a file's size when its upload starts, but Uppy's signRequest carries
  // only the key it proposed: each proposed key (unique per upload) remembers its file's size.
  const sizes = new Map();
  const uppy = new Uppy({ id: uploaderId(owner), autoProceed: false, restrictions: { allowedFileTypes: ALLOWED } })
    .use(Dashboard, {
      inline: true,
      target,
      width: '100%',
      height: matchMedia('(max-width: 520px)').matches ? 180 : 300,
      theme: 'auto',
      showProgressDetails: true,
      proudlyDisplayPoweredByUppy: false,
      note: 'Photos, PDF, video and ZIP. Large files go in parts and resume after a reload.',
    })
    .use(AwsS3, {
      shouldUseMultipart: (file) => file.size > MULTIPART_THRESHOLD,
      getChunkSize: (file) => partSize(file.size),
      // The server picks the key (users/{sub}/{fileId}/{name}); it keeps only the name, and
      // drops the UUID Uppy's own keys start with.
      generateObjectKey: (file) => {
        const key = `${crypto.randomUUID()}-${file.name}`;
        sizes.set(key, file.size);
        return key;
      },
      signRequest: (request) => api.post('/v1/uploads/sign', withSize(request, sizes)),
    })
    .use(GoldenRetriever, {
      serviceWorker: false,
      indexedDB: { maxFileSize: RESUME_STORE_MAX_FILE, maxTotalSize: RESUME_STORE_MAX_TOTAL },
    });

  uppy.on('upload-success', (file, response) => {
    // The key is users/{sub}/{fileId}/{name}; a path-style URL has the bucket before it.
    const key = response?.body?.key || decodeURIComponent(new URL(response?.uploadURL || 'http://x/').pathname);
    const segs = key.split('/').filter(Boolean);
    const at = segs.indexOf('users');
    if (at >= 0 && segs[at + 2]) onUploaded(segs[at + 2], file.name);
  });
  return uppy;
}
