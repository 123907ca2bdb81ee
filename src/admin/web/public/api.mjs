// The page's only way to the server: the public admin API (the same routes as the CLI), authenticated by the
// session cookie. State-changing calls carry the session's CSRF token (src/admin/web/sessions.ts).
let csrf = null;
let onEnded = () => {};

export function setSession(s) {
  csrf = s ? s.csrfToken : null;
}
export function onSessionEnded(fn) {
  onEnded = fn;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
  }
}

export async function api(method, path, body) {
  // x-postern-web: a 401 then has no Basic challenge, so the browser shows no password dialog of its own.
  const headers = { 'x-postern-web': '1' };
  if (csrf && method !== 'GET') headers['x-csrf-token'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (r.status === 401 && path !== '/api/session') onEnded();
  if (!r.ok) throw new ApiError(r.status, json || { message: text });
  return json === undefined ? text : json;
}

/** `field` of an API error belongs to the form field `name` (body.bcc, target.name, a setting key …). */
export function errorFor(err, name) {
  if (!err || !err.field) return undefined;
  const f = String(err.field).replace(/^body\./, '');
  return f === name || f.endsWith(`.${name}`) ? err.message : undefined;
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}
