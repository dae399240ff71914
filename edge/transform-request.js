// CloudFront Function (cloudfront-js-2.0, viewer request) in front of the transformer (DECISIONS 29),
// on the files CDN's /t/* behaviour (DECISIONS 30): a transform URL is /t/{signature}/{options}/{source},
// and the rest after /t is the imgproxy path; any other path (its /results* behaviour) is refused (400).
// It checks the imgproxy signature (base64url HMAC-SHA256 of salt + path, with any key/salt pair of
// the KeyValueStore entry `pairs`, which scripts/transform-keys writes from the transformer's secret)
// and `exp`, and only then points the request at the result's S3 key,
// results/{source}/{encoder}/{canonical}.{ext}, computed exactly as core::imgproxy computes it; the
// signature is never part of the key. Both sides follow one grammar (tests/imgproxy/result-keys.json):
// what the transformer refuses is refused here with the same status and reason, never sent on and
// never cached: 400 bad URL or an option imgproxy's open-source edition does not have, 403 bad
// signature, expired or foreign source, 503 no keys in the store. Accept is reduced to
// avif | webp | jpeg (the cache key); the signed path (without /t) travels on in x-transform-path for
// the transformer, the origin when S3 has no result.
//
// This file is the source: `node edge/build.mjs` minifies it into template.yaml (CloudFront Functions
// take at most 10 KB), and `node --test tests/imgproxy/` checks the two agree.
import cf from 'cloudfront';
import crypto from 'crypto';

var kvs = cf.kvs();
// ENCODER: imaging::transform::ENCODER_VERSION. SOURCES: the transformer's default
// TRANSFORM_SOURCE_PREFIXES (the template sets no other).
var ENCODER = 'e2', BUCKET = '${FilesBucket}', SOURCES = 'users/';
var BAD = 'bad_argument', MAL = 'malformed_url', UNSUPPORTED = 'unsupported_option';
var FORBIDDEN = 'forbidden_source', STATUS = { bad_signature: 403, expired: 403, forbidden_source: 403, no_keys: 503 };
// The caps of core::imgproxy (MAX_BLUR_SIGMA, MAX_SHARPEN_SIGMA, MAX_PIXELATE, MAX_PADDING, MAX_ZOOM).
var MAX = { bl: 100, sh: 10, pix: 4096, pd: 4096, z: 100 };
var ALIAS = {
  resize: 'rs', size: 's', resizing_type: 'rt', width: 'w', height: 'h', 'min-width': 'mw', 'min-height': 'mh',
  zoom: 'z', enlarge: 'el', extend: 'ex', extend_aspect_ratio: 'exar', extend_ar: 'exar', gravity: 'g', crop: 'c',
  trim: 't', padding: 'pd', auto_rotate: 'ar', rotate: 'rot', flip: 'fl', background: 'bg', quality: 'q',
  format_quality: 'fq', max_bytes: 'mb', format: 'f', ext: 'f', blur: 'bl', sharpen: 'sh', pixelate: 'pix',
  strip_metadata: 'sm', keep_copyright: 'kcr', strip_color_profile: 'scp', enforce_thumbnail: 'eth',
  preserve_hdr: 'ph', skip_processing: 'skp', sp: 'skp', filename: 'fn', return_attachment: 'att',
  watermark: 'wm', preset: 'pr', expires: 'exp', cachebuster: 'cb'
};
// Options of imgproxy Pro, and imgproxy's security options (refused by imgproxy too unless allowed).
var UNAVAILABLE = ('adjust a brightness br contrast co saturation sa monochrome mc duotone dt autoquality aq ' +
  'avif_options avifo background_alpha bga blur_areas ba blur_detections bd bypass_cache bc cache_tags ct ' +
  'color_profile cp icc crop_aspect_ratio crop_ar car crop_objects c_obj colorize col disable_animation da dpi ' +
  'draw_detections dd fallback_image_url fiu gradient gr hashsum hs jpeg_options jpgo page pg pages pgs ' +
  'png_options pngo progressive_blur pbl resizing_algorithm ra style stl unsharp_masking ush watermark_url wmu ' +
  'watermark_text wmt watermark_size wms webp_options webpo watermark_rotate wm_rot wmr watermark_shadow wmsh ' +
  'video_thumbnail_second vts video_thumbnail_keyframes vtk video_thumbnail_tile vtt video_thumbnail_animation vta ' +
  'max_src_resolution msr max_src_file_size msfs max_animation_frames maf max_animation_frame_resolution mafr ' +
  'max_result_dimension mrd').split(' ');
