// Calls to the three services through the web app's /api/<service>/ proxy, as the signed-in person.
// The session lives in an HttpOnly cookie the page cannot read; every change carries the session's
// CSRF token (from /api/whoami or the sign-in answer), which a page of another site cannot know.

let csrf = null;
// Called when the session is gone (401) or must first change its password (403 password_change_required).
let onSignedOut = () => {};
let onPasswordChange = () => {};

export function setCsrf(token) {
  csrf = token || null;
}

export function onSession({ signedOut, passwordChange }) {
  onSignedOut = signedOut;
  onPasswordChange = passwordChange;
}

// A refused request, in the services' error shape: {status, code, message, field}.
export class ApiError extends Error {
  constructor(status, code, message, field, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
    this.retryAfter = retryAfter || null; // seconds, for a 429
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

async function send(url, { method = "GET", body, query, submission, raw = false, quiet = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
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
    response = await fetch(url, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
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
    const error = new ApiError(response.status, err.code || "http_error", err.message || response.statusText, err.field,
      Number(response.headers.get("Retry-After")) || null);
    if (!quiet && response.status === 401) onSignedOut(error);
    if (!quiet && response.status === 403 && error.code === "password_change_required") onPasswordChange(error);
    throw error;
  }
  return payload;
}

export function api(service, path, options) {
  return send(`/api/${service}${path}`, options);
}

// Who is signed in (null when nobody is).
export async function whoami() {
  try {
    const who = await send("/api/whoami", { quiet: true });
    setCsrf(who.csrf_token);
    return who;
  } catch (exc) {
    if (exc.status === 401) return null;
    throw exc;
  }
}

export async function signIn(name, password) {
  const who = await send("/api/session", { method: "POST", body: { name, password }, quiet: true });
  setCsrf(who.csrf_token);
  return who;
}

export async function signOut() {
  try {
    await send("/api/session", { method: "DELETE", quiet: true });
  } finally {
    setCsrf(null);
  }
}

// Download a file the web app serves (as the signed-in person: the cookie goes along).
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
