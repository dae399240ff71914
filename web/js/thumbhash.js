// ThumbHash placeholders (https://evanw.github.io/thumbhash/): the thumbnailer stores a hash
// of about 25 bytes (Base64) per image; this turns it into a small image to paint while the
// real one loads. Layout: a 24-bit and a 16-bit header (DC values and scales of the L, P, Q
// channels, the L grid's size, alpha and orientation flags), an alpha byte when there is
// alpha, then 4-bit AC coefficients of each channel's triangular DCT grid.

function readHeader(h) {
  const h24 = h[0] | (h[1] << 8) | (h[2] << 16);
  const h16 = h[3] | (h[4] << 8);
  const hasAlpha = (h24 >> 23) & 1;
  const landscape = (h16 >> 15) & 1;
  const longSide = hasAlpha ? 5 : 7;
  const shortSide = Math.max(3, h16 & 7);
  return {
    lDc: (h24 & 63) / 63,
    pDc: ((h24 >> 6) & 63) / 31.5 - 1,
    qDc: ((h24 >> 12) & 63) / 31.5 - 1,
    lScale: ((h24 >> 18) & 31) / 31,
    pScale: ((h16 >> 3) & 63) / 63,
    qScale: ((h16 >> 9) & 63) / 63,
    hasAlpha: !!hasAlpha,
    lx: landscape ? Math.max(3, longSide) : shortSide,
    ly: landscape ? shortSide : Math.max(3, longSide),
    // The aspect ratio uses the grid sizes before the minimum of 3.
    ratio: landscape ? longSide / (h16 & 7) : (h16 & 7) / longSide,
  };
}

/** The cells (cx, cy) of a triangular nx x ny grid, in the order their coefficients are stored. */
function cells(nx, ny) {
  const out = [];
  for (let cy = 0; cy < ny; cy++) {
    for (let cx = cy === 0 ? 1 : 0; cx * ny < nx * (ny - cy); cx++) out.push([cx, cy]);
  }
  return out;
}

/** Decodes a hash (bytes) to {width, height, rgba}; throws on a hash too short to be one. */
export function decodeThumbHash(hash) {
  if (hash.length < 5) throw new Error('not a ThumbHash');
  const hd = readHeader(hash);
  let pos = hd.hasAlpha ? 6 : 5;
  let aDc = 1;
  let aScale = 1;
  if (hd.hasAlpha) {
    aDc = (hash[5] & 15) / 15;
    aScale = (hash[5] >> 4) / 15;
  }
  let nibble = 0;
  const next = () => {
    const byte = hash[pos + (nibble >> 1)];
    if (byte === undefined) throw new Error('ThumbHash too short');
    const v = nibble & 1 ? byte >> 4 : byte & 15;
    nibble++;
    return v;
  };
  const channel = (nx, ny, scale) => cells(nx, ny).map(([cx, cy]) => ({ cx, cy, v: (next() / 7.5 - 1) * scale }));
  const l = channel(hd.lx, hd.ly, hd.lScale);
  const p = channel(3, 3, hd.pScale * 1.25);
  const q = channel(3, 3, hd.qScale * 1.25);
  const a = hd.hasAlpha ? channel(5, 5, aScale) : [];

  const width = Math.max(1, hd.ratio > 1 ? 32 : Math.round(32 * hd.ratio));
  const height = Math.max(1, hd.ratio > 1 ? Math.round(32 / hd.ratio) : 32);
  const rgba = new Uint8ClampedArray(width * height * 4);
  const sum = (dc, coeffs, fx, fy) => coeffs.reduce((s, c) => s + c.v * fx[c.cx] * fy[c.cy] * 2, dc);
  for (let y = 0; y < height; y++) {
    const fy = Array.from({ length: 7 }, (_, c) => Math.cos((Math.PI / height) * (y + 0.5) * c));
    for (let x = 0; x < width; x++) {
      const fx = Array.from({ length: 7 }, (_, c) => Math.cos((Math.PI / width) * (x + 0.5) * c));
      const L = sum(hd.lDc, l, fx, fy);
      const P = sum(hd.pDc, p, fx, fy);
      const Q = sum(hd.qDc, q, fx, fy);
      const A = hd.hasAlpha ? sum(aDc, a, fx, fy) : 1;
      const b = L - (2 / 3) * P;
      const r = (3 * L - b + Q) / 2;
      const g = r - Q;
      const i = (y * width + x) * 4;
      rgba[i] = Math.max(0, Math.min(1, r)) * 255;
      rgba[i + 1] = Math.max(0, Math.min(1, g)) * 255;
      rgba[i + 2] = Math.max(0, Math.min(1, b)) * 255;
      rgba[i + 3] = Math.max(0, Math.min(1, A)) * 255;
    }
  }
  return { width, height, rgba };
}

const cache = new Map();

/** A data: URL (PNG) of a Base64 ThumbHash, or null when it cannot be decoded. */
export function placeholderUrl(base64) {
  if (!base64) return null;
  if (cache.has(base64)) return cache.get(base64);
  let url = null;
  try {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const { width, height, rgba } = decodeThumbHash(bytes);
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    canvas.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
    url = canvas.toDataURL('image/png');
  } catch {
    url = null;
  }
  cache.set(base64, url);
  return url;
}
