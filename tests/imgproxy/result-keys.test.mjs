// The CloudFront Function in template.yaml, run in Node on the shared vectors
// (result-keys.json): it must compute the same result keys as core::imgproxy, normalise Accept
// to three values, keep the signed path for the transformer, and refuse expired URLs.
// Run: node --test tests/imgproxy/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const root = new URL("../../", import.meta.url);
const template = readFileSync(new URL("template.yaml", root), "utf8");
const begin = template.indexOf("// BEGIN transform-request");
const end = template.indexOf("// END transform-request");
assert.ok(begin > 0 && end > begin, "the function's markers are in template.yaml");
const code = template.slice(begin, end).split("\n").map((l) => l.replace(/^ {8}/, "")).join("\n");
assert.ok(code.length < 10240, `CloudFront Functions take at most 10 KB of code (this is ${code.length} B)`);
const fn = new Function(`${code}; return { handler, resultKey };`)();
const { now, vectors } = JSON.parse(readFileSync(new URL("tests/imgproxy/result-keys.json", root), "utf8"));

const cls = (accept) => (accept.includes("image/avif") ? "avif" : accept.includes("image/webp") ? "webp" : "jpeg");

test("result keys agree with the Rust canonicaliser", () => {
  for (const v of vectors) {
    let got;
    try {
      got = fn.resultKey(v.path, cls(v.accept), now);
    } catch (e) {
      got = e;
    }
    assert.equal(got, v.key, v.path);
  }
});

test("the viewer request is rewritten to the result key, with the signed path kept", () => {
  const event = { request: { uri: "/sig/rs:fill:300:200/g:sm/plain/users/u/f/a%20b.jpg",
    headers: { accept: { value: "image/avif,image/webp,image/apng,*/*;q=0.8" }, "x-transform-path": { value: "/forged" } } } };
  const req = fn.handler(event);
  assert.equal(req.headers.accept.value, "image/avif");
  assert.equal(req.headers["x-transform-path"].value, "/sig/rs:fill:300:200/g:sm/plain/users/u/f/a%20b.jpg");
  assert.equal(req.uri, "/results/users/u/f/a%20b.jpg/e1/rt%3Afill%2Cw%3A300%2Ch%3A200%2Cg%3Asm.avif");
  assert.equal(decodeURIComponent(req.uri), "/results/users/u/f/a b.jpg/e1/rt:fill,w:300,h:200,g:sm.avif");
  for (const [accept, want] of [["image/webp,*/*", "image/webp"], ["*/*", "image/jpeg"], [undefined, "image/jpeg"]]) {
    const headers = accept ? { accept: { value: accept } } : {};
    assert.equal(fn.handler({ request: { uri: "/s/w:1/plain/users/a.jpg", headers } }).headers.accept.value, want);
  }
  const unmapped = fn.handler({ request: { uri: "/s/pr:x/plain/users/a.jpg", headers: {} } });
  assert.equal(unmapped.uri, "/results/_unmapped");
});

test("an expired URL is refused at the edge", () => {
  const r = fn.handler({ request: { uri: "/s/w:1/exp:1000/plain/users/a.jpg", headers: {} } });
  assert.equal(r.statusCode, 403);
  assert.equal(r.headers["x-error-reason"].value, "expired");
});
