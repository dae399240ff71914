// A file's responsive <picture>, the same in the gallery and on a public page: AVIF and WebP
// sources where its variants have them (the API's ready `srcset` per type), the narrowest JPEG
// (or any variant) as the fallback; lazy, and it marks its `.thumb` loaded once decoded.

import { el } from './format.js';

/** The <picture> of `f`'s variants for a slot of `sizes`, or null without variants. */
export function picture(f, sizes) {
  const variants = f.variants || [];
  const set = (type) => (f.srcset || {})[type] || null;
  const jpeg = variants.filter((v) => v.contentType === 'image/jpeg').sort((a, b) => a.width - b.width);
  const fallback = jpeg[0] || variants[0];
  if (!fallback) return null;
  const img = el('img', {
    src: fallback.url,
    srcset: set('image/jpeg'),
    sizes,
    alt: f.name,
    loading: 'lazy',
    decoding: 'async',
    width: f.width,
    height: f.height,
  });
  img.addEventListener('load', () => img.closest('.thumb')?.classList.add('loaded'));
  const sources = ['image/avif', 'image/webp'].filter(set).map((type) => el('source', { type, srcset: set(type), sizes }));
  return el('picture', {}, sources, img);
}
