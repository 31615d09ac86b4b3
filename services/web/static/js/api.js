// Calls to the three services through the web app's /api/<service>/ proxy.
// The bearer token lives in sessionStorage only: it is gone when the tab closes.

const TOKEN_KEY = "baotuan.token";

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// A refused request, in the services' error shape: {status, code, message, field}.
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// One Idempotency-Key per form: kept while a submission may have gone through (network
// error, 5xx) so a retry is never applied twice; renewed after an answer that settles it.
export class Submission {
  constructor() { this.key = newKey(); }
  settled() { this.key = newKey(); }
}

async function send(url, { method = "GET", body, query, submission, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (submission) headers["Idempotency-Key"] = submission.key;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (exc) {
    throw new ApiError(0, "network_error", String(exc), null);
  }
  if (submission && response.status < 500) submission.settled();
  if (response.ok && raw) return response;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const err = (payload && payload.error) || {};
    throw new ApiError(response.status, err.code || "http_error", err.message || response.statusText, err.field);
  }
  return payload;
}

export function api(service, path, options) {
  return send(`/api/${service}${path}`, options);
}

export function whoami() {
  return send("/api/whoami");
}

// Download a file the web app serves (the bearer token goes in the header, not the URL).
export async function download(path, query, filename) {
  const response = await send(path, { query, raw: true });
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
