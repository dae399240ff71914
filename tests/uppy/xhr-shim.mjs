// Node has fetch but no XMLHttpRequest, which Uppy uses for every request to S3 (for upload
// progress). This is the smallest XMLHttpRequest that Uppy's `fetcher` needs, over fetch.
// The npm `xhr2` packages cannot send Blob or FormData bodies, so they do not work here.

class XMLHttpRequestOverFetch {
  constructor() {
    this.upload = { onprogress: null };
    this.readyState = 0;
    this.status = 0;
    this.statusText = '';
    this.responseText = '';
    this.response = '';
    this.responseType = '';
    this.withCredentials = false;
    this.requestHeaders = {};
    this.controller = new AbortController();
  }

  open(method, url) {
    this.method = method;
    this.url = url;
    this.readyState = 1;
  }

  setRequestHeader(name, value) {
    this.requestHeaders[name] = value;
  }

  getResponseHeader(name) {
    return this.fetched ? this.fetched.headers.get(name) : null;
  }

  getAllResponseHeaders() {
    if (!this.fetched) return '';
    return [...this.fetched.headers].map(([k, v]) => `${k}: ${v}`).join('\r\n');
  }

  abort() {
    this.controller.abort();
  }

  send(body) {
    const init = { method: this.method, headers: this.requestHeaders, signal: this.controller.signal };
    if (body != null) init.body = body;
    fetch(this.url, init)
      .then(async (resp) => {
        this.fetched = resp;
        this.status = resp.status;
        this.statusText = resp.statusText;
        this.responseText = await resp.text();
        this.response = this.responseText;
        this.readyState = 4;
        const size = body?.size ?? 0;
        this.upload.onprogress?.({ lengthComputable: true, loaded: size, total: size });
        this.onload?.();
      })
      .catch((err) => {
        this.readyState = 4;
        if (err.name === 'AbortError') this.onabort?.();
        else this.onerror?.(err);
      });
  }
}

globalThis.XMLHttpRequest = XMLHttpRequestOverFetch;
