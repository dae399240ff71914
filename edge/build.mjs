// Minifies the CloudFront Functions kept readable here into template.yaml, between their
// `// BEGIN name` and `// END name` markers (CloudFront Functions take at most 10 KB of code).
// Run: node edge/build.mjs            (rewrites template.yaml)
//      node edge/build.mjs --check    (exit 1 if template.yaml is not the build of the sources)
import { readFileSync, writeFileSync } from "node:fs";
import { minify } from "terser";

const root = new URL("../", import.meta.url);
/** The functions: the file under edge/ and the marker name in template.yaml. */
const FUNCTIONS = [{ name: "transform-request", file: "edge/transform-request.js" }];
/** CloudFront's limit on a function's code. */
export const MAX_BYTES = 10240;
const INDENT = "        ";

/** The minified code of one function (`handler` kept: CloudFront calls it by name). */
export async function build(source) {
  const out = await minify(source, {
    module: true,
    compress: { passes: 2, top_retain: ["handler"] },
    mangle: { reserved: ["handler"] },
    format: { comments: false },
  });
  return out.code;
}

/** template.yaml with every function's block replaced by its build. */
export async function rendered(template) {
  for (const { name, file } of FUNCTIONS) {
    const begin = `// BEGIN ${name}`, end = `// END ${name}`;
    const from = template.indexOf(begin), to = template.indexOf(end);
    if (from < 0 || to < from) throw new Error(`template.yaml has no ${begin} ... ${end} block`);
    const code = await build(readFileSync(new URL(file, root), "utf8"));
    const bytes = Buffer.byteLength(code, "utf8");
    if (bytes > MAX_BYTES) throw new Error(`${file} minifies to ${bytes} B, over CloudFront's ${MAX_BYTES} B`);
    const block = `${begin}\n${INDENT}// Generated from ${file} by \`node edge/build.mjs\`: edit that file, not this.\n${INDENT}${code}\n${INDENT}`;
    template = template.slice(0, from) + block + template.slice(to);
  }
  return template;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = new URL("template.yaml", root);
  const template = readFileSync(path, "utf8");
  const want = await rendered(template);
  if (process.argv.includes("--check")) {
    if (want !== template) {
      console.error("template.yaml is not the build of edge/: run node edge/build.mjs");
      process.exit(1);
    }
  } else if (want !== template) {
    writeFileSync(path, want);
    console.log("template.yaml: edge functions rebuilt");
  }
}
