// The CloudFront Function in template.yaml, run in Node on the shared vectors
// (result-keys.json): it must verify the imgproxy signature and `exp` before anything else, compute
// the same result keys as core::imgproxy, refuse with the same status and reason whatever the
// transformer refuses (and nothing it accepts), normalise Accept to three values and keep the
// signed path for the transformer. It runs on the files CDN's /t/* behaviour (DECISIONS 30): viewers
// ask for /t/{signature}/{options}/{source}, so each vector's path (the imgproxy path the Rust side
// reads) is requested with /t in front; the path kept for the transformer has none, and a path
// without it (the CDN's /results* behaviour, whose viewers must never reach S3) is refused. Its `cloudfront` KeyValueStore is a stub holding the vectors'
// test key/salt pairs; `crypto` is Node's (the runtime's behaves as Node's); the clock is injected.
// The code is the template's, as deployed: minified from edge/transform-request.js (a test below
// checks the template is that file's build).
// Run: node --test tests/imgproxy/
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { readFileSync } from "node:fs";

const root = new URL("../../", import.meta.url);
const template = readFileSync(new URL("template.yaml", root), "utf8");
const begin = template.indexOf("// BEGIN transform-request");
const end = template.indexOf("// END transform-request");
assert.ok(begin > 0 && end > begin, "the function's markers are in template.yaml");
const code = template.slice(begin, end).split("\n").map((l) => l.replace(/^ {8}/, "")).join("\n");
const bytes = Buffer.byteLength(code, "utf8");
assert.ok(bytes < 10240, `CloudFront Functions take at most 10 KB of code (this is ${bytes} B)`);
const { now, keys, salts, vectors } = JSON.parse(readFileSync(new URL("tests/imgproxy/result-keys.json", root), "utf8"));
const KEYS = keys.split(","), SALTS = salts.split(",");

/** The function with its modules and clock supplied: `store` is the KeyValueStore's content. */
function load(store, at = now) {
  const kvs = { get: async (k) => { if (!(k in store)) throw new Error(`key ${k} not found`); return store[k]; } };
  const cf = { kvs: () => kvs };
  const FakeDate = { now: () => at * 1000 };
  // The runtime's modules come from parameters (the minified code names its imports freely); the
  // bucket the template substitutes is the vectors'.
  const modules = { cloudfront: "__cf", crypto: "__crypto" };
  const body = code
    .replace(/import\s*(\w+)\s*from\s*["'](\w+)["'];?/g, (_, name, module) => `var ${name} = ${modules[module]};`)
    .replaceAll("${FilesBucket}", "files");
  return new Function("__cf", "__crypto", "Date", `${body}; return handler;`)(cf, crypto, FakeDate);
}

/** The KeyValueStore entry scripts/transform-keys writes: `key:salt` pairs, comma-separated. */
const PAIRS = { pairs: KEYS.map((k, i) => `${k}:${SALTS[i]}`).join(",") };
const handler = load(PAIRS);
const sign = (path, i = 0) =>
  crypto.createHmac("sha256", Buffer.from(KEYS[i], "hex")).update(Buffer.from(SALTS[i], "hex")).update(path).digest("base64url");
const signed = (path, i = 0) => `/${sign(path, i)}${path}`;
const request = (uri, accept) => ({ request: { uri, headers: accept === undefined ? {} : { accept: { value: accept } } } });
/** A viewer's request for the transform URL of an imgproxy path: under /t on the files CDN. */
const transform = (path, accept) => request(`/t${path}`, accept);
const encodeKey = (key) => "/" + key.split("/").map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())).join("/");

/** Asserts the answer is a refusal made at the edge: never a request sent on, never cached. */
function refused(out, status, reason, what) {
  assert.equal(out.uri, undefined, `${what}: refused at the edge, not sent on as ${out.uri}`);
  assert.equal(out.statusCode, status, what);
  assert.equal(out.headers["cache-control"].value, "no-store", what);
  if (reason) assert.equal(out.headers["x-error-reason"].value, reason, what);
}

test("every vector: the same result key as the Rust side, or the same refusal", async () => {
  for (const v of vectors) {
    const out = await handler(transform(v.path, v.accept));
    if (v.key) {
      assert.equal(out.statusCode, undefined, `${v.path}: ${out.headers?.["x-error-reason"]?.value}`);
      assert.equal(out.uri, encodeKey(v.key), v.path);
      assert.equal(out.headers["x-transform-path"].value, v.path, "the transformer gets the path without /t");
      assert.equal(decodeURIComponent(out.uri), `/${v.key}`, v.path);
    } else {
      refused(out, v.status, v.error, `${v.path} (${v.why})`);
    }
  }
});

test("the viewer request is rewritten to the result key, with the signed path kept", async () => {
  const uri = signed("/rs:fill:300:200/g:sm/plain/users/u/f/a%20b.jpg");
  const event = transform(uri, "image/avif,image/webp,image/apng,*/*;q=0.8");
  event.request.headers["x-transform-path"] = { value: "/forged" };
  const req = await handler(event);
  assert.equal(req.headers.accept.value, "image/avif");
  assert.equal(req.headers["x-transform-path"].value, uri);
  assert.equal(req.uri, "/results/users/u/f/a%20b.jpg/e2/rt%3Afill%2Cw%3A300%2Ch%3A200%2Cg%3Asm.avif");
  for (const [accept, want] of [["image/webp,*/*", "image/webp"], ["*/*", "image/jpeg"], [undefined, "image/jpeg"]]) {
    const out = await handler(transform(signed("/w:1/plain/users/a.jpg"), accept));
    assert.equal(out.headers.accept.value, want);
  }
});

