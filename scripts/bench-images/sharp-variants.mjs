// The same variant set with sharp (libvips), for scripts/bench images:
//   node sharp-variants.mjs webp-jpeg|avif RUNS OUT_DIR FILE...
// Per file: RUNS times every width (320/640/1280/1920, never enlarged) in the group's formats,
// auto-rotated by EXIF, metadata stripped (sharp's default); one JSON line with the median
// wall milliseconds. Settings as ours: WebP q80 effort 4, JPEG q80 progressive 4:2:0 (libjpeg-
// turbo, not mozjpeg), AVIF at sharp's defaults (q50, effort 4). Writes each file's 640 px
// AVIF (and the pixels it encoded, as PNG) to OUT_DIR for the SSIM comparison; a last line gives the process's CPU seconds.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import sharp from 'sharp';

const [group, runsArg, out, ...files] = process.argv.slice(2);
const runs = Number(runsArg);
const widths = [320, 640, 1280, 1920];
const encoders = {
  'webp-jpeg': [
    (p) => p.webp({ quality: 80, effort: 4 }),
    (p) => p.jpeg({ quality: 80, progressive: true, chromaSubsampling: '4:2:0', mozjpeg: false }),
  ],
  avif: [(p) => p.avif({ quality: 50, effort: 4 })],
}[group];
if (!encoders) throw new Error(`unknown group ${group}`);

for (const file of files) {
  const input = readFileSync(file);
  const { width, height, orientation } = await sharp(input).metadata();
  const shown = orientation >= 5 ? height : width;
  const wanted = widths.filter((w) => w <= shown);
  const times = [];
  let avif640;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const outputs = await Promise.all(
      (wanted.length ? wanted : [shown]).flatMap((w) =>
        encoders.map((enc) => enc(sharp(input).rotate().resize({ width: w, withoutEnlargement: true })).toBuffer()
          .then((buf) => ({ w, buf }))),
      ),
    );
    times.push(performance.now() - started);
    avif640 = group === 'avif' ? outputs.find((o) => o.w === 640)?.buf : undefined;
  }
  if (avif640) {
    writeFileSync(join(out, `${basename(file)}.640.avif`), avif640);
    // The pixels before encoding, as the SSIM reference.
    await sharp(input).rotate().resize({ width: 640 }).png().toFile(join(out, `${basename(file)}.640.ref.png`));
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ file: basename(file), median_ms: Number(times[times.length >> 1].toFixed(1)), runs }));
}
const cpu = process.cpuUsage();
console.log(JSON.stringify({ cpu_seconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(2)) }));