var COMPASS = ['no', 'so', 'ea', 'we', 'noea', 'nowe', 'soea', 'sowe', 'ce'];
var TRUE = ['1', 't', 'T', 'true', 'TRUE', 'True'];
var FALSE = ['0', 'f', 'F', 'false', 'FALSE', 'False'];
// Output formats in core::imgproxy::Format's order (jpeg is jpg); skp also reads gif.
var FORMATS = ['jpg', 'png', 'webp', 'avif'], SOURCE_FORMATS = FORMATS.concat('gif');

function int(s) { if (!/^\d+$/.test(s) || +s > 4294967295) throw BAD; return +s; }
function capped(s, max) { var n = int(s); if (n > max) throw BAD; return n; }
// Decimals only (no +, exponent or bare dot), and none that would print with an exponent.
function num(s) {
  var n = +s + 0;
  if (!/^-?\d+(\.\d+)?$/.test(s) || !isFinite(n) || /e/.test(n)) throw BAD;
  return n;
}
function bool(s) { if (TRUE.indexOf(s) >= 0) return true; if (FALSE.indexOf(s) >= 0) return false; throw BAD; }
function one(a) { if (a.length !== 1 || a[0] === '') throw BAD; return a[0]; }
function type(s) { if (['fit', 'fill', 'fill-down', 'force', 'auto'].indexOf(s) < 0) throw BAD; return s; }
// A format's canonical name (jpeg is jpg), or -1.
function formatIndex(s, list) { return (list || FORMATS).indexOf(s === 'jpeg' ? 'jpg' : s); }
function format(s) { var i = formatIndex(s); if (i < 0) throw BAD; return FORMATS[i]; }
function quality(s) { return capped(s, 100); }
function hex(s) {
  if (!/^([\da-f]{3}|[\da-f]{6})$/i.test(s)) throw BAD;
  s = s.toLowerCase();
  return s.length === 3 ? s[0] + s[0] + s[1] + s[1] + s[2] + s[2] : s;
}
function flag(b) { return b ? 1 : 0; }

// A gravity's canonical text; `smart`: whether sm is allowed (crops, not extending).
function gravity(a, smart) {
  if (a[0] === 'sm') { if (!smart || a.length > 1) throw BAD; return 'sm'; }
  if (a[0] === 'obj' || a[0] === 'objw') throw UNSUPPORTED;
  if (a[0] === 'fp') {
    if (a.length !== 3) throw BAD;
    var x = num(a[1]), y = num(a[2]);
    if (x < 0 || x > 1 || y < 0 || y > 1) throw BAD;
    return 'fp:' + x + ':' + y;
  }
  if (COMPASS.indexOf(a[0]) < 0 || a.length > 3) throw BAD;
  return a[0] + ':' + off(a, 1) + ':' + off(a, 2);
}
function off(a, i) { return a[i] === undefined || a[i] === '' ? 0 : num(a[i]); }
// ex / exar: enabled[:gravity]; the gravity's text, or null when off.
function extend(a) {
  if (a.length > 4) throw BAD;
  var on = bool(a[0]), g = a.length > 1 ? gravity(a.slice(1), false) : 'ce:0:0';
  return on ? g : null;
}

// Throws 'bad_signature' unless `sig` is the signature of `path` under one of the pairs.
function verify(sig, path, pairs) {
  var ok = 0, p = (pairs || '').split(',').filter(function (p) { return /^([\da-f]{2})+:([\da-f]{2})*$/i.test(p); });
  if (!p.length) throw 'no_keys';
  sig = sig.replace(/=+$/, '');
  p.forEach(function (kv) {
    kv = kv.split(':');
    var d = crypto.createHmac('sha256', Buffer.from(kv[0], 'hex')).update(Buffer.from(kv[1], 'hex'))
      .update(path).digest('base64url'), x = d.length ^ sig.length;
    for (var i = 0; i < d.length; i++) x |= d.charCodeAt(i) ^ sig.charCodeAt(i);
    ok |= !x;
  });
  if (!ok) throw 'bad_signature';
}