test("forged, tampered and un-expired URLs are refused before any result is looked up", async () => {
  const path = "/w:300/plain/users/u/f/a.jpg@webp";
  const good = await handler(transform(signed(path)));
  assert.equal(good.uri, encodeKey("results/users/u/f/a.jpg/e2/w:300.webp"));
  // Any signature, no signature, a signature of another path.
  refused(await handler(transform(`/anything${path}`)), 403, "bad_signature", "a made-up signature");
  refused(await handler(transform(`/_${path}`)), 403, "bad_signature", "unsigned");
  refused(await handler(transform(`/${sign(path)}${path.replace("300", "3000")}`)), 403, "bad_signature", "w changed");
  refused(await handler(transform(`/${sign(path)}/w:300/bl:0/plain/users/u/f/a.jpg@webp`)), 403, "bad_signature", "an option added");
  // The signature covers the imgproxy path, never /t: a URL signed over /t/... does not verify.
  refused(await handler(transform(`/${sign(`/t${path}`)}${path}`)), 403, "bad_signature", "signed with /t");
  // An expired URL, and the same URL with its exp: removed.
  const expiring = `/w:300/exp:${now - 60}/plain/users/u/f/a.jpg@webp`;
  refused(await handler(transform(signed(expiring))), 403, "expired", "expired");
  refused(await handler(transform(`/${sign(expiring)}${path}`)), 403, "bad_signature", "exp removed");
  // The same URL is fine until it expires (the clock is the function's, injected).
  const before = load(PAIRS, now - 61);
  assert.equal((await before(transform(signed(expiring)))).uri, encodeKey("results/users/u/f/a.jpg/e2/w:300,exp.webp"));
  // Security review 20 (edge 1): an expiring URL's result is not the never-expiring one's, so
  // what a private file's owner's URL stores is never found under its old public URLs.
  assert.notEqual((await before(transform(signed(expiring)))).uri, good.uri);
  // Rotation: a URL signed with the second pair is accepted; with a pair not in the store, not.
  assert.equal((await handler(transform(signed(path, 1)))).uri, good.uri);
  const onlyFirst = load({ pairs: `${KEYS[0]}:${SALTS[0]}` });
  refused(await onlyFirst(transform(signed(path, 1))), 403, "bad_signature", "a retired pair");
});

test("without keys in the store the edge refuses everything (never accepts unsigned)", async () => {
  const path = "/w:300/plain/users/u/f/a.jpg@webp";
  for (const store of [{}, { pairs: "" }, { pairs: ":" }, { pairs: `:${SALTS[0]}` }]) {
    const edge = load(store);
    refused(await edge(transform(signed(path))), 503, "no_keys", JSON.stringify(store));
    // An empty key would make the HMAC anyone's: never used.
    const emptyKey = crypto.createHmac("sha256", Buffer.alloc(0)).update(Buffer.from(SALTS[0], "hex")).update(path).digest("base64url");
    refused(await edge(transform(`/${emptyKey}${path}`)), 503, "no_keys", `empty key, ${JSON.stringify(store)}`);
  }
});

test("URLs the edge cannot map never share a cache key: each is refused there (400, no-store)", async () => {
  const unmapped = [
    "/pr:thumb/plain/users/u/f/a.jpg", "/pr:other/plain/users/v/g/b.jpg", "/w:100/explode:1/plain/users/u/f/a.jpg",
    "/w:+300/plain/users/u/f/a.jpg", "/bl:.5/plain/users/v/g/b.jpg", "/dpr:1e0/plain/users/u/f/a.jpg",
    "/exp:+4102444800/plain/users/u/f/a.jpg", "/bl:1000000000/plain/users/u/f/a.jpg", "/sh:11/plain/users/u/f/a.jpg",
  ];
  const seen = new Set();
  for (const path of unmapped) {
    const out = await handler(transform(signed(path), "image/webp"));
    if (out.uri) seen.add(out.uri);
    refused(out, 400, null, path);
  }
  assert.equal(seen.size, 0, `sent on to cache keys: ${[...seen]}`);
  assert.ok(!code.includes("_unmapped"), "no shared key for what cannot be mapped");
});

test("only /t/ paths are transforms: anything else, a viewer's /results/... above all, is refused (400, no-store)", async () => {
  const path = "/w:300/plain/users/u/f/a.jpg@webp";
  const key = encodeKey("results/users/u/f/a.jpg/e2/w:300.webp");
  assert.equal((await handler(transform(signed(path)))).uri, key, "the transform URL itself is fine");
  const notTransforms = [
    key, decodeURIComponent(key), "/results%2Fusers/u/f/a.jpg/e2/w:300.webp", "/results",
    signed(path), `/t${signed(path)}`.replace("/t/", "/T/"), `/t${signed(path)}`.replace("/t/", "/tt/"),
    `/t${signed(path)}`.replace("/t/", "/t%2F"), `//t${signed(path)}`, `/p/t${signed(path)}`, "/t", "",
  ];
  for (const store of [PAIRS, {}]) {
    const edge = load(store);
    for (const uri of notTransforms) {
      const event = request(uri, "image/webp");
      refused(await edge(event), 400, "malformed_url", `${uri} (${store.pairs ? "keys" : "no keys"})`);
      assert.equal(event.request.uri, uri, `${uri}: the request is left as it came`);
      assert.equal(event.request.headers["x-transform-path"], undefined, uri);
    }
  }
});

test("the template's function is the build of edge/transform-request.js (node edge/build.mjs)", async () => {
  const { rendered } = await import(new URL("edge/build.mjs", root));
  assert.ok((await rendered(template)) === template, "template.yaml is stale: run node edge/build.mjs");
});
