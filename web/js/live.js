// Live updates: one WebSocket to the platform (config.live), signed in by offering the token
// as a subprotocol beside matbakh.live.v1 (a browser cannot set headers on a WebSocket).
// Each message ({type, version, id, at, user, data}) goes once (by id) to the handlers of its
// type; an idle socket says "ping" every 5 minutes (API Gateway closes one idle for 10). While
// the socket is down the views poll as before; it reconnects with backoff (1 s,
// doubling to 30 s, with jitter), and each time it is up again the views reload what they show
// (nothing is replayed). `document.body.dataset.live` says `up` or `down`.

export const PROTOCOL = 'matbakh.live.v1';
export const BACKOFF_MIN_MS = 1000;
export const BACKOFF_MAX_MS = 30_000;
/** API Gateway closes a socket idle for 10 minutes: a small message this often keeps it open. */
export const KEEPALIVE_MS = 5 * 60 * 1000;
/** How many message ids are remembered to drop a message delivered twice. */
const SEEN_MAX = 500;

export class Live {
  /** `url` is ws(s):// or a path on the page's own host ('' or missing: no socket, polling only). */
  constructor(url, token) {
    this.url = url && url.startsWith('/') ? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${url}` : url;
    this.token = token;
    this.handlers = new Map();
    this.stateHandlers = [];
    this.seen = new Set();
    this.connected = false;
    this.backoff = BACKOFF_MIN_MS;
    this.ws = null;
  }

  /** Calls `fn(data, message)` for each message of `type`. */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return this;
  }

  /** Calls `fn(up)` whenever the socket comes up or goes down. */
  onState(fn) {
    this.stateHandlers.push(fn);
    return this;
  }

  start() {
    document.body.dataset.live = 'down';
    if (this.url) this.connect();
  }

  connect() {
    let ws;
    try {
      ws = new WebSocket(this.url, [PROTOCOL, `bearer.${this.token}`]);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    let keepalive;
    ws.addEventListener('open', () => {
      this.backoff = BACKOFF_MIN_MS;
      this.setState(true);
      // Routed to $default, where the function answers and ignores it.
      keepalive = setInterval(() => ws.send('{"action":"ping"}'), KEEPALIVE_MS);
    });
    ws.addEventListener('message', (e) => this.dispatch(e.data));
    ws.addEventListener('close', () => {
      clearInterval(keepalive);
      if (this.ws !== ws) return;
      this.ws = null;
      this.setState(false);
      this.retry();
    });
  }

  retry() {
    const wait = this.backoff * (0.5 + Math.random() / 2);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    setTimeout(() => this.connect(), wait);
  }

  setState(up) {
    if (this.connected === up) return;
    this.connected = up;
    document.body.dataset.live = up ? 'up' : 'down';
    for (const fn of this.stateHandlers) fn(up);
  }

  dispatch(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (!m || typeof m.type !== 'string' || this.seen.has(m.id)) return;
    this.seen.add(m.id);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value);
    for (const fn of this.handlers.get(m.type) || []) fn(m.data, m);
  }

  /** Drops the socket as a network failure would (it comes back by itself). */
  drop() {
    this.ws?.close();
  }
}