// URL-safe base64 (padding allowed) of UTF-8 text, strictly: stray bits or bytes that are not UTF-8
// do not survive the way back.
function unbase64(s, refusal) {
  s = s.replace(/=+$/, '');
  if (!/^[\w-]*$/.test(s)) throw refusal;
  var text = Buffer.from(s, 'base64url').toString('utf8');
  if (Buffer.from(text, 'utf8').toString('base64url') !== s) throw refusal;
  return text;
}

function keySegment(s) {
  var bytes = Buffer.from(s, 'utf8'), out = '';
  for (var i = 0; i < bytes.length; i++) {
    var c = String.fromCharCode(bytes[i]);
    out += /[\w.~-]/.test(c) ? c : '%' + (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16).toUpperCase();
  }
  return out;
}

// Reads one option segment into `o`, as core::imgproxy::Options::apply does.
function apply(o, n, a) {
  n = ALIAS[n] || n;
  var v, i;
  if (n === 'rs' || n === 's') {
    var f = n === 'rs' ? a : [''].concat(a);
    if (f.length > 8) throw BAD;
    if (f[0]) o.rt = type(f[0]);
    if (f[1]) o.w = int(f[1]);
    if (f[2]) o.h = int(f[2]);
    if (f[3]) o.el = bool(f[3]);
    if (f[4]) o.ex = extend(f.slice(4));
  } else if (n === 'rt') o.rt = type(one(a));
  else if (n === 'w' || n === 'h') o[n] = int(one(a));
  else if (n === 'mw' || n === 'mh') o[n] = capped(one(a), MAX.pd);
  else if (n === 'z') {
    v = zoom(a[0]);
    if (a.length > 2) throw BAD;
    o.z = [v, a.length > 1 ? zoom(a[1]) : v];
  } else if (n === 'ex' || n === 'exar') o[n] = extend(a);
  else if (n === 'q') o.q = quality(one(a));
  else if (n === 'el' || n === 'ar' || n === 'kcr' || n === 'scp' || n === 'raw' || n === 'att') o[n] = bool(one(a));
  else if (n === 'sm') { if (!bool(one(a))) throw UNSUPPORTED; }
  else if (n === 'ph' || n === 'eth') { if (bool(one(a))) throw UNSUPPORTED; }
  else if (n === 'dpr') { o.dpr = num(one(a)); if (o.dpr <= 0) throw BAD; }
  else if (n === 'bl' || n === 'sh') { o[n] = num(one(a)); if (o[n] < 0 || o[n] > MAX[n]) throw BAD; }
  else if (n === 'pix') o.pix = capped(one(a), MAX.pix);
  else if (n === 'g') o.g = gravity(a, true);
  else if (n === 'c') {
    var cw = num(a[0]), ch = a[1] ? num(a[1]) : 0;
    if (cw < 0 || ch < 0) throw BAD;
    o.c = [cw, ch, a.length > 2 ? gravity(a.slice(2), true) : null];
  } else if (n === 't') {
    if (a.length > 4) throw BAD;
    o.t = a[0] ? [num(a[0]), a[1] ? hex(a[1]) : '', flag(a[2] && bool(a[2])), flag(a[3] && bool(a[3]))] : null;
  } else if (n === 'pd') {
    if (a.length > 4) throw BAD;
    var side = function (j, otherwise) { return a[j] ? capped(a[j], MAX.pd) : otherwise; };
    var top = side(0, o.pd[0]), right = side(1, top);
    o.pd = [top, right, side(2, top), side(3, right)];
  } else if (n === 'rot') {
    v = one(a);
    if (!/^-?\d+$/.test(v) || v.length > 10 || v % 90) throw BAD;
    o.rot = ((v % 360) + 360) % 360;
  } else if (n === 'fl') {
    if (a.length > 2) throw BAD;
    if (a[0]) o.fl[0] = bool(a[0]);
    if (a[1]) o.fl[1] = bool(a[1]);
  } else if (n === 'bg') {
    if (a.length === 3) o.bg = a.map(function (c) { return (256 + capped(c, 255)).toString(16).slice(1); }).join('');
    else if (a.length === 1) o.bg = a[0] ? hex(a[0]) : null;
    else throw BAD;
  } else if (n === 'fq') {
    if (a.length % 2) throw BAD;
    for (i = 0; i < a.length; i += 2) {
      v = formatIndex(a[i]);
      if (v < 0) throw BAD;
      o.fq[v] = quality(a[i + 1]);
    }
  } else if (n === 'mb') o.mb = int(one(a));
  else if (n === 'skp') {
    for (i = 0; i < a.length; i++) {
      v = formatIndex(a[i], SOURCE_FORMATS);
      if (v < 0) throw BAD;
      o.skp[v] = SOURCE_FORMATS[v];
    }
  } else if (n === 'fn') {
    if (a.length > 2) throw BAD;
    if (a[1] && bool(a[1])) v = unbase64(a[0], BAD);
    else { try { v = decodeURIComponent(a[0]); } catch (e) { throw BAD; } }
    if (Buffer.byteLength(v, 'utf8') > 255 || /[\x00-\x1f\x7f-\x9f]/.test(v)) throw BAD;
    o.fn = v;
  } else if (n === 'f') { v = one(a); o.f = v === 'auto' ? null : format(v); }
  else if (n === 'exp') { o.exp = +one(a); if (!/^-?\d+$/.test(a[0]) || Math.abs(o.exp) > 9007199254740991) throw BAD; }
  else if (n === 'cb') { if (a.length !== 1) throw BAD; o.cb = a[0]; }
  else if (n === 'wm') {
    var op = num(a[0]), pos = a[1] || 'ce', wm = [op, pos, off(a, 2), off(a, 3), off(a, 4)];
    if (op < 0 || op > 1 || a.length > 5 || wm[4] < 0 || (pos !== 're' && COMPASS.indexOf(pos) < 0)) throw BAD;
    o.wm = op > 0 ? 'wm:' + wm.join(':') : null;
  } else if (n === 'pr') throw 'unknown_preset';
  else throw UNAVAILABLE.indexOf(n) >= 0 ? UNSUPPORTED : 'unknown_option';
}
function zoom(s) { var z = num(s); if (z <= 0 || z > MAX.z) throw BAD; return z; }

