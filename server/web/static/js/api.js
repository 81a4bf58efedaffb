// The HTTP/JSON API: calls with the bearer token, and server streams read as
// newline-delimited JSON ({"result": …} or {"error": …} per line).

const KEY = 'arcade.token';

// gRPC codes the dashboard reacts to.
export const Code = { NOT_FOUND: 5, PERMISSION_DENIED: 7, FAILED_PRECONDITION: 9, UNIMPLEMENTED: 12, UNAVAILABLE: 14, UNAUTHENTICATED: 16 };

export const token = {
  get() { return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || ''; },
  set(t, remember) {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(KEY, t);
  },
  clear() { sessionStorage.removeItem(KEY); localStorage.removeItem(KEY); },
};

export class APIError extends Error {
  constructor(httpStatus, code, message) {
    super(message || `HTTP ${httpStatus}`);
    this.httpStatus = httpStatus;
    this.code = code;
  }
  get unimplemented() { return this.code === Code.UNIMPLEMENTED || this.httpStatus === 501; }
}

let unauthorized = () => {};
// onUnauthorized sets what happens when the server refuses the token.
export function onUnauthorized(fn) { unauthorized = fn; }

function headers(json) {
  const h = { Accept: 'application/json' };
  const t = token.get();
  if (t) h.Authorization = 'Bearer ' + t;
  if (json) h['Content-Type'] = 'application/json';
  return h;
}

async function failure(res) {
  let body = {};
  try { body = await res.json(); } catch { /* not JSON */ }
  const err = new APIError(res.status, body.code, body.message || res.statusText);
  if (res.status === 401) unauthorized(err);
  return err;
}

// call makes one unary call: call('GET', '/v1/jobs') or with a body.
export async function call(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw await failure(res);
  return res.json();
}

export const get = (path) => call('GET', path);
export const post = (path, body = {}) => call('POST', path, body);
export const patch = (path, body = {}) => call('PATCH', path, body);

// query builds "?a=1&b=2&b=3" from an object (arrays repeat the key).
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, String(one));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// stream reads a server stream; onMessage gets each result. It returns a
// handle whose close() ends the stream. onEnd(err) is called once when the
// stream ends (err null when the server finished it), unless closed.
export function stream(path, onMessage, onEnd = () => {}) {
  const ctl = new AbortController();
  let closed = false;
  (async () => {
    let err = null;
    try {
      const res = await fetch(path, { headers: headers(false), signal: ctl.signal });
      if (!res.ok) throw await failure(res);
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        let batch = [];
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const msg = JSON.parse(line);
          if (msg.error) throw new APIError(200, msg.error.code, msg.error.message);
          batch.push(msg.result);
        }
        for (const m of batch) onMessage(m);
        batch = [];
      }
    } catch (e) {
      if (closed) return;
      err = e;
    }
    if (!closed) onEnd(err);
  })();
  return { close() { closed = true; ctl.abort(); } };
}

// watch keeps a stream open: it reopens it after an error or end, waiting a
// little longer each time, until closed.
export function watch(pathFn, onMessage, { onState = () => {}, reopenOnEnd = true } = {}) {
  let handle = null;
  let closed = false;
  let delay = 500;
  let timer = null;
  const open = () => {
    onState('live');
    handle = stream(pathFn(), (m) => { delay = 500; onMessage(m); }, (err) => {
      if (closed) return;
      if (!err && !reopenOnEnd) { onState('ended'); return; }
      if (err && (err.httpStatus === 401 || err.httpStatus === 403 || err.httpStatus === 404 || err.unimplemented)) {
        onState('error', err);
        return;
      }
      onState('reconnecting', err);
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    });
  };
  open();
  return { close() { closed = true; clearTimeout(timer); handle && handle.close(); } };
}
