// Mean SSIM (luma, 8x8 windows, stride 4) of AVIF files against the pixels each encoder was
// given (`X.640.ref.png` beside `X.640.avif`), so each tool's encoder is measured against its
// own resize: node ssim.mjs AVIF_DIR
// Prints one JSON line per file and the mean. Used to put two AVIF encoders at equal quality.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

const [dir] = process.argv.slice(2);

async function luma(input, width) {
  const { data, info } = await sharp(input).resize({ width }).greyscale().raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

function ssim(a, b) {
  const [c1, c2] = [(0.01 * 255) ** 2, (0.03 * 255) ** 2];
  let sum = 0;
  let n = 0;
  for (let y = 0; y + 8 <= a.height; y += 4) {
    for (let x = 0; x + 8 <= a.width; x += 4) {
      let [ma, mb, va, vb, cov] = [0, 0, 0, 0, 0];
      for (let j = 0; j < 8; j++) for (let i = 0; i < 8; i++) {
        const k = (y + j) * a.width + x + i;
        ma += a.data[k]; mb += b.data[k];
      }
      ma /= 64; mb /= 64;
      for (let j = 0; j < 8; j++) for (let i = 0; i < 8; i++) {
        const k = (y + j) * a.width + x + i;
        const [da, db] = [a.data[k] - ma, b.data[k] - mb];
        va += da * da; vb += db * db; cov += da * db;
      }
      va /= 63; vb /= 63; cov /= 63;
      sum += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
      n++;
    }
  }
  return sum / n;
}

const scores = [];
for (const name of readdirSync(dir).filter((f) => f.endsWith('.640.avif')).sort()) {
  const reference = join(dir, name.replace(/\.avif$/, '.ref.png'));
  const encoded = readFileSync(join(dir, name));
  const { width } = await sharp(encoded).metadata();
  const [a, b] = [await luma(readFileSync(reference), width), await luma(encoded, width)];
  if (a.width !== b.width || a.height !== b.height) throw new Error(`${name}: size differs`);
  const s = ssim(a, b);
  scores.push(s);
  console.log(JSON.stringify({ file: name, ssim: Number(s.toFixed(5)), bytes: encoded.length }));
}
console.log(JSON.stringify({ mean_ssim: Number((scores.reduce((x, y) => x + y, 0) / scores.length).toFixed(5)) }));
