// Uploads files with real Uppy in Companion mode against the platform, then downloads each
// through the API and compares bytes. Exits non-zero on any failure.
//
//   node upload.mjs API_BASE BEARER_TOKEN FILE...
//
// Files over 10 MiB go multipart (Uppy's default threshold is 100 MiB); the rest as a single
// form POST. The only credential Uppy holds is the upload token minted here.

import './xhr-shim.mjs';
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';

const [api, bearer, ...paths] = process.argv.slice(2);
const types = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.gif': 'image/gif' };
const MiB = 1024 * 1024;
const auth = { authorization: `Bearer ${bearer}` };

const minted = await fetch(`${api}/v1/upload-tokens`, {
  method: 'POST',
  headers: { ...auth, 'content-type': 'application/json' },
  body: JSON.stringify({ types: ['image/jpeg', 'image/png'] }),
});
if (minted.status !== 201) throw new Error(`minting an upload token: ${minted.status} ${await minted.text()}`);
const { endpoint } = await minted.json();

const uppy = new Uppy({ autoProceed: false }).use(AwsS3, {
  companionEndpoint: `${api}${endpoint}`,
  shouldUseMultipart: (file) => file.size > 10 * MiB,
});
const sources = new Map();
for (const path of paths) {
  const bytes = readFileSync(path);
  const type = types[extname(path).toLowerCase()];
  const id = uppy.addFile({ name: basename(path), type, data: new Blob([bytes], { type }) });
  sources.set(id, bytes);
}

const result = await uppy.upload();
if (result.failed.length > 0) {
  for (const f of result.failed) console.error(`uppy: ${f.name} failed: ${f.error}`);
  process.exit(1);
}

for (const file of result.successful) {
  // The key is users/{sub}/{fileId}/{name}: the file id is its third segment.
  const key = file.response.body.key;
  const fileId = key.split('/')[2];
  const grant = await fetch(`${api}/v1/files/${fileId}/download`, { headers: auth });
  if (grant.status !== 200) throw new Error(`download grant for ${file.name}: ${grant.status} ${await grant.text()}`);
  const back = Buffer.from(await (await fetch((await grant.json()).url)).arrayBuffer());
  if (!back.equals(sources.get(file.id))) throw new Error(`${file.name} came back different`);
  const how = file.size > 10 * MiB ? 'multipart' : 'single POST';
  console.log(JSON.stringify({ name: file.name, bytes: back.length, how, key }));
}
