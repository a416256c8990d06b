// notify-ntfy: the `notification-provider` world of patchbay:connector@0.1.0, in JavaScript.
//
// Publishes a notification to an ntfy topic with ntfy's JSON publishing (POST to the server's
// root URL: https://docs.ntfy.sh/publish/#publish-as-json). Built with componentize-js:
//
//   componentize-js --wit <wit> --world-name notification-provider \
//       --disable http fetch-event -o notify-ntfy.wasm app.js
//
// Exported interfaces are named exports (`lifecycle`, `notifications`) with camelCase functions
// and record fields; enums and variant cases are kebab-case strings, variants `{ tag, val }`,
// `option<T>` a value or `undefined`, `list<u8>` a Uint8Array. A function whose WIT result is
// `result<T, connector-error>` returns T or throws the error value (`{ tag: 'permanent', val:
// { code, message } }`); an imported function's error is thrown as an Error whose `payload` is
// the WIT error value.

import { send as httpSend } from 'patchbay:connector/http@0.1.0';
import { config, hasSecret } from 'patchbay:connector/credentials@0.1.0';
import { log } from 'patchbay:connector/log@0.1.0';

const TOPIC = /^[-_A-Za-z0-9]{1,64}$/;
const MAX_MESSAGE = 4096;

const permanent = (code, message) => ({ tag: 'permanent', val: { code, message } });
const retryable = (code, message) => ({ tag: 'retryable', val: { code, message } });

function logLine(level, message, fields = {}) {
  log(level, message, Object.entries(fields).map(([k, v]) => [k, String(v)]));
}