// The canonical text of the options, as core::imgproxy::Options::canonical.
function canonical(o) {
  var p = [], sized = o.w > 0 || o.h > 0;
  function add(cond, text) { if (cond) p.push(text); }
  if (o.raw) p.push('raw:1');
  else {
    add(o.t, 't:' + (o.t || []).join(':'));
    add(o.c && (o.c[0] > 0 || o.c[1] > 0), o.c && 'c:' + o.c[0] + ':' + o.c[1] + ':' + (o.c[2] || o.g));
    add(sized && o.rt !== 'fit', 'rt:' + o.rt);
    add(o.w > 0, 'w:' + o.w);
    add(o.h > 0, 'h:' + o.h);
    add(o.mw > 0, 'mw:' + o.mw);
    add(o.mh > 0, 'mh:' + o.mh);
    add(o.z[0] !== 1 || o.z[1] !== 1, 'z:' + o.z.join(':'));
    add(o.el, 'el:1');
    add(sized && o.ex, 'ex:1:' + o.ex);
    add(o.w > 0 && o.h > 0 && o.exar, 'exar:1:' + o.exar);
    add(o.dpr !== 1, 'dpr:' + o.dpr);
    // The gravity places the cut of a filling type, and of any a minimum size made larger.
    add(sized && (['fill', 'fill-down', 'auto'].indexOf(o.rt) >= 0 || o.mw > 0 || o.mh > 0) && o.g !== 'ce:0:0', 'g:' + o.g);
    add(!o.ar, 'ar:0');
    add(o.rot, 'rot:' + o.rot);
    add(o.fl[0] || o.fl[1], 'fl:' + flag(o.fl[0]) + ':' + flag(o.fl[1]));
    add(o.pd.join('') !== '0000', 'pd:' + o.pd.join(':'));
    add(o.bg, 'bg:' + o.bg);
    add(o.bl > 0, 'bl:' + o.bl);
    add(o.sh > 0, 'sh:' + o.sh);
    add(o.pix > 1, 'pix:' + o.pix);
    add(o.wm, o.wm);
    var fq = [];
    o.fq.forEach(function (q, i) { if (q !== undefined) fq.push(FORMATS[i] + ':' + q); });
    add(o.q > 0, 'q:' + o.q);
    add(!o.q && fq.length, 'fq:' + fq.join(':'));
    add(o.mb > 0, 'mb:' + o.mb);
    add(!o.kcr, 'kcr:0');
    add(!o.scp, 'scp:0');
    var skp = o.skp.filter(String);
    add(skp.length, 'skp:' + skp.join(':'));
  }
  add(o.fn, 'fn:' + keySegment(o.fn || ''));
  add(o.att, 'att:1');
  add(o.cb, 'cb:' + keySegment(o.cb));
  return p.length ? p.join(',') : '_';
}

