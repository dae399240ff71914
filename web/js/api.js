// The platform's HTTP API: JSON in and out, the Bearer token on every call, errors as
// ApiError with the status and the API's `error` code and message.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  /** `base` is the API's origin ('' for the page's own); `onUnauthorized` runs on a 401. */
  constructor(base, token, onUnauthorized) {
    this.base = base;
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, body) {
    const headers = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const resp = await fetch(`${this.base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { message: text };
    }
    if (resp.status === 401) this.onUnauthorized?.();
    if (!resp.ok) throw new ApiError(resp.status, data?.error, data?.message);
    return data;
  }

  get(path) {
    return this.request('GET', path);
  }
  post(path, body) {
    return this.request('POST', path, body ?? {});
  }
  patch(path, body) {
    return this.request('PATCH', path, body);
  }
  delete(path) {
    return this.request('DELETE', path);
  }
}
