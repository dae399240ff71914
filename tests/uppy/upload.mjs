// Uploads files with real Uppy against the platform, then downloads each through the API and
// compares bytes. Exits non-zero on any failure.
//
//   node upload.mjs companion|sign API_BASE BEARER_TOKEN FILE...
//
// companion: Uppy's `companionEndpoint` mode; the only credential Uppy holds is an upload
//            token minted here.
// sign:      Uppy's `signRequest` mode; each S3 request is presigned by POST /v1/uploads/sign
//            (with the Bearer token), and the server chooses every key.
// Files over 10 MiB go multipart (Uppy's default threshold is 100 MiB); the rest as a single
// form POST.

import './xhr-shim.mjs';
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';
import { partSize, withSize } from '../../web/js/parts.js';

const [mode, api, bearer, ...paths] = process.argv.slice(2);
const types = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.gif': 'image/gif' };
const MiB = 1024 * 1024;
const auth = { authorization: `Bearer ${bearer}` };

async function companionOptions() {
  const minted = await fetch(`${api}/v1/upload-tokens`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ types: ['image/jpeg', 'image/png'] }),
  });
  if (minted.status !== 201) throw new Error(`minting an upload token: ${minted.status} ${await minted.text()}`);
  const { endpoint } = await minted.json();
  return { companionEndpoint: `${api}${endpoint}` };
}

function signOptions() {
  // As the web app does (web/js/upload.js): the size rides along by proposed key, and the
  // parts follow the server's plan.
  const sizes = new Map();
  return {
    getChunkSize: (file) => partSize(file.size),
    generateObjectKey: (file) => {
      const key = `${crypto.randomUUID()}-${file.name}`;
      sizes.set(key, file.size);
      return key;
    },
    signRequest: async (request) => {
      const resp = await fetch(`${api}/v1/uploads/sign`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(withSize(request, sizes)),
      });
      if (resp.status !== 200) throw new Error(`signing ${request.method} ${request.key}: ${resp.status} ${await resp.text()}`);
      return resp.json();
    },
  };
}

const modeOptions = { companion: companionOptions, sign: signOptions }[mode];
if (!modeOptions) throw new Error(`mode must be companion or sign, not ${mode}`);
const uppy = new Uppy({ autoProceed: false }).use(AwsS3, {
  ...(await modeOptions()),
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
  console.log(JSON.stringify({ mode, name: file.name, bytes: back.length, how, key }));
}