// The result key for a signed transform path, an Accept class, the key/salt pairs and the time
// (unix seconds); throws the reason of a refusal, in the order core::imgproxy checks.
function resultKey(path, accept, pairs, now) {
  var i = path.indexOf('/', 1);
  if (path[0] !== '/' || i < 2) throw MAL;
  verify(path.slice(1, i), path.slice(i), pairs);
  var seg = path.slice(i + 1).split('/'), o = { rt: 'fit', w: 0, h: 0, mw: 0, mh: 0, z: [1, 1], el: false,
    ex: null, exar: null, dpr: 1, g: 'ce:0:0', c: null, t: null, pd: [0, 0, 0, 0], rot: 0, fl: [false, false],
    bg: null, q: 0, fq: [], mb: 0, f: null, bl: 0, sh: 0, pix: 1, ar: true, kcr: true, scp: true,
    skp: [], raw: false, fn: '', att: false, wm: null, cb: '', exp: null };
  for (i = 0; i < seg.length && seg[i].indexOf(':') >= 0; i++) {
    var a = seg[i].split(':');
    apply(o, a.shift(), a);
  }
  var src = seg.slice(i), ext, url;
  if (!src.length || src[0] === 'enc') throw MAL;
  if (src[0] === 'plain') {
    var p = src.slice(1).join('/').split('@');
    if (p.length > 2) throw MAL;
    try { url = decodeURIComponent(p[0]); } catch (e) { throw MAL; }
    ext = p[1];
  } else {
    var b = src.join('').split('.');
    if (b.length > 2) throw MAL;
    url = unbase64(b[0], MAL);
    ext = b[1];
  }
  if (!url) throw MAL;
  if (ext) o.f = format(ext);
  if (o.exp > 0 && o.exp < now) throw 'expired';
  var key = url;
  if (url.indexOf('s3://') === 0) {
    var j = url.indexOf('/', 5);
    if (j < 0) throw MAL;
    if (url.slice(5, j) !== BUCKET) throw FORBIDDEN;
    key = url.slice(j + 1);
  } else if (url.indexOf('://') >= 0) throw FORBIDDEN;
  if (key.indexOf(SOURCES) || /(^|\/)\.\.?(\/|$)/.test(key) || /[\x00-\x1f\x7f-\x9f]/.test(key)) throw FORBIDDEN;
  // An expiring URL's result is not a never-expiring one's (core::imgproxy::result_key): a
  // private file's owner's URL must not store what its old public URLs would then find.
  var result = 'results/' + key + '/' + ENCODER + '/' + canonical(o) + (o.exp > 0 ? ',exp' : '') + '.';
  // core::imgproxy::MAX_RESULT_KEY_BYTES: S3's longest key, with the longest extension.
  if (Buffer.byteLength(result + 'legacy', 'utf8') > 1024) throw MAL;
  return result + (o.f || (accept === 'jpeg' ? 'legacy' : accept));
}

async function handler(event) {
  var req = event.request, h = req.headers, pairs = '', key;
  var path = req.uri.indexOf('/t/') === 0 ? req.uri.slice(2) : '';
  var accept = h.accept ? h.accept.value : '';
  var cls = accept.indexOf('image/avif') >= 0 ? 'avif' : accept.indexOf('image/webp') >= 0 ? 'webp' : 'jpeg';
  h.accept = { value: 'image/' + cls };
  try { pairs = await kvs.get('pairs'); } catch (e) { /* no entry: no keys, nothing is accepted */ }
  try { key = resultKey(path, cls, pairs, Math.floor(Date.now() / 1000)); } catch (e) {
    var reason = typeof e === 'string' ? e : MAL;
    return { statusCode: STATUS[reason] || 400,
      headers: { 'cache-control': { value: 'no-store' }, 'x-error-reason': { value: reason } } };
  }
  h['x-transform-path'] = { value: path };
  req.uri = '/' + key.split('/').map(function (s) {
    return encodeURIComponent(s).replace(/[!'()*]/g, function (c) { return '%' + c.charCodeAt(0).toString(16).toUpperCase(); });
  }).join('/');
  return req;
}
