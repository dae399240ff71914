// sharp's side of `scripts/bench transform`: the operations of crates/transformer/examples/
// bench_transform.rs done with sharp (auto-rotated like ours; AVIF at sharp's default q50, which
// matches our q70 by SSIM: scripts/bench images), decode to encode, from the bytes in memory.
// Usage: node sharp-transforms.mjs RUNS PHOTO...   One JSON line per operation.
import { readFileSync } from "node:fs";
import sharp from "sharp";

const [runs, ...photos] = process.argv.slice(2);
const inputs = photos.map((p) => readFileSync(p));
const ops = [
  ["fill-300-smart-webp", (b) => sharp(b).rotate().resize(300, 300, { fit: "cover", position: sharp.strategy.attention }).webp({ quality: 80 })],
  ["width-800-jpeg", (b) => sharp(b).rotate().resize({ width: 800, withoutEnlargement: true }).jpeg({ quality: 80, progressive: true })],
  ["fit-1200-avif", (b) => sharp(b).rotate().resize(1200, 1200, { fit: "inside", withoutEnlargement: true }).avif()],
  ["crop-half-400-webp", async (b) => {
    // The header only (as ours), upright.
    const m = await sharp(b).metadata();
    const [width, height] = (m.orientation ?? 1) >= 5 ? [m.height, m.width] : [m.width, m.height];
    const [w, h] = [Math.round(width / 2), Math.round(height / 2)];
    return sharp(b).rotate().extract({ left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h })
      .resize({ width: 400, withoutEnlargement: true }).webp({ quality: 80 });
  }],
  ["width-320-blur-jpeg", (b) => sharp(b).rotate().resize({ width: 320, withoutEnlargement: true }).blur(2).jpeg({ quality: 80, progressive: true })],
];
const pct = (ms, p) => { ms.sort((a, b) => a - b); return ms[Math.round((ms.length - 1) * p)]; };
for (const [name, op] of ops) {
  const ms = [];
  for (let r = 0; r < Number(runs); r++) {
    for (const b of inputs) {
      const t = performance.now();
      await (await op(b)).toBuffer();
      ms.push(performance.now() - t);
    }
  }
  console.log(JSON.stringify({ op: name, n: ms.length, p50_ms: +pct(ms, 0.5).toFixed(1), p95_ms: +pct(ms, 0.95).toFixed(1) }));
}