/** The server's base URL (no trailing slash); a permanent error when it is not http(s). */
function serverUrl() {
  const url = (config('server_url') ?? 'https://ntfy.sh').trim().replace(/\/+$/, '');
  if (!/^https?:\/\/[^/?#\s]+$/i.test(url)) {
    throw permanent('invalid_config', '`server_url` must be an http(s) origin without a path, like https://ntfy.sh');
  }
  return url;
}

function topic() {
  const t = (config('topic') ?? '').trim();
  if (!t) throw permanent('missing_config', '`topic` is not set for this installation');
  if (!TOPIC.test(t)) throw permanent('invalid_config', '`topic` may hold only letters, digits, `-` and `_` (1-64)');
  return t;
}

function priority(metadata) {
  const own = metadata.find(([k]) => k === 'priority')?.[1];
  const raw = own ?? config('priority') ?? '3';
  const p = Number(raw);
  if (!Number.isInteger(p) || p < 1 || p > 5) {
    throw permanent('invalid_input', `priority must be an integer from 1 to 5, got ${JSON.stringify(raw)}`);
  }
  return p;
}

function headers(json) {
  const h = [['accept', 'application/json']];
  if (json) h.push(['content-type', 'application/json']);
  // The host substitutes the placeholder after the destination check; the token never enters the guest.
  if (hasSecret('token')) h.push(['authorization', 'Bearer {{secret:token}}']);
  return h;
}

function fromHttpError(e) {
  switch (e.tag) {
    case 'timeout': return retryable('timeout', 'the ntfy server did not answer in time');
    case 'connection-failed': return retryable('connection_failed', e.val);
    case 'destination-not-allowed': return permanent('destination_not_allowed', e.val);
    case 'address-blocked': return permanent('address_blocked', e.val);
    case 'response-too-large': return permanent('response_too_large', `the response exceeded the host's cap of ${e.val} bytes`);
    case 'too-many-requests': return permanent('too_many_requests', `the call's budget of ${e.val} HTTP requests is spent`);
    default: return permanent('invalid_request', String(e.val));
  }
}

function request(method, url, body) {
  try {
    return httpSend({ method, url, headers: headers(body !== undefined), body, timeoutMs: undefined, followRedirects: false });
  } catch (e) {
    if (e && e.payload && typeof e.payload.tag === 'string') throw fromHttpError(e.payload);
    throw retryable('internal', String(e));
  }
}

function parseJson(bytes) {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}

/** ntfy's errors: `{"code": 40301, "http": 403, "error": "forbidden", "link": "..."}`. */
function fromStatus(resp) {
  const status = resp.status;
  const doc = parseJson(resp.body) ?? {};
  const detail = typeof doc.error === 'string' ? doc.error : new TextDecoder().decode(resp.body).trim().slice(0, 300);
  const message = `ntfy answered HTTP ${status}` + (detail ? `: ${detail}` : '');
  if (status === 429) {
    const retry = Number(resp.headers.find(([k]) => k.toLowerCase() === 'retry-after')?.[1]);
    const ms = Number.isFinite(retry) && retry >= 0 ? Math.ceil(retry * 1000) : 60000;
    return { tag: 'rate-limited', val: { retryAfterMs: BigInt(ms), message } };
  }
  const code = Number.isInteger(doc.code) ? `ntfy_${doc.code}` : `http_${status}`;
  if (status === 401 || status === 403) return { tag: 'unauthorized', val: { code, message } };
  if (status === 408 || (status >= 500 && status <= 599)) return retryable(code, message);
  return permanent(code, message);
}

function clip(text, limit) {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/** The JSON ntfy publishes: topic, message, title, tags (categories), priority, click. */
function buildMessage(n) {
  const text = (n.text ?? '').trim() || (n.html ?? '').trim();
  const title = (n.subject ?? '').trim();
  if (!text && !title) throw permanent('invalid_input', 'the notification has no subject, text or html');
  const msg = { topic: topic(), message: clip(text || title, MAX_MESSAGE), priority: priority(n.metadata) };
  if (title && text) msg.title = title;
  if (n.categories.length > 0) msg.tags = n.categories;
  const click = n.metadata.find(([k]) => k === 'click')?.[1];
  if (click !== undefined) {
    if (!/^https?:\/\/\S+$/i.test(click)) throw permanent('invalid_input', '`click` metadata must be an http(s) URL');
    msg.click = click;
  }
  return msg;
}

export const lifecycle = {
  healthCheck() {
    let base;
    try {
      base = serverUrl();
      topic();
    } catch (e) {
      return { status: 'unhealthy', message: e.val.message };
    }
    let resp;
    try {
      resp = request('get', `${base}/v1/health`, undefined);
    } catch (e) {
      return { status: 'degraded', message: e.val.message };
    }
    const doc = parseJson(resp.body);
    if (resp.status === 200 && doc && doc.healthy === true) return { status: 'healthy', message: undefined };
    return { status: 'unhealthy', message: `the ntfy server reports itself unhealthy (HTTP ${resp.status})` };
  },

  validateCredentials() {
    const base = serverUrl();
    if (!hasSecret('token')) return { valid: true, account: undefined, message: 'no token: public topics only' };
    // ntfy answers the token's account for GET /v1/account.
    const resp = request('get', `${base}/v1/account`, undefined);
    if (resp.status === 401 || resp.status === 403) {
      return { valid: false, account: undefined, message: `ntfy refused the token (HTTP ${resp.status})` };
    }
    if (resp.status < 200 || resp.status > 299) throw fromStatus(resp);
    const doc = parseJson(resp.body);
    return { valid: true, account: typeof doc?.username === 'string' ? doc.username : undefined, message: undefined };
  },
};

export const notifications = {
  send(notification) {
    const base = serverUrl();
    if (notification.attachments.length > 0) {
      logLine('warn', 'ntfy attaches files by URL only; attachments dropped', { count: notification.attachments.length });
    }
    const body = new TextEncoder().encode(JSON.stringify(buildMessage(notification)));
    const resp = request('post', `${base}/`, body);
    if (resp.status < 200 || resp.status > 299) throw fromStatus(resp);
    const doc = parseJson(resp.body);
    const id = typeof doc?.id === 'string' ? doc.id : undefined;
    logLine('info', 'ntfy published the message', { status: resp.status, id: id ?? 'none' });
    return { id, accepted: [topic()], rejected: [] };
  },

  getStatus(_messageId) {
    throw permanent('unsupported', 'ntfy keeps no delivery status for a message');
  },
};
