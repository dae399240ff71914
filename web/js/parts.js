// How the web app cuts a file for the server's multipart plan; shared by the uploader and the
// Uppy test (tests/uppy/upload.mjs), which runs the same Uppy in Node.

const MiB = 1024 * 1024;
/**
 * The part size of a multipart upload of `size` bytes: the server's plan
 * (`core::multipart::PartPlan::for_size`: 8 MiB, or whole MiB above that when 10,000 parts
 * would not hold the file). The server signs each part for exactly its planned length, so
 * Uppy must cut the file the same way.
 */
export function partSize(size) {
  const needed = Math.ceil(Math.ceil(size / 10000) / MiB) * MiB;
  return Math.max(needed, 8 * MiB);
}

/**
 * A signRequest request with the file's size added where the server needs it (a new upload:
 * its PUT or CreateMultipartUpload), from the sizes recorded by proposed key.
 */
export function withSize(request, sizes) {
  const size = request.uploadId ? undefined : sizes.get(request.key);
  return size === undefined ? request : { ...request, size };
}
